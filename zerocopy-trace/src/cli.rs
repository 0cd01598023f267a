//! Command line.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::{
    collect::groups::DEFAULT_MAX_GROUPS,
    kernel::plan::Hook,
    session::{targets::Targets, trace::TraceOptions},
    system::containers::Sources,
};

/// The exporter's default address: loopback only, on the port documented in the README
/// (from Prometheus' default port allocations).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9124";

/// What `--version` prints after the name: the release and the commit it was built from
/// ("unknown" when built from a tarball; see build.rs).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (revision ",
    env!("ZEROCOPY_TRACE_REVISION"),
    ")"
);

#[derive(Debug, Parser)]
#[command(
    name = "zerocopy-trace",
    version = VERSION,
    about = "Does this server really move its data without copying it? Counts, per process, the bytes \
             copied through user space and the bytes moved in-kernel (sendfile, splice, ...), live, from eBPF."
)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// Without one, the live dashboard (as `top`).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The dashboard's options, when no subcommand is given.
    #[command(flatten)]
    pub top: TopArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The live dashboard: per process, copied versus zero-copy bytes, refreshed every interval
    /// (the default when no subcommand is given).
    Top(TopArgs),
    /// Trace the machine (or the processes named) for a while, then print a per-process report.
    Report(ReportArgs),
    /// Start a command, trace it and all its descendants until it exits, then report.
    Run(RunArgs),
    /// Serve Prometheus metrics (GET /metrics): per command, systemd unit and container, the
    /// calls and the copied and zero-copy bytes of every data-path syscall, computed at each
    /// scrape.
    Exporter(ExporterArgs),
    /// For `cargo xtask bench`: empty programs on the same hooks, until SIGINT.
    #[cfg(feature = "bench")]
    #[command(hide = true)]
    EmptyPrograms(EmptyProgramsArgs),
    /// For packagers (`cargo xtask dist`): write the man pages and the bash, zsh and fish
    /// completions, generated from this command line, under DIR.
    #[command(hide = true)]
    Assets(AssetsArgs),
    /// Started by the agent itself, before it gives up its privileges: asks the container
    /// runtimes for names on its behalf, over the socket pair on standard input.
    #[command(hide = true, name = "names-helper")]
    NamesHelper(NamesHelperArgs),
}

#[derive(Debug, Args)]
pub struct NamesHelperArgs {
    /// The agent's pid: the helper ends with it.
    #[arg(long)]
    pub parent: u32,
    /// Where to ask, as `--names-from` takes them (`KIND=PATH`), for the helper's whole life.
    #[arg(long = "names-from", value_name = "KIND=PATH")]
    pub names_from: Vec<String>,
}

#[derive(Debug, Args)]
pub struct AssetsArgs {
    /// Where to write them (created if missing): DIR/man/*.8 and DIR/completions/*.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

#[cfg(feature = "bench")]
#[derive(Debug, Args)]
pub struct EmptyProgramsArgs {
    #[arg(long, value_enum, default_value_t = Hook::Typed)]
    pub hook: Hook,
}

#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Print one JSON document instead of the table (as --format json). With `run`, a format
    /// other than the table and no `-o`, the command's own standard output goes to standard
    /// error, so standard output is only the document.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// table, json, or prom: the exporter's metrics in the Prometheus text format, for
    /// node_exporter's textfile collector (with -o, written under a temporary name, then
    /// renamed, and readable by all, so node_exporter can read it).
    #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
    pub format: ReportFormat,
    /// Write the report to this file (created readable by its owner only) instead of stdout.
    #[arg(long, short = 'o', value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Exited processes listed one by one (the most recent); older ones are folded into one
    /// row per command and systemd unit, so memory stays bounded however many processes exit.
    #[arg(long, value_name = "N", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(0..=10_000_000))]
    pub max_rows: u32,
    #[command(flatten)]
    pub trace: TraceArgs,
}

/// What the report is written as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Table,
    Json,
    Prom,
}

impl OutputArgs {
    pub fn format(&self) -> ReportFormat {
        if self.json {
            ReportFormat::Json
        } else {
            self.format
        }
    }
}

