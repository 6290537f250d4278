//! Upstream servers that misbehave on purpose, for fault tests: one that
//! resets the connection (TCP RST) at a chosen point of the exchange, and
//! an address where nothing listens.

use crate::error::KitError;
use crate::loopback::LoopbackServer;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// Where the server resets the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// After the request head and `body_bytes` bytes of its body, before
    /// answering (the request body is still arriving, or the copy is cut).
    ResetAfterHead { body_bytes: usize },
    /// After the whole request, a 200 head promising 1,000 body bytes and
    /// the first 10 of them: the response is cut mid-body.
    ResetMidResponse,
}

/// A running faulty server; stops when dropped.
pub struct FaultyUpstream {
    server: LoopbackServer,
    requests: Arc<AtomicU64>,
}

impl FaultyUpstream {
    pub fn start(fault: Fault) -> Result<Self, KitError> {
        let requests = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&requests);
        let server = LoopbackServer::start(move |conn| misbehave(conn, fault, &counted))?;
        Ok(Self { server, requests })
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Request heads received so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

/// An address on loopback where nothing listens (connections are refused).
pub fn dead_address() -> Result<SocketAddr, KitError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(KitError::io("binding a port to free"))?;
    listener.local_addr().map_err(KitError::io("reading a freed port"))
}

/// Reads until the end of the request head; returns the bytes after it and
/// the declared content-length (0 without one).
fn read_head(conn: &mut TcpStream) -> Option<(Vec<u8>, usize)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = conn.read(&mut chunk).ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(chunk.get(..n)?);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(buf.get(..end)?).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            return Some((buf.get(end + 4..)?.to_vec(), length));
        }
    }
}

/// Reads body bytes until `want` have arrived (or the peer stops).
fn read_body(conn: &mut TcpStream, mut have: usize, want: usize) {
    let mut chunk = [0u8; 4096];
    while have < want {
        match conn.read(&mut chunk) {
            Ok(n) if n > 0 => have += n,
            _ => return,
        }
    }
}

fn misbehave(mut conn: TcpStream, fault: Fault, requests: &AtomicU64) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let Some((body_start, length)) = read_head(&mut conn) else { return };
    requests.fetch_add(1, Ordering::SeqCst);
    match fault {
        Fault::ResetAfterHead { body_bytes } => read_body(&mut conn, body_start.len(), body_bytes.min(length)),
        Fault::ResetMidResponse => {
            read_body(&mut conn, body_start.len(), length);
            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 1000\r\n\r\n0123456789");
            let _ = conn.flush();
            thread::sleep(Duration::from_millis(50));
        }
    }
    reset(conn);
}

/// Closes with a TCP RST rather than a FIN: SO_LINGER on with a zero timeout.
fn reset(conn: TcpStream) {
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: a valid socket descriptor, and a pointer to a linger struct of the size given.
    unsafe {
        libc::setsockopt(
            conn.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    drop(conn);
}
