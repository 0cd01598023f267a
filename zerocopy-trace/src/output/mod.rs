//! Where the model's values go: the report (`report`: a table or JSON, written where
//! `destination` says), the live dashboard (`dashboard`) and the Prometheus exporter
//! (`prometheus`). They only format: `wording` words findings and flows the same for all of
//! them, `human` writes bytes and counts for people. Each is an `Output` the session's loop
//! feeds.

pub mod dashboard;
pub mod destination;
pub mod human;
pub mod prometheus;
pub mod report;
pub mod wording;

use std::time::Duration;

use anyhow::Result;

use crate::{collect::Retention, snapshot::Snapshot};

/// What an output wants after handling its input or a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    Continue,
    /// A snapshot now, whatever the refresh cadence (a scrape arrived).
    Snapshot,
    Stop,
}

/// Where snapshots go while the trace runs.
pub trait Output {
    /// What the collector keeps of exited processes for this output: as many as it shows one
    /// by one, the rest folded into their groups.
    fn retention(&self) -> Retention;

    /// How often the output wants a snapshot while the trace runs (the first one comes one
    /// interval after attach); `None`: none, the final snapshot is all it needs.
    fn refresh(&self) -> Option<Duration> {
        None
    }

    /// Whether the regular snapshot due now is wanted (a paused dashboard says no).
    fn wants_snapshot(&self) -> bool {
        true
    }

    /// The programs are attached: an output that serves or draws starts now (inside the
    /// runtime), so an attach error is printed on a plain terminal.
    fn attached(&mut self) -> Result<()> {
        Ok(())
    }

    /// Waits for the output's own input (terminal keys, scrape requests). Outputs without any
    /// never return.
    async fn input(&mut self) -> Result<Control> {
        std::future::pending().await
    }

    /// A snapshot taken `elapsed` after attach.
    fn snapshot(&mut self, _snapshot: Snapshot, _elapsed: Duration) -> Result<Control> {
        Ok(Control::Continue)
    }

    /// The trace is about to detach: an output stops serving or gives the terminal back
    /// first, since detaching takes a moment.
    fn detaching(&mut self) {}
}
