//! The Debian package as an operator gets it: built by `cargo xtask dist` (which `cargo xtask
//! test` runs first, naming the package in ZEROCOPY_TRACE_DEB), checked by lintian, installed
//! with dpkg; then the installed binary traces real workloads exactly, its man pages render,
//! bash completes it, systemd accepts its unit; then it is removed, leaving only configuration,
//! and purged. Installing changes the machine's /usr, so the package is purged whatever happens.

mod common;

use std::{
    collections::BTreeSet,
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use serde_json::Value;

use common::{privileged, process, scratch, workload};

const DEB_ENV: &str = "ZEROCOPY_TRACE_DEB";
const PACKAGE: &str = "zerocopy-trace";
const INSTALLED: &str = "/usr/bin/zerocopy-trace";
const UNIT: &str = "/usr/lib/systemd/system/zerocopy-trace-exporter.service";
const SETTINGS: &str = "/etc/default/zerocopy-trace-exporter";
const BASH_COMPLETION: &str = "/usr/share/bash-completion/completions/zerocopy-trace";

/// Everything the package installs (directories aside), so nothing is missing and nothing
/// creeps in unnoticed.
const FILES: [&str; 17] = [
    "/etc/default/zerocopy-trace-exporter",
    "/usr/bin/zerocopy-trace",
    "/usr/lib/systemd/system/zerocopy-trace-exporter.service",
    "/usr/share/bash-completion/completions/zerocopy-trace",
    "/usr/share/doc/zerocopy-trace/changelog.Debian.gz",
    "/usr/share/doc/zerocopy-trace/copyright",
    "/usr/share/fish/vendor_completions.d/zerocopy-trace.fish",
    "/usr/share/lintian/overrides/zerocopy-trace",
    "/usr/share/man/man8/zerocopy-trace-exporter.8.gz",
    "/usr/share/man/man8/zerocopy-trace-report.8.gz",
    "/usr/share/man/man8/zerocopy-trace-run.8.gz",
    "/usr/share/man/man8/zerocopy-trace-top.8.gz",
    "/usr/share/man/man8/zerocopy-trace.8.gz",
    "/usr/share/zerocopy-trace/grafana-dashboard.json",
    "/usr/share/zerocopy-trace/prometheus.yml",
    "/usr/share/zerocopy-trace/zerocopy-trace-alerts.yml",
    "/usr/share/zsh/vendor-completions/_zerocopy-trace",
];

/// What `dpkg -r` may leave: the configuration file, dpkg's record of it and the script that
/// purges it, and the unit's mask and state records that deb-systemd-helper keeps until purge
/// (so an enabled unit of a removed package is not started).
const LEFT_AFTER_REMOVE: [&str; 6] = [
    SETTINGS,
    "/var/lib/dpkg/info/zerocopy-trace.list",
    "/var/lib/dpkg/info/zerocopy-trace.postrm",
    "/etc/systemd/system/zerocopy-trace-exporter.service",
    "/var/lib/systemd/deb-systemd-helper-masked/zerocopy-trace-exporter.service",
    "/var/lib/systemd/deb-systemd-helper-enabled/zerocopy-trace-exporter.service.dsh-also",
];

/// The package built by `cargo xtask dist`, or `None` (after saying so) outside CI when the test
/// was not started through `cargo xtask test`.
fn package() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(DEB_ENV) {
        let path = PathBuf::from(path);
        assert!(path.is_file(), "{DEB_ENV}={} is not a file", path.display());
        return Some(path);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{DEB_ENV} is not set: run the package test through `cargo xtask test`");
    }
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED (no package): run `cargo xtask test -- --test package`, which builds it"
    );
    None
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .env("LC_ALL", "C.UTF-8")
        .output()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"))
}

/// Runs and insists on success; returns stdout.
fn run_ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn deb_str(deb: &Path) -> &str {
    deb.to_str().expect("utf-8 package path")
}

