//! Debian's kernels for the VM tests: which package each kernel series is, fetched with apt from
//! a scratch configuration of its own under `target/vm/apt/<name>` (the machine's sources are
//! never read or changed), unpacked with `dpkg-deb -x` into `target/vm/kernels/<release>/`, its
//! modules indexed with `depmod`. Nothing is installed.
//!
//! Package names carry an ABI number that moves with every upload (`linux-image-6.1.0-57-amd64`
//! today), so they are resolved from the archive each time: the `linux-image-amd64`
//! meta-package's dependency where it is of the series, else the newest of the series listed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

use anyhow::{bail, Context, Result};

use dev_support::cmd;

/// Debian's archive keys: the host's `debian-archive-keyring` holds every release's.
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// A scratch apt configuration: a name (its directory under `target/vm/apt`) and its sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AptConfig {
    pub name: &'static str,
    /// `(archive URL, suite)`, each with the `main` component.
    pub suites: &'static [(&'static str, &'static str)],
}

const DEBIAN: &str = "http://deb.debian.org/debian";
const DEBIAN_SECURITY: &str = "http://deb.debian.org/debian-security";

/// Debian 12 with its security updates: its own 6.1 (the meta-package's newest is there) and
/// the 6.12 series it takes from Debian 13.
const BOOKWORM: AptConfig = AptConfig {
    name: "bookworm",
    suites: &[(DEBIAN, "bookworm"), (DEBIAN_SECURITY, "bookworm-security")],
};

/// Debian 13's backports: its newer kernels, 6.18 among them (not in this machine's sources).
const TRIXIE_BACKPORTS: AptConfig = AptConfig {
    name: "trixie-backports",
    suites: &[(DEBIAN, "trixie-backports")],
};

/// Debian 11: its 5.10.
const BULLSEYE: AptConfig = AptConfig {
    name: "bullseye",
    suites: &[(DEBIAN, "bullseye")],
};

/// One kernel series the VM tests can boot: where it comes from and what its image package is
/// called, `<prefix><number><suffix>` (the number is the ABI or the stable release: the newest
/// wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Series {
    /// What `--kernel` takes: `6.18`.
    pub name: &'static str,
    pub apt: AptConfig,
    pub prefix: &'static str,
    pub suffix: &'static str,
}

/// The series `--kernel` accepts.
pub const SERIES: [Series; 4] = [
    Series {
        name: "6.1",
        apt: BOOKWORM,
        prefix: "linux-image-6.1.0-",
        suffix: "-amd64",
    },
    Series {
        name: "6.12",
        apt: BOOKWORM,
        prefix: "linux-image-6.12.",
        suffix: "+deb12-amd64",
    },
    Series {
        name: "6.18",
        apt: TRIXIE_BACKPORTS,
        prefix: "linux-image-6.18.",
        suffix: "+deb13-amd64",
    },
    Series {
        name: "5.10",
        apt: BULLSEYE,
        prefix: "linux-image-5.10.0-",
        suffix: "-amd64",
    },
];

impl FromStr for Series {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        SERIES
            .iter()
            .find(|s| s.name == text)
            .copied()
            .ok_or_else(|| {
                let names: Vec<&str> = SERIES.iter().map(|s| s.name).collect();
                format!(
                    "no kernel series `{text}`: choose one of {}",
                    names.join(", ")
                )
            })
    }
}

impl Series {
    /// The number in `package` if it is this series' image package (not `-unsigned`, `-dbg`,
    /// `cloud-` or `rt-`: those have more than digits where the number goes).
    fn number(&self, package: &str) -> Option<u32> {
        let number = package
            .strip_prefix(self.prefix)?
            .strip_suffix(self.suffix)?;
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        number.parse().ok()
    }
}

/// The image package of `series` the meta-package depends on, from `apt-cache depends
/// linux-image-amd64`, if it is of this series.
pub fn meta_dependency(series: &Series, depends: &str) -> Option<String> {
    depends_named(depends)
        .into_iter()
        .find(|name| series.number(name).is_some())
}

/// The newest image package of `series` among the names `apt-cache pkgnames linux-image-` lists.
pub fn newest_listed(series: &Series, pkgnames: &str) -> Option<String> {
    pkgnames
        .lines()
        .map(str::trim)
        .filter_map(|name| series.number(name).map(|n| (n, name)))
        .max_by_key(|(n, _)| *n)
        .map(|(_, name)| name.to_owned())
}

