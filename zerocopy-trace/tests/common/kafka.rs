//! A real Apache Kafka broker for the tests: the jars `cargo xtask test` fetched into
//! `target/kafka/lib`, run with plain `java -cp`. One node in KRaft mode (controller and broker
//! in one JVM) on free loopback ports, in the test's scratch directory, with a plaintext or a
//! TLS client listener; stopped (its whole process group killed) when dropped, whatever
//! happened. Kafka's own tools (topic creation, producer and consumer performance) run the same
//! way, each with a deadline so a stuck tool fails the test instead of hanging it.

use std::{
    fmt::Write as _,
    net::TcpStream,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

/// Set by `cargo xtask test` to the directory holding `lib/` (Kafka's jars).
pub const DIR_ENV: &str = "ZEROCOPY_TRACE_KAFKA_DIR";

/// Any valid KRaft cluster id (16 bytes, base64): the storage is formatted fresh for each test.
const CLUSTER_ID: &str = "MkU3OEVBNTcwNTJENDM2Qk";

/// The password of the test's throwaway keystore and truststore.
const STORE_PASSWORD: &str = "zerocopy-trace";

/// The broker's heap: small, the data lives in the page cache, not in the JVM.
const BROKER_HEAP: &str = "-Xmx512m";
const TOOL_HEAP: &str = "-Xmx256m";

/// How long the broker may take to listen, on a busy 2-core machine.
const BROKER_START: Duration = Duration::from_secs(120);
/// How long one tool may run: far more than any needs here, short of a hang.
const TOOL_LIMIT: Duration = Duration::from_secs(300);

/// `target/kafka`, from xtask's variable or next to this crate's workspace.
pub fn kafka_dir() -> PathBuf {
    std::env::var_os(DIR_ENV).map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/kafka"),
        PathBuf::from,
    )
}

/// The classpath of every Kafka JVM: all the fetched jars. Panics, saying what to run, when
/// Kafka has not been fetched: the test must never skip for that.
pub fn classpath() -> String {
    let lib = kafka_dir().join("lib");
    let fetched = std::fs::read_dir(&lib).is_ok_and(|entries| {
        entries
            .filter_map(Result::ok)
            .any(|e| e.file_name().to_string_lossy().starts_with("kafka_2.13-"))
    });
    assert!(
        fetched,
        "Apache Kafka is not in {}: run `cargo xtask test` (it fetches Kafka with Maven)",
        lib.display()
    );
    format!("{}/*", lib.display())
}

/// The client listener's protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    Plaintext,
    Tls,
}

impl Security {
    fn protocol(self) -> &'static str {
        match self {
            Security::Plaintext => "PLAINTEXT",
            Security::Tls => "SSL",
        }
    }
}

/// The broker's configuration: combined KRaft node, one client listener (`protocol`), the
/// controller's own plaintext listener, replication factors of 1 for the internal topics.
pub fn server_properties(
    security: Security,
    port: u16,
    controller_port: u16,
    data: &Path,
    tls: Option<&TlsFiles>,
) -> String {
    let listener = security.protocol();
    let mut text = format!(
        "process.roles=broker,controller\n\
         node.id=1\n\
         controller.quorum.voters=1@127.0.0.1:{controller_port}\n\
         listeners={listener}://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}\n\
         advertised.listeners={listener}://127.0.0.1:{port}\n\
         controller.listener.names=CONTROLLER\n\
         inter.broker.listener.name={listener}\n\
         listener.security.protocol.map=CONTROLLER:PLAINTEXT,{listener}:{listener}\n\
         log.dirs={}\n\
         num.partitions=1\n\
         offsets.topic.replication.factor=1\n\
         transaction.state.log.replication.factor=1\n\
         transaction.state.log.min.isr=1\n\
         share.coordinator.state.topic.replication.factor=1\n\
         share.coordinator.state.topic.min.isr=1\n\
         group.initial.rebalance.delay.ms=0\n",
        data.display()
    );
    if let Some(tls) = tls {
        let _ = write!(
            text,
            "ssl.keystore.location={}\n\
             ssl.keystore.type=PKCS12\n\
             ssl.keystore.password={STORE_PASSWORD}\n\
             ssl.key.password={STORE_PASSWORD}\n",
            tls.keystore.display()
        );
        text.push_str(&tls.trust_properties());
    }
    text
}

