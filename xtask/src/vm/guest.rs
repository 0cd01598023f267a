//! The guest's one command: a shell script that readies the guest (the BPF, trace and debug
//! filesystems, the scratch disk as an ext4 `/tmp`), says what machine it is, runs each suite's
//! test binary and leaves what happened as files in the results directory, the only directory
//! the guest can write on the host. QEMU's exit code says nothing under TCG, so these files are
//! the whole report; `results.rs` reads them.

use std::fmt::Write as _;
use std::path::Path;

use super::suites::Suite;

/// The serial number of the scratch disk, by which the guest finds it (no udev runs there).
pub const SCRATCH_SERIAL: &str = "zct-scratch";

/// Modules the guest needs that Debian builds as modules: the scratch disk's driver and its
/// filesystem. (virtme loads what the 9p root itself needs.)
pub const MODULES: [&str; 2] = ["virtio_blk", "ext4"];

/// The files the script writes into the results directory.
pub mod files {
    /// `key=value` lines: `kernel`, `online`, `possible`, `tmp` (the filesystem of /tmp).
    pub const GUEST: &str = "guest.txt";
    /// Why the guest could not be readied; no suite ran.
    pub const SETUP_FAILED: &str = "setup-failed";
    /// Written last: the script got to its end.
    pub const DONE: &str = "done";
    /// The kernel's log at the end, for a verifier or oops message the suites' output lacks.
    pub const DMESG: &str = "dmesg.txt";
    /// The agent's own words on this kernel, with its defaults: the hook it chose, how it
    /// tells a process's end, its maps' kernel memory (the `attached` line), and any warning.
    pub const AGENT: &str = "agent.txt";

    /// A suite's combined stdout and stderr.
    pub fn output(suite: &str) -> String {
        format!("{suite}.out")
    }
    /// A suite's exit code, written when its binary has ended.
    pub fn status(suite: &str) -> String {
        format!("{suite}.status")
    }
    /// How long a suite ran, in whole seconds.
    pub fn seconds(suite: &str) -> String {
        format!("{suite}.seconds")
    }
}

/// The guest's /tmp: the scratch disk is mounted over it.
const GUEST_TMP: &str = "/tmp";

/// `Err` naming the first of `paths` the scratch /tmp would hide in the guest (the results,
/// the binaries and the workspace must stay visible there).
pub fn check_visible<'a>(paths: impl IntoIterator<Item = &'a Path>) -> Result<(), String> {
    match paths.into_iter().find(|p| p.starts_with(GUEST_TMP)) {
        Some(path) => Err(format!(
            "the guest mounts its scratch ext4 over {GUEST_TMP}, which would hide {}: run from a \
             workspace (and target directory) outside {GUEST_TMP}",
            path.display()
        )),
        None => Ok(()),
    }
}

/// What the script needs to know.
pub struct Plan<'a> {
    /// The results directory (the same path on the host and in the guest).
    pub results: &'a Path,
    /// Where the binaries run: the agent's package directory, as `cargo test` runs them.
    pub workdir: &'a Path,
    /// The host's PATH, so the programs the tests drive are found as on the host.
    pub path: &'a str,
    pub suites: &'a [Suite],
    /// The agent the suites test (beside their binaries, in the same profile).
    pub agent: &'a Path,
    /// Every test binary's arguments.
    pub args: &'a [String],
}

/// `text` as one word for `sh`, quoted with single quotes.
pub fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

fn quote_path(path: &Path) -> String {
    quote(&path.to_string_lossy())
}

/// The script, ready to write to a file and run with `sh`.
pub fn script(plan: &Plan) -> String {
    let mut s = String::new();
    let results = quote_path(plan.results);
    let _ = writeln!(
        s,
        "#!/bin/sh\n\
         # Written by `cargo xtask test --kernel`: the VM's one command. See xtask/src/vm/guest.rs.\n\
         results={results}\n\
         # CI=true: a privileged test that cannot run fails rather than skips.\n\
         export PATH={path} HOME=/root CI=true RUST_BACKTRACE=1\n",
        path = quote(plan.path),
    );
    s.push_str(SETUP);
    let _ = writeln!(
        s,
        "modprobe -a {} || setup_failed 'modprobe {}'",
        MODULES.join(" "),
        MODULES.join(" ")
    );
    let _ = writeln!(s, "scratch_on_tmp {SCRATCH_SERIAL}");
    s.push_str(DESCRIBE);
    let _ = writeln!(
        s,
        "cd {} || setup_failed 'no directory {}'",
        quote_path(plan.workdir),
        plan.workdir.display()
    );
    s.push_str(RUN_SUITE);
    let args: Vec<String> = plan.args.iter().map(|a| quote(a)).collect();
    for suite in plan.suites {
        let _ = writeln!(
            s,
            "run_suite {} {} {}",
            quote(&suite.name),
            quote_path(&suite.binary),
            args.join(" ")
        );
    }
    let _ = writeln!(
        s,
        "RUST_LOG=info {} run -- true 2>&1 | grep -E 'attached|WARN|ERROR|error' > \"$results/{}\"",
        quote_path(plan.agent),
        files::AGENT
    );
    let _ = writeln!(
        s,
        "dmesg > \"$results/{}\" 2>&1\ntouch \"$results/{}\"",
        files::DMESG,
        files::DONE
    );
    s
}

/// Readying the guest: virtme mounts tracefs and debugfs, but not bpffs, and an older virtme
/// or kernel may differ, so each is mounted where missing.
const SETUP: &str = r#"
setup_failed() {
    echo "$1" > "$results/setup-failed"
    echo "xtask guest: setup failed: $1"
    exit 1
}
mounted() { grep -q " $1 " /proc/mounts; }
mounted /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf || setup_failed 'mounting bpffs on /sys/fs/bpf'
mounted /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing || setup_failed 'mounting tracefs'
mounted /sys/kernel/debug || mount -t debugfs debugfs /sys/kernel/debug || setup_failed 'mounting debugfs'

