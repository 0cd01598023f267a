//! Finds, and on a fresh Debian machine installs, what the eBPF crate needs before anything builds:
//!
//! 1. a rustc whose sysroot holds the `core` source, because `-Z build-std=core` compiles `core`
//!    for `bpfel-unknown-none` (rustup cannot add `rust-src` here: it downloads nothing);
//! 2. bpf-linker, built against that rustc's LLVM major, because it reads the bitcode rustc emits.
//!
//! Everything it builds lives under `target/tools`, never in the repository. When all is in place
//! it runs three quick `rustc` queries and reads one stamp file: no apt, no cargo install.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use dev_support::apt::{self, Apt};
use dev_support::cmd;

/// The bpf-linker release we build. 0.13.0 is the newest on crates.io and has a cargo feature per
/// LLVM major in [`BPF_LINKER_LLVM_MAJORS`]; its published `Cargo.lock` lets us use `--locked`.
pub const BPF_LINKER_VERSION: &str = "0.13.0";

/// LLVM majors with a `llvm-N` feature in bpf-linker [`BPF_LINKER_VERSION`].
const BPF_LINKER_LLVM_MAJORS: [u32; 3] = [21, 22, 23];

/// Debian's rustc: with `rust-web-src` its sysroot `/usr` holds the library source.
const SYSTEM_RUSTC: &str = "/usr/bin/rustc";

/// Debian 12's matched pair: rustc 1.96 built on LLVM 22, its library source, and the same LLVM for
/// bpf-linker to link against.
const SYSTEM_PACKAGES: [&str; 3] = ["rustc-web", "rust-web-src", "llvm-22-dev"];

/// Where in a sysroot `-Z build-std` looks for the library source; we check for `core`'s manifest.
const CORE_SOURCE: &str = "lib/rustlib/src/rust/library/core/Cargo.toml";

/// Where a rustc came from, which decides where its clippy lives and how to get one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// rustup's `nightly`, with the `rust-src` component: the usual laptop setup.
    RustupNightly,
    /// `/usr/bin/rustc` from Debian's `rustc-web` + `rust-web-src`.
    System,
}

impl Origin {
    pub fn label(self) -> &'static str {
        match self {
            Origin::RustupNightly => "rustup nightly",
            Origin::System => "Debian",
        }
    }
}

/// The eBPF build's toolchain, ready to use.
#[derive(Debug)]
pub struct Toolchain {
    /// The rustc to pass as `RUSTC` for the eBPF crate.
    pub rustc: PathBuf,
    pub origin: Origin,
    /// Its version, e.g. `1.96.0`.
    pub release: String,
    /// Its LLVM major version, which bpf-linker must share.
    pub llvm_major: u32,
    /// `target/tools/bin`, holding bpf-linker; goes first on `PATH` for the eBPF build.
    pub tools_bin: PathBuf,
}

impl Toolchain {
    pub fn bpf_linker(&self) -> PathBuf {
        self.tools_bin.join("bpf-linker")
    }

    /// One line for the log: which compiler and linker the eBPF build will use.
    pub fn summary(&self) -> String {
        format!(
            "eBPF rustc {} ({}, {}, LLVM {}), bpf-linker {BPF_LINKER_VERSION} at {}",
            self.rustc.display(),
            self.origin.label(),
            self.release,
            self.llvm_major,
            self.bpf_linker().display()
        )
    }
}

/// `<workspace>/target/tools`: the `cargo install --root` for tools this xtask builds.
pub fn tools_dir(workspace: &Path) -> PathBuf {
    workspace.join("target").join("tools")
}

/// Finds (or installs) the eBPF rustc and bpf-linker; see the module docs.
pub fn ensure(workspace: &Path, apt: &mut Apt) -> Result<Toolchain> {
    let (rustc, origin) = find_rustc(apt)?;
    let text = cmd::probe(Command::new(&rustc).arg("-vV"))
        .with_context(|| format!("`{} -vV` failed", rustc.display()))?;
    let version = parse_version(&text)
        .with_context(|| format!("reading the output of `{} -vV`", rustc.display()))?;
    let tools = tools_dir(workspace);
    ensure_bpf_linker(&tools, version.llvm_major, apt)?;
    Ok(Toolchain {
        rustc,
        origin,
        release: version.release,
        llvm_major: version.llvm_major,
        tools_bin: tools.join("bin"),
    })
}

