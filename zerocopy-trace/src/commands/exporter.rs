//! `zerocopy-trace exporter`: serve Prometheus metrics until a signal.

use std::process::ExitCode;

use anyhow::Result;

use crate::{
    cli::{ExporterArgs, Label},
    collect::groups::Grouping,
    output::prometheus::{self, metrics::Labels, web_config, Exporter},
    session::{self, driver::Stops},
    system::limits,
};

pub fn run(args: ExporterArgs) -> Result<ExitCode> {
    // Read while the agent may still read what root reads (the key), before anything starts.
    let web = match &args.web_config {
        Some(path) => web_config::load(path)?,
        None => web_config::WebConfig::default(),
    };
    let open_files = limits::raise_open_files();
    let listener = prometheus::bind(args.listen)?;
    let options = super::checked_options(&args.trace)?;
    if !args.listen.ip().is_loopback() && web.users.is_empty() && web.tls.is_none() {
        eprintln!(
            "zerocopy-trace: warning: serving on {} without TLS or authentication: whoever reaches it sees the names of this machine's processes (see --web.config.file)",
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
    let mut exporter = Exporter::new(listener, web, open_files, labels, grouping)?;
    session::run(&targets, None, &options, stops, &mut exporter)?;
    Ok(ExitCode::SUCCESS)
}
