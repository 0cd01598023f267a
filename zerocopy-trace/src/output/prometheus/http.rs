//! The exporter's HTTP side, on the agent's one-threaded runtime: `GET /metrics` asks the
//! trace's loop for an exposition and waits for it; everything else is refused. Few
//! connections at once, a deadline on reading headers and on each connection, so a slow or
//! hostile client cannot hold the agent.

use std::{convert::Infallible, sync::Arc, time::Duration};

use http_body_util::Full;
use hyper::{
    body::{Bytes, Incoming},
    header,
    server::conn::http1,
    service::service_fn,
    Method, Request, Response, StatusCode,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    net::TcpListener,
    sync::{mpsc, oneshot, Semaphore},
};

use super::metrics::Format;

/// Connections served at once; more are closed as soon as they are accepted.
pub const MAX_CONNECTIONS: usize = 16;
/// A client must send its request headers within this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection (keep-alive included) is closed after this; the scraper reconnects.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(300);
/// How long a scrape waits for the loop's answer.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);

/// A scrape waiting for its exposition.
pub struct Scrape {
    pub format: Format,
    pub reply: oneshot::Sender<String>,
}

/// Accepts connections on `listener` until the task is aborted.
pub async fn serve(listener: TcpListener, scrapes: mpsc::Sender<Scrape>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of fds, say: wait a little instead of spinning.
                log::warn!("accepting a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            log::warn!("{MAX_CONNECTIONS} connections already open: closing a new one");
            continue;
        };
        let scrapes = scrapes.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| answer(request, scrapes.clone()));
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            if let Ok(Err(e)) = tokio::time::timeout(CONNECTION_LIFETIME, connection).await {
                log::debug!("connection ended: {e}");
            }
            drop(slot);
        });
    }
}

async fn answer(
    request: Request<Incoming>,
    scrapes: mpsc::Sender<Scrape>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.method() != Method::GET {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET"));
        return Ok(response);
    }
    Ok(match request.uri().path() {
        "/metrics" => {
            let accept = request
                .headers()
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            metrics(Format::from_accept(accept), &scrapes).await
        }
        "/" => plain(
            StatusCode::OK,
            "zerocopy-trace exporter: the metrics are at /metrics\n",
        ),
        _ => plain(
            StatusCode::NOT_FOUND,
            "not found: the metrics are at /metrics\n",
        ),
    })
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
                header::HeaderValue::from_static(format.content_type()),
            );
            response
        }
        _ => plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "no snapshot in time; try again\n",
        ),
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
