//! The Prometheus exporter: metrics computed at each scrape from a fresh snapshot of the trace.
//! `http` serves the requests (`connections`, `rejections`: holding up under abuse;
//! `web_config`, `auth`, `token_bucket`: `--web.config.file`'s TLS, Basic auth and rate limit)
//! and hands each scrape to the trace's loop through a channel; `Exporter` is the loop's
//! `Output`: it asks for a snapshot when a scrape arrives and answers with
//! `metrics::exposition`.

mod auth;
mod connections;
mod http;
pub mod metrics;
mod rejections;
mod token_bucket;
pub mod web_config;

use std::{
    net::{SocketAddr, TcpListener},
    os::fd::AsRawFd,
    sync::Arc,
    time::Duration,
};

use anyhow::{Context, Result};
use tokio::{sync::mpsc, task::JoinHandle};

use self::{
    http::{Scrape, Server},
    metrics::{Format, Labels, ServerStats},
    web_config::WebConfig,
};
use super::{Control, Output};
use crate::{
    collect::{groups::Grouping, Retention},
    snapshot::Snapshot,
};

/// Connections waiting to be accepted, at most: a flood of connections fills std's default
/// (128) while the one thread is busy, and the kernel then drops new ones (a scraper's among
/// them) until its retry a second later. Linux caps it at `net.core.somaxconn` (4096).
const LISTEN_BACKLOG: libc::c_int = 4096;

/// The trace loop's side of the exporter.
pub struct Exporter {
    /// Bound before attaching; served from `attached` on.
    listener: Option<TcpListener>,
    address: SocketAddr,
    scrapes: mpsc::Receiver<Scrape>,
    server: Arc<Server>,
    serving: Option<JoinHandle<()>>,
    /// Scrapes that arrived together, answered from one snapshot.
    pending: Vec<Scrape>,
    labels: Labels,
    grouping: Grouping,
}

impl Exporter {
    /// An exporter that will serve on `listener` (see `bind`) once attached, as `web` says,
    /// with at most the connections `open_files` descriptors leave room for.
    pub fn new(
        listener: TcpListener,
        web: WebConfig,
        open_files: u64,
        labels: Labels,
        grouping: Grouping,
    ) -> Result<Exporter> {
        let address = listener
            .local_addr()
            .context("reading the listening address")?;
        let capacity = http::connection_capacity(open_files);
        let (to_loop, scrapes) = mpsc::channel(capacity);
        Ok(Exporter {
            listener: Some(listener),
            address,
            scrapes,
            server: Arc::new(Server::new(web, capacity, to_loop)?),
            serving: None,
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
        let Some(listener) = self.listener.take() else {
            return Ok(());
        };
        let listener = tokio::net::TcpListener::from_std(listener)
            .context("registering the listening socket")?;
        self.serving = Some(tokio::spawn(http::serve(listener, self.server.clone())));
        eprintln!(
            "zerocopy-trace: serving metrics on {}://{}/metrics",
            self.server.scheme(),
            self.address
        );
        log::info!(
            "exporter: at most {} connections at once",
            self.server.connections.capacity()
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
        let stats = ServerStats {
            rejected: self.server.rejections.totals(),
            connections: self.server.connections.open() as u64,
            max_connections: self.server.connections.capacity() as u64,
        };
        let mut texts: Vec<(Format, String)> = Vec::new();
        for scrape in std::mem::take(&mut self.pending) {
            let text = match texts.iter().find(|(format, _)| *format == scrape.format) {
                Some((_, text)) => text.clone(),
                None => {
                    let text = metrics::exposition_with_server(
                        snapshot.clone(),
                        self.labels,
                        scrape.format,
                        &stats,
                    );
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
        if let Some(serving) = self.serving.take() {
            serving.abort();
        }
        // What the last window counted, said before the agent exits.
        self.server.rejections.flush_all();
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
    // Listening again on a listening socket only changes its backlog.
    // SAFETY: listen(2) on a socket this function owns.
    if unsafe { libc::listen(listener.as_raw_fd(), LISTEN_BACKLOG) } != 0 {
        return Err(std::io::Error::last_os_error()).context("setting the listen backlog");
    }
    Ok(listener)
}
