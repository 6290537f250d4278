//! A one-request-per-connection HTTP/1.1 client for sending test traffic.

use crate::error::KitError;
use crate::http::{read_message_framed, write_message, Message};
use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(15);

/// A request to send. `host` is added unless a header sets it; framing
/// headers are added for a body.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Leave the connection open after the response (no `connection: close`).
    pub keep_alive: bool,
}

impl Request {
    pub fn new(method: &str, path: &str) -> Self {
        Self { method: method.to_string(), path: path.to_string(), ..Self::default() }
    }

    pub fn get(path: &str) -> Self {
        Self::new("GET", path)
    }

    pub fn post(path: &str, body: impl Into<Vec<u8>>) -> Self {
        Self { body: body.into(), ..Self::new("POST", path) }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Sends the request on a new connection and reads the whole response.
    pub fn send(&self, to: SocketAddr) -> Result<Response, KitError> {
        let stream = TcpStream::connect_timeout(&to, TIMEOUT).map_err(KitError::io("connecting to the listener"))?;
        stream.set_read_timeout(Some(TIMEOUT)).map_err(KitError::io("setting a timeout"))?;
        stream.set_write_timeout(Some(TIMEOUT)).map_err(KitError::io("setting a timeout"))?;
        self.send_over(stream)
    }

    /// Sends the request on an open connection (TCP, TLS) and reads the
    /// whole response; the connection is closed after it unless `keep_alive`.
    pub fn send_over<S: Read + Write>(&self, mut stream: S) -> Result<Response, KitError> {
        let mut headers = self.wire_headers();
        if !self.keep_alive {
            headers.push(("connection".into(), "close".into()));
        }
        self.exchange(&mut stream, &headers)
    }

    /// Sends the request on an open connection and reads the response,
    /// leaving the connection open for the next request (keep-alive).
    pub fn send_keep_alive<S: Read + Write>(&self, stream: &mut S) -> Result<Response, KitError> {
        self.exchange(stream, &self.wire_headers())
    }

    fn exchange<S: Read + Write>(&self, stream: &mut S, headers: &[(String, String)]) -> Result<Response, KitError> {
        write_message(&mut *stream, &format!("{} {} HTTP/1.1", self.method, self.path), headers, &self.body)?;
        // A response to HEAD has no body, whatever its length says.
        let has_body = !self.method.eq_ignore_ascii_case("HEAD");
        let message = read_message_framed(&mut BufReader::new(stream), true, has_body)?
            .ok_or_else(|| KitError::Protocol("connection closed without a response".into()))?;
        Response::from_message(message)
    }

    /// The headers as sent: `host` unless set, framing for a body.
    fn wire_headers(&self) -> Vec<(String, String)> {
        let mut headers = self.headers.clone();
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            headers.insert(0, ("host".into(), "localhost".into()));
        }
        let has_length = headers.iter().any(|(k, _)| {
            k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding")
        });
        if !has_length && (!self.body.is_empty() || matches!(self.method.as_str(), "POST" | "PUT" | "PATCH")) {
            headers.push(("content-length".into(), self.body.len().to_string()));
        }
        headers
    }
}

/// What the client got back.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub message: Message,
}

impl Response {
    fn from_message(message: Message) -> Result<Self, KitError> {
        let status = message
            .start
            .get(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| KitError::Protocol(format!("bad status line {:?}", message.start)))?;
        Ok(Self { status, message })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.message.header(name)
    }

    pub fn body_text(&self) -> String {
        self.message.body_text()
    }
}