/// How the kernel side is set up.
#[derive(Debug, Args)]
pub struct TraceArgs {
    /// Most processes counted at once; past it, counts are reported as dropped. Default: 16384,
    /// on any number of CPUs (about 37 MiB of kernel memory); sizes that would take more than
    /// half of the available memory are refused.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_processes: Option<u32>,
    /// Where the programs hook in: `btf` (one program on the BTF-typed sys_exit tracepoint, for
    /// every syscall, filtered by number; the cheapest, see the README), `raw` (the same on the
    /// raw tracepoint, for kernels that refuse tp_btf or lack bpf_rdonly_cast, before 6.2;
    /// `btf` falls back to it) or `tracepoints`
    /// (an enter and an exit program on each of the 22 syscalls' own tracepoints).
    #[arg(long, value_enum, default_value_t = Hook::Typed)]
    pub hook: Hook,
    /// Started as root, become this user once attached (default: nobody), keeping no
    /// capability but what reading the maps needs. With `run`, the user the command runs as
    /// (default: the user sudo was run by, else root without any capability; `root` runs it
    /// with root's capabilities), and the agent becomes it too.
    #[arg(long, short = 'u', value_name = "USER")]
    pub user: Option<String>,
    /// Do not install the seccomp allow-list after attach (if a syscall it lacks is reported
    /// as blocked on this system, say so in a bug report).
    #[arg(long)]
    pub no_seccomp: bool,
    /// Where containers' names come from (for the CONTAINER column, the JSON, the labels and
    /// --container/--pod by name), comma-separated or repeated: docker, podman, cri,
    /// kubelet-logs, each at its usual place or as KIND=PATH (cri=/run/crio/crio.sock), or
    /// none. Default: all at their usual places; where none answers, containers are shown by
    /// id.
    #[arg(long, value_name = "SOURCE", value_delimiter = ',', value_parser = parse_source)]
    pub names_from: Vec<String>,
}

impl TraceArgs {
    /// The options, without the account to become (resolved by the command: it looks the user
    /// up).
    pub fn options(&self) -> TraceOptions {
        TraceOptions {
            max_processes: self.max_processes,
            hook: self.hook,
            account: None,
            seccomp: !self.no_seccomp,
            names: if self.names_from.is_empty() {
                Sources::default()
            } else {
                // Each value was checked by `parse_source`.
                Sources::parse(&self.names_from).unwrap_or_else(|_| Sources::none())
            },
        }
    }
}

/// One `--names-from` value, checked as it is parsed.
fn parse_source(text: &str) -> Result<String, String> {
    Sources::parse(&[text.to_string()]).map(|_| text.to_string())
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// How long to trace (e.g. 10s, 500ms, 2m); default: until Ctrl-C.
    #[arg(long, short = 'd', value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// (For `cargo xtask bench`.) Read every counter at this interval, as the dashboard does,
    /// to measure what its refreshes cost; exited processes are then kept as the dashboard
    /// keeps them (the last 256 one by one), whatever --max-rows says.
    #[cfg(feature = "bench")]
    #[arg(long, hide = true, value_name = "DURATION", value_parser = parse_duration)]
    pub refresh: Option<Duration>,
    #[command(flatten)]
    pub filter: FilterArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Which processes to trace; the whole machine when none is given.
#[derive(Debug, Args)]
pub struct FilterArgs {
    /// Trace only this process, its descendants running now (a server's master and its
    /// workers) and the children they fork; repeatable.
    #[arg(long, short = 'p', value_name = "PID")]
    pub pid: Vec<u32>,
    /// Trace only processes with this name (as in /proc/PID/comm), running now or exec'd later;
    /// repeatable.
    #[arg(long, short = 'c', value_name = "NAME")]
    pub comm: Vec<String>,
    /// Trace every process in this cgroup (v2) or below it, e.g. system.slice/nginx.service.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["container", "pod"])]
    pub cgroup: Option<PathBuf>,
    /// Trace every process of this container: its id (or a unique prefix), or the name its
    /// runtime gave it (Docker, Podman, Kubernetes; see --names-from). It must be running.
    #[arg(long, value_name = "ID|NAME", conflicts_with = "pod")]
    pub container: Option<String>,
    /// Trace every process of this Kubernetes pod on this node: its UID, or its name
    /// (NAME or NAMESPACE/NAME, from the CRI socket or kubelet's logs).
    #[arg(long, value_name = "UID|NAME")]
    pub pod: Option<String>,
    /// With --pid/--comm: trace the named processes alone, not the descendants a --pid has
    /// running now nor the children any of them forks after attach.
    #[arg(long)]
    pub no_children: bool,
}

impl FilterArgs {
    pub fn targets(&self) -> Targets {
        Targets {
            pids: self.pid.clone(),
            comms: self.comm.clone(),
            cgroup: self.cgroup.clone(),
            container: self.container.clone(),
            pod: self.pod.clone(),
            follow_children: !self.no_children,
        }
    }
}

#[derive(Debug, Args)]
pub struct TopArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// How often to refresh (e.g. 1s, 500ms; at least 100ms).
    #[arg(long, short = 'i', value_name = "DURATION", default_value = "1s", value_parser = parse_interval)]
    pub interval: Duration,
    #[command(flatten)]
    pub trace: TraceArgs,
}

