//! Checking, before touching the kernel, that we may load and attach BPF programs; and
//! dropping every capability but CAP_BPF once attached.

use anyhow::{anyhow, bail, Context, Result};
use caps::{CapSet, Capability, CapsHashSet};

/// What loading and attaching tracepoints needs, in the order the error message names them.
const NEEDED: [Capability; 2] = [Capability::CAP_BPF, Capability::CAP_PERFMON];

/// Capabilities missing from an effective set, for loading and attaching tracepoints.
pub fn missing_capabilities(effective: &CapsHashSet) -> Vec<Capability> {
    NEEDED
        .into_iter()
        .filter(|cap| !effective.contains(cap))
        .collect()
}

/// Fails with an actionable message when this process cannot trace.
pub fn check() -> Result<()> {
    // An unreadable set is treated as empty: the message below is the useful one either way.
    let effective = caps::read(None, CapSet::Effective).unwrap_or_default();
    let missing = missing_capabilities(&effective);
    if !missing.is_empty() {
        bail!(
            "permission denied: tracing needs root or the capabilities CAP_BPF and CAP_PERFMON \
             (missing: {}); run it with sudo, or grant them with `setcap cap_bpf,cap_perfmon+ep`",
            missing
                .iter()
                .map(Capability::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

/// After attaching, the agent only reads maps, and every bpf() call needs CAP_BPF when
/// unprivileged BPF is disabled (the default): everything else (CAP_PERFMON, CAP_SYS_ADMIN,
/// the file-access overrides of root, ...) is dropped for good. Capabilities are per thread:
/// call this before any other thread exists (the runtime is single-threaded, and threads
/// started later inherit the reduced sets).
pub fn keep_only_bpf() -> Result<()> {
    let keep = CapsHashSet::from([Capability::CAP_BPF]);
    // Inheritable first (emptying it also empties the ambient set), then effective, which
    // must stay within permitted, then permitted itself.
    caps::clear(None, CapSet::Inheritable)
        .and_then(|()| caps::set(None, CapSet::Effective, &keep))
        .and_then(|()| caps::set(None, CapSet::Permitted, &keep))
        .map_err(|e| anyhow!("{e}"))
        .context("dropping capabilities after attach")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_has_everything() {
        assert!(missing_capabilities(&caps::all()).is_empty());
    }

    #[test]
    fn names_what_is_missing() {
        assert_eq!(
            missing_capabilities(&CapsHashSet::new()),
            vec![Capability::CAP_BPF, Capability::CAP_PERFMON]
        );
        assert_eq!(
            missing_capabilities(&CapsHashSet::from([Capability::CAP_BPF])),
            vec![Capability::CAP_PERFMON]
        );
        assert_eq!(
            missing_capabilities(&CapsHashSet::from([Capability::CAP_PERFMON])),
            vec![Capability::CAP_BPF]
        );
    }

    /// Drops for real, in a thread of its own (capabilities are per thread, so the test
    /// process and its other threads keep theirs), and reads the sets back.
    #[test]
    fn keeps_exactly_cap_bpf() {
        let dropped = std::thread::spawn(|| {
            let before = caps::read(None, CapSet::Permitted).expect("capget");
            if !before.contains(&Capability::CAP_BPF) {
                return None;
            }
            keep_only_bpf().expect("capset");
            Some(
                [CapSet::Effective, CapSet::Permitted, CapSet::Inheritable]
                    .map(|set| caps::read(None, set).expect("capget")),
            )
        })
        .join()
        .expect("the dropping thread");
        let Some([effective, permitted, inheritable]) = dropped else {
            // Straight to stderr: libtest would capture an eprintln! and hide the skip.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED privileges::tests::keeps_exactly_cap_bpf: no CAP_BPF to keep"
            );
            return;
        };
        let only_bpf = CapsHashSet::from([Capability::CAP_BPF]);
        assert_eq!(effective, only_bpf);
        assert_eq!(permitted, only_bpf);
        assert_eq!(inheritable, CapsHashSet::new());
    }
}
