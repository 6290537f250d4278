//! Just enough HTTP/1.1 to see exactly what crossed the wire: header names in
//! their case and order, repeated headers, body bytes as sent. Hand-written
//! so nothing normalises what a test wants to assert on.

use crate::error::KitError;
use std::io::{BufRead, BufReader, Read, Write};

/// A request or response head plus body, as seen on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// `GET /path HTTP/1.1` or `HTTP/1.1 200 OK`, split on spaces.
    pub start: Vec<String>,
    /// In wire order, names as sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Message {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Every value of a header, in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Largest head the kit accepts, so a broken peer cannot make it read forever.
const MAX_HEAD: usize = 64 * 1024;

/// Reads one message. `Ok(None)` when the peer closed before sending a byte
/// (an idle keep-alive connection ending). `body_until_close` reads a body
/// without length to the end of the connection (responses only).
pub fn read_message<R: Read>(reader: &mut BufReader<R>, body_until_close: bool) -> Result<Option<Message>, KitError> {
    read_message_framed(reader, body_until_close, true)
}

/// Like [`read_message`]; with `has_body` false (a response to `HEAD`) only
/// the head is read, whatever its length headers say.
pub fn read_message_framed<R: Read>(reader: &mut BufReader<R>, body_until_close: bool, has_body: bool) -> Result<Option<Message>, KitError> {
    let mut start_line = String::new();
    if reader.read_line(&mut start_line).map_err(KitError::io("reading start line"))? == 0 {
        return Ok(None);
    }
    let start: Vec<String> = start_line.trim_end().splitn(3, ' ').map(str::to_string).collect();
    let mut headers = Vec::new();
    let mut head_len = start_line.len();
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).map_err(KitError::io("reading header"))?;
        head_len += n;
        if n == 0 || head_len > MAX_HEAD {
            return Err(KitError::Protocol(format!("head cut short or too long after {head_len} bytes")));
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| KitError::Protocol(format!("header line without a colon: {line:?}")))?;
        headers.push((name.to_string(), value.trim().to_string()));
    }
    let mut message = Message { start, headers, body: Vec::new() };
    if !has_body {
        return Ok(Some(message));
    }
    let chunked = message
        .header("transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
    if chunked {
        message.body = read_chunked(reader)?;
    } else if let Some(len) = message.header("content-length") {
        let len: usize = len.parse().map_err(|_| KitError::Protocol(format!("bad content-length {len:?}")))?;
        message.body = vec![0; len];
        reader.read_exact(&mut message.body).map_err(KitError::io("reading body"))?;
    } else if body_until_close {
        reader.read_to_end(&mut message.body).map_err(KitError::io("reading body"))?;
    }
    Ok(Some(message))
}

fn read_chunked<R: Read>(reader: &mut BufReader<R>) -> Result<Vec<u8>, KitError> {
    let mut body = Vec::new();
    loop {
        let mut size_line = String::new();
        reader.read_line(&mut size_line).map_err(KitError::io("reading chunk size"))?;
        let size_hex = size_line.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| KitError::Protocol(format!("bad chunk size {size_line:?}")))?;
        if size == 0 {
            // Trailers, if any, end with an empty line.
            loop {
                let mut line = String::new();
                let n = reader.read_line(&mut line).map_err(KitError::io("reading trailers"))?;
                if n == 0 || line.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let at = body.len();
        body.resize(at + size, 0);
        reader.read_exact(body.get_mut(at..).unwrap_or_default()).map_err(KitError::io("reading chunk"))?;
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf).map_err(KitError::io("reading chunk end"))?;
    }
}

/// Writes `body` in HTTP/1.1 chunks of at most `size` bytes, then the last chunk.
pub fn chunked_body(body: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 32);
    for chunk in body.chunks(size.max(1)) {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Writes a message with exactly the given head; the caller decides framing
/// headers (content-length, transfer-encoding).
pub fn write_message<W: Write>(writer: &mut W, start: &str, headers: &[(String, String)], body: &[u8]) -> Result<(), KitError> {
    let mut out = Vec::with_capacity(256 + body.len());
    out.extend_from_slice(start.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (k, v) in headers {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    writer.write_all(&out).map_err(KitError::io("writing message"))?;
    writer.flush().map_err(KitError::io("flushing message"))
}
