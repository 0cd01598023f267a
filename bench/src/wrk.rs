//! Debian's `wrk` as the server workloads' client: its command line, and its summary read back
//! (requests, duration, requests/s, and every error, which fail the run: a server that errors
//! has measured nothing).

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::Serialize;

/// One client thread and 32 connections: the issue's load, enough to keep one nginx worker
/// busy on a 2-core machine while wrk takes the other core.
pub const THREADS: u32 = 1;
pub const CONNECTIONS: u32 = 32;

pub fn command(wrk: &Path, url: &str, seconds: u64) -> Command {
    let mut c = Command::new(wrk);
    c.args([
        &format!("-t{THREADS}"),
        &format!("-c{CONNECTIONS}"),
        &format!("-d{seconds}s"),
        "--timeout",
        "5s",
        url,
    ]);
    c
}

/// What one wrk run reports.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Summary {
    pub requests: u64,
    pub seconds: f64,
    pub requests_per_s: f64,
}

/// Reads wrk's summary; any socket error or non-2xx/3xx response is an error.
pub fn parse(out: &str) -> Result<Summary> {
    let mut requests = None;
    let mut seconds = None;
    let mut rate = None;
    for line in out.lines().map(str::trim) {
        if let Some((count, rest)) = line.split_once(" requests in ") {
            requests = count.trim().parse::<u64>().ok();
            seconds = rest.split(',').next().and_then(duration_s);
        } else if let Some(value) = line.strip_prefix("Requests/sec:") {
            rate = value.trim().parse::<f64>().ok();
        } else if let Some(errors) = line.strip_prefix("Socket errors:") {
            bail!("wrk saw socket errors ({})", errors.trim());
        } else if let Some(count) = line.strip_prefix("Non-2xx or 3xx responses:") {
            bail!(
                "the server answered {} requests with an error status",
                count.trim()
            );
        }
    }
    let (Some(requests), Some(seconds), Some(requests_per_s)) = (requests, seconds, rate) else {
        bail!("no summary in wrk's output: {:?}", out.trim());
    };
    if requests == 0 {
        bail!("wrk completed no request");
    }
    Ok(Summary {
        requests,
        seconds,
        requests_per_s,
    })
}

/// wrk's durations: `5.00s`, `1.00m`, `500.00ms`, `20.00us`.
fn duration_s(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale = match unit {
        "us" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return None,
    };
    Some(number * scale)
}

/// Reads and parses wrk's saved output.
pub fn read(path: &Path) -> Result<Summary> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLEAN: &str = "Running 5s test @ http://127.0.0.1:8123/4k.bin
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   302.51us   98.40us   4.09ms   86.05%
    Req/Sec   105.45k     4.12k  110.21k    90.00%
  523019 requests in 5.00s, 2.10GB read
Requests/sec: 104603.80
Transfer/sec:    430.12MB
";

    #[test]
    fn clean_summary() {
        let s = parse(CLEAN).unwrap();
        assert_eq!(s.requests, 523_019);
        assert!((s.seconds - 5.0).abs() < 1e-9);
        assert!((s.requests_per_s - 104_603.80).abs() < 1e-6);
    }

    #[test]
    fn errors_fail_the_run() {
        let socket = CLEAN.replace(
            "Requests/sec",
            "  Socket errors: connect 0, read 3, write 0, timeout 0\nRequests/sec",
        );
        let err = parse(&socket).unwrap_err().to_string();
        assert!(err.contains("read 3"), "{err}");
        let status = CLEAN.replace(
            "Requests/sec",
            "  Non-2xx or 3xx responses: 12\nRequests/sec",
        );
        let err = parse(&status).unwrap_err().to_string();
        assert!(err.contains("12 requests"), "{err}");
    }

    #[test]
    fn no_summary_is_an_error() {
        assert!(parse("").is_err());
        assert!(parse("unable to connect to 127.0.0.1:1 Connection refused").is_err());
        let none = CLEAN.replace("523019 requests", "0 requests");
        assert!(parse(&none).is_err());
    }

    #[test]
    fn durations_in_every_unit() {
        assert_eq!(duration_s("5.00s"), Some(5.0));
        assert_eq!(duration_s("1.00m"), Some(60.0));
        assert_eq!(duration_s(" 500.00ms"), Some(0.5));
        assert!((duration_s("20.00us").unwrap() - 2e-5).abs() < 1e-12);
        assert_eq!(duration_s("5.00"), None);
        assert_eq!(duration_s("5.00d"), None);
    }

    #[test]
    fn command_is_the_issues_load() {
        let c = command(Path::new("/usr/bin/wrk"), "http://127.0.0.1:1/4k.bin", 5);
        let args: Vec<String> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "-t1",
                "-c32",
                "-d5s",
                "--timeout",
                "5s",
                "http://127.0.0.1:1/4k.bin"
            ]
        );
    }
}
