//! A per-client limit on login attempts: starting a login costs nothing and
//! every callback makes the gateway call the provider's token endpoint, so a
//! flood from one address must not get the app throttled at Entra.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Fixed one-minute windows per client address, bounded in memory.
pub struct LoginLimiter {
    per_minute: u32,
    windows: moka::sync::Cache<IpAddr, Arc<AtomicU32>>,
}

impl LoginLimiter {
    /// `per_minute` of 0 turns the limit off.
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            windows: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(60))
                .build(),
        }
    }

    /// Counts one attempt; false once `client` is over its limit.
    pub fn allow(&self, client: IpAddr) -> bool {
        if self.per_minute == 0 {
            return true;
        }
        let window = self
            .windows
            .get_with(client, || Arc::new(AtomicU32::new(0)));
        window.fetch_add(1, Ordering::Relaxed) < self.per_minute
    }
}

#[cfg(test)]
mod tests {
    use super::LoginLimiter;

    #[test]
    fn counts_per_client() {
        let l = LoginLimiter::new(2);
        let a = "10.0.0.1".parse().unwrap();
        let b = "10.0.0.2".parse().unwrap();
        assert!(l.allow(a) && l.allow(a));
        assert!(!l.allow(a));
        assert!(l.allow(b));
        let off = LoginLimiter::new(0);
        assert!((0..1000).all(|_| off.allow(a)));
    }
}
