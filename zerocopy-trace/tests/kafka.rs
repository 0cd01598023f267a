//! The founding case, measured on a real Apache Kafka broker attached to while it runs (by
//! `--pid`, no restart). Kafka is fast, the classic analysis says, because a consumer's fetch
//! is served by `sendfile()`: page cache to socket, no copy through the broker's memory. Here
//! that must show: consumers of a plaintext listener are served by `sendfile64`, file -> tcp;
//! consumers of a TLS listener are not (the broker encrypts in user space, so it reads the log
//! into its memory and writes it out again: a file -> tcp relay); producing is a copy through
//! user space (tcp -> file) either way. Every figure is cross-checked against the log on disk
//! and what Kafka's own tools say they sent and received.
//!
//! Kafka (its jars) is fetched into `target/kafka` by `cargo xtask test`. The reports, and the
//! dashboard's screen captured during a third consumer's run, are saved under
//! `target/kafka/reports/` (the README shows them).

mod common;

use std::{
    path::Path,
    time::{Duration, Instant},
};

use serde_json::Value;

use common::{
    kafka::{kafka_dir, parse_consumed, parse_produced, Broker, Consumed, Produced, Security},
    privileged, process, scratch, spawn_agent, stop_agent,
    tmux::{verdict_of, Tmux},
    AGENT,
};

const TOPIC: &str = "zerocopy";
const RECORD_SIZE: u64 = 1024;
/// 256 MiB of 1 KiB records.
const RECORDS: u64 = (256 << 20) / RECORD_SIZE;
/// Two consumer groups, so each reads the whole topic.
const GROUPS: [&str; 2] = ["first", "second"];
/// What the broker moves besides the tools' traffic while it is traced: its own heartbeats to
/// the controller in the same JVM (both ends of those connections are the broker), checkpoint
/// files. A few KiB in practice.
const OWN_TRAFFIC: u64 = 256 << 10;
/// The dashboard is captured once the consumer's fetches have moved this much: mid-consume.
const DASHBOARD_FLOW: u64 = 64 << 20;
/// TLS's share on top of the application's bytes (record headers and tags, about 0.15%, and
/// handshakes), allowed generously.
const TLS_OVERHEAD_PERCENT: u64 = 1;

