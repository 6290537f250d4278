//! A real gRPC service on loopback and a real gRPC client, both tonic's
//! (its codec, framing and status handling; the service on hyper's HTTP/2
//! server). The messages are hand-written prost types, so no `protoc` is
//! needed. The methods answer under any service name, so routing tests can
//! use several (`/shop.Cart/Unary`, `/shop.Orders/Unary`):
//! - `Unary`: the scripted status of the n-th call (OK, UNAVAILABLE, …); an
//!   OK reply names the server and the call's number;
//! - `Stream` (server streaming): `count` replies, then the script's ending
//!   status; with no reply to send, the status comes alone (trailers-only).
//!
//! Every answer carries `x-upstream-identity` and echoes each request
//! metadata entry as `echo-<name>`; the service records every call.

use crate::error::KitError;
use crate::h2_client::{block_on, header_pairs, protocol_error};
use crate::h2_upstream::{bind, peer_runtime};
use crate::recorder::Recorder;
use std::convert::Infallible;
use std::future::{ready, Ready};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tonic::metadata::MetadataMap;
use tonic::{Code, Status};

/// The request message of both methods.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Call {
    #[prost(string, tag = "1")]
    pub name: String,
    /// Replies a `Stream` call asks for.
    #[prost(uint32, tag = "2")]
    pub count: u32,
    #[prost(bytes = "vec", tag = "3")]
    pub payload: Vec<u8>,
    /// Who places the call: a nested message (for field-level redaction).
    #[prost(message, optional, tag = "4")]
    pub customer: Option<Customer>,
    /// Free-form attributes: a protobuf map.
    #[prost(btree_map = "string, string", tag = "5")]
    pub attributes: std::collections::BTreeMap<String, String>,
    /// A repeated string.
    #[prost(string, repeated, tag = "6")]
    pub notes: Vec<String>,
}

/// The customer in a [`Call`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct Customer {
    #[prost(string, tag = "1")]
    pub email: String,
    #[prost(string, tag = "2")]
    pub password: String,
    #[prost(string, tag = "3")]
    pub display_name: String,
    #[prost(int64, tag = "4")]
    pub customer_id: i64,
}

/// The reply message.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Reply {
    #[prost(string, tag = "1")]
    pub identity: String,
    #[prost(string, tag = "2")]
    pub name: String,
    /// The call's number at this server (from 0), or the reply's in a stream.
    #[prost(uint32, tag = "3")]
    pub seq: u32,
}

/// How the service answers.
#[derive(Debug, Clone)]
pub struct GrpcScript {
    /// Statuses of the first unary calls in order; the last one repeats.
    pub codes: Vec<Code>,
    /// How a `Stream` call ends after its replies.
    pub stream_end: Code,
    pub identity: String,
    /// More response metadata on every answer (e.g. `grpc-retry-pushback-ms`).
    pub metadata: Vec<(String, String)>,
}

impl GrpcScript {
    pub fn ok(identity: &str) -> Self {
        Self { codes: vec![Code::Ok], stream_end: Code::Ok, identity: identity.to_string(), metadata: Vec::new() }
    }

    /// Answers `code` to the first `n` unary calls, then OK.
    pub fn fail_then_ok(identity: &str, code: Code, n: usize) -> Self {
        let mut codes = vec![code; n];
        codes.push(Code::Ok);
        Self { codes, ..Self::ok(identity) }
    }

    pub fn stream_end(mut self, code: Code) -> Self {
        self.stream_end = code;
        self
    }

    pub fn with_metadata(mut self, name: &str, value: &str) -> Self {
        self.metadata.push((name.to_string(), value.to_string()));
        self
    }

    fn code_for(&self, nth: usize) -> Code {
        self.codes.get(nth).or(self.codes.last()).copied().unwrap_or(Code::Ok)
    }
}

/// One call as the service saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct GrpcReceived {
    /// `:path`, `/pkg.Service/Method`.
    pub path: String,
    /// The request headers tonic hands to a service (gRPC metadata and the
    /// rest: `content-type`, `te` and tonic's own are left out by tonic).
    pub metadata: Vec<(String, String)>,
    pub call: Call,
}

impl GrpcReceived {
    pub fn metadata(&self, name: &str) -> Option<&str> {
        crate::h2_client::find(&self.metadata, name)
    }
}

/// A running gRPC service; stops when dropped.
pub struct GrpcService {
    addr: SocketAddr,
    log: Arc<Recorder<GrpcReceived>>,
    _runtime: tokio::runtime::Runtime,
}

#[derive(Clone)]
struct Handler {
    script: Arc<GrpcScript>,
    log: Arc<Recorder<GrpcReceived>>,
}

