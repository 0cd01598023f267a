//! Programs the integration tests drive besides our own: real servers and tools nobody here
//! wrote. A fresh machine lacks some of them, so `cargo xtask test` installs what is missing,
//! the same way it installs the eBPF toolchain.

use std::path::Path;

use anyhow::Result;

use dev_support::apt::Apt;

/// (command, Debian package that provides it, what needs it)
const PROGRAMS: [(&str, &str, &str); 11] = [
    ("nginx", "nginx-light", "the nginx sendfile on/off tests"),
    ("fio", "fio", "the io_uring and O_DIRECT tests"),
    ("socat", "socat", "the user-space proxy test"),
    ("haproxy", "haproxy", "the splice relay test"),
    ("curl", "curl", "the HTTP client of the server tests"),
    (
        "javac",
        "openjdk-17-jdk-headless",
        "the naming test: a JVM whose threads rename themselves (`java File.java` needs the JDK's compiler, not only the JRE)",
    ),
    ("tmux", "tmux", "the dashboard's end-to-end test"),
    (
        "openssl",
        "openssl",
        "the exporter's TLS test: a test CA and its certificates",
    ),
    (
        "lintian",
        "lintian",
        "the package test: Debian's package checker",
    ),
    ("man", "man-db", "the package test: rendering the man pages"),
    (
        "systemd-analyze",
        "systemd",
        "the package test: checking the systemd unit",
    ),
];

/// Programs installed without their recommendations: (command, package, what needs it).
/// Debian's prometheus recommends node exporters and a web UI that the tests must not start.
const WITHOUT_RECOMMENDS: [(&str, &str, &str); 1] = [(
    "promtool",
    "prometheus",
    "the exporter's test against a real Prometheus (prometheus, promtool)",
)];

/// Directories searched for the commands; /usr/sbin holds nginx and is not on every PATH.
const DIRS: [&str; 4] = ["/usr/local/bin", "/usr/bin", "/usr/sbin", "/bin"];

fn installed(command: &str) -> bool {
    DIRS.iter()
        .any(|dir| Path::new(dir).join(command).is_file())
}

/// The packages of the programs of `table` that are missing.
fn missing_of(table: &[(&str, &'static str, &str)]) -> Vec<&'static str> {
    table
        .iter()
        .filter(|(command, _, _)| !installed(command))
        .map(|(_, package, _)| *package)
        .collect()
}

/// Installs whatever is missing; nothing (and no apt) when all are there.
pub fn ensure(apt: &mut Apt) -> Result<()> {
    let packages = missing_of(&PROGRAMS);
    if !packages.is_empty() {
        apt.install(&packages, "the integration tests")?;
    }
    let minimal = missing_of(&WITHOUT_RECOMMENDS);
    if !minimal.is_empty() {
        apt.install_without_recommends(&minimal, "the integration tests")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_program_has_a_package() {
        for (command, package, why) in PROGRAMS.iter().chain(&WITHOUT_RECOMMENDS) {
            assert!(!command.is_empty() && !package.is_empty() && !why.is_empty());
        }
        assert!(!installed("zerocopy-trace-no-such-command"));
    }
}
