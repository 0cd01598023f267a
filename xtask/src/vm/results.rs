//! Reading what the guest left in the results directory (see `guest.rs`): the machine it was,
//! and each suite's exit code, time and libtest counts. A suite with no exit code did not end:
//! the guest crashed or timed out while it ran, or never got to it.

use std::fs;
use std::path::Path;

use super::guest::files;

/// What the guest said about itself.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct GuestInfo {
    pub kernel: String,
    pub online: String,
    /// `/sys/devices/system/cpu/possible`: `0-254`.
    pub possible: String,
    /// The filesystem of its /tmp.
    pub tmp: String,
}

impl GuestInfo {
    pub fn parse(text: &str) -> GuestInfo {
        let mut info = GuestInfo::default();
        for line in text.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let value = value.trim().to_owned();
            match key.trim() {
                "kernel" => info.kernel = value,
                "online" => info.online = value,
                "possible" => info.possible = value,
                "tmp" => info.tmp = value,
                _ => {}
            }
        }
        info
    }

    /// How many CPUs the possible list names (`0-15` is 16, `0-3,8` is 5).
    pub fn possible_count(&self) -> Option<u32> {
        cpu_count(&self.possible)
    }
}

/// The number of CPUs in a kernel CPU list such as `0-3,8,10-11`.
pub fn cpu_count(list: &str) -> Option<u32> {
    let list = list.trim();
    if list.is_empty() {
        return None;
    }
    let mut count = 0;
    for part in list.split(',') {
        let (low, high) = match part.split_once('-') {
            Some((low, high)) => (low.parse::<u32>().ok()?, high.parse::<u32>().ok()?),
            None => {
                let cpu = part.parse::<u32>().ok()?;
                (cpu, cpu)
            }
        };
        if high < low {
            return None;
        }
        count += high - low + 1;
    }
    Some(count)
}

/// libtest's counts, from its `test result:` line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub passed: u32,
    pub failed: u32,
    pub ignored: u32,
}

/// The counts of the last `test result: …` line of a test binary's output.
pub fn counts(output: &str) -> Option<Counts> {
    let line = output
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("test result: "))?;
    let mut counts = Counts::default();
    let mut found = false;
    for field in line.split(';') {
        let mut words = field.split_whitespace().rev();
        // "ok. 11 passed" read from the end: the label, then its number.
        let (Some(label), Some(number)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(number) = number.parse() else {
            continue;
        };
        match label {
            "passed" => counts.passed = number,
            "failed" => counts.failed = number,
            "ignored" => counts.ignored = number,
            _ => continue,
        }
        found = true;
    }
    found.then_some(counts)
}

/// How one suite ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Its binary ended with this exit code.
    Ended {
        status: i32,
        seconds: Option<u64>,
        counts: Option<Counts>,
    },
    /// It started but has no exit code: the guest ended (or was stopped) while it ran.
    Unfinished,
    /// It never started.
    NotRun,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        matches!(self, Outcome::Ended { status: 0, .. })
    }

    /// One line for the summary.
    pub fn describe(&self) -> String {
        match self {
            Outcome::Ended {
                status,
                seconds,
                counts,
            } => {
                let verdict = if *status == 0 {
                    "ok".to_owned()
                } else {
                    format!("FAILED (exit {status})")
                };
                let counts = counts.map_or_else(
                    || "no test result line".to_owned(),
                    |c| {
                        format!(
                            "{} passed, {} failed, {} ignored",
                            c.passed, c.failed, c.ignored
                        )
                    },
                );
                let time = seconds.map_or_else(String::new, |s| format!(" in {s} s"));
                format!("{verdict}: {counts}{time}")
            }
            Outcome::Unfinished => {
                "FAILED: did not finish (the guest ended while it ran)".to_owned()
            }
            Outcome::NotRun => "FAILED: never started".to_owned(),
        }
    }
}

/// One suite's outcome and its output.
#[derive(Debug)]
pub struct SuiteResult {
    pub name: String,
    pub outcome: Outcome,
    pub output: Option<String>,
}

/// Everything the guest left.
#[derive(Debug)]
pub struct Report {
    pub guest: Option<GuestInfo>,
    pub setup_failed: Option<String>,
    pub done: bool,
    pub suites: Vec<SuiteResult>,
}

impl Report {
    /// Whether the guest's script never began: no word from it at all.
    pub fn never_started(&self) -> bool {
        self.guest.is_none()
            && self.setup_failed.is_none()
            && self.suites.iter().all(|s| s.outcome == Outcome::NotRun)
    }
}

