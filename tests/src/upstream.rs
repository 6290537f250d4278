//! Upstream servers on loopback that record exactly what they received and
//! answer from a script: a status sequence (fail N times, then succeed), a
//! delay, and an identity header naming which server answered.

use crate::error::KitError;
use crate::http::{chunked_body, read_message, write_message, Message};
use std::io::BufReader;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// One request as the upstream saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// In wire order, names as Envoy sent them.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.header(name).is_some()
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// How an upstream answers.
#[derive(Debug, Clone)]
pub struct Script {
    /// Statuses for the first requests in order; the last one repeats.
    pub statuses: Vec<u16>,
    pub delay: Duration,
    /// Sent as `x-upstream-identity` on every response.
    pub identity: String,
    pub extra_headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The statuses repeat from the first once used up (the last one
    /// repeats otherwise).
    pub cycle: bool,
    /// Only the first this many requests wait `delay` (all of them if 0).
    pub slow_first: usize,
    /// How the response body is framed.
    pub framing: Framing,
}

/// How an upstream frames its response body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Framing {
    /// `content-length` (the default).
    #[default]
    ContentLength,
    /// `transfer-encoding: chunked`, in chunks of this many bytes.
    Chunked(usize),
    /// No length at all: the body ends when the upstream closes the connection.
    Close,
}

impl Script {
    pub fn ok(identity: &str) -> Self {
        Self {
            statuses: vec![200],
            delay: Duration::ZERO,
            identity: identity.to_string(),
            extra_headers: Vec::new(),
            body: format!("hello from {identity}\n").into_bytes(),
            cycle: false,
            slow_first: 0,
            framing: Framing::ContentLength,
        }
    }

    /// Frames the body as `framing` says instead of with a content-length.
    pub fn framed(mut self, framing: Framing) -> Self {
        self.framing = framing;
        self
    }

    /// Answers `status` to the first `n` requests, then 200.
    pub fn fail_then_ok(identity: &str, status: u16, n: usize) -> Self {
        let mut statuses = vec![status; n];
        statuses.push(200);
        Self { statuses, ..Self::ok(identity) }
    }

    /// Answers `statuses` in turn, over and over (`[503, 200]`: every
    /// second request fails, whoever sends it).
    pub fn cycle(identity: &str, statuses: &[u16]) -> Self {
        Self { statuses: statuses.to_vec(), cycle: true, ..Self::ok(identity) }
    }

    /// The first `n` requests wait `delay` before the answer; later ones do not.
    pub fn slow_first(mut self, n: usize, delay: Duration) -> Self {
        self.slow_first = n;
        self.delay = delay;
        self
    }

    pub(crate) fn delay_for(&self, nth: usize) -> Duration {
        if self.slow_first == 0 || nth < self.slow_first { self.delay } else { Duration::ZERO }
    }

    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.extra_headers.push((name.to_string(), value.to_string()));
        self
    }

    pub(crate) fn status_for(&self, nth: usize) -> u16 {
        if self.cycle && !self.statuses.is_empty() {
            return self.statuses.get(nth % self.statuses.len()).copied().unwrap_or(200);
        }
        self.statuses.get(nth).or(self.statuses.last()).copied().unwrap_or(200)
    }
}

#[derive(Default)]
struct Log {
    received: Mutex<Vec<Received>>,
    arrived: Condvar,
}

/// A running upstream; stops when dropped.
pub struct Upstream {
    addr: SocketAddr,
    log: Arc<Log>,
    stop: Arc<AtomicBool>,
}

impl Upstream {
    pub fn start(script: Script) -> Result<Self, KitError> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(KitError::io("binding an upstream port"))?;
        let addr = listener.local_addr().map_err(KitError::io("reading the upstream address"))?;
        let log = Arc::new(Log::default());
        let stop = Arc::new(AtomicBool::new(false));
        let script = Arc::new(script);
        let (log2, stop2) = (Arc::clone(&log), Arc::clone(&stop));
        thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (log, script) = (Arc::clone(&log2), Arc::clone(&script));
                thread::spawn(move || serve(conn, &log, &script));
            }
        });
        Ok(Self { addr, log, stop })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Everything received so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.log.received.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Waits until at least `n` requests have arrived (mirrored requests are
    /// fire-and-forget, so they may land after the client has its answer).
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Result<Vec<Received>, KitError> {
        let deadline = Instant::now() + timeout;
        let mut received = self.log.received.lock().map_err(|_| KitError::Protocol("upstream log poisoned".into()))?;
        while received.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(KitError::Timeout {
                    what: format!("upstream {} got {} of {n} requests", self.addr, received.len()),
                    log: String::new(),
                });
            }
            received = self
                .log
                .arrived
                .wait_timeout(received, left)
                .map_err(|_| KitError::Protocol("upstream log poisoned".into()))?
                .0;
        }
        Ok(received.clone())
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

fn serve(conn: TcpStream, log: &Log, script: &Script) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(&conn);
    // Keep-alive: Envoy reuses upstream connections.
    while let Ok(Some(request)) = read_message(&mut reader, false) {
        let nth = {
            let Ok(mut received) = log.received.lock() else { return };
            received.push(to_received(request));
            log.arrived.notify_all();
            received.len() - 1
        };
        let delay = script.delay_for(nth);
        if !delay.is_zero() {
            thread::sleep(delay);
        }
        let status = script.status_for(nth);
        let mut headers = vec![("content-type".to_string(), "text/plain".to_string())];
        let body = match script.framing {
            Framing::ContentLength => {
                headers.push(("content-length".to_string(), script.body.len().to_string()));
                script.body.clone()
            }
            Framing::Chunked(size) => {
                headers.push(("transfer-encoding".to_string(), "chunked".to_string()));
                chunked_body(&script.body, size)
            }
            Framing::Close => script.body.clone(),
        };
        headers.push(("x-upstream-identity".to_string(), script.identity.clone()));
        headers.extend(script.extra_headers.iter().cloned());
        let mut writer = &conn;
        if write_message(&mut writer, &format!("HTTP/1.1 {status} {}", reason(status)), &headers, &body).is_err() {
            return;
        }
        if script.framing == Framing::Close {
            return;
        }
    }
}

fn to_received(m: Message) -> Received {
    let mut start = m.start.into_iter();
    Received {
        method: start.next().unwrap_or_default(),
        path: start.next().unwrap_or_default(),
        headers: m.headers,
        body: m.body,
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}
