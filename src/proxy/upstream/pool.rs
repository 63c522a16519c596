//! The upstream connections both data paths share: a connection is a byte
//! stream (TCP, or TLS over TCP) with its read buffer, and the pool keeps
//! the idle ones for whichever path needs one next. The fast path (and its
//! client on hyper's side, `fast::direct`) reads and writes a `Wire`
//! itself; hyper's client runs over one and gives it back when hyper is
//! done with it (`link`).

use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio_io_timeout::TimeoutStream;

use super::Io;

/// Idle upstream connections kept for the requests to come.
const MAX_IDLE: usize = 256;

/// A connection's byte stream; its writes wait at most the upstream's
/// write timeout. Its reads are timed by whoever reads it: the fast
/// path's deadlines, or, for an answer hyper serves, the `Tracked` body's
/// silence limit and the forwarding side's timeout.
pub type Stream = Pin<Box<TimeoutStream<Box<dyn Io>>>>;

/// One connection to the upstream, between requests or carrying one.
pub struct Wire {
    pub io: Stream,
    /// What the upstream sent that is not used yet; empty, without memory,
    /// while parked (the path reading it sizes it).
    pub buf: BytesMut,
    idle_since: Instant,
}

impl Wire {
    /// A connection that has just become idle.
    pub fn new(io: Stream, idle_since: Instant) -> Self {
        Self {
            io,
            buf: BytesMut::new(),
            idle_since,
        }
    }

    /// Marks the end of an exchange: idle from `now` on.
    pub fn rest(&mut self, now: Instant) {
        self.idle_since = now;
    }

    pub fn idle_since(&self) -> Instant {
        self.idle_since
    }

    /// How long it has been idle at `now` (a reading the caller shares).
    pub fn idle_for(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.idle_since)
    }

    /// Open, and idle less than `idle_timeout` at `now`.
    pub fn usable(&mut self, idle_timeout: Duration, now: Instant) -> bool {
        self.idle_for(now) < idle_timeout && self.is_open()
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

/// Idle connections, the most recently parked one first out.
#[derive(Default)]
pub struct Pool(Mutex<Vec<Wire>>);

impl Pool {
    /// The most recently parked connection that is still open and idle
    /// less than `idle_timeout`; the others are closed.
    pub fn take(&self, idle_timeout: Duration) -> Option<Wire> {
        let mut idle = self.0.lock().expect("upstream pool");
        if idle.is_empty() {
            return None;
        }
        let now = Instant::now();
        while let Some(mut wire) = idle.pop() {
            if wire.usable(idle_timeout, now) {
                return Some(wire);
            }
        }
        None
    }

    /// Keeps `wire` for later, when it is between requests (nothing of an
    /// answer left unread, the upstream has not closed it) and the pool has
    /// room; its read buffer's memory goes.
    pub fn park(&self, mut wire: Wire) {
        if !wire.buf.is_empty() || !wire.is_open() {
            return;
        }
        wire.buf = BytesMut::new();
        let mut idle = self.0.lock().expect("upstream pool");
        if idle.len() < MAX_IDLE {
            idle.push(wire);
        }
    }

    /// How many connections are parked.
    #[cfg(test)]
    pub fn parked(&self) -> usize {
        self.0.lock().expect("upstream pool").len()
    }
}
