//! Connections and requests the exporter closed or refused, counted by reason for its own
//! metrics, and logged without flooding the log: a reason's first event is logged at once,
//! later ones in one summary line per reason at most every `WINDOW` ("N more in the last
//! 10 s"), however many arrive.

use std::{
    fmt,
    sync::Mutex,
    time::{Duration, Instant},
};

/// At most one line per reason per window.
pub const WINDOW: Duration = Duration::from_secs(10);

/// Why a connection or a request was turned away. The order is the metric's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Every place was inside a request: the new connection was closed at once.
    Busy,
    /// The connection that had waited longest for a request was closed to make room.
    Evicted,
    /// No complete request headers (or no next request on a kept-alive connection) in time.
    HeaderTimeout,
    /// The TLS handshake failed (no or a bad client certificate, plain HTTP on the TLS port).
    TlsHandshake,
    /// The TLS handshake was not done in time.
    TlsTimeout,
    /// The connection reached its lifetime.
    Lifetime,
    /// accept() failed (out of file descriptors, say).
    Accept,
    /// Wrong or missing credentials (401).
    Unauthorized,
    /// Too many password checks from one client address, or queued at once (429).
    AuthThrottled,
    /// The web configuration's `rate_limit` (429).
    RateLimited,
}

impl Reason {
    pub const ALL: [Reason; 10] = [
        Reason::Busy,
        Reason::Evicted,
        Reason::HeaderTimeout,
        Reason::TlsHandshake,
        Reason::TlsTimeout,
        Reason::Lifetime,
        Reason::Accept,
        Reason::Unauthorized,
        Reason::AuthThrottled,
        Reason::RateLimited,
    ];

    /// The metric's `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            Reason::Busy => "busy",
            Reason::Evicted => "evicted_idle",
            Reason::HeaderTimeout => "header_timeout",
            Reason::TlsHandshake => "tls_handshake_error",
            Reason::TlsTimeout => "tls_handshake_timeout",
            Reason::Lifetime => "lifetime",
            Reason::Accept => "accept_error",
            Reason::Unauthorized => "unauthorized",
            Reason::AuthThrottled => "auth_throttled",
            Reason::RateLimited => "rate_limited",
        }
    }

    /// What happened, for the log line.
    fn what(self) -> &'static str {
        match self {
            Reason::Busy => {
                "new connections closed at once, every connection being inside a request"
            }
            Reason::Evicted => "idle connections closed to make room for new ones",
            Reason::HeaderTimeout => "connections closed without a complete request in time",
            Reason::TlsHandshake => "TLS handshakes failed",
            Reason::TlsTimeout => "connections closed without a TLS handshake in time",
            Reason::Lifetime => "connections closed at the end of their lifetime",
            Reason::Accept => "connections not accepted",
            Reason::Unauthorized => "requests refused (401), wrong or missing credentials",
            Reason::AuthThrottled => "requests refused (429), too many password checks",
            Reason::RateLimited => {
                "requests refused (429) by the rate_limit of the web configuration"
            }
        }
    }

    fn index(self) -> usize {
        Reason::ALL
            .iter()
            .position(|&r| r == self)
            .unwrap_or_default()
    }
}

#[derive(Clone, Default)]
struct Tally {
    total: u64,
    /// Counted since the last line.
    unlogged: u64,
    last_line: Option<Instant>,
    /// The last error text seen, for the next line.
    detail: Option<String>,
}

/// The counts, and the log's pace.
#[derive(Default)]
pub struct Rejections {
    tallies: Mutex<[Tally; Reason::ALL.len()]>,
}

impl Rejections {
    /// Counts one; logs it if its reason logged nothing within the window.
    pub fn count(&self, reason: Reason, detail: Option<&dyn fmt::Display>) {
        let now = Instant::now();
        let mut tallies = self.lock();
        let tally = &mut tallies[reason.index()];
        tally.total += 1;
        tally.unlogged += 1;
        if let Some(detail) = detail {
            tally.detail = Some(detail.to_string());
        }
        if tally
            .last_line
            .is_none_or(|last| now.duration_since(last) >= WINDOW)
        {
            log_line(reason, tally, now);
        }
    }