#[test]
fn lintian_finds_no_errors_or_warnings() {
    let Some(deb) = package() else { return };
    let out = run("lintian", &["--pedantic", deb_str(&deb)]);
    let report = String::from_utf8_lossy(&out.stdout);
    let flagged: Vec<&str> = report
        .lines()
        .filter(|line| line.starts_with("E: ") || line.starts_with("W: "))
        .collect();
    assert!(
        out.status.success() && flagged.is_empty(),
        "lintian ({}):\n{report}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_package_holds_its_files_with_computed_depends() {
    let Some(deb) = package() else { return };
    let listing = run_ok("dpkg-deb", &["--contents", deb_str(&deb)]);
    let mut shipped = BTreeSet::new();
    for line in listing.lines() {
        // drwxr-xr-x root/root 0 2026-11-29 00:00 ./usr/
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields.get(1), Some(&"root/root"), "{line}");
        let (mode, path) = (fields[0], fields[fields.len() - 1]);
        if !mode.starts_with('d') {
            let expected_mode = if path == "./usr/bin/zerocopy-trace" {
                "-rwxr-xr-x"
            } else {
                "-rw-r--r--"
            };
            assert_eq!(mode, expected_mode, "{line}");
            shipped.insert(path.trim_start_matches('.').to_owned());
        }
    }
    let expected: BTreeSet<String> = FILES.iter().map(|f| f.to_string()).collect();
    assert_eq!(shipped, expected);

    let field = |name: &str| run_ok("dpkg-deb", &["--field", deb_str(&deb), name]);
    assert_eq!(field("Package").trim(), PACKAGE);
    assert_eq!(
        field("Version").trim(),
        format!("{}-1", env!("CARGO_PKG_VERSION"))
    );
    // From dpkg-shlibdeps: the C library only (libgcc_s comes with it), nothing of the build
    // toolchain (LLVM, rustc).
    let depends = field("Depends");
    assert!(depends.trim().starts_with("libc6 (>= 2."), "{depends}");
    assert!(
        !depends.contains("llvm") && !depends.contains("rust"),
        "{depends}"
    );

    let control = scratch("package-control");
    run_ok(
        "dpkg-deb",
        &["--control", deb_str(&deb), control.to_str().expect("utf-8")],
    );
    let read = |name: &str| std::fs::read_to_string(control.join(name)).unwrap_or_default();
    assert_eq!(read("conffiles"), format!("{SETTINGS}\n"));
    // Every shipped file but the conffile has its checksum.
    assert_eq!(read("md5sums").lines().count(), expected.len() - 1);
    // Nothing is enabled or started on install.
    let postinst = read("postinst");
    assert!(!postinst.contains("deb-systemd-invoke start"), "{postinst}");
    std::fs::remove_dir_all(&control).expect("removing the scratch directory");
}

/// Purges the package when dropped, so a failed assertion never leaves it installed; and
/// removes the formatted pages man cached for it.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", PACKAGE]).output();
        if let Ok(entries) = std::fs::read_dir("/var/cache/man/cat8") {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(PACKAGE) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
    }
}

/// dpkg's status of the package, as `dpkg-query`'s abbreviation (`ii `, `rc `), or `None`
/// when dpkg does not know it.
fn status() -> Option<String> {
    let out = run(
        "dpkg-query",
        &["--show", "--showformat=${db:Status-Abbrev}", PACKAGE],
    );
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        .filter(|s| !s.trim().is_empty())
}

