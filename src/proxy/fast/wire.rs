//! Upstream connections of the HTTP/1 fast path: byte streams (TCP, or TLS
//! over TCP) with a read buffer. A client connection keeps the one it last
//! used; when it closes, its connection is parked in a shared pool.

use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio_io_timeout::TimeoutStream;

use crate::proxy::upstream::{Io, Upstream, UpstreamError, MAX_IDLE};

/// One connection to the upstream; each read waits at most the upstream's
/// read timeout, each write its write timeout.
pub struct Wire {
    pub io: Pin<Box<TimeoutStream<Box<dyn Io>>>>,
    /// What the upstream sent that is not used yet.
    pub buf: BytesMut,
    idle_since: Instant,
}

impl Wire {
    pub async fn dial(upstream: &Upstream) -> Result<Wire, UpstreamError> {
        let mut io = upstream.dial().await?;
        io.as_mut()
            .set_read_timeout_pinned(Some(upstream.read_timeout()));
        Ok(Wire {
            io,
            buf: BytesMut::with_capacity(16 * 1024),
            idle_since: Instant::now(),
        })
    }

    /// Marks the end of an exchange: idle from now on.
    pub fn rest(&mut self) {
        self.idle_since = Instant::now();
    }

    pub fn idle_for(&self) -> Duration {
        self.idle_since.elapsed()
    }

    /// Open, and idle less than `idle_timeout`.
    pub fn usable(&mut self, idle_timeout: Duration) -> bool {
        self.idle_for() < idle_timeout && self.is_open()
    }

    /// Whether the upstream has neither closed this idle connection nor
    /// sent anything on it (a look that does not wait).
    fn is_open(&mut self) -> bool {
        let mut probe = [0u8; 1];
        let mut probe = tokio::io::ReadBuf::new(&mut probe);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let inner = self.io.as_mut().get_pin_mut();
        matches!(
            tokio::io::AsyncRead::poll_read(inner, &mut cx, &mut probe),
            std::task::Poll::Pending
        )
    }
}

/// Idle connections for client connections to come.
#[derive(Default)]
pub struct WirePool(Mutex<Vec<Wire>>);

impl WirePool {
    /// The most recently parked connection that is still open and idle
    /// less than `idle_timeout`.
    pub fn take(&self, idle_timeout: Duration) -> Option<Wire> {
        let mut idle = self.0.lock().expect("wire pool");
        while let Some(mut wire) = idle.pop() {
            if wire.usable(idle_timeout) {
                return Some(wire);
            }
        }
        None
    }

    pub fn park(&self, wire: Wire) {
        let mut idle = self.0.lock().expect("wire pool");
        if idle.len() < MAX_IDLE {
            idle.push(wire);
        }
    }
}