/// The first usable rustc among rustup's nightly and Debian's, installing Debian's if neither is.
fn find_rustc(apt: &mut Apt) -> Result<(PathBuf, Origin)> {
    let mut tried = Vec::new();

    match rustup_nightly_rustc() {
        Some(rustc) => match check_core_source(&rustc) {
            Ok(()) => return Ok((rustc, Origin::RustupNightly)),
            Err(why) => tried.push(format!("rustup nightly: {why}")),
        },
        None => tried.push("rustup nightly: not installed".to_owned()),
    }

    let system = PathBuf::from(SYSTEM_RUSTC);
    match check_core_source(&system) {
        Ok(()) => return Ok((system, Origin::System)),
        Err(why) => tried.push(format!("{SYSTEM_RUSTC}: {why}")),
    }

    let tried = tried.join("\n  ");
    if let Err(reason) = apt::can_install() {
        bail!(
            "no rustc here can build the eBPF crate: `-Z build-std=core` needs one whose sysroot \
             holds the `core` source.\n  {tried}\nxtask cannot install one ({reason}). As root, \
             run:\n{}\nor, where rustup can download: rustup component add rust-src --toolchain \
             nightly",
            apt::manual_commands(&SYSTEM_PACKAGES)
        );
    }
    eprintln!("xtask: no rustc with the core library source:\n  {tried}");
    apt.install(&SYSTEM_PACKAGES, "the eBPF build (-Z build-std=core)")?;
    match check_core_source(&system) {
        Ok(()) => Ok((system, Origin::System)),
        Err(why) => bail!(
            "installed {} but {SYSTEM_RUSTC} is still unusable: {why}",
            SYSTEM_PACKAGES.join(" ")
        ),
    }
}

/// rustup's nightly rustc, as a full path so it can be `RUSTC` under a stable cargo.
fn rustup_nightly_rustc() -> Option<PathBuf> {
    cmd::probe(Command::new("rustup").args(["which", "--toolchain", "nightly", "rustc"]))
        .filter(|path| !path.is_empty())
        .map(PathBuf::from)
}

/// `Ok` if `rustc` runs and its sysroot holds the `core` source, else why not.
fn check_core_source(rustc: &Path) -> Result<(), String> {
    if !rustc.is_file() {
        return Err("not installed".to_owned());
    }
    let sysroot = cmd::probe(Command::new(rustc).args(["--print", "sysroot"]))
        .ok_or_else(|| format!("`{} --print sysroot` failed", rustc.display()))?;
    if has_core_source(Path::new(&sysroot)) {
        Ok(())
    } else {
        Err(format!("no {CORE_SOURCE} under its sysroot {sysroot}"))
    }
}

/// Whether `sysroot` holds the library source `-Z build-std=core` compiles.
pub fn has_core_source(sysroot: &Path) -> bool {
    sysroot.join(CORE_SOURCE).is_file()
}

/// The parts of `rustc -vV` we need.
#[derive(Debug, PartialEq, Eq)]
pub struct Version {
    pub release: String,
    pub llvm_major: u32,
}

/// Reads `release: 1.96.0` and `LLVM version: 22.1.8` from `rustc -vV`.
pub fn parse_version(text: &str) -> Result<Version> {
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .map(str::trim)
            .with_context(|| format!("no `{name}` line"))
    };
    let release = field("release:")?.to_owned();
    let llvm = field("LLVM version:")?;
    let major = llvm.split('.').next().unwrap_or_default();
    let llvm_major = major
        .parse()
        .with_context(|| format!("LLVM version `{llvm}` does not start with a number"))?;
    Ok(Version {
        release,
        llvm_major,
    })
}