    /// Logs the summaries that are due: call every few seconds, so the last events of a burst
    /// are said even when nothing follows them.
    pub fn flush(&self) {
        let now = Instant::now();
        let mut tallies = self.lock();
        for (reason, tally) in Reason::ALL.iter().zip(tallies.iter_mut()) {
            if tally.unlogged > 0
                && tally
                    .last_line
                    .is_none_or(|last| now.duration_since(last) >= WINDOW)
            {
                log_line(*reason, tally, now);
            }
        }
    }

    /// Logs what is left unsaid, whatever the window (the exporter is stopping).
    pub fn flush_all(&self) {
        let now = Instant::now();
        let mut tallies = self.lock();
        for (reason, tally) in Reason::ALL.iter().zip(tallies.iter_mut()) {
            if tally.unlogged > 0 {
                log_line(*reason, tally, now);
            }
        }
    }

    /// Every reason's count since start.
    pub fn totals(&self) -> Vec<(&'static str, u64)> {
        let tallies = self.lock();
        Reason::ALL
            .iter()
            .zip(tallies.iter())
            .map(|(reason, tally)| (reason.label(), tally.total))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, [Tally; Reason::ALL.len()]> {
        self.tallies
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn log_line(reason: Reason, tally: &mut Tally, now: Instant) {
    log::warn!("{}", line(reason, tally, now));
    tally.unlogged = 0;
    tally.last_line = Some(now);
    tally.detail = None;
}

fn line(reason: Reason, tally: &Tally, now: Instant) -> String {
    let detail = tally
        .detail
        .as_ref()
        .map(|d| format!(" (the last: {d})"))
        .unwrap_or_default();
    let count = match tally.last_line {
        None => format!(
            "{} so far; from now on summed up at most every {} s",
            tally.unlogged,
            WINDOW.as_secs()
        ),
        Some(last) => format!(
            "{} in the last {:.0} s, {} since start",
            tally.unlogged,
            now.duration_since(last).as_secs_f64().ceil().max(1.0),
            tally.total
        ),
    };
    format!(
        "exporter: {}: {count}{detail} [{}]",
        reason.what(),
        reason.label()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_everything_and_logs_once_per_window() {
        let rejections = Rejections::default();
        for _ in 0..1000 {
            rejections.count(Reason::Busy, None);
        }
        rejections.count(Reason::TlsHandshake, Some(&"peer sent no certificates"));
        let totals = rejections.totals();
        assert_eq!(totals[Reason::Busy.index()], ("busy", 1000));
        assert_eq!(
            totals[Reason::TlsHandshake.index()],
            ("tls_handshake_error", 1)
        );
        assert_eq!(totals.len(), Reason::ALL.len());
        let tallies = rejections.lock();
        // The first was logged, the 999 others wait for the window's summary.
        assert_eq!(tallies[Reason::Busy.index()].unlogged, 999);
        assert_eq!(tallies[Reason::TlsHandshake.index()].unlogged, 0);
    }

    #[test]
    fn a_summary_says_how_many_and_since_when() {
        let start = Instant::now();
        let tally = Tally {
            total: 6097,
            unlogged: 2032,
            last_line: Some(start),
            detail: Some("peer sent no certificates".into()),
        };
        assert_eq!(
            line(Reason::TlsHandshake, &tally, start + WINDOW),
            "exporter: TLS handshakes failed: 2032 in the last 10 s, 6097 since start (the \
             last: peer sent no certificates) [tls_handshake_error]"
        );
        let first = Tally {
            total: 1,
            unlogged: 1,
            ..Tally::default()
        };
        assert_eq!(
            line(Reason::HeaderTimeout, &first, start),
            "exporter: connections closed without a complete request in time: 1 so far; from \
             now on summed up at most every 10 s [header_timeout]"
        );
    }

    #[test]
    fn labels_are_distinct() {
        let mut labels: Vec<&str> = Reason::ALL.iter().map(|r| r.label()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), Reason::ALL.len());
    }
}
