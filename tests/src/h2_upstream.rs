//! An HTTP/2 upstream (cleartext, prior knowledge, as Envoy's h2 clusters
//! speak) that records each request as it arrived: the pseudo-headers, the
//! headers, the body with the number of DATA frames it came in, and the
//! trailers. It answers from the same [`Script`] as the HTTP/1.1 upstream.

use crate::error::KitError;
use crate::h2_client::{h2_accessors, h2_error, header_pairs};
use crate::recorder::Recorder;
use crate::upstream::Script;
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// One HTTP/2 request as the upstream saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct H2Received {
    pub method: String,
    pub scheme: String,
    pub authority: String,
    pub path: String,
    /// Regular headers in arrival order (HTTP/2 names are lower case).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// How many DATA frames carried the body (Envoy may re-frame it).
    pub data_frames: usize,
    pub trailers: Vec<(String, String)>,
}

h2_accessors!(H2Received);

/// A running HTTP/2 upstream; stops when dropped.
pub struct H2Upstream {
    addr: SocketAddr,
    log: Arc<Recorder<H2Received>>,
    _runtime: tokio::runtime::Runtime,
}

/// A multi-threaded runtime of one worker that serves a peer until dropped.
pub(crate) fn peer_runtime() -> Result<tokio::runtime::Runtime, KitError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(KitError::io("starting an async runtime"))
}

/// A loopback listener on a free port, for a peer on `runtime`.
pub(crate) fn bind(runtime: &tokio::runtime::Runtime) -> Result<(tokio::net::TcpListener, SocketAddr), KitError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(KitError::io("binding an upstream port"))?;
    listener.set_nonblocking(true).map_err(KitError::io("binding an upstream port"))?;
    let addr = listener.local_addr().map_err(KitError::io("reading the upstream address"))?;
    let _guard = runtime.enter();
    let listener = tokio::net::TcpListener::from_std(listener).map_err(KitError::io("binding an upstream port"))?;
    Ok((listener, addr))
}

impl H2Upstream {
    pub fn start(script: Script) -> Result<Self, KitError> {
        let runtime = peer_runtime()?;
        let (listener, addr) = bind(&runtime)?;
        let log = Arc::new(Recorder::default());
        let (log2, script) = (Arc::clone(&log), Arc::new(script));
        runtime.spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (log, script) = (Arc::clone(&log2), Arc::clone(&script));
                tokio::spawn(async move {
                    let Ok(mut connection) = h2::server::handshake(tcp).await else { return };
                    while let Some(Ok((request, respond))) = connection.accept().await {
                        let (log, script) = (Arc::clone(&log), Arc::clone(&script));
                        tokio::spawn(async move {
                            let _ = serve(request, respond, &log, &script).await;
                        });
                    }
                });
            }
        });
        Ok(Self { addr, log, _runtime: runtime })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Everything received so far, in arrival order.
    pub fn received(&self) -> Vec<H2Received> {
        self.log.all()
    }

    pub fn wait_for(&self, n: usize, timeout: Duration) -> Result<Vec<H2Received>, KitError> {
        self.log.wait_for(n, timeout, &format!("HTTP/2 upstream {}", self.addr))
    }
}

async fn serve(
    request: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    log: &Recorder<H2Received>,
    script: &Script,
) -> Result<(), KitError> {
    let (parts, mut body) = request.into_parts();
    let (mut data, mut data_frames) = (Vec::new(), 0);
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(h2_error("reading the request body"))?;
        let _ = body.flow_control().release_capacity(chunk.len());
        data_frames += usize::from(!chunk.is_empty());
        data.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await.map_err(h2_error("reading the request trailers"))?;
    let nth = log.push(H2Received {
        method: parts.method.to_string(),
        scheme: parts.uri.scheme_str().unwrap_or_default().to_string(),
        authority: parts.uri.authority().map(|a| a.to_string()).unwrap_or_default(),
        path: parts.uri.path_and_query().map(|p| p.to_string()).unwrap_or_default(),
        headers: header_pairs(&parts.headers),
        body: data,
        data_frames,
        trailers: trailers.as_ref().map(header_pairs).unwrap_or_default(),
    });
    let delay = script.delay_for(nth);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut response = http::Response::builder()
        .status(script.status_for(nth))
        .header("content-type", "text/plain")
        .header("x-upstream-identity", script.identity.as_str());
    for (k, v) in &script.extra_headers {
        response = response.header(k.as_str(), v.as_str());
    }
    let response = response.body(()).map_err(|e| KitError::Protocol(format!("building a response: {e}")))?;
    let mut stream = respond.send_response(response, script.body.is_empty()).map_err(h2_error("sending the response"))?;
    if !script.body.is_empty() {
        stream.send_data(Bytes::from(script.body.clone()), true).map_err(h2_error("sending the response body"))?;
    }
    Ok(())
}
