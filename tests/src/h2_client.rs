//! An HTTP/2 client for test traffic: h2c with prior knowledge, or h2 over
//! TLS negotiated by ALPN, presenting a client certificate or none. The body
//! goes out in as many DATA frames as the test gives, without
//! `content-length` unless a header sets it, optionally followed by
//! trailers; the answer comes back whole, trailers included. Built on the
//! `h2` crate, so the frames are real HTTP/2 and nothing is hand-framed.

use crate::error::KitError;
use crate::tls::{Credential, Pki};
use bytes::Bytes;
use http::HeaderMap;
use rustls::pki_types::ServerName;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

const TIMEOUT: Duration = Duration::from_secs(15);

pub(crate) fn h2_error(what: &str) -> impl FnOnce(h2::Error) -> KitError + '_ {
    move |e| KitError::Protocol(format!("{what}: {e}"))
}

pub(crate) fn protocol_error<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> KitError + '_ {
    move |e| KitError::Protocol(format!("{what}: {e}"))
}

/// Runs one exchange to completion on a runtime of its own, within the
/// kit's deadline; the kit's callers stay blocking.
pub(crate) fn block_on<T>(what: &str, work: impl Future<Output = Result<T, KitError>>) -> Result<T, KitError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(KitError::io("starting an async runtime"))?;
    runtime.block_on(async {
        tokio::time::timeout(TIMEOUT, work)
            .await
            .map_err(|_| KitError::Timeout { what: format!("{what} within {TIMEOUT:?}"), log: String::new() })?
    })
}

/// Header names (lower case, as HTTP/2 carries them) and values, in order.
pub(crate) fn header_pairs(map: &HeaderMap) -> Vec<(String, String)> {
    map.iter().map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect()
}

pub(crate) fn find<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

fn header_map(pairs: &[(String, String)]) -> Result<HeaderMap, KitError> {
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        let name = http::HeaderName::from_bytes(k.as_bytes()).map_err(protocol_error("header name"))?;
        let value = http::HeaderValue::from_str(v).map_err(protocol_error("header value"))?;
        map.append(name, value);
    }
    Ok(map)
}

/// A request to send over HTTP/2.
#[derive(Debug, Clone)]
pub struct H2Request {
    pub method: String,
    /// `:authority`.
    pub authority: String,
    /// `:path`, sent as given.
    pub path: String,
    pub headers: Vec<(String, String)>,
    /// One DATA frame each; none: the request ends with its headers.
    pub frames: Vec<Vec<u8>>,
    /// Sent after the body; none: the last DATA frame ends the stream.
    pub trailers: Vec<(String, String)>,
}

impl H2Request {
    pub fn new(method: &str, path: &str) -> Self {
        Self {
            method: method.to_string(),
            authority: "localhost".to_string(),
            path: path.to_string(),
            headers: Vec::new(),
            frames: Vec::new(),
            trailers: Vec::new(),
        }
    }

    pub fn get(path: &str) -> Self {
        Self::new("GET", path)
    }

    /// A POST whose body is one DATA frame.
    pub fn post(path: &str, body: impl Into<Vec<u8>>) -> Self {
        Self { frames: vec![body.into()], ..Self::new("POST", path) }
    }

    pub fn authority(mut self, authority: &str) -> Self {
        self.authority = authority.to_string();
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// The body in `frames`, one DATA frame each.
    pub fn frames(mut self, frames: Vec<Vec<u8>>) -> Self {
        self.frames = frames;
        self
    }

    pub fn trailer(mut self, name: &str, value: &str) -> Self {
        self.trailers.push((name.to_string(), value.to_string()));
        self
    }

    /// Over cleartext HTTP/2 with prior knowledge (h2c), as sidecars speak.
    pub fn send(&self, to: SocketAddr) -> Result<H2Response, KitError> {
        block_on("an HTTP/2 exchange", async {
            let tcp = tokio::net::TcpStream::connect(to).await.map_err(KitError::io("connecting to the listener"))?;
            self.exchange(tcp, "http").await
        })
    }

    /// Over TLS to a listener whose certificate `pki` issued, offering only
    /// `h2` by ALPN (an error unless the listener chooses it), presenting
    /// `client`'s certificate (or none).
    pub fn send_tls(&self, to: SocketAddr, pki: &Pki, client: Option<&Credential>) -> Result<H2Response, KitError> {
        let mut config = pki.client_config(client)?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let name = ServerName::try_from("localhost").map_err(protocol_error("server name"))?;
        block_on("an HTTP/2 exchange over TLS", async {
            let tcp = tokio::net::TcpStream::connect(to).await.map_err(KitError::io("connecting to the listener"))?;
            let tls = connector.connect(name, tcp).await.map_err(KitError::io("TLS handshake"))?;
            let alpn = tls.get_ref().1.alpn_protocol().map(|p| String::from_utf8_lossy(p).into_owned());
            if alpn.as_deref() != Some("h2") {
                return Err(KitError::Protocol(format!("the listener did not choose h2 by ALPN (chose {alpn:?})")));
            }
            self.exchange(tls, "https").await
        })
    }

    async fn exchange<T>(&self, io: T, scheme: &str) -> Result<H2Response, KitError>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (client, connection) = h2::client::handshake(io).await.map_err(h2_error("HTTP/2 handshake"))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let mut request = http::Request::builder()
            .method(self.method.as_str())
            .uri(format!("{scheme}://{}{}", self.authority, self.path))
            .body(())
            .map_err(protocol_error("building the request"))?;
        *request.headers_mut() = header_map(&self.headers)?;
        let mut client = client.ready().await.map_err(h2_error("opening a stream"))?;
        let ends_with_headers = self.frames.is_empty() && self.trailers.is_empty();
        let (response, mut stream) = client.send_request(request, ends_with_headers).map_err(h2_error("sending headers"))?;
        for (i, frame) in self.frames.iter().enumerate() {
            let last = i + 1 == self.frames.len() && self.trailers.is_empty();
            stream.send_data(Bytes::from(frame.clone()), last).map_err(h2_error("sending data"))?;
        }
        if !self.trailers.is_empty() {
            stream.send_trailers(header_map(&self.trailers)?).map_err(h2_error("sending trailers"))?;
        }
        let response = response.await.map_err(h2_error("reading the response"))?;
        let (parts, mut body) = response.into_parts();
        let mut data = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.map_err(h2_error("reading the response body"))?;
            let _ = body.flow_control().release_capacity(chunk.len());
            data.extend_from_slice(&chunk);
        }
        let trailers = body.trailers().await.map_err(h2_error("reading the response trailers"))?;
        Ok(H2Response {
            status: parts.status.as_u16(),
            headers: header_pairs(&parts.headers),
            body: data,
            trailers: trailers.as_ref().map(header_pairs).unwrap_or_default(),
        })
    }
}

/// What came back over HTTP/2.
#[derive(Debug, Clone)]
pub struct H2Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub trailers: Vec<(String, String)>,
}

/// `header`, `trailer` and `body_text` for a type with `headers`, `body`
/// and `trailers` (what was sent or received over HTTP/2).
macro_rules! h2_accessors {
    ($type:ty) => {
        impl $type {
            pub fn header(&self, name: &str) -> Option<&str> {
                $crate::h2_client::find(&self.headers, name)
            }

            pub fn trailer(&self, name: &str) -> Option<&str> {
                $crate::h2_client::find(&self.trailers, name)
            }

            pub fn body_text(&self) -> String {
                String::from_utf8_lossy(&self.body).into_owned()
            }
        }
    };
}
pub(crate) use h2_accessors;

h2_accessors!(H2Response);
