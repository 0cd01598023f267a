//! `zerocopy-trace` (or `zerocopy-trace top`): the live dashboard; the report (until Ctrl-C)
//! when stdout is not a terminal to draw on.

use std::{
    io::{self, IsTerminal},
    process::ExitCode,
};

use anyhow::Result;

use super::report::emit;
use crate::{
    cli::{OutputArgs, ReportFormat, TopArgs},
    output::{dashboard::Dashboard, destination::Destination, report::AtEnd, Output},
    session::{self, driver::Stops},
};

/// Exited processes the report of `top` (without a terminal) lists one by one, as `report`'s
/// default `--max-rows`.
const REPORT_ROWS: u32 = 10_000;

pub fn run(args: TopArgs) -> Result<ExitCode> {
    let targets = args.filter.targets();
    let stops = Stops {
        watch_pids: targets.pids.clone(),
        ..Stops::default()
    };
    let options = super::checked_options(&args.trace)?;
    if !io::stdout().is_terminal() {
        eprintln!(
            "zerocopy-trace: stdout is not a terminal, so no dashboard: tracing until Ctrl-C, then printing the report"
        );
        let as_report = OutputArgs {
            json: false,
            format: ReportFormat::Table,
            output: None,
            max_rows: REPORT_ROWS,
            trace: args.trace,
        };
        let mut output = AtEnd::new(REPORT_ROWS as usize);
        let outcome = session::run(&targets, None, &options, stops, &mut output)?;
        emit(
            &outcome,
            &as_report,
            Destination::Stdout,
            output.retention().keep_exited,
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut dashboard = Dashboard::new(args.interval);
    session::run(&targets, None, &options, stops, &mut dashboard)?;
    Ok(ExitCode::SUCCESS)
}