/// The packages an image package pulls its modules from (`linux-modules-…`: Debian splits
/// them out from 7.2 on), from `apt-cache depends <image>`.
pub fn modules_packages(depends: &str) -> Vec<String> {
    depends_named(depends)
        .into_iter()
        .filter(|name| name.starts_with("linux-modules-"))
        .collect()
}

/// The names on `Depends:` lines of `apt-cache depends` output (alternatives, `|Depends:`,
/// included; `<virtual>` names left out).
fn depends_named(depends: &str) -> Vec<String> {
    depends
        .lines()
        .filter_map(|line| line.trim().trim_start_matches('|').strip_prefix("Depends:"))
        .map(str::trim)
        .filter(|name| !name.starts_with('<'))
        .map(str::to_owned)
        .collect()
}

/// The kernel release a `linux-image-<release>` package installs (`uname -r` in the guest).
pub fn release_of(package: &str) -> &str {
    package.strip_prefix("linux-image-").unwrap_or(package)
}

/// The lines of the scratch `sources.list`.
pub fn sources_list(apt: &AptConfig) -> String {
    apt.suites
        .iter()
        .map(|(url, suite)| format!("deb [signed-by={KEYRING}] {url} {suite} main\n"))
        .collect()
}

/// The `-o` options that point apt at the scratch configuration in `dir` alone.
pub fn apt_options(dir: &Path) -> Vec<String> {
    let pairs = [
        ("Dir::Etc::SourceList", dir.join("sources.list")),
        // No drop-in directory: the machine's own sources.list.d stays out.
        ("Dir::Etc::SourceParts", PathBuf::from("/nonexistent")),
        ("Dir::State::Lists", dir.join("lists")),
        ("Dir::Cache", dir.join("cache")),
        // Downloads land in our directory, which apt's `_apt` user may not write.
        ("APT::Sandbox::User", PathBuf::from("root")),
    ];
    pairs
        .iter()
        .flat_map(|(key, value)| ["-o".to_owned(), format!("{key}={}", value.display())])
        .collect()
}

/// A kernel ready to boot. Its modules are beside it: virtme finds them from the image's path
/// and links them into the guest's `/lib/modules`, so `modprobe` works there as usual.
#[derive(Debug)]
pub struct Kernel {
    /// `uname -r`: `6.18.15+deb13-amd64`.
    pub release: String,
    pub vmlinuz: PathBuf,
}

/// `<workspace>/target/vm`.
pub fn vm_dir(workspace: &Path) -> PathBuf {
    workspace.join("target").join("vm")
}

/// Resolves the current package of `series`, and unless it is unpacked already, downloads,
/// unpacks and indexes it.
pub fn fetch(workspace: &Path, series: &Series) -> Result<Kernel> {
    let apt_dir = vm_dir(workspace).join("apt").join(series.apt.name);
    for sub in ["lists/partial", "cache/archives/partial", "debs"] {
        let path = apt_dir.join(sub);
        fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
    }
    let list = apt_dir.join("sources.list");
    fs::write(&list, sources_list(&series.apt))
        .with_context(|| format!("writing {}", list.display()))?;
    let options = apt_options(&apt_dir);
    cmd::run(Command::new("apt-get").args(&options).arg("update"))
        .with_context(|| format!("updating the scratch apt lists in {}", apt_dir.display()))?;

    let apt_cache = |args: &[&str]| {
        cmd::stdout(Command::new("apt-cache").args(&options).args(args))
            .with_context(|| format!("apt-cache {}", args.join(" ")))
    };
    let meta = apt_cache(&["depends", "linux-image-amd64"])?;
    let package = match meta_dependency(series, &meta) {
        Some(package) => package,
        None => newest_listed(series, &apt_cache(&["pkgnames", "linux-image-"])?).with_context(
            || {
                format!(
                    "no {}<N>{} package in {}",
                    series.prefix, series.suffix, series.apt.name
                )
            },
        )?,
    };
    let release = release_of(&package).to_owned();
    let dir = vm_dir(workspace).join("kernels").join(&release);
    let stamp = dir.join(STAMP);
    if !stamp.is_file() {
        let mut packages = vec![package.clone()];
        packages.extend(modules_packages(&apt_cache(&["depends", &package])?));
        eprintln!(
            "xtask: fetching {} (kernel {} from {}) into {}",
            packages.join(" "),
            series.name,
            series.apt.name,
            dir.display()
        );
        unpack(&apt_dir, &options, &packages, &dir, &release)?;
    }
    kernel_in(&dir, &release)
}

