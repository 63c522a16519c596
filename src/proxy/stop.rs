//! Shutdown as the proxy's tasks see it: a flag set once, and waits for it.
//! A wait holds one `Notify` waiter and nothing else: every idle
//! connection holds one (besides its socket and its timer), so it is kept
//! small. The gateway has one; each proxy thread has its own, set when the
//! gateway's is, so the fast path's per-request waits never touch a lock
//! another thread takes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::futures::OwnedNotified;
use tokio::sync::Notify;

#[derive(Default)]
pub struct Stop {
    set: AtomicBool,
    notify: Arc<Notify>,
}

impl Stop {
    /// Begins the shutdown: every wait, begun or to begin, ends.
    pub fn set(&self) {
        self.set.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    pub fn is_set(&self) -> bool {
        self.set.load(Ordering::Acquire)
    }

    /// A future that completes at shutdown; none once it has begun. It is
    /// made before the flag is looked at, and `notify_waiters` completes
    /// every such future made before it, polled yet or not: a shutdown
    /// cannot fall between the look and the wait.
    pub fn waiter(&self) -> Option<OwnedNotified> {
        let waiter = self.notify.clone().notified_owned();
        (!self.is_set()).then_some(waiter)
    }

    /// Completes at shutdown; as `waiter`, but borrowing.
    pub async fn wait(&self) {
        let waiter = self.notify.notified();
        if !self.is_set() {
            waiter.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_wait_begun_before_the_shutdown_ends_with_it() {
        let stop = Arc::new(Stop::default());
        let waiting = tokio::spawn({
            let stop = stop.clone();
            async move { stop.wait().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        stop.set();
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the wait ended")
            .unwrap();
    }

    #[tokio::test]
    async fn a_waiter_made_before_the_shutdown_but_not_yet_polled_ends_with_it() {
        let stop = Stop::default();
        let waiter = stop.waiter().expect("not stopping yet");
        stop.set();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the waiter completed");
    }

    #[tokio::test]
    async fn after_the_shutdown_there_is_nothing_to_wait_for() {
        let stop = Stop::default();
        stop.set();
        assert!(stop.waiter().is_none());
        tokio::time::timeout(Duration::from_secs(5), stop.wait())
            .await
            .expect("the wait ended at once");
    }
}