/// Labels the exporter adds on request (each multiplies the series).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Label {
    /// The pid of each live process (exited ones are summed without it).
    Pid,
    /// The full cgroup path (one group per cgroup rather than per unit).
    Cgroup,
}

#[derive(Debug, Args)]
pub struct ExporterArgs {
    /// Address to serve /metrics on. Loopback by default: any other address exposes the names
    /// of the machine's processes to whoever can reach it.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN,
          value_parser = parse_listen)]
    pub listen: SocketAddr,
    /// Extra labels, comma-separated: pid, cgroup (default: comm and unit only).
    #[arg(long, value_enum, value_name = "LIST", value_delimiter = ',')]
    pub labels: Vec<Label>,
    /// The web configuration, in the format most Prometheus exporters share (exporter-toolkit's):
    /// TLS (tls_server_config, client certificates too) and Basic auth (basic_auth_users, bcrypt
    /// hashes). Read once at start.
    #[arg(long = "web.config.file", value_name = "FILE")]
    pub web_config: Option<PathBuf>,
    /// Most groups (command, unit, container, cgroup) with series of their own; processes of
    /// groups beyond it are counted under comm="other" and in zerocopy_groups_overflowed_total.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_GROUPS as u32,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_groups: u32,
    #[command(flatten)]
    pub filter: FilterArgs,
    #[command(flatten)]
    pub trace: TraceArgs,
}

/// Parses `HOST:PORT` (`127.0.0.1:9124`, `[::1]:9124`, `0.0.0.0:9124`).
fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    text.parse().map_err(|_| {
        format!("`{text}` is not an address to listen on (try 127.0.0.1:9124 or [::1]:9124)")
    })
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub output: OutputArgs,
    /// The command to run and trace, after `--`.
    #[arg(required = true, last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// The shortest refresh of the dashboard: each refresh reads every counter, and faster than
/// this the agent would spend a core on it for a screen nobody can read that fast.
const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// A refresh interval: a duration of at least `MIN_INTERVAL`.
fn parse_interval(text: &str) -> Result<Duration, String> {
    let too_short = || {
        format!(
            "`{text}` is too short: refresh at most every {}ms (each refresh reads every counter)",
            MIN_INTERVAL.as_millis()
        )
    };
    match seconds(text)? {
        s if s.is_finite() && s > 0.0 && s < MIN_INTERVAL.as_secs_f64() => Err(too_short()),
        _ => parse_duration(text),
    }
}