/// What the stamp beside bpf-linker says when it was built for `llvm_major`. It names the release
/// too, so bumping [`BPF_LINKER_VERSION`] rebuilds it.
fn stamp_text(llvm_major: u32) -> String {
    format!("bpf-linker {BPF_LINKER_VERSION} llvm-{llvm_major}\n")
}

/// The LLVM installation bpf-linker links against: Debian's versioned prefix.
pub fn llvm_prefix(llvm_major: u32) -> PathBuf {
    PathBuf::from(format!("/usr/lib/llvm-{llvm_major}"))
}

/// Whether `prefix` has what bpf-linker's build script uses: `llvm-config` and the shared library
/// (the `-dev` package's symlink).
fn has_llvm_dev(prefix: &Path) -> bool {
    prefix.join("bin/llvm-config").is_file() && prefix.join("lib/libLLVM.so").exists()
}

/// Builds bpf-linker into `tools` unless the stamp says the one there matches `llvm_major`.
fn ensure_bpf_linker(tools: &Path, llvm_major: u32, apt: &mut Apt) -> Result<()> {
    let binary = tools.join("bin").join("bpf-linker");
    let stamp = tools.join("bpf-linker.stamp");
    let want = stamp_text(llvm_major);
    let have = fs::read_to_string(&stamp).ok();
    if binary.is_file() && have.as_deref() == Some(want.as_str()) {
        return Ok(());
    }
    match (&have, binary.is_file()) {
        (Some(have), true) => eprintln!(
            "xtask: bpf-linker in {} was built as `{}`, need `{}`: rebuilding",
            tools.display(),
            have.trim(),
            want.trim()
        ),
        _ => eprintln!("xtask: no bpf-linker in {}", tools.display()),
    }

    if !BPF_LINKER_LLVM_MAJORS.contains(&llvm_major) {
        bail!(
            "the eBPF rustc uses LLVM {llvm_major}, but bpf-linker {BPF_LINKER_VERSION} only \
             supports LLVM {BPF_LINKER_LLVM_MAJORS:?}"
        );
    }
    let prefix = llvm_prefix(llvm_major);
    if !has_llvm_dev(&prefix) {
        let package = format!("llvm-{llvm_major}-dev");
        apt.install(&[package.as_str()], "building bpf-linker")?;
        if !has_llvm_dev(&prefix) {
            bail!(
                "installed {package} but {} still lacks bin/llvm-config or lib/libLLVM.so",
                prefix.display()
            );
        }
    }

    eprintln!(
        "xtask: building bpf-linker {BPF_LINKER_VERSION} against LLVM {llvm_major} \
         (cargo install, about a minute)"
    );
    let feature = format!("llvm-{llvm_major}");
    cmd::run(
        cmd::cargo()
            .env("LLVM_PREFIX", &prefix)
            .args(["install", "bpf-linker", "--version", BPF_LINKER_VERSION])
            // --force: a bpf-linker for another LLVM may already be installed there.
            .args(["--locked", "--force", "--no-default-features", "--features"])
            .arg(&feature)
            .arg("--root")
            .arg(tools),
    )
    .context("building bpf-linker")?;
    fs::write(&stamp, &want).with_context(|| format!("writing {}", stamp.display()))?;
    Ok(())
}

/// The `cargo-clippy` for the eBPF rustc. Clippy is a build of the compiler itself, so only the
/// one shipped with that rustc can check code for it: it sits beside it (rustup's `clippy`
/// component, or Debian's clippy package for `rustc-web`, installed here if missing).
pub fn ensure_clippy(toolchain: &Toolchain, apt: &mut Apt) -> Result<PathBuf> {
    let dir = toolchain
        .rustc
        .parent()
        .context("the eBPF rustc path has no directory")?;
    let cargo_clippy = dir.join("cargo-clippy");
    let present = || cargo_clippy.is_file() && dir.join("clippy-driver").is_file();
    if present() {
        return Ok(cargo_clippy);
    }
    match toolchain.origin {
        Origin::RustupNightly => bail!(
            "rustup's nightly has no clippy (`rustup component add clippy --toolchain nightly`)"
        ),
        Origin::System => {
            let owner = cmd::probe(Command::new("dpkg-query").args(["-S", SYSTEM_RUSTC]))
                .context("cannot tell which Debian package holds /usr/bin/rustc")?;
            let package = clippy_package(&owner)
                .with_context(|| format!("no known clippy package for `{owner}`"))?;
            apt.install(&[package], "clippy on the eBPF crate")?;
            if !present() {
                bail!(
                    "installed {package} but {} is still missing",
                    cargo_clippy.display()
                );
            }
            Ok(cargo_clippy)
        }
    }
}