# The scratch disk, found by its serial, becomes /tmp: a real ext4 (the O_DIRECT tests need one;
# virtme's /tmp is an overlay on tmpfs).
scratch_on_tmp() {
    disk=
    for try in $(seq 50); do
        for dev in /sys/block/vd*; do
            [ "$(cat "$dev/serial" 2>/dev/null)" = "$1" ] && disk="/dev/${dev##*/}"
        done
        [ -n "$disk" ] && [ -b "$disk" ] && break
        sleep 0.2
    done
    [ -n "$disk" ] || setup_failed "no virtio disk with serial $1"
    mount -t ext4 "$disk" /tmp || setup_failed "mounting $disk (ext4) on /tmp"
    chmod 1777 /tmp
}
"#;

/// What machine this is, for the report: the host checks the CPU counts against what it asked.
const DESCRIBE: &str = r#"
{
    echo "kernel=$(uname -r)"
    echo "online=$(nproc)"
    echo "possible=$(cat /sys/devices/system/cpu/possible)"
    echo "tmp=$(awk '$2 == "/tmp" { fs = $3 } END { print fs }' /proc/mounts)"
} > "$results/guest.txt"
cat "$results/guest.txt"
"#;

/// One suite: its output, then its time, then its exit code (the sign that it ended).
const RUN_SUITE: &str = r#"
run_suite() {
    name=$1
    shift
    echo "xtask guest: running $name"
    start=$(date +%s)
    "$@" > "$results/$name.out" 2>&1
    status=$?
    echo $(( $(date +%s) - start )) > "$results/$name.seconds"
    echo "$status" > "$results/$name.status"
    echo "xtask guest: $name exited with $status"
}
"#;

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn quoting_survives_single_quotes() {
        assert_eq!(quote("plain"), "'plain'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }

    fn plan_script(suites: &[Suite], args: &[String]) -> String {
        script(&Plan {
            results: Path::new("/ws/target/vm/runs/6.18-16cpus/results"),
            workdir: Path::new("/ws/zerocopy-trace"),
            path: "/usr/bin:/bin",
            suites,
            agent: Path::new("/ws/target/release/zerocopy-trace"),
            args,
        })
    }

    #[test]
    fn the_script_runs_each_suite_in_order_with_the_args() {
        let suites = [
            Suite {
                name: "exact_bytes".to_owned(),
                binary: PathBuf::from("/ws/target/release/deps/exact_bytes-1a"),
            },
            Suite {
                name: "cleanup".to_owned(),
                binary: PathBuf::from("/ws/target/release/deps/cleanup-2b"),
            },
        ];
        let text = plan_script(&suites, &["--test-threads=1".to_owned(), "a b".to_owned()]);
        assert!(text.starts_with("#!/bin/sh\n"), "{text}");
        assert!(text.contains("results='/ws/target/vm/runs/6.18-16cpus/results'\n"));
        assert!(text.contains("export PATH='/usr/bin:/bin' HOME=/root CI=true"));
        let exact = text
            .find("run_suite 'exact_bytes' '/ws/target/release/deps/exact_bytes-1a' '--test-threads=1' 'a b'\n")
            .expect(&text);
        let cleanup = text
            .find("run_suite 'cleanup' '/ws/target/release/deps/cleanup-2b' '--test-threads=1' 'a b'\n")
            .expect(&text);
        assert!(exact < cleanup);
        // Readied before any suite, done after all.
        for step in [
            "mount -t bpf bpf /sys/fs/bpf",
            "modprobe -a virtio_blk ext4",
            "scratch_on_tmp zct-scratch",
            "cat /sys/devices/system/cpu/possible",
            "cd '/ws/zerocopy-trace'",
        ] {
            assert!(text.find(step).expect(step) < exact, "{step}");
        }
        assert!(text.rfind("touch \"$results/done\"").unwrap() > cleanup);
        // After the suites, the agent says what it chose on this kernel.
        let agent = text
            .find("RUST_LOG=info '/ws/target/release/zerocopy-trace' run -- true")
            .expect(&text);
        assert!(agent > cleanup);
        // The files results.rs reads are the ones written.
        for name in [
            files::GUEST.to_owned(),
            files::SETUP_FAILED.to_owned(),
            files::DMESG.to_owned(),
            files::AGENT.to_owned(),
            files::output("$name"),
            files::status("$name"),
            files::seconds("$name"),
        ] {
            assert!(text.contains(&format!("\"$results/{name}\"")), "{name}");
        }
    }

    #[test]
    fn nothing_the_guest_needs_may_sit_under_its_tmp() {
        let fine = [
            Path::new("/work/ws"),
            Path::new("/work/ws/target/debug/deps/cleanup-1"),
        ];
        assert!(check_visible(fine).is_ok());
        let err = check_visible([Path::new("/work/ws"), Path::new("/tmp/ws/target")]).unwrap_err();
        assert!(err.contains("hide /tmp/ws/target"), "{err}");
        // A sibling that merely starts with the same letters is fine.
        assert!(check_visible([Path::new("/tmpfs/ws")]).is_ok());
    }

    #[test]
    fn the_script_is_valid_sh() {
        let suites = [Suite {
            name: "cleanup".to_owned(),
            binary: PathBuf::from("/bin/true"),
        }];
        let text = plan_script(&suites, &[]);
        let status = std::process::Command::new("sh")
            .args(["-n", "-c", &text])
            .status()
            .unwrap();
        assert!(status.success(), "{text}");
    }
}
