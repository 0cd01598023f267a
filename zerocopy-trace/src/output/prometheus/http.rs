//! The exporter's HTTP side, on the agent's one-threaded runtime: `GET /metrics` asks the
//! trace's loop for an exposition and waits for it; everything else is refused. Built to keep
//! answering scrapes while others abuse it:
//! - up to `Connections::capacity` connections at once (2048, fewer when the file descriptor
//!   limit is low); when all are taken, the one that has waited longest for a request gives way
//!   to the newcomer (`connections`), so idle and slow clients cannot keep a scraper out;
//! - a TLS handshake within 5 s, request headers within 5 s (also the most a kept-alive
//!   connection may idle), request heads of at most 16 KiB, a connection lives 5 minutes;
//! - every connection or request turned away is counted by reason, exported as
//!   `zerocopy_exporter_rejected_total`, and logged at most once per reason every 10 s
//!   (`rejections`);
//! - TLS, Basic auth and the rest of the web configuration (`web_config`, `auth`).

use std::{
    convert::Infallible,
    future::Future,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use http_body_util::Full;
use hyper::{
    body::{Bytes, Incoming},
    header::{self, HeaderName, HeaderValue},
    server::conn::http1,
    service::service_fn,
    Method, Request, Response, StatusCode,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::{mpsc, oneshot},
};
use tokio_rustls::TlsAcceptor;

use super::{
    auth::{BasicAuth, Verdict},
    connections::{Admission, Connections, Slot},
    metrics::Format,
    rejections::{Reason, Rejections},
    token_bucket::TokenBucket,
    web_config::WebConfig,
};

/// Connections served at once, at most (see `connection_capacity`).
pub const MAX_CONNECTIONS: usize = 2048;
/// A TLS handshake must be done within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// A client must send its request headers within this; it is also how long a kept-alive
/// connection may wait for its next request (hyper runs the same timer).
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection (keep-alive included) is closed after this; the scraper reconnects.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(300);
/// How long a scrape waits for the loop's answer.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);
/// The most a request head may take (hyper's default lets one grow to about 400 KiB).
const MAX_HEAD_BYTES: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;
/// How often due log summaries are written.
const FLUSH_EVERY: Duration = Duration::from_secs(2);

/// A scrape waiting for its exposition.
pub struct Scrape {
    pub format: Format,
    pub reply: oneshot::Sender<String>,
}

/// What every connection shares; the exporter reads its counts for its own metrics.
pub struct Server {
    pub connections: Connections,
    pub rejections: Rejections,
    tls: Option<TlsAcceptor>,
    auth: Option<Arc<BasicAuth>>,
    headers: Vec<(HeaderName, HeaderValue)>,
    rate_limit: Option<Mutex<TokenBucket>>,
    scrapes: mpsc::Sender<Scrape>,
}

impl Server {
    pub fn new(
        web: WebConfig,
        capacity: usize,
        scrapes: mpsc::Sender<Scrape>,
    ) -> anyhow::Result<Server> {
        let auth = if web.users.is_empty() {
            None
        } else {
            Some(Arc::new(BasicAuth::new(web.users)?))
        };
        Ok(Server {
            connections: Connections::new(capacity),
            rejections: Rejections::default(),
            tls: web.tls.map(TlsAcceptor::from),
            auth,
            headers: web.headers,
            rate_limit: web
                .rate_limit
                .map(|(interval, burst)| Mutex::new(TokenBucket::new(interval, burst))),
            scrapes,
        })
    }

    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }
}

/// The connections a file descriptor limit of `open_files` leaves room for: the agent's own
/// descriptors (its programs, maps and links: a few hundred) come first.
pub fn connection_capacity(open_files: u64) -> usize {
    const RESERVED: u64 = 512;
    open_files
        .saturating_sub(RESERVED)
        .clamp(16, MAX_CONNECTIONS as u64) as usize
}

/// Accepts connections on `listener` until the task is aborted.
pub async fn serve(listener: TcpListener, server: Arc<Server>) {
    let mut flush = tokio::time::interval(FLUSH_EVERY);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = flush.tick() => {
                server.rejections.flush();
                continue;
            }
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, say: wait a little instead of spinning.
                server.rejections.count(Reason::Accept, Some(&e));
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let (slot, closed) = match server.connections.admit() {
            Admission::Refused => {
                server.rejections.count(Reason::Busy, None);
                continue;
            }
            Admission::Admitted {
                slot,
                closed,
                made_room,
            } => {
                if made_room {
                    server.rejections.count(Reason::Evicted, None);
                }
                (slot, closed)
            }
        };
        tokio::spawn(connection(stream, peer.ip(), slot, closed, server.clone()));
    }
}

/// One connection, from its TLS handshake to its close: whichever comes first of its end,
/// its giving way to a newcomer (`closed`) and its lifetime.
async fn connection(
    stream: TcpStream,
    peer: IpAddr,
    slot: Slot,
    closed: oneshot::Receiver<()>,
    server: Arc<Server>,
) {
    // A scrape's answer goes out without waiting for more to fill a packet.
    let _ = stream.set_nodelay(true);
    let slot = Arc::new(slot);
    let served = serve_connection(stream, peer, slot.clone(), server.clone());
    tokio::pin!(served);
    let mut first = true;
    let served = std::future::poll_fn(|cx| {
        let poll = served.as_mut().poll(cx);
        if std::mem::take(&mut first) {
            // Whatever was already in the socket has been read: from now on it may give way.
            slot.polled();
        }
        poll
    });
    tokio::select! {
        biased;
        () = served => {}
        _ = closed => {}
        () = tokio::time::sleep(CONNECTION_LIFETIME) => {
            server.rejections.count(Reason::Lifetime, None);
        }
    }
}