/// Marks a kernel directory complete: unpacked and indexed.
const STAMP: &str = ".unpacked";

/// Downloads `packages`, unpacks them into `dir` (through a partial directory, so an interrupted
/// fetch never looks complete) and runs depmod there.
fn unpack(
    apt_dir: &Path,
    options: &[String],
    packages: &[String],
    dir: &Path,
    release: &str,
) -> Result<()> {
    let debs = apt_dir.join("debs");
    clear_dir(&debs)?;
    cmd::run(
        Command::new("apt-get")
            .current_dir(&debs)
            .args(options)
            .arg("download")
            .args(packages),
    )?;
    // Beside it, named in full: the release has dots, so no `with_extension`.
    let partial = dir.with_file_name(format!("{release}.partial"));
    clear_dir(&partial)?;
    for entry in fs::read_dir(&debs).with_context(|| format!("reading {}", debs.display()))? {
        let deb = entry?.path();
        cmd::run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&partial))?;
    }
    let root = modules_root(&partial, release)
        .with_context(|| format!("no lib/modules/{release} in {}", partial.display()))?;
    cmd::run(Command::new(depmod()?).arg("-b").arg(&root).arg(release))?;
    fs::write(partial.join(STAMP), format!("{}\n", packages.join(" ")))?;
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    fs::rename(&partial, dir).with_context(|| format!("moving the kernel to {}", dir.display()))?;
    // The packages are unpacked: 100 MB or more each that nothing reads again.
    clear_dir(&debs)
}

/// The kernel unpacked in `dir`.
fn kernel_in(dir: &Path, release: &str) -> Result<Kernel> {
    let vmlinuz = dir.join("boot").join(format!("vmlinuz-{release}"));
    if !vmlinuz.is_file() {
        bail!("{} is missing", vmlinuz.display());
    }
    if modules_root(dir, release).is_none() {
        bail!("no lib/modules/{release} in {}", dir.display());
    }
    Ok(Kernel {
        release: release.to_owned(),
        vmlinuz,
    })
}

/// Where an unpacked package keeps `lib/modules/<release>`: in `dir` itself (Debian 12 and
/// older) or in `dir/usr` (Debian 13's merged /usr).
pub fn modules_root(dir: &Path, release: &str) -> Option<PathBuf> {
    [dir.to_path_buf(), dir.join("usr")]
        .into_iter()
        .find(|root| root.join("lib/modules").join(release).is_dir())
}

