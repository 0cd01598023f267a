//! `cargo xtask dist`: the Debian package. A release build of the agent (its eBPF object
//! embedded), then what the package holds besides the binary, staged in
//! `target/release/package/` (the man pages and completions the agent generates from its own
//! command line, the copyright file with the crates linked in), then cargo-deb, which reads
//! `[package.metadata.deb]` in the agent's Cargo.toml, strips the binary, computes `Depends` from
//! its shared libraries with dpkg-shlibdeps and writes the maintainer scripts of the unit; and
//! last the checksums cargo-deb leaves out, for `dpkg --verify`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use dev_support::apt::Apt;
use dev_support::{cmd, revision};

use crate::build;
use crate::toolchain;

/// Pinned: its declared minimum Rust (1.85) is within the toolchain here; newer ones may not be.
pub const CARGO_DEB_VERSION: &str = "3.8.0";

/// The package, the crate it is built from, and its binary: one name.
const PACKAGE: &str = "zerocopy-trace";

/// The crate of the kernel programs, whose dependencies are built into the object the binary
/// embeds.
const EBPF_CRATE: &str = "zerocopy-trace-ebpf";

/// The copyright template; `@CRATES@` becomes the list of bundled crates.
const COPYRIGHT_TEMPLATE: &str = "contrib/debian/copyright";
const CRATES_PLACEHOLDER: &str = "@CRATES@";

/// The Debian changelog; its newest entry must be the version being packaged.
pub const CHANGELOG: &str = "contrib/debian/changelog";

/// What packaging runs besides cargo: (command, Debian package, what it does here).
const HOST_TOOLS: [(&str, &str, &str); 5] = [
    ("dpkg-shlibdeps", "dpkg-dev", "computing Depends"),
    ("strip", "binutils", "stripping the binary"),
    ("objcopy", "binutils", "stripping the binary"),
    ("gzip", "gzip", "compressing the man pages"),
    ("md5sum", "coreutils", "the package's checksums"),
];

/// `cargo xtask dist` for a task that has run `build::prepare` already (`cargo xtask test`): the toolchain
/// is not looked for twice, and apt's package lists are read once.
pub fn dist_prepared(workspace: &Path, apt: &mut Apt) -> Result<PathBuf> {
    ensure_host_tools(apt)?;
    check_changelog(workspace)?;
    let agent = build::agent(workspace, true)?;
    say_what_is_packaged(workspace);

    let release_dir = agent
        .parent()
        .context("the agent binary has no directory")?;
    let staging = release_dir.join("package");
    if staging.exists() {
        fs::remove_dir_all(&staging).with_context(|| format!("emptying {}", staging.display()))?;
    }
    // The pages and completions come from the binary being packaged, so they describe it.
    cmd::run(Command::new(&agent).arg("assets").arg(&staging))?;
    compress_man_pages(&staging.join("man"))?;
    write_copyright(workspace, &staging)?;

    let cargo_deb = ensure_cargo_deb(workspace)?;
    let output_dir = release_dir
        .parent()
        .context("the release directory has no parent")?
        .join("debian");
    fs::create_dir_all(&output_dir)
        .with_context(|| format!("creating {}", output_dir.display()))?;
    let printed = cmd::stdout(
        Command::new(&cargo_deb)
            .current_dir(workspace)
            // cargo-deb runs `cargo metadata`: the same cargo as ours.
            .env("CARGO", cmd::cargo_program())
            .args(["deb", "--package", PACKAGE, "--no-build", "--output"])
            .arg(&output_dir),
    )?;
    // cargo-deb prints the package's path last.
    let deb = printed
        .lines()
        .last()
        .map(PathBuf::from)
        .filter(|path| path.is_file())
        .with_context(|| format!("cargo-deb named no package file; it printed:\n{printed}"))?;
    add_md5sums(&deb)?;
    describe(&deb)?;
    Ok(deb)
}