fn install(deb: &Path) {
    let out = run("dpkg", &["--install", deb_str(deb)]);
    if !out.status.success() {
        // Dependencies missing on this machine: apt brings them and finishes the install.
        let fixed = Command::new("apt-get")
            .args(["install", "--fix-broken", "--yes"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .expect("starting apt-get");
        assert!(
            fixed.status.success(),
            "dpkg -i failed:\n{}\nand apt-get install -f too:\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&fixed.stderr)
        );
    }
    assert_eq!(status().as_deref(), Some("ii "));
}

/// The installed binary under `run --json`: the workload helper moves exactly known bytes by
/// sendfile and by read+write, and the report must match its ground truth call for call.
fn traces_the_workload_exactly() {
    let dir = scratch("package-workload");
    let truth_path = dir.join("truth.json");
    let report_path = dir.join("report.json");
    let files = dir.join("files");
    for mode in ["sendfile", "read-write"] {
        let out = Command::new(INSTALLED)
            .args(["run", "--json", "-o"])
            .arg(&report_path)
            .args(["--", workload(), mode, "--out"])
            .arg(&truth_path)
            .arg("--dir")
            .arg(&files)
            .args(["--bytes", "4194304", "--chunk", "65536"])
            .output()
            .expect("starting the installed zerocopy-trace");
        assert!(
            out.status.success(),
            "{mode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = read_json(&report_path);
        let truth: Value = read_json(&truth_path);
        let children = truth["processes"].as_array().expect("processes");
        assert!(!children.is_empty(), "{truth:#}");
        for child in children {
            let seen = process(&report, child["pid"].as_u64().expect("pid"));
            let want = child["syscalls"].as_object().expect("syscalls");
            let got = seen["syscalls"].as_object().expect("syscalls");
            assert_eq!(
                got.keys().collect::<Vec<_>>(),
                want.keys().collect::<Vec<_>>(),
                "{mode}: {seen:#}"
            );
            for (name, w) in want {
                for field in ["calls", "bytes", "errors"] {
                    assert_eq!(got[name][field], w[field], "{mode} {name}.{field}");
                }
            }
        }
        if mode == "sendfile" {
            let sender = children
                .iter()
                .find(|c| c["role"] == "sender")
                .expect("a sender");
            let seen = process(&report, sender["pid"].as_u64().expect("pid"));
            assert_eq!(seen["zero_copy_bytes"], 4194304, "{seen:#}");
            assert_eq!(seen["copied_bytes"], 0, "{seen:#}");
        }
    }
    std::fs::remove_dir_all(&dir).expect("removing the scratch directory");
}

/// And a program nobody here wrote: dd copies 64 blocks of 64 KiB from /dev/zero to /dev/null.
/// Its loader reads its libraries too, so the exact figures are those of the character devices.
fn traces_dd_exactly() {
    let dir = scratch("package-dd");
    let report_path = dir.join("report.json");
    let out = Command::new(INSTALLED)
        .args(["run", "--json", "-o"])
        .arg(&report_path)
        .args(["--", "dd", "if=/dev/zero", "of=/dev/null", "bs=65536"])
        .args(["count=64", "status=none"])
        .env("LC_ALL", "C")
        .output()
        .expect("starting the installed zerocopy-trace");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = read_json(&report_path);
    let dd = report["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .find(|p| p["comm"] == "dd")
        .unwrap_or_else(|| panic!("no dd in {report:#}"));
    let read = &dd["syscalls"]["read"];
    let write = &dd["syscalls"]["write"];
    assert_eq!(read["fd_kinds"]["source"]["char"], 4194304, "{dd:#}");
    assert_eq!(write["calls"], 64, "{dd:#}");
    assert_eq!(write["bytes"], 4194304, "{dd:#}");
    assert_eq!(write["fd_kinds"]["destination"]["char"], 4194304, "{dd:#}");
    std::fs::remove_dir_all(&dir).expect("removing the scratch directory");
}

fn read_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", path.display()))
}

/// Every installed page renders without a warning from man or groff, under its name.
fn man_pages_render() {
    for name in [
        "zerocopy-trace",
        "zerocopy-trace-top",
        "zerocopy-trace-report",
    ]
    .into_iter()
    .chain(["zerocopy-trace-run", "zerocopy-trace-exporter"])
    {
        let page = format!("/usr/share/man/man8/{name}.8.gz");
        assert!(
            Path::new(&page).is_file(),
            "{page} not installed (does a dpkg path-exclude drop man pages here?)"
        );
        let out = Command::new("man")
            .args(["--warnings", "-l", &page])
            .env("MANWIDTH", "80")
            .env("LC_ALL", "C.UTF-8")
            .output()
            .expect("starting man");
        let text = String::from_utf8_lossy(&out.stdout);
        let warnings = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && warnings.is_empty(),
            "{page}: {warnings}"
        );
        assert!(
            text.contains("SYNOPSIS") && text.contains("SEE ALSO"),
            "{text}"
        );
        // The line after NAME is `name - what it does` (man justifies the spaces).
        let what = text
            .lines()
            .skip_while(|line| *line != "NAME")
            .nth(1)
            .unwrap_or_default();
        assert!(
            what.trim_start().starts_with(&format!("{name} ")) && what.contains(" - "),
            "{text}"
        );
    }
    let exporter = run_ok(
        "man",
        &["-l", "/usr/share/man/man8/zerocopy-trace-exporter.8.gz"],
    );
    assert!(exporter.contains("--listen <ADDR>"), "{exporter}");
    assert!(exporter.contains(SETTINGS), "{exporter}");
}

/// What bash proposes for the words typed, the way bash calls the completion function that
/// the installed script registers for the command.
fn bash_completes(words: &[&str]) -> String {
    let script = format!(
        r#"source {BASH_COMPLETION}
function=$(complete -p zerocopy-trace | sed -n 's/.* -F \([^ ]*\) .*/\1/p')
COMP_WORDS=({words})
COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
COMP_LINE="${{COMP_WORDS[*]}}"
COMP_POINT=${{#COMP_LINE}}
"$function" zerocopy-trace "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
echo "${{COMPREPLY[*]}}""#,
        words = words
            .iter()
            .map(|w| format!("'{w}'"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    run_ok("bash", &["-c", &script]).trim().to_owned()
}

fn bash_completion_works() {
    assert_eq!(bash_completes(&["zerocopy-trace", "re"]), "report");
    assert_eq!(
        bash_completes(&["zerocopy-trace", "exporter", "--li"]),
        "--listen"
    );
    assert_eq!(
        bash_completes(&["zerocopy-trace", "run", "--hook", ""]),
        "btf raw tracepoints"
    );
    // The hidden subcommands stay hidden.
    assert_eq!(bash_completes(&["zerocopy-trace", "fl"]), "");
}

/// systemd accepts the unit (its binary and its man page found), it is disabled, its exposure
/// is that of a tightly confined service, and its settings file starts it on loopback.
fn the_unit_is_accepted_and_disabled() {
    let out = run("systemd-analyze", &["verify", UNIT]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
    assert_eq!(
        run(
            "systemctl",
            &["is-enabled", "zerocopy-trace-exporter.service"]
        )
        .stdout,
        b"disabled\n"
    );
    // systemd's score of the confinement, 0 (confined) to 10 (exposed), 3.4 when written; the
    // threshold is in tenths: anything above 4.0 fails.
    let security = run_ok(
        "systemd-analyze",
        &["security", "--offline=true", "--threshold=40", UNIT],
    );
    assert!(security.contains("Overall exposure level"), "{security}");
    let settings = std::fs::read_to_string(SETTINGS).expect("the settings file");
    assert!(
        settings
            .lines()
            .any(|l| l == "ZEROCOPY_TRACE_LISTEN=127.0.0.1:9124"),
        "{settings}"
    );
    let unit = std::fs::read_to_string(UNIT).expect("the unit");
    assert!(
        unit.contains(&format!("EnvironmentFile=-{SETTINGS}")),
        "{unit}"
    );
}

#[test]
fn installed_package_works_then_removes_cleanly() {
    let Some(deb) = package() else { return };
    if !privileged() {
        return;
    }
    assert_eq!(
        status(),
        None,
        "{PACKAGE} is already known to dpkg here; this test installs and purges it: remove it \
         first (dpkg --purge {PACKAGE})"
    );
    assert_eq!(
        strays(),
        Vec::<String>::new(),
        "files named {PACKAGE} already here would confuse the removal checks"
    );
    let installed = Installed;
    install(&deb);
    // dpkg checks every installed file against the package's md5sums.
    assert_eq!(run_ok("dpkg", &["--verify", PACKAGE]), "");
    let listed = run_ok("dpkg-query", &["--listfiles", PACKAGE]);
    let files: BTreeSet<&str> = listed
        .lines()
        .filter(|path| Path::new(path).is_file())
        .collect();
    assert_eq!(files, FILES.into_iter().collect());

    assert_eq!(
        run_ok(INSTALLED, &["--version"]).trim(),
        format!(
            "zerocopy-trace {} (revision {})",
            env!("CARGO_PKG_VERSION"),
            env!("ZEROCOPY_TRACE_REVISION")
        )
    );
    traces_the_workload_exactly();
    traces_dd_exactly();
    man_pages_render();
    bash_completion_works();
    the_unit_is_accepted_and_disabled();

    run_ok("dpkg", &["--remove", PACKAGE]);
    assert_eq!(
        status().as_deref(),
        Some("rc "),
        "removed, configuration kept"
    );
    for path in FILES {
        let left = Path::new(path).symlink_metadata().is_ok();
        assert_eq!(
            left,
            path == SETTINGS,
            "{path} {} after dpkg -r",
            if left { "is left" } else { "is gone" }
        );
    }
    for dir in ["/usr/share/zerocopy-trace", "/usr/share/doc/zerocopy-trace"] {
        assert!(!Path::new(dir).exists(), "{dir} left after dpkg -r");
    }
    let left = strays();
    assert!(
        left.iter().all(|p| LEFT_AFTER_REMOVE.contains(&p.as_str())),
        "left after dpkg -r: {left:?}"
    );

    run_ok("dpkg", &["--purge", PACKAGE]);
    assert_eq!(status(), None);
    assert_eq!(strays(), Vec::<String>::new(), "left after dpkg --purge");
    drop(installed);
}

/// Files named after the package where packages, dpkg and systemd keep things (man's cache of
/// formatted pages aside). Container storage is pruned: the image test's layers hold the
/// package installed inside images, which are other root filesystems, not this one.
fn strays() -> Vec<String> {
    let out = run_ok(
        "find",
        &[
            "/etc",
            "/usr",
            "/var/lib",
            "(",
            "-path",
            "/var/lib/containers",
            "-o",
            "-path",
            "/var/lib/docker",
            ")",
            "-prune",
            "-o",
            "-name",
            "*zerocopy-trace*",
            "-not",
            "-type",
            "d",
            "-print",
        ],
    );
    let mut paths: Vec<String> = out.lines().map(str::to_owned).collect();
    paths.sort();
    paths
}
