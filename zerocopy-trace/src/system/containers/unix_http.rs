//! One request to a local API over its unix socket: an HTTP/1.1 GET (Docker's and Podman's
//! APIs) or a unary gRPC call over HTTP/2 (the CRI). Each opens its own connection and closes
//! it; the caller bounds the whole exchange with a timeout.

use std::path::Path;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, Limited};
use hyper::{header, Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::UnixStream;

/// gRPC's status for a service or method the server does not have.
const GRPC_UNIMPLEMENTED: u32 = 12;

/// Largest answer read (a node's container list is far smaller).
const MAX_BODY: usize = 32 << 20;

/// Why a request to a runtime's socket failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No such socket, or nobody listening: the runtime is not there.
    #[error("not there ({0})")]
    Absent(std::io::Error),
    /// The socket exists but may not be used by this process.
    #[error("permission denied (it needs the socket's owner or group)")]
    Denied,
    #[error("{0}")]
    Io(std::io::Error),
    #[error("HTTP: {0}")]
    Http(String),
    #[error("answered {0}")]
    Status(StatusCode),
    #[error("gRPC status {code}: {message}")]
    Grpc { code: u32, message: String },
    #[error("bad answer: {0}")]
    Decode(String),
    /// What the names helper said of a source it asked for the agent.
    #[error("{0}")]
    Relayed(String),
}

impl ApiError {
    /// Whether the runtime is simply not on this machine (said once, not warned about): no
    /// socket, nobody listening, or a containerd whose CRI service is off (Docker's own
    /// containerd answers UNIMPLEMENTED).
    pub fn is_absent(&self) -> bool {
        matches!(
            self,
            ApiError::Absent(_)
                | ApiError::Grpc {
                    code: GRPC_UNIMPLEMENTED,
                    ..
                }
        )
    }
}

async fn connect(socket: &Path) -> Result<TokioIo<UnixStream>, ApiError> {
    match UnixStream::connect(socket).await {
        Ok(stream) => Ok(TokioIo::new(stream)),
        Err(err) => Err(match err.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                ApiError::Absent(err)
            }
            std::io::ErrorKind::PermissionDenied => ApiError::Denied,
            _ => ApiError::Io(err),
        }),
    }
}

fn http(err: impl std::fmt::Display) -> ApiError {
    ApiError::Http(err.to_string())
}

/// `GET path` (with its query) over HTTP/1.1; the body of a 200 answer.
pub async fn get(socket: &Path, path: &str) -> Result<Bytes, ApiError> {
    let io = connect(socket).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(http)?;
    let request = Request::get(path)
        .header(header::HOST, "localhost")
        .header(header::ACCEPT, "application/json")
        .body(Empty::<Bytes>::new())
        .map_err(http)?;
    let exchange = async {
        let response = sender.send_request(request).await.map_err(http)?;
        if response.status() != StatusCode::OK {
            return Err(ApiError::Status(response.status()));
        }
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(http)?;
        Ok(body.to_bytes())
    };
    // The connection is driven beside the exchange and dropped (closed) with it.
    tokio::pin!(connection);
    tokio::select! {
        result = exchange => result,
        ended = &mut connection => Err(http(match ended {
            Ok(()) => "the connection closed before the answer".to_string(),
            Err(err) => err.to_string(),
        })),
    }
}

/// A unary gRPC call: `message` (protobuf bytes) to `/service/method`; the answer's message.
pub async fn grpc(socket: &Path, method: &str, message: &[u8]) -> Result<Bytes, ApiError> {
    let io = connect(socket).await?;
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake::<_, _, Full<Bytes>>(TokioExecutor::new(), io)
            .await
            .map_err(http)?;
    let request = Request::post(format!("http://localhost{method}"))
        .header(header::CONTENT_TYPE, "application/grpc")
        .header(header::TE, "trailers")
        .body(Full::new(Bytes::from(grpc_frame(message))))
        .map_err(http)?;
    let exchange = async {
        let response = sender.send_request(request).await.map_err(http)?;
        if response.status() != StatusCode::OK {
            return Err(ApiError::Status(response.status()));
        }
        // A failure may come as headers alone ("trailers-only"), else in the trailers.
        let early = grpc_status(response.headers());
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(http)?;
        let status = early.or_else(|| body.trailers().and_then(grpc_status));
        match status {
            Some((0, _)) => {}
            Some((code, message)) => return Err(ApiError::Grpc { code, message }),
            None => return Err(ApiError::Decode("no grpc-status".into())),
        }
        grpc_message(&body.to_bytes())
    };
    tokio::pin!(connection);
    tokio::select! {
        result = exchange => result,
        ended = &mut connection => Err(http(match ended {
            Ok(()) => "the connection closed before the answer".to_string(),
            Err(err) => err.to_string(),
        })),
    }
}

/// gRPC's framing of one message: a flag byte (0: not compressed), its length (4 bytes, big
/// endian), the message.
pub fn grpc_frame(message: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(5 + message.len());
    frame.push(0);
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(message);
    frame
}

/// The one message of a unary answer's body.
pub fn grpc_message(body: &[u8]) -> Result<Bytes, ApiError> {
    let header: [u8; 5] = body
        .get(..5)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| ApiError::Decode(format!("a {}-byte gRPC body", body.len())))?;
    if header[0] != 0 {
        return Err(ApiError::Decode("a compressed gRPC message".into()));
    }
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    body.get(5..5 + len)
        .map(Bytes::copy_from_slice)
        .ok_or_else(|| ApiError::Decode("a gRPC message cut short".into()))
}

/// `grpc-status` (and `grpc-message`) of a header map, when present.
fn grpc_status(headers: &hyper::HeaderMap) -> Option<(u32, String)> {
    let code = headers.get("grpc-status")?.to_str().ok()?.parse().ok()?;
    let message = headers
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .unwrap_or_default()
        .to_string();
    Some((code, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_frames_round_trip() {
        let frame = grpc_frame(b"abc");
        assert_eq!(frame, [0, 0, 0, 0, 3, b'a', b'b', b'c']);
        assert_eq!(&grpc_message(&frame).unwrap()[..], b"abc");
        assert_eq!(&grpc_message(&grpc_frame(b"")).unwrap()[..], b"");
        assert!(grpc_message(&frame[..6]).is_err(), "cut short");
        assert!(grpc_message(&[0, 0]).is_err());
        assert!(grpc_message(&[1, 0, 0, 0, 0]).is_err(), "compressed");
    }

    #[test]
    fn a_missing_socket_is_absent_not_an_error() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let err = runtime
            .block_on(get(Path::new("/nonexistent/zerocopy-trace.sock"), "/"))
            .unwrap_err();
        assert!(err.is_absent(), "{err}");
        let mut headers = hyper::HeaderMap::new();
        headers.insert("grpc-status", "5".parse().unwrap());
        headers.insert("grpc-message", "not found".parse().unwrap());
        assert_eq!(grpc_status(&headers), Some((5, "not found".into())));
        assert_eq!(grpc_status(&hyper::HeaderMap::new()), None);
        let off = ApiError::Grpc {
            code: GRPC_UNIMPLEMENTED,
            message: "unknown service runtime.v1.RuntimeService".into(),
        };
        assert!(
            off.is_absent(),
            "a containerd without its CRI plugin is no CRI runtime"
        );
        assert!(!ApiError::Denied.is_absent());
    }
}