/// log4j 2 configuration: everything at `level` and above to stdout (which goes to a file).
fn log4j_properties(level: &str) -> String {
    format!(
        "appender.out.type = Console\n\
         appender.out.name = OUT\n\
         appender.out.layout.type = PatternLayout\n\
         appender.out.layout.pattern = [%d] %p %m (%c)%n\n\
         rootLogger.level = {level}\n\
         rootLogger.appenderRef.out.ref = OUT\n"
    )
}

/// A self-signed key pair for the broker and a truststore holding its certificate, made with
/// the JDK's `keytool`.
pub struct TlsFiles {
    pub keystore: PathBuf,
    pub truststore: PathBuf,
}

impl TlsFiles {
    pub fn make(dir: &Path) -> TlsFiles {
        let files = TlsFiles {
            keystore: dir.join("broker.p12"),
            truststore: dir.join("truststore.p12"),
        };
        let cert = dir.join("broker.crt");
        let keytool = |args: &[&str], extra: &[&Path]| {
            let out = Command::new("keytool")
                .args(args)
                .args(extra)
                .args(["-storetype", "PKCS12", "-storepass", STORE_PASSWORD])
                .output()
                .expect("running keytool (it comes with Java)");
            assert!(
                out.status.success(),
                "keytool {args:?} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        // The certificate names 127.0.0.1, so clients verify the broker's name as usual.
        keytool(
            &[
                "-genkeypair",
                "-alias",
                "broker",
                "-keyalg",
                "EC",
                "-groupname",
                "secp256r1",
                "-dname",
                "CN=localhost",
                "-ext",
                "SAN=ip:127.0.0.1,dns:localhost",
                "-validity",
                "2",
                "-keypass",
                STORE_PASSWORD,
                "-keystore",
            ],
            &[&files.keystore],
        );
        keytool(
            &["-exportcert", "-rfc", "-alias", "broker", "-keystore"],
            &[&files.keystore, Path::new("-file"), &cert],
        );
        keytool(
            &["-importcert", "-noprompt", "-alias", "broker", "-file"],
            &[&cert, Path::new("-keystore"), &files.truststore],
        );
        files
    }

    fn trust_properties(&self) -> String {
        format!(
            "ssl.truststore.location={}\n\
             ssl.truststore.type=PKCS12\n\
             ssl.truststore.password={STORE_PASSWORD}\n",
            self.truststore.display()
        )
    }
}

/// A `java` command for a Kafka main class, in a process group of its own (so the JVM and
/// anything it starts can be killed together), logging at `log_level` to stdout.
fn java(dir: &Path, heap: &str, log_level: &str, class: &str) -> Command {
    let log4j = dir.join(format!("log4j2-{}.properties", log_level.to_lowercase()));
    std::fs::write(&log4j, log4j_properties(log_level)).expect("writing a log4j configuration");
    let mut command = Command::new("java");
    command
        .arg(heap)
        .arg(format!("-Dlog4j2.configurationFile={}", log4j.display()))
        .arg("-cp")
        .arg(classpath())
        .arg(class)
        .stdin(Stdio::null())
        .process_group(0);
    command
}

/// Kills a process group started by [`java`], then reaps its leader.
fn kill_group(child: &mut Child) {
    // SAFETY: kill has no memory preconditions; the group is the one our child leads.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    let _ = child.wait();
}

/// The last lines of a log file, for failure messages.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A running broker. Dropping it kills its process group.
pub struct Broker {
    child: Child,
    port: u16,
    dir: PathBuf,
    log: PathBuf,
    /// Client settings for the tools (empty for plaintext).
    client_config: PathBuf,
}

impl Broker {
    /// Formats a fresh KRaft storage in `dir/data` and starts the broker; returns once its
    /// client listener accepts connections.
    pub fn start(dir: &Path, security: Security) -> Broker {
        let tls = (security == Security::Tls).then(|| TlsFiles::make(dir));
        let [port, controller_port] = super::free_ports();
        let data = dir.join("data");
        let config = dir.join("server.properties");
        std::fs::write(
            &config,
            server_properties(security, port, controller_port, &data, tls.as_ref()),
        )
        .expect("writing server.properties");
        let client_config = dir.join("client.properties");
        let client = match &tls {
            Some(tls) => format!("security.protocol=SSL\n{}", tls.trust_properties()),
            None => String::new(),
        };
        std::fs::write(&client_config, client).expect("writing client.properties");

        let format = run_tool(
            dir,
            "storage-format",
            java(dir, TOOL_HEAP, "WARN", "kafka.tools.StorageTool")
                .args(["format", "--cluster-id", CLUSTER_ID, "--config"])
                .arg(&config),
            TOOL_LIMIT,
        );
        assert!(
            format.contains("Formatting metadata directory"),
            "kafka-storage format said: {format}"
        );

        let log = dir.join("broker.log");
        let out = std::fs::File::create(&log).expect("creating broker.log");
        let err = out.try_clone().expect("cloning the log file");
        let child = java(dir, BROKER_HEAP, "INFO", "kafka.Kafka")
            .arg(&config)
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("starting java (cargo xtask test checks that Java is installed)");
        let mut broker = Broker {
            child,
            port,
            dir: dir.to_path_buf(),
            log,
            client_config,
        };
        broker.wait_listening();
        broker
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + BROKER_START;
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the Kafka broker exited ({status}) before listening; its log:\n{}",
                    tail(&self.log, 40)
                );
            }
            assert!(
                Instant::now() < deadline,
                "the Kafka broker did not listen on port {} within {BROKER_START:?}; its log:\n{}",
                self.port,
                tail(&self.log, 40)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The last lines of the broker's log.
    pub fn log_tail(&self) -> String {
        tail(&self.log, 40)
    }

    /// A Kafka tool's command, pointed at this broker's directory for its logs.
    fn tool(&self, class: &str) -> Command {
        java(&self.dir, TOOL_HEAP, "WARN", class)
    }

    pub fn create_topic(&self, topic: &str) {
        let out = run_tool(
            &self.dir,
            "create-topic",
            self.tool("org.apache.kafka.tools.TopicCommand")
                .args(["--bootstrap-server", &self.bootstrap()])
                .arg("--command-config")
                .arg(&self.client_config)
                .args(["--create", "--topic", topic])
                .args(["--partitions", "1", "--replication-factor", "1"]),
            TOOL_LIMIT,
        );
        assert!(
            out.contains(&format!("Created topic {topic}.")),
            "{out}\nbroker log:\n{}",
            self.log_tail()
        );
    }

    /// Produces `records` records of `size` bytes with the producer performance tool (no
    /// compression, acks=1); returns what it says it sent.
    pub fn produce(&self, topic: &str, records: u64, size: u64) -> Produced {
        let out = run_tool(
            &self.dir,
            "produce",
            self.tool("org.apache.kafka.tools.ProducerPerformance")
                .args(["--topic", topic])
                .args(["--num-records", &records.to_string()])
                .args(["--record-size", &size.to_string()])
                .args(["--throughput", "-1"])
                .args(["--bootstrap-server", &self.bootstrap()])
                .arg("--command-config")
                .arg(&self.client_config)
                // One list (the option takes several; given twice, the last list wins).
                // Bigger batches than the default: fewer requests, a faster produce here.
                .args([
                    "--command-property",
                    "acks=1",
                    "compression.type=none",
                    "batch.size=262144",
                    "linger.ms=5",
                ])
                .arg("--print-metrics"),
            TOOL_LIMIT,
        );
        parse_produced(&out).unwrap_or_else(|| panic!("no summary from the producer:\n{out}"))
    }

    /// Consumes `records` records of `topic` from the start, as consumer group `group`, with
    /// the consumer performance tool; returns its own count of what it consumed.
    pub fn consume(&self, topic: &str, group: &str, records: u64) -> Consumed {
        let out = self
            .start_consumer(topic, group, records)
            .finish(TOOL_LIMIT);
        parse_consumed(&out).unwrap_or_else(|| panic!("no summary from the consumer:\n{out}"))
    }

    /// Starts the consumer performance tool (see [`Broker::consume`]) and returns at once.
    pub fn start_consumer(&self, topic: &str, group: &str, records: u64) -> Tool {
        Tool::spawn(
            &self.dir,
            &format!("consume-{group}"),
            self.tool("org.apache.kafka.tools.ConsumerPerformance")
                .args(["--bootstrap-server", &self.bootstrap()])
                .arg("--command-config")
                .arg(&self.client_config)
                .args(["--topic", topic, "--group", group])
                .args(["--num-records", &records.to_string()])
                // Fail (rather than wait) if records stop coming for this long.
                .args(["--timeout", "60000"])
                .arg("--print-metrics"),
        )
    }

    /// The bytes of the topic's partition 0 on disk (its `.log` segments): what one consumer
    /// reading it all is sent.
    pub fn log_bytes(&self, topic: &str) -> u64 {
        let partition = self.dir.join("data").join(format!("{topic}-0"));
        std::fs::read_dir(&partition)
            .unwrap_or_else(|e| panic!("reading {}: {e}", partition.display()))
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
            .map(|e| e.metadata().map_or(0, |m| m.len()))
            .sum()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

/// A Kafka tool running alongside the test, its output in `dir/<name>.out`. Dropping it
/// kills its process group, so a failed assertion leaves no JVM behind.
pub struct Tool {
    child: Option<Child>,
    name: String,
    output: PathBuf,
}

impl Tool {
    pub fn spawn(dir: &Path, name: &str, command: &mut Command) -> Tool {
        let output = dir.join(format!("{name}.out"));
        let out = std::fs::File::create(&output).expect("creating a tool's output file");
        let err = out.try_clone().expect("cloning the output file");
        let child = command
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Tool {
            child: Some(child),
            name: name.to_owned(),
            output,
        }
    }

    /// Waits for the tool to finish within `limit`; returns its stdout and stderr together.
    /// Panics (with the output) when it fails or runs out of time.
    pub fn finish(mut self, limit: Duration) -> String {
        let mut child = self.child.take().expect("a running tool");
        let status = wait_within(&mut child, limit);
        let text = std::fs::read_to_string(&self.output).unwrap_or_default();
        match status {
            Some(status) if status.success() => text,
            Some(status) => panic!("{} failed ({status}):\n{text}", self.name),
            None => panic!("{} did not finish within {limit:?}:\n{text}", self.name),
        }
    }
}

impl Drop for Tool {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(&mut child);
        }
    }
}

/// Runs a tool to completion within `limit` (see [`Tool::finish`]).
pub fn run_tool(dir: &Path, name: &str, command: &mut Command, limit: Duration) -> String {
    Tool::spawn(dir, name, command).finish(limit)
}

/// Waits for a child started by [`java`]; kills its group and returns `None` past `limit`.
fn wait_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                kill_group(child);
                return None;
            }
        }
    }
}

