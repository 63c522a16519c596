//! The sign-in limit per client address. It counts what a flood or an
//! attack produces and a person signing in does not, so that an office of a
//! thousand people behind one NAT address signs in at 9 a.m. untouched:
//!
//! - **charged** against `login_attempts_per_minute` are callbacks that fail
//!   (each may have cost a call to the provider's token endpoint) and
//!   restarts: a sign-in started by a browser that already holds an
//!   unfinished one (a browser looping or hammering the start route);
//! - **free** are a browser's first start and every callback that signs
//!   someone in;
//! - once an address is over its charge, its restarts and all its callbacks
//!   get 429 until the minute is over (a callback's failure is known only
//!   after it ran), while first starts still pass;
//! - all starts of an address, free or not, are capped at
//!   [`STARTS_PER_CHARGE`] times the limit, against floods from clients that
//!   drop their cookies.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How many more starts than charged attempts an address may make.
pub const STARTS_PER_CHARGE: u32 = 100;

/// One address's counts in the current minute.
#[derive(Default)]
struct Window {
    charged: AtomicU32,
    starts: AtomicU32,
}

/// Fixed one-minute windows per client address, bounded in memory.
pub struct LoginLimiter {
    per_minute: u32,
    windows: moka::sync::Cache<IpAddr, Arc<Window>>,
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

    fn window(&self, client: IpAddr) -> Arc<Window> {
        self.windows.get_with(client, Default::default)
    }

    /// Counts a sign-in start (`restart` when the browser already holds an
    /// unfinished one); false when it is over the limit.
    pub fn start(&self, client: IpAddr, restart: bool) -> bool {
        if self.per_minute == 0 {
            return true;
        }
        let window = self.window(client);
        let starts = window.starts.fetch_add(1, Ordering::Relaxed);
        if starts >= self.per_minute.saturating_mul(STARTS_PER_CHARGE) {
            return false;
        }
        !restart || window.charged.fetch_add(1, Ordering::Relaxed) < self.per_minute
    }

    /// Whether a callback from `client` may run.
    pub fn callback_allowed(&self, client: IpAddr) -> bool {
        self.per_minute == 0
            || self
                .windows
                .get(&client)
                .is_none_or(|w| w.charged.load(Ordering::Relaxed) < self.per_minute)
    }

    /// Charges a callback that failed.
    pub fn callback_failed(&self, client: IpAddr) {
        if self.per_minute > 0 {
            self.window(client).charged.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_starts_and_good_callbacks_are_free() {
        let l = LoginLimiter::new(2);
        let office = "10.0.0.1".parse().unwrap();
        for _ in 0..200 {
            assert!(l.start(office, false));
            assert!(l.callback_allowed(office));
        }
        assert!(!l.start(office, false), "the cap on all starts");
    }

    #[test]
    fn restarts_and_failed_callbacks_are_charged_per_client() {
        let l = LoginLimiter::new(2);
        let a = "10.0.0.1".parse().unwrap();
        let b = "10.0.0.2".parse().unwrap();
        assert!(l.start(a, true) && l.start(a, true));
        assert!(!l.start(a, true));
        assert!(l.start(a, false), "a first start still passes");
        assert!(!l.callback_allowed(a));
        assert!(l.callback_allowed(b));
        l.callback_failed(b);
        assert!(l.callback_allowed(b));
        l.callback_failed(b);
        assert!(!l.callback_allowed(b));
        let off = LoginLimiter::new(0);
        off.callback_failed(a);
        assert!((0..1000).all(|_| off.start(a, true) && off.callback_allowed(a)));
    }
}
