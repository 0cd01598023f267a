//! The sentences every output prints of the model's values: a finding, a flow. Outputs (the
//! table, the JSON, the dashboard) call these instead of wording things themselves, so a
//! finding reads the same wherever it shows.

use zerocopy_trace_common::fd_kind;

use crate::{
    correlate::{End, Finding, Flow},
    units,
};

/// `file->tcp via sendfile 1.0 MiB`
pub fn flow(f: &Flow) -> String {
    format!(
        "{}->{} via {} {}",
        f.source.name(),
        f.destination.name(),
        f.via.label,
        units::bytes(f.bytes)
    )
}

/// Serving a file over TLS encrypted in user space (Kafka's TLS listener, nginx with ssl) is the
/// common reason a sendfile server relays instead; the agent cannot see the TLS, so it says when
/// that would be the cause, and the way out.
fn tls_clause(relay: &Flow) -> &'static str {
    if relay.source.is_storage() && relay.destination == End::Fd(fd_kind::TCP) {
        "; if the socket carries TLS, user-space TLS forces this copy: kernel TLS (kTLS) lets sendfile() encrypt in the kernel"
    } else {
        ""
    }
}

/// One line for an operator about process `comm[pid]`.
pub fn finding(comm: &str, pid: u32, finding: &Finding) -> String {
    let who = format!("{comm}[{pid}]");
    match finding {
        Finding::NothingMoved { calls } => {
            format!("{who}: {} data-path calls, no bytes moved", units::count(*calls))
        }
        Finding::Relay {
            flow,
            cpu_copied_bytes,
            transitions,
            remedy,
            remedy_transitions,
        } => format!(
            "{who}: {} {}->{} through user space: {} of CPU copies and {} transitions; {} would copy none of it and spend {} transitions{}",
            units::bytes(flow.bytes),
            flow.source.name(),
            flow.destination.name(),
            units::bytes(*cpu_copied_bytes),
            units::count(*transitions),
            remedy.call(),
            units::count(*remedy_transitions),
            tls_clause(flow),
        ),
        Finding::ZeroCopy { ratio, moved, flow } => format!(
            "{who}: {} of {} moved {}->{} by {}: zero copy achieved",
            units::percent(Some(*ratio)),
            units::bytes(*moved),
            flow.source.name(),
            flow.destination.name(),
            flow.via.label
        ),
        Finding::ZeroCopyWithoutMover {
            ratio,
            moved,
            pinned,
        } => {
            let how = match pinned {
                Some((source, destination)) => format!(
                    "{}->{} with MSG_ZEROCOPY sends",
                    source.name(),
                    destination.name()
                ),
                None => "in the kernel".to_string(),
            };
            format!(
                "{who}: {} of {} moved {how}: zero copy achieved",
                units::percent(Some(*ratio)),
                units::bytes(*moved),
            )
        }
        Finding::Copying {
            ratio,
            moved,
            copied,
            largest,
        } => format!(
            "{who}: {} zero copy of {} moved; {} copied through user space{}",
            units::percent(Some(*ratio)),
            units::bytes(*moved),
            units::bytes(*copied),
            largest
                .as_ref()
                .map(|f| format!(
                    " (largest: {}->{}, {})",
                    f.source.name(),
                    f.destination.name(),
                    units::bytes(f.bytes)
                ))
                .unwrap_or_default()
        ),
    }
}

#[cfg(test)]
mod tests {
    use zerocopy_trace_common::syscalls::syscall_id;

    use super::*;
    use crate::{
        correlate::fixtures::{with, FILE, TCP},
        model::{analyse, ProcessCounters},
    };

    fn sentence(comm: &str, pid: u32, counters: &ProcessCounters) -> String {
        finding(comm, pid, &analyse(counters).finding)
    }

    #[test]
    fn a_sendfile_server_achieves_zero_copy() {
        let c = with(&[
            ("sendfile64", 16, 1 << 20, Some(FILE), Some(TCP)),
            ("read", 2, 100, Some(TCP), None),
        ]);
        let f = sentence("nginx", 4121, &c);
        assert!(
            f.starts_with(
                "nginx[4121]: 100.0% of 1.0 MiB moved file->tcp by sendfile: zero copy achieved"
            ),
            "{f}"
        );
        assert_eq!(
            flow(&analyse(&c).flows[0]),
            "file->tcp via sendfile 1.0 MiB"
        );
    }

    #[test]
    fn a_relay_states_its_cost_and_the_remedy() {
        // 512 MiB file -> tcp in 64 KiB chunks: 8192 reads, 8192 writes.
        let c = with(&[
            ("read", 8192, 512 << 20, Some(FILE), None),
            ("write", 8192, 512 << 20, None, Some(TCP)),
        ]);
        assert_eq!(
            sentence("python3", 880, &c),
            "python3[880]: 512.0 MiB file->tcp through user space: 1.0 GiB of CPU copies and 32 768 transitions; sendfile() would copy none of it and spend 16 384 transitions; if the socket carries TLS, user-space TLS forces this copy: kernel TLS (kTLS) lets sendfile() encrypt in the kernel"
        );
    }

    #[test]
    fn a_tcp_proxy_relay_recommends_splice() {
        let c = with(&[
            ("recvfrom", 10, 5000, Some(TCP), None),
            ("sendto", 10, 5000, None, Some(TCP)),
        ]);
        let f = sentence("socat", 9, &c);
        assert!(
            f.contains("tcp->tcp through user space") && f.contains("splice()"),
            "{f}"
        );
        assert!(!f.contains("TLS"), "only file->tcp relays name TLS: {f}");
    }

    #[test]
    fn a_receiving_client_is_copying() {
        let c = with(&[("recvfrom", 3, 3000, Some(TCP), None)]);
        let f = sentence("curl", 5, &c);
        assert!(f.contains("0.0% zero copy of 2.9 KiB moved"), "{f}");
    }

    #[test]
    fn msg_zerocopy_sends_are_zero_copy_without_a_mover() {
        let mut c = with(&[("sendto", 16, 1 << 20, None, Some(TCP))]);
        c.syscalls[syscall_id("sendto").expect("traced")].msg_zerocopy_bytes = 1 << 20;
        assert_eq!(
            sentence("srv", 3, &c),
            "srv[3]: 100.0% of 1.0 MiB moved process->tcp with MSG_ZEROCOPY sends: zero copy achieved"
        );
    }

    #[test]
    fn nothing_moved() {
        let c = with(&[("read", 3, 0, None, None)]);
        assert_eq!(
            sentence("x", 1, &c),
            "x[1]: 3 data-path calls, no bytes moved"
        );
    }
}
