//! Which of the agent's integration suites a VM runs, and their test binaries, built on the host
//! (the guest sees the host's filesystem, so it runs them where cargo left them, without cargo).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use dev_support::cmd;

use crate::build::{self, AGENT, TEST_HOOKS, WORKLOAD};

/// The privileged suites that prove the tracer on a kernel: exact counts on every data path and
/// hook, thousands of processes counted through their exits, nothing left loaded afterwards.
pub const DEFAULT_SUITES: [&str; 3] = ["exact_bytes", "reliability", "cleanup"];

/// What `cargo xtask test --kernel … -- EXTRA` forwards: cargo's build options, the suites named
/// with `--test`, and the test binaries' own arguments (after a second `--`).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Forwarded {
    pub cargo: Vec<String>,
    pub tests: Vec<String>,
    pub binary: Vec<String>,
}

impl Forwarded {
    pub fn split(extra: &[String]) -> Forwarded {
        let (cargo_part, binary) = match extra.iter().position(|a| a == "--") {
            Some(i) => (&extra[..i], extra[i + 1..].to_vec()),
            None => (extra, Vec::new()),
        };
        let mut forwarded = Forwarded {
            binary,
            ..Forwarded::default()
        };
        let mut args = cargo_part.iter();
        while let Some(arg) = args.next() {
            if arg == "--test" {
                forwarded.tests.extend(args.next().cloned());
            } else if let Some(name) = arg.strip_prefix("--test=") {
                forwarded.tests.push(name.to_owned());
            } else {
                forwarded.cargo.push(arg.clone());
            }
        }
        forwarded
    }

    /// Whether the binaries are built with `--release` (the workload helper must match).
    pub fn release(&self) -> bool {
        self.cargo.iter().any(|a| a == "--release")
    }

    /// What the test binaries get: ours, one test at a time (they attach the same hooks), unless
    /// the caller set a thread count, then theirs.
    pub fn binary_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if !self.binary.iter().any(|a| a.starts_with("--test-threads")) {
            args.push("--test-threads=1".to_owned());
        }
        args.extend(self.binary.iter().cloned());
        args
    }
}

/// The suites to run: `--suites`, else those named with `--test`, else the defaults. Naming
/// different ones both ways is refused rather than guessed at.
pub fn choose(flag: &[String], tests: &[String]) -> Result<Vec<String>> {
    let chosen: Vec<String> = match (flag.is_empty(), tests.is_empty()) {
        (false, false) if flag != tests => bail!(
            "--suites {} and --test {} disagree: name the suites one way",
            flag.join(","),
            tests.join(" --test ")
        ),
        (false, _) => flag.to_vec(),
        (true, false) => tests.to_vec(),
        (true, true) => DEFAULT_SUITES.map(str::to_owned).to_vec(),
    };
    let mut unique = Vec::new();
    for suite in chosen {
        if suite.is_empty() {
            bail!("an empty suite name");
        }
        if !unique.contains(&suite) {
            unique.push(suite);
        }
    }
    Ok(unique)
}

/// The `cargo test --no-run` arguments that build `suites` with the forwarded options.
pub fn build_args(suites: &[String], forwarded: &Forwarded) -> Vec<String> {
    let mut args: Vec<String> = [
        "test",
        "--no-run",
        "--package",
        AGENT,
        "--features",
        TEST_HOOKS,
    ]
    .map(str::to_owned)
    .to_vec();
    for suite in suites {
        args.extend(["--test".to_owned(), suite.clone()]);
    }
    args.extend(forwarded.cargo.iter().cloned());
    // Diagnostics as usual on stderr; stdout is one JSON message a line, read below.
    args.push("--message-format=json-render-diagnostics".to_owned());
    args
}

/// One suite's test binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suite {
    pub name: String,
    pub binary: PathBuf,
}

/// The test binaries of `suites`, from cargo's JSON messages (`compiler-artifact` of a `test`
/// target with its `executable`), in the order asked for.
pub fn executables(messages: &str, suites: &[String]) -> Result<Vec<Suite>> {
    let mut found = Vec::new();
    for line in messages.lines().filter(|l| l.starts_with('{')) {
        let message: Value =
            serde_json::from_str(line).with_context(|| format!("cargo's message `{line}`"))?;
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        let target = &message["target"];
        let is_test = target["kind"]
            .as_array()
            .is_some_and(|kinds| kinds.iter().any(|k| k == "test"));
        if let (true, Some(name), Some(executable)) = (
            is_test,
            target["name"].as_str(),
            message["executable"].as_str(),
        ) {
            found.push((name.to_owned(), PathBuf::from(executable)));
        }
    }
    suites
        .iter()
        .map(|suite| {
            found
                .iter()
                .find(|(name, _)| name == suite)
                .map(|(name, binary)| Suite {
                    name: name.clone(),
                    binary: binary.clone(),
                })
                .with_context(|| format!("cargo built no test binary `{suite}`"))
        })
        .collect()
}

