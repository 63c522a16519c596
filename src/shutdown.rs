//! Graceful shutdown: on SIGTERM (or SIGINT) the gateway reports itself not
//! ready, stops accepting, lets in-flight requests finish, and exits 0 as
//! soon as none is left — or when the configured grace period ends.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::server::{ShutdownSignal, ShutdownSignalWatch};
use prometheus::IntGauge;
use tokio::signal::unix::{signal, SignalKind};

const POLL: Duration = Duration::from_millis(50);

/// Waits for a shutdown signal, then drains.
pub struct DrainOnSignal {
    pub draining: Arc<AtomicBool>,
    pub active: IntGauge,
    pub grace: Duration,
}

#[async_trait]
impl ShutdownSignalWatch for DrainOnSignal {
    async fn recv(&self) -> ShutdownSignal {
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        self.draining.store(true, Ordering::SeqCst);
        tracing::info!(
            signal = name,
            in_flight = self.active.get(),
            grace_secs = self.grace.as_secs(),
            "shutting down: no new connections, draining in-flight requests"
        );
        let active = self.active.clone();
        let grace = self.grace;
        std::thread::spawn(move || exit_when_drained(active, grace));
        ShutdownSignal::GracefulTerminate
    }
}

fn exit_when_drained(active: IntGauge, grace: Duration) {
    let deadline = Instant::now() + grace;
    loop {
        std::thread::sleep(POLL);
        let left = active.get();
        if left <= 0 {
            tracing::info!("drained; exiting");
            std::process::exit(0);
        }
        if Instant::now() >= deadline {
            tracing::warn!(
                in_flight = left,
                "grace period over with requests still in flight; exiting"
            );
            std::process::exit(0);
        }
    }
}
