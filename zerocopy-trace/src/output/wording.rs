//! The sentences every output prints of the model's values: a finding, a flow. Outputs (the
//! table, the JSON, the dashboard) call these instead of wording things themselves, so a
//! finding reads the same wherever it shows.

use zerocopy_trace_common::fd_kind;

use crate::{
    correlate::{
        finding::{Pricing, MIN_BYTES},
        Finding,
    },
    model::{End, Flow, ZeroCopySends},
    output::human,
    snapshot::Container,
};

/// `file->tcp via sendfile 1.0 MiB`, `file->tcp via user space 1.0 MiB (2 copies)`: the CPU
/// copies each byte cost, where it cost any.
pub fn flow(f: &Flow) -> String {
    let copies = match f.cpu_copies {
        0 => String::new(),
        1 => " (1 copy)".to_string(),
        n => format!(" ({n} copies)"),
    };
    format!(
        "{}->{} via {} {}{copies}",
        f.source.name(),
        f.destination.name(),
        f.via.label,
        human::bytes(f.bytes)
    )
}

/// What a remedy's transitions were priced from, in words.
fn pricing(p: &Pricing) -> String {
    match p {
        Pricing::Observed { bytes_per_call } => format!(
            "at the {} a call its own calls of it move",
            human::bytes(*bytes_per_call)
        ),
        Pricing::ChunkNow { bytes_per_call } => format!(
            "at most, at the {} a call it moves now",
            human::bytes(*bytes_per_call)
        ),
    }
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

/// Who a line is about: `nginx[18807]`, and the container it runs in:
/// `nginx[18807] (container web)`, `nginx[7] (container web, pod prod/shop-0)`.
pub fn who(comm: &str, pid: u32, container: Option<&Container>) -> String {
    match container {
        None => format!("{comm}[{pid}]"),
        Some(c) => format!("{comm}[{pid}] ({})", container_phrase(c)),
    }
}

/// `container web`, `container web, pod prod/shop-0`, by id where no runtime named them.
pub fn container_phrase(c: &Container) -> String {
    let mut phrase = format!("container {}", c.display_name());
    let pod = c.pod_name();
    if !pod.is_empty() {
        let namespace = c.namespace();
        if namespace.is_empty() {
            phrase.push_str(&format!(", pod {pod}"));
        } else {
            phrase.push_str(&format!(", pod {namespace}/{pod}"));
        }
    }
    phrase
}

/// A container in a column: its name, under its pod `namespace/pod/name` (ids where no
/// runtime named them).
pub fn container_label(c: &Container) -> String {
    let pod = c.pod_name();
    if pod.is_empty() {
        return c.display_name().to_string();
    }
    match c.namespace() {
        "" => format!("{pod}/{}", c.display_name()),
        namespace => format!("{namespace}/{pod}/{}", c.display_name()),
    }
}

/// One line for an operator about a container, all its processes added up: the sentence of a
/// process's finding, about `container web`.
pub fn container_finding(c: &Container, finding: &Finding) -> String {
    about(&container_phrase(c), finding)
}

/// One line about a container's processes added up, or (`None`) the host's: the processes in
/// no container.
pub fn group_finding(c: Option<&Container>, finding: &Finding) -> String {
    match c {
        Some(c) => container_finding(c, finding),
        None => about("the host's processes", finding),
    }
}

/// One line for an operator about process `comm[pid]`, in `container` if it runs in one.
pub fn finding(comm: &str, pid: u32, container: Option<&Container>, finding: &Finding) -> String {
    about(&who(comm, pid, container), finding)
}

/// A finding's sentence about `who`.
fn about(who: &str, finding: &Finding) -> String {
    match finding {
        Finding::NothingMoved { calls } => {
            format!("{who}: {} data-path calls, no bytes moved", human::count(*calls))
        }
        Finding::BelowFloor { delivered } => format!(
            "{who}: {} delivered, under the {} a finding needs",
            human::bytes(*delivered),
            human::bytes(MIN_BYTES)
        ),
        Finding::Relay {
            flow,
            cpu_copied_bytes,
            transitions,
            remedy,
            remedy_transitions,
            pricing: priced,
        } => format!(
            "{who}: {} {}->{} through {}: {} of CPU copies and {} transitions; {} would copy none of it and spend {} transitions ({}){}",
            human::bytes(flow.bytes),
            flow.source.name(),
            flow.destination.name(),
            flow.via.label,
            human::bytes(*cpu_copied_bytes),
            human::count(*transitions),
            remedy.call(),
            human::count(*remedy_transitions),
            pricing(priced),
            tls_clause(flow),
        ),
        Finding::ZeroCopy { ratio, moved, flow } => format!(
            "{who}: {} of {} delivered with no CPU copy, {} moved {}->{} by {}: zero copy achieved",
            human::percent(Some(*ratio)),
            human::bytes(*moved),
            if flow.bytes == *moved {
                "all of it".to_string()
            } else {
                format!("{} of it", human::bytes(flow.bytes))
            },
            flow.source.name(),
            flow.destination.name(),
            flow.via.label
        ),
        Finding::ZeroCopySendsNotConfirmed { sends } => format!("{who}: {}", unconfirmed(sends)),
        Finding::ZeroCopyWithoutMover {
            ratio,
            moved,
            pinned,
        } => {
            let how = match pinned {
                Some((source, destination)) => format!(
                    "{}->{} with zero-copy sends the kernel confirmed",
                    source.name(),
                    destination.name()
                ),
                None => "in the kernel".to_string(),
            };
            format!(
                "{who}: {} of {} moved {how}: zero copy achieved",
                human::percent(Some(*ratio)),
                human::bytes(*moved),
            )
        }
        Finding::Copying {
            ratio,
            moved,
            copied,
            largest,
        } => format!(
            "{who}: {} zero copy of {} delivered; {} copied through user space{}",
            human::percent(Some(*ratio)),
            human::bytes(*moved),
            human::bytes(*copied),
            largest
                .as_ref()
                .map(|f| format!(
                    " (largest: {}->{}, {})",
                    f.source.name(),
                    f.destination.name(),
                    human::bytes(f.bytes)
                ))
                .unwrap_or_default()
        ),
    }
}

/// Zero-copy sends the kernel did not confirm: what it copied, and what no notice covered.
fn unconfirmed(sends: &ZeroCopySends) -> String {
    let api = match (sends.by_syscall, sends.by_io_uring) {
        (true, true) => "MSG_ZEROCOPY and SEND_ZC",
        (false, true) => "SEND_ZC",
        _ => "MSG_ZEROCOPY",
    };
    let (copied, unconfirmed) = (sends.kernel_copied(), sends.unconfirmed());
    let mut text = if copied > 0 {
        format!(
            "{api} requested, but the kernel copied {} of {} sends: loopback, veth and NICs without scatter-gather fall back to copying",
            human::count(copied),
            human::count(sends.sends)
        )
    } else {
        format!(
            "{api} requested on {} sends ({}), none confirmed by the kernel",
            human::count(sends.sends),
            human::bytes(sends.bytes)
        )
    };
    if unconfirmed > 0 {
        let why = if sends.by_io_uring && !sends.by_syscall {
            "no notification with a usage report (IORING_SEND_ZC_REPORT_USAGE)"
        } else {
            "no completion notice read from the socket's error queue"
        };
        text += &format!(
            "; {} unconfirmed ({why}), counted as copied",
            human::count(unconfirmed)
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use zerocopy_trace_common::syscalls::syscall_id;

    use super::*;
    use crate::{
        analysis::Analysis,
        snapshot::{
            fixtures::{served, with, CHAR, FILE, TCP},
            ProcessCounters,
        },
    };

    fn sentence(comm: &str, pid: u32, counters: &ProcessCounters) -> String {
        finding(comm, pid, None, &Analysis::of(counters).finding)
    }

    #[test]
    fn findings_name_the_container() {
        use crate::snapshot::{ContainerId, ContainerNames, Runtime};
        let id = ContainerId {
            runtime: Runtime::Containerd,
            id: "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb".into(),
            pod_uid: "7c9e6679-7425-40de-944b-e07fc1f90ae7".into(),
        };
        let unnamed = Container {
            id: id.clone(),
            names: None,
        };
        assert_eq!(
            who("nginx", 7, Some(&unnamed)),
            "nginx[7] (container ca978112ca1b, pod 7c9e6679-7425-40de-944b-e07fc1f90ae7)"
        );
        let named = Container {
            id,
            names: Some(ContainerNames {
                name: "web".into(),
                pod: "shop-0".into(),
                namespace: "prod".into(),
                image: String::new(),
            }),
        };
        let line = finding(
            "nginx",
            7,
            Some(&named),
            &Analysis::of(&served(&[("sendfile64", 1, 1 << 20)])).finding,
        );
        assert!(
            line.starts_with("nginx[7] (container web, pod prod/shop-0): 100.0% of 1.0 MiB"),
            "{line}"
        );
        assert_eq!(who("cat", 1, None), "cat[1]");
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
                "nginx[4121]: 100.0% of 1.0 MiB delivered with no CPU copy, 1.0 MiB of it moved file->tcp by sendfile: zero copy achieved"
            ),
            "{f}"
        );
        assert_eq!(
            flow(&Analysis::of(&c).flows[0]),
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
            "python3[880]: 512.0 MiB file->tcp through user space: 1.0 GiB of CPU copies and 32 768 transitions; sendfile() would copy none of it and spend 16 384 transitions (at most, at the 64.0 KiB a call it moves now); if the socket carries TLS, user-space TLS forces this copy: kernel TLS (kTLS) lets sendfile() encrypt in the kernel"
        );
    }

    #[test]
    fn a_tcp_proxy_relay_recommends_splice() {
        let c = with(&[
            ("recvfrom", 80, 5 << 20, Some(TCP), None),
            ("sendto", 80, 5 << 20, None, Some(TCP)),
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
        let c = with(&[("recvfrom", 48, 3 << 20, Some(TCP), None)]);
        let f = sentence("curl", 5, &c);
        assert!(f.contains("0.0% zero copy of 3.0 MiB delivered"), "{f}");
        // Under the floor: what it did, no judgement.
        let c = with(&[("recvfrom", 3, 3000, Some(TCP), None)]);
        assert_eq!(
            sentence("curl", 5, &c),
            "curl[5]: 2.9 KiB delivered, under the 1.0 MiB a finding needs"
        );
    }

    /// 256 MSG_ZEROCOPY sends of 16 MiB, and notices read for `notified` of them, `copied`
    /// of which the kernel copied.
    fn zerocopy_sender(notified: u64, copied: u64) -> ProcessCounters {
        let mut c = with(&[
            ("sendto", 256, 16 << 20, None, Some(TCP)),
            ("recvmsg", 4, 0, Some(TCP), None),
        ]);
        let sendto = c.syscall_mut(syscall_id("sendto").expect("traced"));
        (sendto.msg_zerocopy_bytes, sendto.zerocopy_sends) = (16 << 20, 256);
        let recvmsg = c.syscall_mut(syscall_id("recvmsg").expect("traced"));
        (recvmsg.zerocopy_notified, recvmsg.zerocopy_copied) = (notified, copied);
        c
    }

    #[test]
    fn zero_copy_sends_are_judged_by_the_kernel() {
        assert_eq!(
            sentence("srv", 3, &zerocopy_sender(256, 0)),
            "srv[3]: 100.0% of 16.0 MiB moved process->tcp with zero-copy sends the kernel confirmed: zero copy achieved"
        );
        assert_eq!(
            sentence("srv", 3, &zerocopy_sender(256, 256)),
            "srv[3]: MSG_ZEROCOPY requested, but the kernel copied 256 of 256 sends: loopback, veth and NICs without scatter-gather fall back to copying"
        );
        assert_eq!(
            sentence("srv", 3, &zerocopy_sender(200, 200)),
            "srv[3]: MSG_ZEROCOPY requested, but the kernel copied 200 of 256 sends: loopback, veth and NICs without scatter-gather fall back to copying; 56 unconfirmed (no completion notice read from the socket's error queue), counted as copied"
        );
        assert_eq!(
            sentence("srv", 3, &zerocopy_sender(0, 0)),
            "srv[3]: MSG_ZEROCOPY requested on 256 sends (16.0 MiB), none confirmed by the kernel; 256 unconfirmed (no completion notice read from the socket's error queue), counted as copied"
        );
    }

    #[test]
    fn direct_io_is_zero_copy() {
        let mut c = with(&[("pread64", 1024, 64 << 20, Some(FILE), None)]);
        c.syscall_mut(syscall_id("pread64").expect("traced"))
            .direct_bytes = 64 << 20;
        assert_eq!(
            sentence("fio", 7, &c),
            "fio[7]: 100.0% of 64.0 MiB delivered with no CPU copy, all of it moved file->process by direct I/O: zero copy achieved"
        );
    }

    #[test]
    fn a_download_to_dev_null_is_not_told_to_splice() {
        let c = with(&[
            ("recvfrom", 1024, 64 << 20, Some(TCP), None),
            ("write", 1024, 64 << 20, None, Some(CHAR)),
        ]);
        let f = sentence("curl", 5, &c);
        assert!(!f.contains("splice"), "{f}");
        assert!(f.contains("(largest: tcp->char, 64.0 MiB)"), "{f}");
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
