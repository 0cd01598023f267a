//! Checking, before touching the kernel, that we may load and attach BPF programs.

use anyhow::{bail, Context, Result};

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

/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit capability sets as two 32-bit words.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// The capability sets that keep only `keep` (bit numbers), as the two words `capset` takes.
fn only(keep: &[u32]) -> [CapData; 2] {
    let mut data = [CapData::default(); 2];
    for &bit in keep {
        let word = &mut data[(bit / 32) as usize];
        word.effective |= 1 << (bit % 32);
        word.permitted |= 1 << (bit % 32);
    }
    data
}

/// After attaching, the agent only reads maps, and every bpf() call needs CAP_BPF when
/// unprivileged BPF is disabled (the default): everything else (CAP_PERFMON, CAP_SYS_ADMIN,
/// the file-access overrides of root, ...) is dropped for good. Capabilities are per thread:
/// call this before any other thread exists (the runtime is single-threaded, and threads
/// started later inherit the reduced sets).
pub fn keep_only_bpf() -> Result<()> {
    let header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = only(&[CAP_BPF]);
    // SAFETY: header and data are valid, correctly laid out for version 3 (two data words).
    let rc = unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .context("dropping capabilities after attach (capset)");
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
    fn keeps_exactly_the_bits_asked_for() {
        let data = only(&[CAP_BPF]);
        assert_eq!(
            (data[0].effective, data[0].permitted, data[0].inheritable),
            (0, 0, 0)
        );
        assert_eq!((data[1].effective, data[1].permitted), (1 << 7, 1 << 7));
        assert_eq!(data[1].inheritable, 0);
        let none = only(&[]);
        assert_eq!((none[0].effective, none[1].permitted), (0, 0));
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
