//! A TCP server on a free loopback port that hands each connection to its
//! own thread, and stops accepting when dropped: what the kit's upstreams
//! share.

use crate::error::KitError;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

pub struct LoopbackServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl LoopbackServer {
    /// Listens on 127.0.0.1 and runs `serve` on a thread per connection.
    pub fn start(serve: impl Fn(TcpStream) + Send + Sync + 'static) -> Result<Self, KitError> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(KitError::io("binding a loopback port"))?;
        let addr = listener.local_addr().map_err(KitError::io("reading a loopback address"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let (stop2, serve) = (Arc::clone(&stop), Arc::new(serve));
        thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let serve = Arc::clone(&serve);
                thread::spawn(move || serve(conn));
            }
        });
        Ok(Self { addr, stop })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}