/// What the producer performance tool says it sent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Produced {
    pub records: u64,
    /// The client's `outgoing-byte-total`: every byte it wrote to its connections (before
    /// encryption, with TLS).
    pub bytes_sent: u64,
}

/// What the consumer performance tool says it consumed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Consumed {
    pub records: u64,
    /// `data.consumed.in.MB`: key and value bytes / 2^20, printed with 4 decimals.
    pub mib: f64,
    /// The client's `incoming-byte-total`: every byte it read from its connections (after
    /// decryption, with TLS), fetch responses and all.
    pub bytes_received: u64,
}

/// Reads the consumer tool's summary (a header line naming the columns, then one line of
/// values) and its client metrics (`--print-metrics`).
pub fn parse_consumed(output: &str) -> Option<Consumed> {
    let mut lines = output.lines();
    let header: Vec<&str> = lines
        .find(|l| l.contains("data.consumed.in.nMsg"))?
        .split(',')
        .map(str::trim)
        .collect();
    let values: Vec<&str> = lines.next()?.split(',').map(str::trim).collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .and_then(|i| values.get(i))
    };
    Some(Consumed {
        records: column("data.consumed.in.nMsg")?.parse().ok()?,
        mib: column("data.consumed.in.MB")?.parse().ok()?,
        bytes_received: metric(output, "consumer-metrics:incoming-byte-total")?,
    })
}

/// Reads the producer tool's final count (`262144 records sent, 13509.1 records/sec ...`,
/// its last such line) and its client metrics (`--print-metrics`).
pub fn parse_produced(output: &str) -> Option<Produced> {
    let records = output
        .lines()
        .rev()
        .find_map(|l| l.split_once(" records sent, "))?
        .0
        .trim()
        .parse()
        .ok()?;
    Some(Produced {
        records,
        bytes_sent: metric(output, "producer-metrics:outgoing-byte-total")?,
    })
}

/// A client-wide metric printed by `--print-metrics`:
/// `consumer-metrics:incoming-byte-total:{client-id=...}   : 273527682.000`.
pub fn metric(output: &str, name: &str) -> Option<u64> {
    let line = output.lines().find(|l| {
        l.strip_prefix(name)
            .is_some_and(|rest| rest.starts_with(":{"))
    })?;
    let value: f64 = line.rsplit(':').next()?.trim().parse().ok()?;
    // Counters printed as floats; exact below 2^53.
    (value >= 0.0 && value.fract() == 0.0).then_some(value as u64)
}