/// depmod lives in /sbin or /usr/sbin, which a user's PATH may lack.
fn depmod() -> Result<PathBuf> {
    ["/usr/sbin/depmod", "/sbin/depmod"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .context("no depmod (Debian's kmod package)")
}

fn clear_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(name: &str) -> Series {
        name.parse().unwrap()
    }

    #[test]
    fn series_are_chosen_by_name() {
        assert_eq!(series("6.18").apt.name, "trixie-backports");
        assert_eq!(series("6.12").apt, series("6.1").apt);
        assert_eq!(series("5.10").apt.name, "bullseye");
        let err = "6.6".parse::<Series>().unwrap_err();
        assert!(err.contains("6.1, 6.12, 6.18, 5.10"), "{err}");
    }

    /// `apt-cache depends linux-image-amd64` in bookworm with bookworm-security.
    const BOOKWORM_META: &str = "linux-image-amd64\n  Depends: linux-image-6.1.0-57-amd64\n";

    /// The same in trixie-backports, whose meta-package moved on past 6.18.
    const BACKPORTS_META: &str = "linux-image-amd64\n  Depends: linux-base-amd64\n  \
        Depends: linux-image-7.3.4+deb13-amd64\n  Depends: linux-modules-amd64\n";

    /// Part of `apt-cache pkgnames linux-image-` in trixie-backports, in its own order.
    const BACKPORTS_NAMES: &str = "linux-image-6.18.9+deb13-amd64\n\
        linux-image-6.18.15+deb13-cloud-amd64\n\
        linux-image-6.18.15+deb13-amd64\n\
        linux-image-6.18.12+deb13-amd64\n\
        linux-image-6.18.15+deb13-rt-amd64\n\
        linux-image-6.19.14+deb13-amd64\n\
        linux-image-7.3.4+deb13-amd64-dbg\n\
        linux-image-amd64\n";

    #[test]
    fn the_meta_package_names_the_current_abi() {
        assert_eq!(
            meta_dependency(&series("6.1"), BOOKWORM_META).as_deref(),
            Some("linux-image-6.1.0-57-amd64")
        );
        // Not 6.12's: the meta-package is 6.1's.
        assert_eq!(meta_dependency(&series("6.12"), BOOKWORM_META), None);
        assert_eq!(meta_dependency(&series("6.18"), BACKPORTS_META), None);
    }

    #[test]
    fn the_newest_of_a_series_is_found_by_number_not_by_text() {
        assert_eq!(
            newest_listed(&series("6.18"), BACKPORTS_NAMES).as_deref(),
            Some("linux-image-6.18.15+deb13-amd64")
        );
        let bookworm = "linux-image-6.12.99+deb12-amd64\nlinux-image-6.12.118+deb12-amd64\n\
            linux-image-6.12.118+deb12-amd64-unsigned\nlinux-image-6.1.0-57-amd64\n";
        assert_eq!(
            newest_listed(&series("6.12"), bookworm).as_deref(),
            Some("linux-image-6.12.118+deb12-amd64")
        );
        assert_eq!(
            newest_listed(&series("6.1"), bookworm).as_deref(),
            Some("linux-image-6.1.0-57-amd64")
        );
        assert_eq!(newest_listed(&series("5.10"), bookworm), None);
    }

    #[test]
    fn only_plain_image_packages_belong_to_a_series() {
        let s = series("6.1");
        assert_eq!(s.number("linux-image-6.1.0-57-amd64"), Some(57));
        for other in [
            "linux-image-6.1.0-57-amd64-unsigned",
            "linux-image-6.1.0-57-cloud-amd64",
            "linux-image-6.1.0-57-rt-amd64",
            "linux-image-6.1.0--amd64",
            "linux-image-amd64",
        ] {
            assert_eq!(s.number(other), None, "{other}");
        }
    }

    #[test]
    fn split_out_modules_come_along() {
        let depends =
            "linux-image-7.3.4+deb13-amd64\n  Depends: kmod\n |Depends: initramfs-tools\n  \
            Depends: linux-modules-7.3.4+deb13-amd64\n  Depends: <linux-initramfs-tool>\n";
        assert_eq!(
            modules_packages(depends),
            ["linux-modules-7.3.4+deb13-amd64"]
        );
        assert!(modules_packages("linux-image-6.18.15+deb13-amd64\n  Depends: kmod\n").is_empty());
    }

    #[test]
    fn the_release_is_the_package_name_after_linux_image() {
        assert_eq!(
            release_of("linux-image-6.18.15+deb13-amd64"),
            "6.18.15+deb13-amd64"
        );
    }

    #[test]
    fn apt_reads_only_the_scratch_configuration() {
        let sources = sources_list(&BOOKWORM);
        assert_eq!(
            sources,
            "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] \
             http://deb.debian.org/debian bookworm main\n\
             deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] \
             http://deb.debian.org/debian-security bookworm-security main\n"
        );
        let options = apt_options(Path::new("/ws/target/vm/apt/bookworm")).join(" ");
        assert_eq!(
            options,
            "-o Dir::Etc::SourceList=/ws/target/vm/apt/bookworm/sources.list \
             -o Dir::Etc::SourceParts=/nonexistent \
             -o Dir::State::Lists=/ws/target/vm/apt/bookworm/lists \
             -o Dir::Cache=/ws/target/vm/apt/bookworm/cache \
             -o APT::Sandbox::User=root"
        );
    }

    #[test]
    fn modules_are_found_with_or_without_merged_usr() {
        let base = std::env::temp_dir().join(format!("xtask-vm-{}", std::process::id()));
        let old = base.join("old");
        let merged = base.join("merged");
        fs::create_dir_all(old.join("lib/modules/6.1.0-57-amd64")).unwrap();
        fs::create_dir_all(merged.join("usr/lib/modules/6.18.15+deb13-amd64")).unwrap();
        assert_eq!(modules_root(&old, "6.1.0-57-amd64"), Some(old.clone()));
        assert_eq!(
            modules_root(&merged, "6.18.15+deb13-amd64"),
            Some(merged.join("usr"))
        );
        assert_eq!(modules_root(&old, "6.18.15+deb13-amd64"), None);
        fs::remove_dir_all(&base).unwrap();
    }
}
