//! Graceful shutdown: on SIGTERM (or SIGINT) the gateway reports itself not
//! ready, stops accepting, lets in-flight requests finish, and exits 0 as
//! soon as none is left — or when the configured grace period ends.

use std::time::{Duration, Instant};

use prometheus::IntGauge;
use tokio::signal::unix::{signal, Signal, SignalKind};

const POLL: Duration = Duration::from_millis(50);

/// The signals that stop the gateway, listened for from startup on.
pub struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    /// Must be called inside a tokio runtime.
    pub fn listen() -> std::io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Waits for the first of them; returns its name.
    pub async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// Blocks until no request is in flight and every connection has closed
/// (each was told to, after its current answer), or the grace period is
/// over.
pub fn wait_drained(active: &IntGauge, connections: &IntGauge, grace: Duration) {
    let deadline = Instant::now() + grace;
    loop {
        let left = active.get();
        if left <= 0 && connections.get() <= 0 {
            tracing::info!("drained; exiting");
            return;
        }
        if Instant::now() >= deadline {
            tracing::warn!(
                in_flight = left,
                connections = connections.get(),
                "grace period over with requests still in flight; exiting"
            );
            return;
        }
        std::thread::sleep(POLL);
    }
}
