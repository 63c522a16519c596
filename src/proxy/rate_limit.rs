//! The sign-in limit per client address. It counts what a flood or an
//! attack produces and a person signing in does not, so that an office of a
//! thousand people behind one NAT address signs in at 9 a.m. untouched:
//!
//! - **charged** against `login_attempts_per_minute` are callbacks that fail
//!   (each may have cost a call to the provider's token endpoint) and
//!   restarts: a sign-in started by a browser that already holds an
//!   unfinished one (a browser looping or hammering the start route);
//! - **free** are a browser's first start, every callback that signs
//!   someone in, and a callback that fails through the gateway's or the
//!   provider's fault (5xx): a callback is charged before it runs (so that
//!   parallel ones, or one whose client hangs up, cannot slip past) and the
//!   charge is given back when it ends so;
//! - once an address is over its charge, its restarts and all its callbacks
//!   get 429 until the minute is over, while first starts still pass;
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

    /// Charges a callback before it runs (so parallel callbacks, or one
    /// whose client hangs up, cannot slip past the limit); false when
    /// `client` is over it.
    pub fn callback(&self, client: IpAddr) -> bool {
        self.per_minute == 0
            || self.window(client).charged.fetch_add(1, Ordering::Relaxed) < self.per_minute
    }

    /// Gives a callback's charge back: it signed someone in, or failed
    /// through no fault of the client (the gateway or the provider did).
    pub fn refund(&self, client: IpAddr) {
        if self.per_minute > 0 {
            if let Some(w) = self.windows.get(&client) {
                let _ = w
                    .charged
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
            }
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
            assert!(l.callback(office));
            l.refund(office);
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
        assert!(!l.callback(a));
        assert!(l.callback(b) && l.callback(b), "charged before they end");
        assert!(!l.callback(b));
        l.refund(b);
        l.refund(b);
        assert!(l.callback(b));
        let off = LoginLimiter::new(0);
        assert!((0..1000).all(|_| off.start(a, true) && off.callback(a)));
    }
}