impl GrpcService {
    pub fn start(script: GrpcScript) -> Result<Self, KitError> {
        let runtime = peer_runtime()?;
        let (listener, addr) = bind(&runtime)?;
        let log = Arc::new(Recorder::default());
        let handler = Handler { script: Arc::new(script), log: Arc::clone(&log) };
        runtime.spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let handler = handler.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| handler.clone().handle(request));
                    let _ = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Ok(Self { addr, log, _runtime: runtime })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every call so far, in arrival order.
    pub fn received(&self) -> Vec<GrpcReceived> {
        self.log.all()
    }

    pub fn wait_for(&self, n: usize, timeout: Duration) -> Result<Vec<GrpcReceived>, KitError> {
        self.log.wait_for(n, timeout, &format!("gRPC service {}", self.addr))
    }
}

impl Handler {
    async fn handle(self, request: http::Request<hyper::body::Incoming>) -> Result<http::Response<tonic::body::Body>, Infallible> {
        let path = request.uri().path().to_string();
        let response = match path.rsplit('/').next().unwrap_or_default() {
            "Unary" => tonic::server::Grpc::new(tonic_prost::ProstCodec::default()).unary(Unary(self, path), request).await,
            "Stream" => tonic::server::Grpc::new(tonic_prost::ProstCodec::default()).server_streaming(Stream(self, path), request).await,
            _ => Status::unimplemented(format!("no method {path}")).into_http(),
        };
        Ok(response)
    }

    /// Records the call; returns its number and the answer's metadata.
    fn record(&self, path: String, request: tonic::Request<Call>) -> (usize, Call, MetadataMap) {
        let metadata = header_pairs(&request.metadata().clone().into_headers());
        let mut answer = http::HeaderMap::new();
        let echoes = metadata.iter().map(|(k, v)| (format!("echo-{k}"), v.clone()));
        let extra = [("x-upstream-identity".to_string(), self.script.identity.clone())].into_iter().chain(self.script.metadata.iter().cloned());
        for (k, v) in echoes.chain(extra) {
            if let (Ok(k), Ok(v)) = (http::HeaderName::from_bytes(k.as_bytes()), http::HeaderValue::from_str(&v)) {
                answer.append(k, v);
            }
        }
        let call = request.into_inner();
        let nth = self.log.push(GrpcReceived { path, metadata, call: call.clone() });
        (nth, call, MetadataMap::from_headers(answer))
    }
}

