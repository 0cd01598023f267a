//! Checking, before touching the kernel, that we may load and attach BPF programs.

use anyhow::{bail, Result};

const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Capabilities (by name) missing from an effective set, for loading and attaching tracepoints.
pub fn missing_capabilities(effective: u64) -> Vec<&'static str> {
    [(CAP_BPF, "CAP_BPF"), (CAP_PERFMON, "CAP_PERFMON")]
        .into_iter()
        .filter(|(bit, _)| effective & (1 << bit) == 0)
        .map(|(_, name)| name)
        .collect()
}

/// Parses the `CapEff:` line of /proc/self/status.
pub fn parse_cap_eff(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}

/// Fails with an actionable message when this process cannot trace.
pub fn check() -> Result<()> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let effective = parse_cap_eff(&status).unwrap_or(0);
    let missing = missing_capabilities(effective);
    if !missing.is_empty() {
        bail!(
            "permission denied: tracing needs root or the capabilities CAP_BPF and CAP_PERFMON \
             (missing: {}); run it with sudo, or grant them with `setcap cap_bpf,cap_perfmon+ep`",
            missing.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_has_everything() {
        assert!(missing_capabilities(0x000001ffffffffff).is_empty());
    }

    #[test]
    fn names_what_is_missing() {
        assert_eq!(missing_capabilities(0), vec!["CAP_BPF", "CAP_PERFMON"]);
        assert_eq!(missing_capabilities(1 << CAP_BPF), vec!["CAP_PERFMON"]);
    }

    #[test]
    fn parses_status() {
        assert_eq!(
            parse_cap_eff("Name:\tx\nCapEff:\t000001ffffffffff\n"),
            Some(0x1ffffffffff)
        );
        assert_eq!(parse_cap_eff("CapEff:\tzz\n"), None);
        assert_eq!(parse_cap_eff(""), None);
    }
}