/// Parses `10s`, `500ms`, `2m`, `1h`, or a plain number of seconds. Under a millisecond is
/// refused (zero included): a trace of nothing is a mistake worth saying.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let seconds = seconds(text)?;
    if !seconds.is_finite() || !(0.001..=366.0 * 86400.0).contains(&seconds) {
        return Err(format!(
            "`{}` is out of range (at least 1ms, at most a year)",
            text.trim()
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// The seconds a duration's text says, unchecked.
fn seconds(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (try 10s, 500ms, 2m)"))?;
    Ok(match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}` (use ms, s, m or h)"
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1ms"), Ok(Duration::from_millis(1)));
        for bad in [
            "",
            "0",
            "0s",
            "0.0000000001s",
            "0.5ms",
            "-1s",
            "abc",
            "10x",
            "1e999",
            "s",
            "9999999999h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_takes_the_command_after_dashes() {
        let cli = Cli::try_parse_from(["zerocopy-trace", "run", "--json", "--", "cat", "-n", "x"])
            .unwrap();
        match cli.command {
            Some(Command::Run(run)) => {
                assert!(run.output.json);
                assert_eq!(run.output.format(), ReportFormat::Json);
                assert_eq!(run.command, vec!["cat", "-n", "x"]);
            }
            other => panic!("{other:?}"),
        }
        assert!(Cli::try_parse_from(["zerocopy-trace", "run"]).is_err());
        let prom = Cli::try_parse_from([
            "zerocopy-trace",
            "report",
            "--format",
            "prom",
            "-o",
            "x.prom",
        ])
        .unwrap();
        match prom.command {
            Some(Command::Report(args)) => assert_eq!(args.output.format(), ReportFormat::Prom),
            other => panic!("{other:?}"),
        }
        assert!(
            Cli::try_parse_from(["zerocopy-trace", "report", "--json", "--format", "prom"])
                .is_err()
        );
        assert!(Cli::try_parse_from(["zerocopy-trace", "report", "--bogus"]).is_err());
        assert!(Cli::try_parse_from(["zerocopy-trace", "report", "--pid", "x"]).is_err());
        assert!(Cli::try_parse_from(["zerocopy-trace", "report", "--max-processes", "0"]).is_err());
    }

    #[test]
    fn container_filters_and_name_sources() {
        let cli = Cli::try_parse_from([
            "zerocopy-trace",
            "report",
            "--container",
            "web",
            "--names-from",
            "podman,cri=/tmp/cri.sock",
        ])
        .unwrap();
        let Some(Command::Report(args)) = cli.command else {
            panic!("report")
        };
        assert_eq!(args.filter.targets().container.as_deref(), Some("web"));
        let names = args.output.trace.options().names;
        assert_eq!(names.0.len(), 2);
        assert_eq!(names.0[1].path, std::path::Path::new("/tmp/cri.sock"));
        for conflicting in [
            &["--container", "a", "--cgroup", "x"][..],
            &["--pod", "a", "--cgroup", "x"],
            &["--pod", "a", "--container", "b"],
            &["--names-from", "rkt"],
        ] {
            let mut argv = vec!["zerocopy-trace", "report"];
            argv.extend_from_slice(conflicting);
            assert!(Cli::try_parse_from(&argv).is_err(), "{argv:?}");
        }
        let none = Cli::try_parse_from(["zerocopy-trace", "top", "--names-from", "none"]).unwrap();
        let Some(Command::Top(top)) = none.command else {
            panic!("top")
        };
        assert_eq!(top.trace.options().names, Sources::none());
        assert_eq!(
            Cli::try_parse_from(["zerocopy-trace", "top", "--pod", "shop-0"])
                .map(|c| match c.command {
                    Some(Command::Top(t)) => t.filter.targets().pod,
                    _ => None,
                })
                .unwrap()
                .as_deref(),
            Some("shop-0")
        );
    }

    #[test]
    fn the_dashboard_is_the_default_and_top() {
        let bare =
            Cli::try_parse_from(["zerocopy-trace", "--comm", "nginx", "-i", "500ms"]).unwrap();
        assert!(bare.command.is_none());
        assert_eq!(bare.top.filter.comm, vec!["nginx"]);
        assert_eq!(bare.top.interval, Duration::from_millis(500));
        let top = Cli::try_parse_from(["zerocopy-trace", "top", "--pid", "7"]).unwrap();
        match top.command {
            Some(Command::Top(args)) => {
                assert_eq!(args.filter.pid, vec![7]);
                assert_eq!(args.interval, Duration::from_secs(1));
            }
            other => panic!("{other:?}"),
        }
        // Options go either before a subcommand or with `top`, not mixed with another one.
        assert!(Cli::try_parse_from(["zerocopy-trace", "--pid", "7", "report"]).is_err());
        assert!(Cli::try_parse_from(["zerocopy-trace", "top", "--interval", "0"]).is_err());
        for short in ["0.0000000001s", "0.000001s", "99ms"] {
            let err = Cli::try_parse_from(["zerocopy-trace", "top", "--interval", short])
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("is too short: refresh at most every 100ms"),
                "{short}: {err}"
            );
        }
        assert!(Cli::try_parse_from(["zerocopy-trace", "top", "--interval", "100ms"]).is_ok());
    }
}