fn ensure_host_tools(apt: &mut Apt) -> Result<()> {
    let mut missing: Vec<&str> = HOST_TOOLS
        .iter()
        .filter(|(command, _, _)| !on_path(command))
        .map(|(_, package, _)| *package)
        .collect();
    missing.dedup();
    if !missing.is_empty() {
        apt.install(&missing, "building the Debian package")?;
    }
    Ok(())
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// cargo-deb built into `target/tools` (as bpf-linker is), unless the one there is this version.
fn ensure_cargo_deb(workspace: &Path) -> Result<PathBuf> {
    let tools = toolchain::tools_dir(workspace);
    let binary = tools.join("bin").join("cargo-deb");
    let version = cmd::probe(Command::new(&binary).arg("--version"));
    if version.as_deref() == Some(format!("cargo-deb {CARGO_DEB_VERSION}").as_str()) {
        return Ok(binary);
    }
    eprintln!("xtask: building cargo-deb {CARGO_DEB_VERSION} (cargo install, about a minute)");
    cmd::run(
        cmd::cargo()
            .args(["install", "cargo-deb", "--version", CARGO_DEB_VERSION])
            .args(["--locked", "--force", "--root"])
            .arg(&tools),
    )
    .context("building cargo-deb")?;
    Ok(binary)
}

/// Man pages are shipped compressed (Debian policy). cargo-deb compresses only the files it
/// does not take for build products, and everything under `target/release/` is one to it.
fn compress_man_pages(dir: &Path) -> Result<()> {
    let mut pages: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "8"))
        .collect();
    if pages.is_empty() {
        bail!("the agent wrote no man pages into {}", dir.display());
    }
    pages.sort();
    // -n: no name or time stamp inside, so the same page compresses to the same bytes.
    cmd::run(Command::new("gzip").args(["-9", "-n", "-f"]).args(&pages))
}

/// Adds `DEBIAN/md5sums`, which cargo-deb does not write: `dpkg --verify` and debsums check the
/// installed files against it. Conffiles are left out, as dh_md5sums does: dpkg keeps their
/// checksums itself, and an administrator's edit is not damage.
fn add_md5sums(deb: &Path) -> Result<()> {
    let tree = deb.with_extension("tree");
    if tree.exists() {
        fs::remove_dir_all(&tree).with_context(|| format!("emptying {}", tree.display()))?;
    }
    cmd::run(
        Command::new("dpkg-deb")
            .arg("--raw-extract")
            .arg(deb)
            .arg(&tree),
    )?;
    let control = tree.join("DEBIAN");
    let conffiles = fs::read_to_string(control.join("conffiles")).unwrap_or_default();
    let files: Vec<PathBuf> = files_under(&tree, Path::new(""))?
        .into_iter()
        .filter(|path| !path.starts_with("DEBIAN"))
        .filter(|path| !is_conffile(&conffiles, path))
        .collect();
    if files.is_empty() {
        bail!("{} holds no files", deb.display());
    }
    let sums = cmd::stdout(Command::new("md5sum").current_dir(&tree).args(&files))?;
    fs::write(control.join("md5sums"), format!("{sums}\n"))
        .with_context(|| format!("writing {}", control.join("md5sums").display()))?;
    cmd::run(
        Command::new("dpkg-deb")
            .args(["--root-owner-group", "--build"])
            .arg(&tree)
            .arg(deb),
    )?;
    fs::remove_dir_all(&tree).with_context(|| format!("removing {}", tree.display()))
}

