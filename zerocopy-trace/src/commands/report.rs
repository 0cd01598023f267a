//! `zerocopy-trace report`: trace for a while, then print the report; and the printing itself,
//! which `run` and a `top` without a terminal share.

use std::{process::ExitCode, time::Duration};

use anyhow::Result;

use crate::{
    analysis::SnapshotAnalysis,
    cli::{OutputArgs, ReportArgs, ReportFormat},
    output::{
        destination,
        prometheus::metrics::{self, Labels},
        report::{self, AtEnd, Report},
        Output,
    },
    session::{self, driver::Stops, Outcome},
};

pub fn run(args: ReportArgs) -> Result<ExitCode> {
    let targets = args.filter.targets();
    let stops = Stops {
        duration: args.duration,
        watch_pids: targets.pids.clone(),
        ..Stops::default()
    };
    if args.duration.is_none() {
        eprintln!("zerocopy-trace: tracing; press Ctrl-C to stop and print the report");
    }
    let mut output = at_end(&args);
    let outcome = session::run(
        &targets,
        None,
        &args.output.trace.options(),
        stops,
        &mut output,
    )?;
    emit(&outcome, &args.output, output.retention().keep_exited)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "bench")]
fn at_end(args: &ReportArgs) -> AtEnd {
    match args.refresh {
        Some(refresh) => AtEnd::refreshing(refresh),
        None => AtEnd::new(args.output.max_rows as usize),
    }
}

#[cfg(not(feature = "bench"))]
fn at_end(args: &ReportArgs) -> AtEnd {
    AtEnd::new(args.output.max_rows as usize)
}

/// Prints (or writes) the report of `outcome` as `args` asks; it lists the last `max_rows`
/// exited processes one by one.
pub fn emit(outcome: &Outcome, args: &OutputArgs, max_rows: usize) -> Result<()> {
    let output = args.output.as_deref();
    if args.format() == ReportFormat::Prom {
        let text = metrics::exposition(
            outcome.finished.snapshot.clone(),
            Labels::default(),
            metrics::Format::Prometheus,
        );
        return match output {
            Some(path) => destination::write_for_textfile_collector(path, &text),
            None => destination::print(&text),
        };
    }
    let analysed = SnapshotAnalysis::of(outcome.finished.snapshot.clone());
    let report = Report {
        duration: round_to_ms(outcome.elapsed),
        analysed: &analysed,
        not_covered: &outcome.finished.not_covered,
        ended_because: outcome.end.reason(),
        occupancy: Some(outcome.finished.occupancy),
        max_rows,
    };
    let mut text = if args.format() == ReportFormat::Json {
        report::to_json(&report)
    } else {
        report::to_table(&report)
    };
    if !text.ends_with('\n') {
        text.push('\n');
    }
    match output {
        Some(path) => destination::write_private(path, &text),
        None => destination::print(&text),
    }
}

fn round_to_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}
