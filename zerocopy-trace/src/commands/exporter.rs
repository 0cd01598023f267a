//! `zerocopy-trace exporter`: serve Prometheus metrics until a signal.

use std::process::ExitCode;

use anyhow::Result;

use crate::{
    cli::{ExporterArgs, Label},
    collect::groups::Grouping,
    output::prometheus::{self, metrics::Labels, Exporter},
    session::{self, driver::Stops},
};

pub fn run(args: ExporterArgs) -> Result<ExitCode> {
    let listener = prometheus::bind(args.listen)?;
    if !args.listen.ip().is_loopback() {
        eprintln!(
            "zerocopy-trace: warning: serving on {}, not loopback: whoever reaches it sees the names of this machine's processes",
            args.listen
        );
    }
    let labels = Labels {
        pid: args.labels.contains(&Label::Pid),
        cgroup: args.labels.contains(&Label::Cgroup),
    };
    let grouping = Grouping {
        by_cgroup: labels.cgroup,
        max_groups: args.max_groups as usize,
    };
    let targets = args.filter.targets();
    let stops = Stops {
        watch_pids: targets.pids.clone(),
        ..Stops::default()
    };
    let mut exporter = Exporter::new(listener, labels, grouping)?;
    session::run(&targets, None, &args.trace.options(), stops, &mut exporter)?;
    Ok(ExitCode::SUCCESS)
}