/// What one run measured.
struct Run {
    pid: u64,
    /// The topic's log on disk: what one consumer reading it all is sent, at least.
    log_bytes: u64,
    produced: Produced,
    /// The broker's entry in the report of the produce.
    produce: Value,
    consumed: Vec<Consumed>,
    /// The broker's entry in the report of the two consumers.
    consume: Value,
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// Bytes by fd kind at one end (`source` or `destination`), over every syscall of a process.
fn kind_bytes(process: &Value, end: &str, kind: &str) -> u64 {
    process["syscalls"]
        .as_object()
        .expect("syscalls object")
        .values()
        .map(|s| u(&s["fd_kinds"][end][kind]))
        .sum()
}

fn flow(process: &Value, i: usize) -> (&str, &str, &str, bool) {
    let f = &process["flows"][i];
    (
        f["source"].as_str().unwrap_or("?"),
        f["destination"].as_str().unwrap_or("?"),
        f["via"].as_str().unwrap_or("?"),
        f["relay"].as_bool().unwrap_or(false),
    )
}

/// Broker up, topic created, then traced by pid twice: while the producer writes the topic,
/// and while two consumer groups read it all; then a third consumer under the dashboard.
fn run(security: Security) -> Run {
    let name = match security {
        Security::Plaintext => "plaintext",
        Security::Tls => "tls",
    };
    let started = Instant::now();
    let dir = scratch(&format!("kafka-{name}"));
    let broker = Broker::start(&dir, security);
    broker.create_topic(TOPIC);
    let pid = broker.pid().to_string();
    eprintln!(
        "kafka {name}: broker {pid} up after {:?}",
        started.elapsed()
    );

    let (agent, _) = spawn_agent(&["report", "--json", "--pid", &pid]);
    let produced = broker.produce(TOPIC, RECORDS, RECORD_SIZE);
    let produce_report = stop_agent(agent);
    let log_bytes = broker.log_bytes(TOPIC);
    eprintln!("kafka {name}: produced after {:?}", started.elapsed());

    let (agent, _) = spawn_agent(&["report", "--json", "--pid", &pid]);
    let consumed: Vec<Consumed> = GROUPS
        .iter()
        .map(|group| broker.consume(TOPIC, group, RECORDS))
        .collect();
    let consume_report = stop_agent(agent);
    eprintln!("kafka {name}: consumed twice after {:?}", started.elapsed());

    let screen = dashboard(&broker, &dir, security);
    eprintln!("kafka {name}: dashboard after {:?}", started.elapsed());

    let reports = kafka_dir().join("reports");
    std::fs::create_dir_all(&reports).expect("creating target/kafka/reports");
    for (what, text) in [
        ("produce.json", produce_report.to_string()),
        ("consume.json", consume_report.to_string()),
        ("dashboard.txt", screen),
    ] {
        let path = reports.join(format!("{name}-{what}"));
        std::fs::write(&path, text).expect("saving a report");
        eprintln!("kafka {name}: saved {}", path.display());
    }

    let pid_number = u64::from(broker.pid());
    let run = Run {
        pid: pid_number,
        log_bytes,
        produced,
        produce: process(&produce_report, pid_number).clone(),
        consumed,
        consume: process(&consume_report, pid_number).clone(),
    };
    drop(broker);
    let _ = std::fs::remove_dir_all(&dir);
    summarize(name, &run);
    run
}

/// `zerocopy-trace top --pid <broker>` in tmux during a third consumer's run: the screen once
/// the broker's detail pane shows the fetch flow past [`DASHBOARD_FLOW`] and the verdict
/// expected of it. Totals since attach, so the verdict is the consume's, not one interval's.
fn dashboard(broker: &Broker, dir: &Path, security: Security) -> String {
    let pid = u64::from(broker.pid());
    let command = format!(
        "'{AGENT}' top --pid {pid} --interval 500ms 2>'{}'; echo agent-exit=$?; sleep 600",
        dir.join("top.log").display()
    );
    let Some(tmux) = Tmux::start("kafka", &command, 120, 36) else {
        return String::new();
    };
    let timeout = Duration::from_secs(60);
    tmux.wait_for("the dashboard", timeout, |s| s.contains("every 500ms"));
    tmux.wait_for("the broker's row", timeout, |s| {
        verdict_of(s, pid).is_some()
    });
    // Totals, and the detail pane of the selected (only) process: its syscalls, the picture of
    // the two paths with its own numbers, its flows and finding.
    tmux.keys(&["t"]);
    tmux.keys(&["Enter"]);
    let consumer = broker.start_consumer(TOPIC, "dashboard", RECORDS);
    let (verdict, fetch) = match security {
        Security::Plaintext => ("zero-copy", "file->tcp via sendfile "),
        Security::Tls => ("copying", "file->tcp via user space "),
    };
    let screen = tmux.wait_for(
        &format!("the broker {verdict}, {fetch}past {DASHBOARD_FLOW} B"),
        timeout,
        |s| {
            verdict_of(s, pid).as_deref() == Some(verdict)
                && flow_on_screen(s, fetch).is_some_and(|b| b >= DASHBOARD_FLOW)
        },
    );
    let out = consumer.finish(Duration::from_secs(300));
    let consumed = parse_consumed(&out).expect("the consumer's summary");
    assert_eq!(consumed.records, RECORDS, "{out}");
    tmux.keys(&["q"]);
    let end = tmux.wait_for("the dashboard to quit", timeout, |s| {
        s.contains("agent-exit=")
    });
    assert!(end.contains("agent-exit=0"), "{end}");
    screen
}

/// The bytes of a flow on the detail pane's `flows` line: `file->tcp via sendfile 1.0 MiB; ...`.
fn flow_on_screen(screen: &str, label: &str) -> Option<u64> {
    let rest = screen.split(label).nth(1)?;
    let mut words = rest.split_whitespace();
    let value: f64 = words.next()?.parse().ok()?;
    let unit = match words.next()?.trim_end_matches(';') {
        "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return None,
    };
    Some((value * unit as f64) as u64)
}

/// The figures behind the README's picture, per MiB the consumers received.
fn summarize(name: &str, run: &Run) {
    let b = &run.consume;
    let served: u64 = run.consumed.iter().map(|c| c.bytes_received).sum();
    let mib = served as f64 / f64::from(1 << 20);
    eprintln!(
        "kafka {name}: log {} B; consumers received {served} B ({mib:.1} MiB)",
        run.log_bytes
    );
    for (syscall, s) in b["syscalls"].as_object().expect("syscalls") {
        eprintln!(
            "kafka {name}:   {syscall:<11} {:>8} calls {:>11} B  ({:.1} calls/MiB)  {}",
            u(&s["calls"]),
            u(&s["bytes"]),
            u(&s["calls"]) as f64 / mib,
            s["fd_kinds"]
        );
    }
    eprintln!(
        "kafka {name}: copied {} B, zero-copy {} B, transitions {} ({:.1}/MiB served)",
        u(&b["copied_bytes"]),
        u(&b["zero_copy_bytes"]),
        u(&b["transitions"]),
        u(&b["transitions"]) as f64 / mib
    );
    eprintln!("kafka {name}: consume finding: {}", b["finding"]);
    eprintln!("kafka {name}: produce finding: {}", run.produce["finding"]);
    eprintln!(
        "kafka {name}: producer sent {} records, {} B; consumers {:?}",
        run.produced.records, run.produced.bytes_sent, run.consumed
    );
}

/// What both listeners share: the tools' own counts, and producing as a copy.
fn assert_tools_and_produce(run: &Run, security: Security) {
    assert_eq!(run.produced.records, RECORDS);
    for c in &run.consumed {
        assert_eq!(c.records, RECORDS, "{c:?}");
        // Values only (the tool's records have no key): exactly 256 MiB.
        assert_eq!(
            c.mib,
            (RECORDS * RECORD_SIZE) as f64 / f64::from(1 << 20),
            "{c:?}"
        );
    }
    // The log holds every value, plus the batches' and records' headers.
    assert!(run.log_bytes > RECORDS * RECORD_SIZE, "{}", run.log_bytes);

    // Producing: read from the producer's connection into the broker's memory (where Kafka
    // checks the batches), then written to the log: tcp -> file through user space.
    let p = &run.produce;
    assert_eq!(p["verdict"], "copying", "{p:#}");
    assert_eq!(
        flow(p, 0),
        ("tcp", "file", "user space", true),
        "the produce path: {p:#}"
    );
    let to_file = kind_bytes(p, "destination", "file");
    assert!(
        (run.log_bytes..=run.log_bytes + OWN_TRAFFIC).contains(&to_file),
        "the broker wrote {to_file} B to files for a log of {} B",
        run.log_bytes
    );
    let top = u(&p["flows"][0]["bytes"]);
    assert!(
        (run.log_bytes..=to_file).contains(&top),
        "tcp->file flow {top} B, log {} B",
        run.log_bytes
    );
    // Everything the producer sent, the broker read from tcp (encrypted, with TLS: a little
    // more).
    let from_tcp = kind_bytes(p, "source", "tcp");
    let sent = run.produced.bytes_sent;
    let slack = match security {
        Security::Plaintext => OWN_TRAFFIC,
        Security::Tls => OWN_TRAFFIC + sent * TLS_OVERHEAD_PERCENT / 100,
    };
    assert!(
        (sent..=sent + slack).contains(&from_tcp),
        "the producer sent {sent} B, the broker read {from_tcp} B from tcp"
    );
}

#[test]
fn plaintext_consumers_are_served_by_sendfile() {
    if !privileged() {
        return;
    }
    let run = run(Security::Plaintext);
    assert_tools_and_produce(&run, Security::Plaintext);
    let b = &run.consume;

    let sendfile = &b["syscalls"]["sendfile64"];
    let by_sendfile = u(&sendfile["bytes"]);
    assert_eq!(
        u(&sendfile["fd_kinds"]["source"]["file"]),
        by_sendfile,
        "{b:#}"
    );
    assert_eq!(
        u(&sendfile["fd_kinds"]["destination"]["tcp"]),
        by_sendfile,
        "{b:#}"
    );
    // Each group read the whole log from the page cache, by sendfile.
    assert!(
        by_sendfile >= 2 * run.log_bytes,
        "sendfile moved {by_sendfile} B; two consumers of a {} B log",
        run.log_bytes
    );
    // Cross-checked with the consumers' own counts: every byte they received the broker wrote
    // to tcp, and all of it by sendfile but the responses' headers and the small responses.
    let received: u64 = run.consumed.iter().map(|c| c.bytes_received).sum();
    let to_tcp = kind_bytes(b, "destination", "tcp");
    assert!(
        by_sendfile <= received && received <= to_tcp && to_tcp - received <= OWN_TRAFFIC,
        "sendfile {by_sendfile} B, the consumers received {received} B, the broker wrote \
         {to_tcp} B to tcp"
    );
    assert!(
        received - by_sendfile < received / 100,
        "only {by_sendfile} of {received} B by sendfile"
    );

    assert_eq!(
        flow(b, 0),
        ("file", "tcp", "sendfile", false),
        "the fetch path: {b:#}"
    );
    assert_eq!(u(&b["flows"][0]["bytes"]), by_sendfile);
    assert_eq!(b["verdict"], "zero-copy", "{b:#}");
    let finding = b["finding"].as_str().unwrap_or_default();
    assert!(
        finding.starts_with(&format!("java[{}]: ", run.pid))
            && finding.contains("moved file->tcp by sendfile: zero copy achieved"),
        "{finding}"
    );
}

#[test]
fn tls_consumers_are_served_through_user_space() {
    if !privileged() {
        return;
    }
    let run = run(Security::Tls);
    assert_tools_and_produce(&run, Security::Tls);
    let b = &run.consume;

    // The broker cannot hand the page cache to the socket: the bytes must be encrypted first.
    let by_sendfile = u(&b["syscalls"]["sendfile64"]["bytes"]);
    assert!(
        by_sendfile <= OWN_TRAFFIC,
        "sendfile moved {by_sendfile} B over TLS: {b:#}"
    );
    // So it reads the log into its memory (each group the whole log)...
    let from_file = kind_bytes(b, "source", "file");
    assert!(
        from_file >= 2 * run.log_bytes,
        "the broker read {from_file} B of files; two consumers of a {} B log",
        run.log_bytes
    );
    // ... and writes it to the consumers' sockets, encrypted: what they received decrypted,
    // plus TLS's own bytes.
    let received: u64 = run.consumed.iter().map(|c| c.bytes_received).sum();
    let to_tcp = kind_bytes(b, "destination", "tcp");
    assert!(
        (received..=received + OWN_TRAFFIC + received * TLS_OVERHEAD_PERCENT / 100)
            .contains(&to_tcp),
        "the consumers received {received} B, the broker wrote {to_tcp} B to tcp"
    );
    // Every byte served crossed the user/kernel boundary twice.
    let copied = u(&b["copied_bytes"]);
    assert!(
        copied >= from_file + received,
        "copied {copied} B; read {from_file} B, served {received} B"
    );

    assert_eq!(
        flow(b, 0),
        ("file", "tcp", "user space", true),
        "the fetch path: {b:#}"
    );
    assert!(u(&b["flows"][0]["bytes"]) >= 2 * run.log_bytes, "{b:#}");
    assert_eq!(b["verdict"], "copying", "{b:#}");
    let finding = b["finding"].as_str().unwrap_or_default();
    assert!(
        finding.starts_with(&format!("java[{}]: ", run.pid))
            && finding.contains(" file->tcp through user space: ")
            && finding.contains(" of CPU copies and ")
            && finding.contains("sendfile() would copy none of it and spend ")
            && finding.ends_with(
                "if the socket carries TLS, user-space TLS forces this copy: kernel TLS (kTLS) \
                 lets sendfile() encrypt in the kernel"
            ),
        "{finding}"
    );
}

/// The tools' output parsers, on output copied from a real run (no broker needed).
#[test]
fn tool_summaries_parse() {
    let consumer = "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, \
                    nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec\n\
                    2026-11-29 14:17:34:872, 2026-11-29 14:17:41:602, 256.0000, 38.0386, 262144, \
                    38951.5602, 2385, 4345, 58.9183, 60332.3360\n\
                    \n\
                    Metric Name                                     Value\n\
                    consumer-metrics:incoming-byte-rate:{client-id=perf-consumer-client} : 1.5\n\
                    consumer-metrics:incoming-byte-total:{client-id=perf-consumer-client}   : \
                    273527682.000\n\
                    consumer-node-metrics:incoming-byte-total:{client-id=perf-consumer-client, \
                    node-id=node-1} : 273525341.000\n";
    assert_eq!(
        parse_consumed(consumer),
        Some(Consumed {
            records: 262144,
            mib: 256.0,
            bytes_received: 273527682
        })
    );
    assert_eq!(parse_consumed("start.time, end.time\n"), None);

    let producer = "62235 records sent, 12447.0 records/sec (12.16 MB/sec), 3152.1 ms avg\n\
                    262144 records sent, 13509.095594 records/sec (13.19 MB/sec), 1889.14 ms \
                    avg latency\n\
                    producer-metrics:outgoing-byte-total:{client-id=perf-producer-client}  : \
                    1042116.000\n\
                    producer-node-metrics:outgoing-byte-total:{client-id=perf-producer-client, \
                    node-id=node-1}  : 1041989.000\n";
    assert_eq!(
        parse_produced(producer),
        Some(Produced {
            records: 262144,
            bytes_sent: 1042116
        })
    );
    assert_eq!(parse_produced("1 records sent, 3 records/sec\n"), None);
}

/// The broker's configuration for each listener (no broker needed).
#[test]
fn server_properties_name_one_client_listener() {
    let data = Path::new("/scratch/data");
    let plain = common::kafka::server_properties(Security::Plaintext, 9092, 9093, data, None);
    assert!(plain.contains("listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093\n"));
    assert!(plain.contains("controller.quorum.voters=1@127.0.0.1:9093\n"));
    assert!(plain.contains("log.dirs=/scratch/data\n"));
    assert!(!plain.contains("ssl."));
    let tls_files = common::kafka::TlsFiles {
        keystore: "/scratch/broker.p12".into(),
        truststore: "/scratch/truststore.p12".into(),
    };
    let tls = common::kafka::server_properties(Security::Tls, 9092, 9093, data, Some(&tls_files));
    assert!(tls.contains("listeners=SSL://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093\n"));
    assert!(tls.contains("listener.security.protocol.map=CONTROLLER:PLAINTEXT,SSL:SSL\n"));
    assert!(tls.contains("ssl.keystore.location=/scratch/broker.p12\n"));
    assert!(tls.contains("ssl.truststore.location=/scratch/truststore.p12\n"));
}

#[test]
fn flows_read_off_the_dashboard() {
    let line = "│flows file->tcp via sendfile 1.0 MiB; file->process via user space 4.4 KiB; x";
    assert_eq!(
        flow_on_screen(line, "file->tcp via sendfile "),
        Some(1 << 20)
    );
    assert_eq!(
        flow_on_screen(line, "file->process via user space "),
        Some(4505)
    );
    assert_eq!(flow_on_screen(line, "file->tcp via user space "), None);
}
