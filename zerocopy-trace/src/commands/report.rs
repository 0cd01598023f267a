//! `zerocopy-trace report`: trace for a while, then print the report; and the printing itself,
//! which `run` and a `top` without a terminal share.

use std::{process::ExitCode, time::Duration};

use anyhow::Result;

use crate::{
    analysis::SnapshotAnalysis,
    cli::{OutputArgs, ReportArgs, ReportFormat},
    output::{
        destination::Destination,
        prometheus::metrics::{self, Labels},
        report::{self, AtEnd, Report},
        Output,
    },
    session::{self, driver::Stops, Outcome},
};

pub fn run(args: ReportArgs) -> Result<ExitCode> {
    // Everything checked before anything is attached: the file, the user, the trace.
    let destination = destination(&args.output)?;
    let options = super::checked_options(&args.output.trace)?;
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
    let outcome = session::run(&targets, None, &options, stops, &mut output)?;
    emit(
        &outcome,
        &args.output,
        destination,
        output.retention().keep_exited,
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Where the report of `args` goes, its file started (see `Destination::new`).
pub fn destination(args: &OutputArgs) -> Result<Destination> {
    Destination::new(args.output.as_deref(), args.format() == ReportFormat::Prom)
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

/// Writes the report of `outcome` to `destination` as `args` asks; it lists the last
/// `max_rows` exited processes one by one.
pub fn emit(
    outcome: &Outcome,
    args: &OutputArgs,
    destination: Destination,
    max_rows: usize,
) -> Result<()> {
    if args.format() == ReportFormat::Prom {
        let text = metrics::exposition(
            outcome.finished.snapshot.clone(),
            Labels::default(),
            metrics::Format::Prometheus,
        );
        return destination.write(&text);
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
    destination.write(&text)
}

fn round_to_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}
