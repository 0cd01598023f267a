//! `zerocopy-trace exporter`: Prometheus metrics, computed at each scrape from a fresh
//! snapshot of the trace. `http` serves the requests and hands each scrape to the trace's loop
//! through a channel; `Exporter` is the loop's `Output`: it asks for a snapshot when a scrape
//! arrives and answers with `metrics::exposition`.

mod http;
pub mod metrics;

use std::{
    net::{SocketAddr, TcpListener},
    process::ExitCode,
    time::Duration,
};

use anyhow::{Context, Result};
use tokio::sync::mpsc;

use self::{
    http::{Scrape, MAX_CONNECTIONS},
    metrics::{Format, Labels},
};
use crate::{
    cli::{ExporterArgs, Label},
    collect::Snapshot,
    driver::{drive, Control, Output, Signals, Stops},
    trace::Trace,
};

/// The trace loop's side of the exporter.
pub struct Exporter {
    scrapes: mpsc::Receiver<Scrape>,
    /// Scrapes that arrived together, answered from one snapshot.
    pending: Vec<Scrape>,
    labels: Labels,
}

impl Output for Exporter {
    async fn input(&mut self) -> Result<Control> {
        match self.scrapes.recv().await {
            Some(scrape) => self.pending.push(scrape),
            // The server is gone: nothing will ask again.
            None => std::future::pending::<()>().await,
        }
        while let Ok(scrape) = self.scrapes.try_recv() {
            self.pending.push(scrape);
        }
        Ok(Control::Snapshot)
    }

    fn snapshot(&mut self, snapshot: Snapshot, _elapsed: Duration) -> Result<Control> {
        let mut texts: Vec<(Format, String)> = Vec::new();
        for scrape in std::mem::take(&mut self.pending) {
            let text = match texts.iter().find(|(format, _)| *format == scrape.format) {
                Some((_, text)) => text.clone(),
                None => {
                    let text = metrics::exposition(snapshot.clone(), self.labels, scrape.format);
                    texts.push((scrape.format, text.clone()));
                    text
                }
            };
            // A scraper that gave up meanwhile is no error.
            let _ = scrape.reply.send(text);
        }
        Ok(Control::Continue)
    }
}

/// Binds the listening socket: before attaching, so a bad or busy address fails at once, and
/// before capabilities are dropped, so a port below 1024 works when the agent may bind it.
fn bind(addr: SocketAddr) -> Result<TcpListener> {
    let listener = TcpListener::bind(addr).with_context(|| {
        format!("cannot listen on {addr} (another exporter there? choose one with --listen)")
    })?;
    listener
        .set_nonblocking(true)
        .context("making the listening socket non-blocking")?;
    Ok(listener)
}

/// Runs the exporter until a signal.
pub fn run(args: ExporterArgs, runtime: tokio::runtime::Runtime) -> Result<ExitCode> {
    let listener = bind(args.listen)?;
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
    let targets = args.filter.targets();
    let stops = Stops {
        watch_pids: targets.pids.clone(),
        ..Stops::default()
    };
    let options = args.options();
    runtime.block_on(async {
        let mut signals = Signals::install()?;
        let listener = tokio::net::TcpListener::from_std(listener)
            .context("registering the listening socket")?;
        let mut trace = Trace::start(&targets, None, &options)?;
        let (to_loop, scrapes) = mpsc::channel(MAX_CONNECTIONS);
        let server = tokio::spawn(http::serve(listener, to_loop));
        eprintln!(
            "zerocopy-trace: serving metrics on http://{}/metrics",
            args.listen
        );
        let mut exporter = Exporter {
            scrapes,
            pending: Vec::new(),
            labels,
        };
        let ended = drive(&mut trace, &mut signals, stops, &mut exporter).await;
        server.abort();
        trace.finish()?;
        ended.map(|_| ExitCode::SUCCESS)
    })
}