/// Reads the results directory for `suites`.
pub fn read(dir: &Path, suites: &[String]) -> Report {
    let read = |name: &str| fs::read_to_string(dir.join(name)).ok();
    let suites = suites
        .iter()
        .map(|name| {
            let output = read(&files::output(name));
            let status = read(&files::status(name)).and_then(|s| s.trim().parse().ok());
            let outcome = match (status, &output) {
                (Some(status), _) => Outcome::Ended {
                    status,
                    seconds: read(&files::seconds(name)).and_then(|s| s.trim().parse().ok()),
                    counts: output.as_deref().and_then(counts),
                },
                (None, Some(_)) => Outcome::Unfinished,
                (None, None) => Outcome::NotRun,
            };
            SuiteResult {
                name: name.clone(),
                outcome,
                output,
            }
        })
        .collect();
    Report {
        guest: read(files::GUEST).map(|text| GuestInfo::parse(&text)),
        setup_failed: read(files::SETUP_FAILED).map(|s| s.trim().to_owned()),
        done: dir.join(files::DONE).is_file(),
        suites,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_are_counted() {
        assert_eq!(cpu_count("0-1\n"), Some(2));
        assert_eq!(cpu_count("0-254"), Some(255));
        assert_eq!(cpu_count("0-3,8,10-11"), Some(7));
        assert_eq!(cpu_count("0"), Some(1));
        assert_eq!(cpu_count(""), None);
        assert_eq!(cpu_count("3-1"), None);
        assert_eq!(cpu_count("x"), None);
    }

    #[test]
    fn guest_info_is_read_from_its_lines() {
        let info = GuestInfo::parse(
            "kernel=6.18.15+deb13-amd64\nonline=2\npossible=0-15\ntmp=ext4\nnoise\n",
        );
        assert_eq!(info.kernel, "6.18.15+deb13-amd64");
        assert_eq!(info.online, "2");
        assert_eq!(info.possible_count(), Some(16));
        assert_eq!(info.tmp, "ext4");
    }

    #[test]
    fn libtest_counts_come_from_the_last_result_line() {
        let ok = "running 11 tests\ntest a ... ok\n\n\
            test result: ok. 11 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 80.12s\n";
        assert_eq!(
            counts(ok),
            Some(Counts {
                passed: 11,
                failed: 0,
                ignored: 0
            })
        );
        let failed = "test result: FAILED. 4 passed; 2 failed; 1 ignored; 0 measured; 0 filtered out; finished in 3.0s\n\
            SKIPPED: something after it\n";
        assert_eq!(
            counts(failed),
            Some(Counts {
                passed: 4,
                failed: 2,
                ignored: 1
            })
        );
        assert_eq!(counts("thread 'main' panicked\n"), None);
    }

    #[test]
    fn outcomes_say_what_happened() {
        let ok = Outcome::Ended {
            status: 0,
            seconds: Some(83),
            counts: Some(Counts {
                passed: 11,
                failed: 0,
                ignored: 0,
            }),
        };
        assert!(ok.passed());
        assert_eq!(ok.describe(), "ok: 11 passed, 0 failed, 0 ignored in 83 s");
        let failed = Outcome::Ended {
            status: 101,
            seconds: None,
            counts: None,
        };
        assert!(!failed.passed());
        assert_eq!(failed.describe(), "FAILED (exit 101): no test result line");
        assert!(!Outcome::Unfinished.passed());
        assert!(!Outcome::NotRun.passed());
    }

    #[test]
    fn a_results_directory_is_read_suite_by_suite() {
        let dir = std::env::temp_dir().join(format!("xtask-vm-results-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, text: &str| fs::write(dir.join(name), text).unwrap();
        write(
            "guest.txt",
            "kernel=6.1.0-57-amd64\nonline=2\npossible=0-1\ntmp=ext4\n",
        );
        write(
            "exact_bytes.out",
            "test result: FAILED. 0 passed; 11 failed; 0 ignored;\n",
        );
        write("exact_bytes.status", "101\n");
        write("exact_bytes.seconds", "12\n");
        write("reliability.out", "running 7 tests\n");
        let suites = ["exact_bytes", "reliability", "cleanup"].map(str::to_owned);
        let report = read(&dir, &suites);
        assert_eq!(report.guest.as_ref().unwrap().kernel, "6.1.0-57-amd64");
        assert!(!report.done);
        assert_eq!(report.setup_failed, None);
        assert_eq!(
            report.suites[0].outcome,
            Outcome::Ended {
                status: 101,
                seconds: Some(12),
                counts: Some(Counts {
                    passed: 0,
                    failed: 11,
                    ignored: 0
                })
            }
        );
        assert_eq!(report.suites[1].outcome, Outcome::Unfinished);
        assert_eq!(report.suites[2].outcome, Outcome::NotRun);
        assert!(!report.never_started());
        let empty = dir.join("empty");
        fs::create_dir_all(&empty).unwrap();
        assert!(read(&empty, &suites).never_started());
        fs::remove_dir_all(&dir).unwrap();
    }
}
