//! A fake CRI runtime for names only: a gRPC server (HTTP/2 over a unix socket) that answers
//! `runtime.v1.RuntimeService/ListContainers` with the containers it is given, labelled as
//! kubelet labels them, and `UNIMPLEMENTED` to anything else. It counts nothing: the counts
//! always come from real processes. Its messages are declared here on their own (field
//! numbers as in cri-api's `api.proto`), so the agent's decoding is checked against them.

use std::{collections::HashMap, convert::Infallible, path::PathBuf};

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::{body::Frame, header::HeaderValue, service::service_fn, HeaderMap, Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;

#[derive(Clone, PartialEq, Message)]
struct ListContainersResponse {
    #[prost(message, repeated, tag = "1")]
    containers: Vec<CriContainer>,
}

#[derive(Clone, PartialEq, Message)]
struct CriContainer {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(string, tag = "2")]
    pod_sandbox_id: String,
    #[prost(message, optional, tag = "3")]
    metadata: Option<ContainerMetadata>,
    #[prost(message, optional, tag = "4")]
    image: Option<ImageSpec>,
    #[prost(int32, tag = "6")]
    state: i32,
    #[prost(map = "string, string", tag = "8")]
    labels: HashMap<String, String>,
}

#[derive(Clone, PartialEq, Message)]
struct ContainerMetadata {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(uint32, tag = "2")]
    attempt: u32,
}

#[derive(Clone, PartialEq, Message)]
struct ImageSpec {
    #[prost(string, tag = "1")]
    image: String,
}

/// A container as the fake runtime lists it.
#[derive(Clone, Debug)]
pub struct FakeContainer {
    pub id: String,
    pub name: String,
    pub pod: String,
    pub namespace: String,
    pub pod_uid: String,
    pub image: String,
}

/// The server, stopped when dropped.
pub struct FakeCri {
    pub socket: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeCri {
    pub fn start(socket: PathBuf, containers: Vec<FakeContainer>) -> FakeCri {
        let _ = std::fs::remove_file(&socket);
        let listener =
            std::os::unix::net::UnixListener::bind(&socket).expect("binding the fake CRI socket");
        listener.set_nonblocking(true).unwrap();
        let answer = Bytes::from(response(&containers));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::UnixListener::from_std(listener).unwrap();
                loop {
                    let stream = tokio::select! {
                        accepted = listener.accept() => match accepted {
                            Ok((stream, _)) => stream,
                            Err(_) => continue,
                        },
                        _ = &mut stopped => return,
                    };
                    let answer = answer.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                            let answer = answer.clone();
                            async move { Ok::<_, Infallible>(reply(request, answer).await) }
                        });
                        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        });
        FakeCri {
            socket,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `--names-from cri=<socket>`.
    pub fn names_from(&self) -> String {
        format!("cri={}", self.socket.display())
    }
}

impl Drop for FakeCri {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// The framed `ListContainersResponse` for `containers`.
fn response(containers: &[FakeContainer]) -> Vec<u8> {
    let message = ListContainersResponse {
        containers: containers
            .iter()
            .map(|c| CriContainer {
                id: c.id.clone(),
                pod_sandbox_id: format!("sandbox-of-{}", c.pod),
                metadata: Some(ContainerMetadata {
                    name: c.name.clone(),
                    attempt: 0,
                }),
                image: Some(ImageSpec {
                    image: c.image.clone(),
                }),
                state: 1,
                labels: HashMap::from([
                    ("io.kubernetes.container.name".to_string(), c.name.clone()),
                    ("io.kubernetes.pod.name".to_string(), c.pod.clone()),
                    (
                        "io.kubernetes.pod.namespace".to_string(),
                        c.namespace.clone(),
                    ),
                    ("io.kubernetes.pod.uid".to_string(), c.pod_uid.clone()),
                ]),
            })
            .collect(),
    }
    .encode_to_vec();
    let mut frame = vec![0];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(&message);
    frame
}

type Body =
    StreamBody<futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

async fn reply(request: Request<hyper::body::Incoming>, answer: Bytes) -> Response<Body> {
    let known = request.uri().path() == "/runtime.v1.RuntimeService/ListContainers";
    // Read the request through (the agent sends an empty message).
    let _ = request.into_body().collect().await;
    let mut trailers = HeaderMap::new();
    let status = if known { "0" } else { "12" };
    trailers.insert("grpc-status", HeaderValue::from_static(status));
    let mut frames = Vec::new();
    if known {
        frames.push(Ok(Frame::data(answer)));
    }
    frames.push(Ok(Frame::trailers(trailers)));
    Response::builder()
        .header("content-type", "application/grpc")
        .body(StreamBody::new(futures_util::stream::iter(frames)))
        .unwrap()
}

/// One unary gRPC call to a CRI socket, from the tests (the agent has its own client; this
/// one creates pods and containers, as kubelet would): `message` to `/runtime.v1.<method>`,
/// the answer's message bytes, or the failure as text.
pub fn call(socket: &std::path::Path, method: &str, message: Vec<u8>) -> Result<Bytes, String> {
    let socket = socket.to_path_buf();
    let method = format!("/runtime.v1.RuntimeService/{method}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let stream = tokio::net::UnixStream::connect(&socket)
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, connection) = hyper::client::conn::http2::handshake::<
            _,
            _,
            http_body_util::Full<Bytes>,
        >(TokioExecutor::new(), TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        let mut frame = vec![0];
        frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
        frame.extend_from_slice(&message);
        let request = Request::post(format!("http://localhost{method}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(http_body_util::Full::new(Bytes::from(frame)))
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let early = response
            .headers()
            .get("grpc-message")
            .map(|m| m.to_str().unwrap_or("").to_string());
        let early_status = response
            .headers()
            .get("grpc-status")
            .map(|s| s.to_str().unwrap_or("").to_string());
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        let trailers = body.trailers().cloned().unwrap_or_default();
        let status = early_status
            .or_else(|| {
                trailers
                    .get("grpc-status")
                    .map(|s| s.to_str().unwrap_or("").to_string())
            })
            .unwrap_or_default();
        if status != "0" {
            let message = early
                .or_else(|| {
                    trailers
                        .get("grpc-message")
                        .map(|m| m.to_str().unwrap_or("").to_string())
                })
                .unwrap_or_default();
            return Err(format!("{method}: gRPC status {status}: {message}"));
        }
        let bytes = body.to_bytes();
        Ok(bytes.slice(5.min(bytes.len())..))
    })
}