/// Debian's clippy package for the package holding `/usr/bin/rustc`, from `dpkg-query -S` output
/// such as `rustc-web: /usr/bin/rustc`.
fn clippy_package(dpkg_owner: &str) -> Option<&'static str> {
    match dpkg_owner.split(':').next()?.trim() {
        "rustc-web" => Some("rust-web-clippy"),
        "rustc" => Some("rust-clippy"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN_VV: &str = "rustc 1.96.0 (ac68faa20 2026-05-25) (built from a source tarball)\n\
        binary: rustc\n\
        commit-hash: ac68faa20c58cbccd01ee7208bf3b6e93a7d7f96\n\
        commit-date: 2026-05-25\n\
        host: x86_64-unknown-linux-gnu\n\
        release: 1.96.0\n\
        LLVM version: 22.1.8\n";

    #[test]
    fn parses_release_and_llvm_major() {
        assert_eq!(
            parse_version(DEBIAN_VV).unwrap(),
            Version {
                release: "1.96.0".to_owned(),
                llvm_major: 22
            }
        );
    }

    #[test]
    fn parses_a_bare_llvm_major() {
        let text = "release: 1.97.0-nightly\nLLVM version: 21\n";
        assert_eq!(parse_version(text).unwrap().llvm_major, 21);
    }

    #[test]
    fn rejects_output_without_llvm() {
        let err = parse_version("release: 1.96.0\n").unwrap_err();
        assert!(err.to_string().contains("LLVM version"), "{err}");
        assert!(parse_version("release: 1\nLLVM version: x.1\n").is_err());
    }

    #[test]
    fn core_source_is_found_only_where_core_has_a_manifest() {
        let sysroot = temp_dir("sysroot");
        assert!(!has_core_source(&sysroot));
        let core = sysroot.join("lib/rustlib/src/rust/library/core");
        fs::create_dir_all(&core).unwrap();
        // An empty directory (a half-removed component) is not a source tree.
        assert!(!has_core_source(&sysroot));
        fs::write(core.join("Cargo.toml"), "[package]\n").unwrap();
        assert!(has_core_source(&sysroot));
        fs::remove_dir_all(&sysroot).unwrap();
    }

    #[test]
    fn stamp_names_version_and_llvm() {
        assert_eq!(stamp_text(22), "bpf-linker 0.13.0 llvm-22\n");
        assert_ne!(stamp_text(22), stamp_text(21));
    }

    #[test]
    fn system_packages_match_bpf_linker() {
        // The Debian pair must bring an LLVM that the pinned bpf-linker can link against.
        let llvm = SYSTEM_PACKAGES
            .iter()
            .find_map(|p| p.strip_prefix("llvm-")?.strip_suffix("-dev"))
            .and_then(|m| m.parse::<u32>().ok())
            .unwrap();
        assert!(BPF_LINKER_LLVM_MAJORS.contains(&llvm));
        assert_eq!(llvm_prefix(llvm), Path::new("/usr/lib/llvm-22"));
    }

    #[test]
    fn clippy_package_follows_the_rustc_package() {
        assert_eq!(
            clippy_package("rustc-web: /usr/bin/rustc"),
            Some("rust-web-clippy")
        );
        assert_eq!(clippy_package("rustc: /usr/bin/rustc"), Some("rust-clippy"));
        assert_eq!(clippy_package("something-else: /usr/bin/rustc"), None);
    }

    /// A fresh, empty directory of this test process (no tempfile dependency for one test).
    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }
}