async fn serve_connection(stream: TcpStream, peer: IpAddr, slot: Arc<Slot>, server: Arc<Server>) {
    let Some(acceptor) = &server.tls else {
        return http(stream, peer, slot, server.clone()).await;
    };
    let handshake = async {
        if !starts_a_tls_handshake(&stream).await {
            // Plain HTTP on the TLS port: say so, as Go's servers do, rather than a TLS alert
            // the client would show as garbage.
            let mut stream = stream;
            // The request is read first (what fits in one read), else closing with it unread
            // would reset the connection under the answer.
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request).await;
            let _ = stream.write_all(PLAIN_HTTP_ANSWER).await;
            let _ = stream.shutdown().await;
            return Err(std::io::Error::other(PlainHttp));
        }
        acceptor.accept(stream).await
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Err(_) => server.rejections.count(Reason::TlsTimeout, None),
        Ok(Err(e)) => server.rejections.count(Reason::TlsHandshake, Some(&e)),
        Ok(Ok(tls)) => http(tls, peer, slot, server.clone()).await,
    }
}

/// The answer to a plain HTTP request on the TLS port.
const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; \
    charset=utf-8\r\nConnection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

/// A client that spoke plain HTTP to the TLS port.
#[derive(Debug)]
struct PlainHttp;

impl std::fmt::Display for PlainHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("plain HTTP on the TLS port")
    }
}

impl std::error::Error for PlainHttp {}

/// Whether the first byte the client sent opens a TLS handshake record (22); false when it
/// sent something else or closed.
async fn starts_a_tls_handshake(stream: &TcpStream) -> bool {
    let mut first = [0u8; 1];
    matches!(stream.peek(&mut first).await, Ok(1) if first[0] == 22)
}

async fn http<IO>(io: IO, peer: IpAddr, slot: Arc<Slot>, server: Arc<Server>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = {
        let server = server.clone();
        service_fn(move |request| {
            // Called as soon as the request head is read: from here until the answer is out,
            // the connection does not give way.
            slot.busy();
            let slot = slot.clone();
            let server = server.clone();
            async move {
                let response = answer(request, peer, &server).await;
                slot.waiting();
                Ok::<_, Infallible>(response)
            }
        })
    };
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS);
    if let Err(e) = builder.serve_connection(TokioIo::new(io), service).await {
        if e.is_timeout() {
            server.rejections.count(Reason::HeaderTimeout, None);
        } else {
            log::debug!("exporter: connection from {peer}: {e}");
        }
    }
}

async fn answer(
    request: Request<Incoming>,
    peer: IpAddr,
    server: &Server,
) -> Response<Full<Bytes>> {
    let mut response = route(request, peer, server).await;
    for (name, value) in &server.headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

async fn route(request: Request<Incoming>, peer: IpAddr, server: &Server) -> Response<Full<Bytes>> {
    if let Some(limit) = &server.rate_limit {
        let allowed = limit
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if !allowed {
            server.rejections.count(Reason::RateLimited, None);
            return too_many_requests();
        }
    }
    if let Some(auth) = &server.auth {
        let credentials = request
            .headers()
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes);
        match auth.check(credentials, peer).await {
            Verdict::Allowed => {}
            Verdict::Unauthorized => {
                server.rejections.count(Reason::Unauthorized, None);
                let mut response = plain(StatusCode::UNAUTHORIZED, "Unauthorized\n");
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
                return response;
            }
            Verdict::Throttled => {
                server.rejections.count(Reason::AuthThrottled, None);
                return too_many_requests();
            }
        }
    }
    if request.method() != Method::GET {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET"));
        return response;
    }
    match request.uri().path() {
        "/metrics" => {
            let accept = request
                .headers()
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            metrics(Format::from_accept(accept), &server.scrapes).await
        }
        "/" => plain(
            StatusCode::OK,
            "zerocopy-trace exporter: the metrics are at /metrics\n",
        ),
        _ => plain(
            StatusCode::NOT_FOUND,
            "not found: the metrics are at /metrics\n",
        ),
    }
}

async fn metrics(format: Format, scrapes: &mpsc::Sender<Scrape>) -> Response<Full<Bytes>> {
    let (reply, answer) = oneshot::channel();
    if scrapes.send(Scrape { format, reply }).await.is_err() {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "the trace has ended\n");
    }
    match tokio::time::timeout(SCRAPE_TIMEOUT, answer).await {
        Ok(Ok(text)) => {
            let mut response = Response::new(Full::new(Bytes::from(text)));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            );
            response
        }
        _ => plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "no snapshot in time; try again\n",
        ),
    }
}

fn too_many_requests() -> Response<Full<Bytes>> {
    let mut response = plain(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests\n");
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_descriptor_limit_bounds_the_connections() {
        assert_eq!(connection_capacity(1024), 512);
        assert_eq!(connection_capacity(65536), MAX_CONNECTIONS);
        assert_eq!(connection_capacity(100), 16);
    }
}
