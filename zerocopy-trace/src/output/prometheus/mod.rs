//! The Prometheus exporter: metrics computed at each scrape from a fresh snapshot of the trace.
//! `http` serves the requests and hands each scrape to the trace's loop through a channel;
//! `Exporter` is the loop's `Output`: it asks for a snapshot when a scrape arrives and answers
//! with `metrics::exposition`.

mod http;
pub mod metrics;

use std::{
    net::{SocketAddr, TcpListener},
    time::Duration,
};

use anyhow::{Context, Result};
use tokio::{sync::mpsc, task::JoinHandle};

use self::{
    http::{Scrape, MAX_CONNECTIONS},
    metrics::{Format, Labels},
};
use super::{Control, Output};
use crate::{
    collect::{groups::Grouping, Retention},
    snapshot::Snapshot,
};

/// The trace loop's side of the exporter.
pub struct Exporter {
    /// Bound before attaching; served from `attached` on.
    listener: Option<TcpListener>,
    address: SocketAddr,
    scrapes: mpsc::Receiver<Scrape>,
    to_loop: Option<mpsc::Sender<Scrape>>,
    server: Option<JoinHandle<()>>,
    /// Scrapes that arrived together, answered from one snapshot.
    pending: Vec<Scrape>,
    labels: Labels,
    grouping: Grouping,
}

impl Exporter {
    /// An exporter that will serve on `listener` (see `bind`) once attached.
    pub fn new(listener: TcpListener, labels: Labels, grouping: Grouping) -> Result<Exporter> {
        let address = listener
            .local_addr()
            .context("reading the listening address")?;
        let (to_loop, scrapes) = mpsc::channel(MAX_CONNECTIONS);
        Ok(Exporter {
            listener: Some(listener),
            address,
            scrapes,
            to_loop: Some(to_loop),
            server: None,
            pending: Vec::new(),
            labels,
            grouping,
        })
    }
}

impl Output for Exporter {
    fn retention(&self) -> Retention {
        Retention {
            // Nothing shows exited processes one by one: fold each as it exits.
            keep_exited: 0,
            grouping: self.grouping,
        }
    }

    fn attached(&mut self) -> Result<()> {
        let (Some(listener), Some(to_loop)) = (self.listener.take(), self.to_loop.take()) else {
            return Ok(());
        };
        let listener = tokio::net::TcpListener::from_std(listener)
            .context("registering the listening socket")?;
        self.server = Some(tokio::spawn(http::serve(listener, to_loop)));
        eprintln!(
            "zerocopy-trace: serving metrics on http://{}/metrics",
            self.address
        );
        Ok(())
    }

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

    fn detaching(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// Binds the listening socket: before attaching, so a bad or busy address fails at once, and
/// before capabilities are dropped, so a port below 1024 works when the agent may bind it.
pub fn bind(addr: SocketAddr) -> Result<TcpListener> {
    let listener = TcpListener::bind(addr).with_context(|| {
        format!("cannot listen on {addr} (another exporter there? choose one with --listen)")
    })?;
    listener
        .set_nonblocking(true)
        .context("making the listening socket non-blocking")?;
    Ok(listener)
}