/// Regular files below `root/relative`, as paths relative to `root`, sorted.
fn files_under(root: &Path, relative: &Path) -> Result<Vec<PathBuf>> {
    let dir = root.join(relative);
    let mut files = Vec::new();
    for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let path = relative.join(entry.file_name());
        let kind = entry
            .file_type()
            .with_context(|| format!("reading {}", dir.display()))?;
        if kind.is_dir() {
            files.extend(files_under(root, &path)?);
        } else if kind.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Whether `path` (relative to the package root) is listed in a `conffiles` control file.
fn is_conffile(conffiles: &str, path: &Path) -> bool {
    conffiles
        .lines()
        .any(|line| Path::new(line.trim().trim_start_matches('/')) == path)
}

/// The copyright file: the template with the crates that end up in the package listed.
fn write_copyright(workspace: &Path, staging: &Path) -> Result<()> {
    let template_path = workspace.join(COPYRIGHT_TEMPLATE);
    let template = fs::read_to_string(&template_path)
        .with_context(|| format!("reading {}", template_path.display()))?;
    let linked = bundled_crates(workspace, PACKAGE, None)?;
    let ebpf = bundled_crates(workspace, EBPF_CRATE, Some("bpfel-unknown-none"))?;
    let text = render_copyright(&template, &linked, &ebpf)?;
    let path = staging.join("copyright");
    fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}

/// `name version: licence` of each crates.io crate built into `package` (normal dependencies;
/// proc-macros run at build time and are not in it), for the target given or the host.
fn bundled_crates(workspace: &Path, package: &str, target: Option<&str>) -> Result<Vec<String>> {
    let mut command = cmd::cargo();
    command.current_dir(workspace).args([
        "tree",
        "--package",
        package,
        "--edges",
        "normal,no-proc-macro",
        "--prefix",
        "none",
        "--format",
        "{p}\t{l}",
    ]);
    if let Some(target) = target {
        command.args(["--target", target]);
    }
    let tree = cmd::stdout(&mut command)?;
    let mut crates: Vec<String> = tree.lines().filter_map(crate_line).collect();
    crates.sort();
    crates.dedup();
    Ok(crates)
}

/// One line of `cargo tree --format "{p}\t{l}"` as `name version: licence`; `None` for this
/// workspace's own crates (they carry their path).
fn crate_line(line: &str) -> Option<String> {
    let (package, licence) = line.split_once('\t')?;
    let package = package.trim();
    if package.contains(" (") {
        return None;
    }
    let (name, version) = package.split_once(" v")?;
    let licence = licence.trim().trim_end_matches("(*)").trim();
    let licence = if licence.is_empty() {
        "no licence declared"
    } else {
        licence
    };
    Some(format!("{name} {version}: {licence}"))
}

/// The template with its placeholder replaced by the two lists, as DEP-5 continuation lines
/// (indented, a lone `.` for an empty line).
fn render_copyright(template: &str, linked: &[String], ebpf: &[String]) -> Result<String> {
    if !template.contains(CRATES_PLACEHOLDER) {
        bail!("{COPYRIGHT_TEMPLATE} has no {CRATES_PLACEHOLDER} line");
    }
    let mut lines = vec!["Linked into the program:".to_owned()];
    lines.extend(linked.iter().cloned());
    lines.push(".".to_owned());
    lines.push("Built into its eBPF programs:".to_owned());
    lines.extend(ebpf.iter().cloned());
    Ok(template.replace(CRATES_PLACEHOLDER, &lines.join("\n ")))
}

/// The agent's version, from its manifest (what cargo-deb packages, with revision `-1`).
pub fn agent_version(workspace: &Path) -> Result<String> {
    let manifest_path = workspace.join(PACKAGE).join("Cargo.toml");
    let manifest = fs::read_to_string(&manifest_path)
        .with_context(|| format!("reading {}", manifest_path.display()))?;
    manifest
        .lines()
        .find_map(|line| {
            let value = line
                .strip_prefix("version")?
                .trim_start()
                .strip_prefix('=')?;
            Some(value.trim().trim_matches('"').to_owned())
        })
        .with_context(|| format!("no version in {}", manifest_path.display()))
}

/// The version of the newest entry of a Debian changelog: `name (VERSION) dist; urgency=..`.
fn changelog_version(changelog: &str) -> Option<&str> {
    let first = changelog.lines().next()?;
    let start = first.find('(')? + 1;
    let end = start + first[start..].find(')')?;
    Some(&first[start..end])
}

/// The package's version is the crate's with Debian revision 1; its changelog must say so, or
/// the package would describe another release.
fn check_changelog(workspace: &Path) -> Result<()> {
    let path = workspace.join(CHANGELOG);
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let want = format!("{}-1", agent_version(workspace)?);
    match changelog_version(&text) {
        Some(have) if have == want => Ok(()),
        have => bail!(
            "{CHANGELOG}'s newest entry is {have:?}, but the package is {want}: add an entry \
             for {want} at its top"
        ),
    }
}

/// What `--version` of the packaged binary will name, and a warning when the tree has changes
/// that revision does not include.
fn say_what_is_packaged(workspace: &Path) {
    let revision = revision::of_workspace(workspace).id;
    eprintln!("xtask: packaging revision {revision}");
    let changes = cmd::probe(
        Command::new("git")
            .arg("-C")
            .arg(workspace)
            .args(["status", "--porcelain"]),
    );
    if changes.is_some_and(|c| !c.is_empty()) {
        eprintln!(
            "xtask: warning: the work tree has uncommitted changes; the package holds them, but \
             its --version names only {revision}"
        );
    }
}

/// The package's path, size and dependencies, for the log.
fn describe(deb: &Path) -> Result<()> {
    let size = fs::metadata(deb)
        .with_context(|| format!("reading {}", deb.display()))?
        .len();
    let depends = cmd::probe(
        Command::new("dpkg-deb")
            .args(["--field"])
            .arg(deb)
            .arg("Depends"),
    )
    .unwrap_or_default();
    eprintln!(
        "xtask: built {} ({:.1} MiB), Depends: {depends}",
        deb.display(),
        size as f64 / (1024.0 * 1024.0)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_path_buf()
    }

    #[test]
    fn crate_lines_keep_crates_io_crates_only() {
        assert_eq!(
            crate_line("tokio v1.54.1\tMIT"),
            Some("tokio 1.54.1: MIT".to_owned())
        );
        assert_eq!(
            crate_line("aya v0.14.0\tMIT OR Apache-2.0 (*)"),
            Some("aya 0.14.0: MIT OR Apache-2.0".to_owned())
        );
        assert_eq!(
            crate_line("odd v1.0.0\t"),
            Some("odd 1.0.0: no licence declared".to_owned())
        );
        assert_eq!(
            crate_line("zerocopy-trace-common v0.1.0 (/work/x/zerocopy-trace-common)\tMIT"),
            None
        );
        assert_eq!(crate_line(""), None);
    }

    #[test]
    fn the_copyright_lists_both_sets_as_continuation_lines() {
        let template = "Files: *\nComment: crates:\n @CRATES@\n\nLicense: Expat\n";
        let text = render_copyright(
            template,
            &["a 1.0.0: MIT".to_owned(), "b 2.0.0: Zlib".to_owned()],
            &["c 3.0.0: MIT OR Apache-2.0".to_owned()],
        )
        .unwrap();
        assert_eq!(
            text,
            "Files: *\nComment: crates:\n Linked into the program:\n a 1.0.0: MIT\n \
             b 2.0.0: Zlib\n .\n Built into its eBPF programs:\n c 3.0.0: MIT OR Apache-2.0\n\n\
             License: Expat\n"
        );
        assert!(render_copyright("no placeholder", &[], &[]).is_err());
    }

    #[test]
    fn the_template_in_the_repository_has_its_placeholder() {
        let template = fs::read_to_string(workspace().join(COPYRIGHT_TEMPLATE)).unwrap();
        assert!(render_copyright(&template, &[], &[]).is_ok());
        assert!(template.starts_with("Format: https://www.debian.org/doc/packaging-manuals/"));
    }

    #[test]
    fn conffiles_are_matched_by_their_path_in_the_package() {
        let conffiles = "/etc/default/zerocopy-trace-exporter\n";
        assert!(is_conffile(
            conffiles,
            Path::new("etc/default/zerocopy-trace-exporter")
        ));
        assert!(!is_conffile(conffiles, Path::new("usr/bin/zerocopy-trace")));
        assert!(!is_conffile("", Path::new("etc/default/x")));
    }

    #[test]
    fn files_under_lists_regular_files_relative_and_sorted() {
        let root = std::env::temp_dir().join(format!("xtask-dist-files-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("usr/bin")).unwrap();
        fs::create_dir_all(root.join("empty")).unwrap();
        fs::write(root.join("usr/bin/b"), "b").unwrap();
        fs::write(root.join("a"), "a").unwrap();
        std::os::unix::fs::symlink("a", root.join("link")).unwrap();
        assert_eq!(
            files_under(&root, Path::new("")).unwrap(),
            [PathBuf::from("a"), PathBuf::from("usr/bin/b")]
        );
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn changelog_versions_are_read_from_the_first_line() {
        assert_eq!(
            changelog_version("zerocopy-trace (0.2.0-1) unstable; urgency=medium\n\n  * x\n"),
            Some("0.2.0-1")
        );
        assert_eq!(changelog_version("garbage"), None);
        assert_eq!(changelog_version(""), None);
    }

    /// A version bump without a changelog entry fails here, before anyone builds a package.
    #[test]
    fn the_changelog_names_the_crate_version() {
        check_changelog(&workspace()).unwrap();
    }
}