fn seq(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

struct Unary(Handler, String);

impl tonic::server::UnaryService<Call> for Unary {
    type Response = Reply;
    type Future = Ready<Result<tonic::Response<Reply>, Status>>;

    fn call(&mut self, request: tonic::Request<Call>) -> Self::Future {
        let (nth, call, metadata) = self.0.record(self.1.clone(), request);
        let code = self.0.script.code_for(nth);
        if code != Code::Ok {
            return ready(Err(Status::with_metadata(code, format!("scripted {code:?} for call {nth}"), metadata)));
        }
        let mut response = tonic::Response::new(Reply { identity: self.0.script.identity.clone(), name: call.name, seq: seq(nth) });
        *response.metadata_mut() = metadata;
        ready(Ok(response))
    }
}

struct Stream(Handler, String);

type Replies = tokio_stream::Iter<std::vec::IntoIter<Result<Reply, Status>>>;

impl tonic::server::ServerStreamingService<Call> for Stream {
    type Response = Reply;
    type ResponseStream = Replies;
    type Future = Ready<Result<tonic::Response<Replies>, Status>>;

    fn call(&mut self, request: tonic::Request<Call>) -> Self::Future {
        let (_, call, metadata) = self.0.record(self.1.clone(), request);
        let end = self.0.script.stream_end;
        if call.count == 0 && end != Code::Ok {
            return ready(Err(Status::with_metadata(end, "scripted end before any reply", metadata)));
        }
        let identity = &self.0.script.identity;
        let mut replies: Vec<Result<Reply, Status>> =
            (0..call.count).map(|i| Ok(Reply { identity: identity.clone(), name: call.name.clone(), seq: i })).collect();
        if end != Code::Ok {
            replies.push(Err(Status::new(end, format!("scripted {end:?} after {} replies", call.count))));
        }
        let mut response = tonic::Response::new(tokio_stream::iter(replies));
        *response.metadata_mut() = metadata;
        ready(Ok(response))
    }
}

/// What a call got back: its status, the replies, and the response
/// metadata (headers, and trailers where the status came in them).
#[derive(Debug, Clone)]
pub struct GrpcAnswer {
    pub code: Code,
    pub message: String,
    pub replies: Vec<Reply>,
    pub metadata: Vec<(String, String)>,
}

impl GrpcAnswer {
    pub fn metadata(&self, name: &str) -> Option<&str> {
        crate::h2_client::find(&self.metadata, name)
    }

    fn failed(status: &Status, replies: Vec<Reply>, mut metadata: Vec<(String, String)>) -> Self {
        metadata.extend(header_pairs(&status.metadata().clone().into_headers()));
        Self { code: status.code(), message: status.message().to_string(), replies, metadata }
    }
}

/// A tonic client calling through `to` (h2c), as an application would.
pub struct GrpcClient {
    to: SocketAddr,
    metadata: Vec<(String, String)>,
}

impl GrpcClient {
    pub fn new(to: SocketAddr) -> Self {
        Self { to, metadata: Vec::new() }
    }

    /// Request metadata sent with every call.
    pub fn metadata(mut self, name: &str, value: &str) -> Self {
        self.metadata.push((name.to_string(), value.to_string()));
        self
    }

    async fn connect(&self) -> Result<tonic::client::Grpc<tonic::transport::Channel>, KitError> {
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{}", self.to)).map_err(protocol_error("gRPC endpoint"))?;
        let channel = endpoint.connect().await.map_err(protocol_error("connecting the gRPC client"))?;
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.map_err(protocol_error("gRPC channel"))?;
        Ok(grpc)
    }

    fn request(&self, call: Call) -> Result<tonic::Request<Call>, KitError> {
        let mut request = tonic::Request::new(call);
        for (k, v) in &self.metadata {
            let key = tonic::metadata::AsciiMetadataKey::from_bytes(k.as_bytes()).map_err(protocol_error("metadata name"))?;
            let value = v.parse().map_err(protocol_error("metadata value"))?;
            request.metadata_mut().append(key, value);
        }
        Ok(request)
    }

    fn path(path: &str) -> Result<http::uri::PathAndQuery, KitError> {
        path.parse().map_err(protocol_error("gRPC method path"))
    }

    /// A unary call to `path` (`/pkg.Service/Unary`).
    pub fn unary(&self, path: &str, call: Call) -> Result<GrpcAnswer, KitError> {
        block_on("a unary gRPC call", async {
            let mut grpc = self.connect().await?;
            let codec = tonic_prost::ProstCodec::<Call, Reply>::default();
            Ok(match grpc.unary(self.request(call)?, Self::path(path)?, codec).await {
                Ok(response) => GrpcAnswer {
                    code: Code::Ok,
                    message: String::new(),
                    metadata: header_pairs(&response.metadata().clone().into_headers()),
                    replies: vec![response.into_inner()],
                },
                Err(status) => GrpcAnswer::failed(&status, Vec::new(), Vec::new()),
            })
        })
    }

    /// A server-streaming call to `path` (`/pkg.Service/Stream`), read to its end.
    pub fn server_stream(&self, path: &str, call: Call) -> Result<GrpcAnswer, KitError> {
        block_on("a server-streaming gRPC call", async {
            let mut grpc = self.connect().await?;
            let codec = tonic_prost::ProstCodec::<Call, Reply>::default();
            let response = match grpc.server_streaming(self.request(call)?, Self::path(path)?, codec).await {
                Ok(response) => response,
                Err(status) => return Ok(GrpcAnswer::failed(&status, Vec::new(), Vec::new())),
            };
            let metadata = header_pairs(&response.metadata().clone().into_headers());
            let mut stream = response.into_inner();
            let mut replies = Vec::new();
            loop {
                match stream.message().await {
                    Ok(Some(reply)) => replies.push(reply),
                    Ok(None) => break,
                    Err(status) => return Ok(GrpcAnswer::failed(&status, replies, metadata)),
                }
            }
            let mut metadata = metadata;
            if let Ok(Some(trailers)) = stream.trailers().await {
                metadata.extend(header_pairs(&trailers.into_headers()));
            }
            Ok(GrpcAnswer { code: Code::Ok, message: String::new(), replies, metadata })
        })
    }
}

/// One gRPC message as it travels in DATA frames: a flag byte (0: not
/// compressed), the length (4 bytes, big-endian), the protobuf bytes.
pub fn length_prefixed(message: &impl prost::Message) -> Vec<u8> {
    let body = message.encode_to_vec();
    let mut out = Vec::with_capacity(5 + body.len());
    out.push(0);
    out.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// A unary gRPC call as raw HTTP/2, for tests that look at the wire
/// (`grpc-status` in headers or trailers) or need TLS with a client
/// certificate: the headers gRPC clients send and the call in one message.
pub fn grpc_request(path: &str, call: &Call) -> crate::h2_client::H2Request {
    crate::h2_client::H2Request::post(path, length_prefixed(call))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
}
