//! The soak's upstream servers: keep-alive HTTP/1.1 on loopback that answer
//! every attempt at once, optionally failing every other attempt (503), and
//! remember only what the report needs: which request (`x-soak-id`) each
//! attempt belonged to and what it was answered. A shadow backend also
//! checks every copy for the secrets the traffic plants, so minutes of
//! traffic need no stored bodies.

use crate::error::KitError;
use crate::http::{write_message, Message};
use crate::loopback::LoopbackServer;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The header that numbers each request the load generator sends.
pub const SOAK_ID: &str = "x-soak-id";

/// How a backend answers.
#[derive(Debug, Clone)]
pub struct BackendScript {
    /// Sent as `x-upstream-identity`.
    pub identity: String,
    /// Every other attempt (the 1st, 3rd, …, counted over all callers) is a 503.
    pub fail_half: bool,
    /// Text that must never reach this backend (a shadow's secrets).
    pub forbidden: Vec<String>,
}

/// What a backend saw of one request: its attempts' statuses in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attempts {
    pub statuses: Vec<u16>,
    /// When the first attempt arrived, in milliseconds since the Unix epoch.
    pub first_at_ms: u64,
}

#[derive(Default)]
struct Seen {
    by_id: HashMap<u64, Attempts>,
    /// Attempts without a readable `x-soak-id` (none expected).
    anonymous: u64,
    /// Requests that carried a forbidden text, with the first one found.
    leaks: Vec<(u64, String)>,
}

/// A running backend; stops accepting when dropped.
pub struct Backend {
    server: LoopbackServer,
    seen: Arc<Mutex<Seen>>,
    attempts: Arc<AtomicU64>,
}

impl Backend {
    pub fn start(script: BackendScript) -> Result<Self, KitError> {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let attempts = Arc::new(AtomicU64::new(0));
        let (seen2, attempts2) = (Arc::clone(&seen), Arc::clone(&attempts));
        let server = LoopbackServer::start(move |conn| serve(conn, &script, &seen2, &attempts2))?;
        Ok(Self { server, seen, attempts })
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Attempts received so far, over all requests.
    pub fn attempt_count(&self) -> u64 {
        self.attempts.load(Ordering::SeqCst)
    }

    /// Each request's attempts, by `x-soak-id`.
    pub fn attempts(&self) -> HashMap<u64, Attempts> {
        self.seen.lock().map(|s| s.by_id.clone()).unwrap_or_default()
    }

    /// Attempts that carried no `x-soak-id`.
    pub fn anonymous(&self) -> u64 {
        self.seen.lock().map(|s| s.anonymous).unwrap_or(0)
    }

    /// Requests that carried a forbidden text: (`x-soak-id`, the text).
    pub fn leaks(&self) -> Vec<(u64, String)> {
        self.seen.lock().map(|s| s.leaks.clone()).unwrap_or_default()
    }
}

fn serve(conn: TcpStream, script: &BackendScript, seen: &Mutex<Seen>, attempts: &AtomicU64) {
    let _ = conn.set_nodelay(true);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(120)));
    let mut reader = BufReader::new(&conn);
    while let Some(request) = read_request(&mut reader) {
        let nth = attempts.fetch_add(1, Ordering::SeqCst);
        let status = if script.fail_half && nth % 2 == 0 { 503 } else { 200 };
        record(&request, status, script, seen);
        let body = if status == 200 { b"ok\n".as_slice() } else { b"try again\n".as_slice() };
        let headers = [
            ("content-type".to_string(), "text/plain".to_string()),
            ("content-length".to_string(), body.len().to_string()),
            ("x-upstream-identity".to_string(), script.identity.clone()),
        ];
        let reason = if status == 200 { "OK" } else { "Service Unavailable" };
        let mut writer = &conn;
        if write_message(&mut writer, &format!("HTTP/1.1 {status} {reason}"), &headers, body).is_err() {
            return;
        }
    }
}

fn record(request: &Message, status: u16, script: &BackendScript, seen: &Mutex<Seen>) {
    let id = request.header(SOAK_ID).and_then(|v| v.parse::<u64>().ok());
    let leak = leaked(request, &script.forbidden);
    let Ok(mut seen) = seen.lock() else { return };
    match id {
        Some(id) => {
            let attempts = seen.by_id.entry(id).or_default();
            if attempts.statuses.is_empty() {
                attempts.first_at_ms = epoch_ms();
            }
            attempts.statuses.push(status);
        }
        None => seen.anonymous += 1,
    }
    if let Some(text) = leak {
        seen.leaks.push((id.unwrap_or(u64::MAX), text));
    }
}

fn epoch_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The first forbidden text found in the request's target, headers or body.
fn leaked(request: &Message, forbidden: &[String]) -> Option<String> {
    if forbidden.is_empty() {
        return None;
    }
    let mut text = request.start.join(" ");
    for (name, value) in &request.headers {
        text.push('\n');
        text.push_str(name);
        text.push_str(": ");
        text.push_str(value);
    }
    text.push('\n');
    text.push_str(&String::from_utf8_lossy(&request.body));
    forbidden.iter().find(|f| text.contains(f.as_str())).cloned()
}

/// Reads one request, byte-tolerant: Envoy forwards header bytes that are
/// not UTF-8 (obs-text), and a backend that choked on them would turn a
/// hostile request into an upstream reset. `None` at the end of the
/// connection or on a framing error.
fn read_request<R: Read>(reader: &mut BufReader<R>) -> Option<Message> {
    let line = |reader: &mut BufReader<R>| -> Option<String> {
        let mut bytes = Vec::new();
        let n = reader.read_until(b'\n', &mut bytes).ok()?;
        (n > 0).then(|| String::from_utf8_lossy(&bytes).trim_end_matches(['\r', '\n']).to_string())
    };
    let start: Vec<String> = line(reader)?.splitn(3, ' ').map(str::to_string).collect();
    let mut headers = Vec::new();
    loop {
        let l = line(reader)?;
        if l.is_empty() {
            break;
        }
        let (name, value) = l.split_once(':')?;
        headers.push((name.to_string(), value.trim().to_string()));
    }
    let mut message = Message { start, headers, body: Vec::new() };
    if message.header("transfer-encoding").is_some_and(|te| te.to_ascii_lowercase().contains("chunked")) {
        loop {
            let size = usize::from_str_radix(line(reader)?.split(';').next()?.trim(), 16).ok()?;
            if size == 0 {
                while !line(reader)?.is_empty() {}
                break;
            }
            let at = message.body.len();
            message.body.resize(at + size, 0);
            reader.read_exact(message.body.get_mut(at..)?).ok()?;
            line(reader)?;
        }
    } else if let Some(len) = message.header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        message.body = vec![0; len];
        reader.read_exact(&mut message.body).ok()?;
    }
    Some(message)
}