/// Builds the workload helper and the test binaries of `suites` (which must be the agent's
/// integration tests) on the host; returns the binaries.
pub fn build(workspace: &Path, suites: &[String], forwarded: &Forwarded) -> Result<Vec<Suite>> {
    let tests_dir = workspace.join(AGENT).join("tests");
    for suite in suites {
        if !tests_dir.join(format!("{suite}.rs")).is_file() {
            bail!(
                "no suite `{suite}`: the VM runs the agent's integration tests, {}/<name>.rs",
                tests_dir.display()
            );
        }
    }
    // The tests find it beside the agent they test, so in the same profile.
    build::binary(workspace, WORKLOAD, forwarded.release(), &[])?;
    let messages = cmd::stdout(
        cmd::cargo()
            .current_dir(workspace)
            .args(build_args(suites, forwarded)),
    )
    .context("building the test binaries")?;
    executables(&messages, suites)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn forwarded_args_split_into_cargo_tests_and_binary() {
        let f = Forwarded::split(&strings(&[
            "--test",
            "exact_bytes",
            "--release",
            "--test=cleanup",
            "--",
            "sigkill",
            "--nocapture",
        ]));
        assert_eq!(f.cargo, ["--release"]);
        assert_eq!(f.tests, ["exact_bytes", "cleanup"]);
        assert_eq!(f.binary, ["sigkill", "--nocapture"]);
        assert!(f.release());
        assert_eq!(
            f.binary_args(),
            ["--test-threads=1", "sigkill", "--nocapture"]
        );
        let own = Forwarded::split(&strings(&["--", "--test-threads=2"]));
        assert_eq!(own.binary_args(), ["--test-threads=2"]);
        assert!(!own.release());
    }

    #[test]
    fn suites_come_from_the_flag_the_test_options_or_the_defaults() {
        assert_eq!(
            choose(&[], &[]).unwrap(),
            ["exact_bytes", "reliability", "cleanup"]
        );
        assert_eq!(
            choose(&strings(&["cleanup", "cleanup"]), &[]).unwrap(),
            ["cleanup"]
        );
        assert_eq!(
            choose(&[], &strings(&["exact_bytes"])).unwrap(),
            ["exact_bytes"]
        );
        assert_eq!(
            choose(&strings(&["cleanup"]), &strings(&["cleanup"])).unwrap(),
            ["cleanup"]
        );
        let err = choose(&strings(&["cleanup"]), &strings(&["exact_bytes"])).unwrap_err();
        assert!(err.to_string().contains("disagree"), "{err}");
        assert!(choose(&strings(&[""]), &[]).is_err());
    }

    #[test]
    fn the_build_names_each_suite_and_keeps_cargos_options() {
        let f = Forwarded::split(&strings(&["--release", "--test", "cleanup"]));
        assert_eq!(
            build_args(&strings(&["exact_bytes", "cleanup"]), &f).join(" "),
            "test --no-run --package zerocopy-trace --features zerocopy-trace/test-hooks \
             --test exact_bytes --test cleanup --release --message-format=json-render-diagnostics"
        );
    }

    #[test]
    fn executables_are_read_from_cargos_messages() {
        let messages = concat!(
            r#"{"reason":"compiler-artifact","target":{"kind":["bin"],"name":"zerocopy-trace"},"executable":"/t/debug/zerocopy-trace"}"#,
            "\n",
            r#"{"reason":"compiler-artifact","target":{"kind":["test"],"name":"cleanup"},"executable":"/t/debug/deps/cleanup-1a2b"}"#,
            "\n",
            r#"{"reason":"compiler-artifact","target":{"kind":["lib"],"name":"libc"},"executable":null}"#,
            "\n",
            r#"{"reason":"compiler-artifact","target":{"kind":["test"],"name":"exact_bytes"},"executable":"/t/debug/deps/exact_bytes-3c4d"}"#,
            "\n",
            r#"{"reason":"build-finished","success":true}"#,
        );
        let suites = executables(messages, &strings(&["exact_bytes", "cleanup"])).unwrap();
        assert_eq!(
            suites,
            [
                Suite {
                    name: "exact_bytes".to_owned(),
                    binary: PathBuf::from("/t/debug/deps/exact_bytes-3c4d")
                },
                Suite {
                    name: "cleanup".to_owned(),
                    binary: PathBuf::from("/t/debug/deps/cleanup-1a2b")
                },
            ]
        );
        let err = executables(messages, &strings(&["reliability"])).unwrap_err();
        assert!(err.to_string().contains("reliability"), "{err}");
    }
}
