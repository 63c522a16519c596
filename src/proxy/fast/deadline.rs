//! A deadline that moves without touching the runtime's timer wheel. The
//! fast path gives every read a deadline; re-arming a tokio timer for each
//! one costs a removal from the wheel, an insertion and, often, a wake-up of
//! the runtime's own thread through its eventfd — more than the rest of the
//! request's work. Here the timer stays armed for an earlier deadline and,
//! when it fires before the current one, is re-armed for it: at most one
//! timer operation per timeout period, not one per read (nginx defers its
//! timer updates the same way, `NGX_TIMER_LAZY_DELAY`).

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// One connection side's deadline, moved from read to read.
#[derive(Default)]
pub struct Deadline {
    at: Option<Instant>,
    /// Set by `set_after`: the deadline falls this long after a wait
    /// begins, should the next one have to wait at all.
    after: Option<Duration>,
    /// Armed at the first wait; fires at or before `at`.
    timer: Option<Pin<Box<Sleep>>>,
}

impl Deadline {
    /// Moves the deadline; the timer is touched only to bring it closer.
    pub fn set(&mut self, at: std::time::Instant) {
        self.set_at(Instant::from_std(at));
    }

    /// The next wait, if it has to wait at all, may last `patience`: the
    /// clock is read only then (most reads of a busy connection find their
    /// bytes already there).
    pub fn set_after(&mut self, patience: Duration) {
        self.after = Some(patience);
    }

    fn set_at(&mut self, at: Instant) {
        self.at = Some(at);
        self.after = None;
        if let Some(timer) = &mut self.timer {
            if timer.deadline() > at {
                timer.as_mut().reset(at);
            }
        }
    }

    /// The output of `work`, or `None` when the deadline passes first.
    pub async fn run<F: Future>(&mut self, work: F) -> Option<F::Output> {
        let mut work = std::pin::pin!(work);
        poll_fn(|cx| {
            if let Poll::Ready(out) = work.as_mut().poll(cx) {
                return Poll::Ready(Some(out));
            }
            if let Some(patience) = self.after {
                self.set_at(Instant::now() + patience);
            }
            let at = self.at.expect("a deadline is set before a wait");
            let timer = self
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
            loop {
                if timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                if Instant::now() >= at {
                    return Poll::Ready(None);
                }
                timer.as_mut().reset(at);
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn work_done_in_time_gives_its_output() {
        let mut d = Deadline::default();
        d.set(std::time::Instant::now() + Duration::from_secs(5));
        let out = d.run(tokio::time::sleep(Duration::from_secs(4))).await;
        assert_eq!(out, Some(()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_moved_deadline_is_kept_and_then_enforced() {
        let mut d = Deadline::default();
        let start = Instant::now();
        d.set(start.into_std() + Duration::from_secs(5));
        assert_eq!(
            d.run(tokio::time::sleep(Duration::from_secs(1))).await,
            Some(())
        );
        // Moved later: the timer armed for 5 s fires, finds the deadline
        // moved, and waits on until it.
        d.set(Instant::now().into_std() + Duration::from_secs(10));
        assert_eq!(d.run(std::future::pending::<()>()).await, None);
        assert_eq!(Instant::now() - start, Duration::from_secs(11));
        // Moved earlier: enforced at the earlier time.
        d.set(Instant::now().into_std() + Duration::from_secs(20));
        d.set(Instant::now().into_std() + Duration::from_secs(2));
        let before = Instant::now();
        assert_eq!(d.run(std::future::pending::<()>()).await, None);
        assert_eq!(Instant::now() - before, Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_after_a_patience_counts_from_when_the_wait_begins() {
        let mut d = Deadline::default();
        d.set_after(Duration::from_secs(5));
        // Work ready at once never starts the count.
        assert_eq!(d.run(std::future::ready(())).await, Some(()));
        tokio::time::sleep(Duration::from_secs(60)).await;
        let begun = Instant::now();
        assert_eq!(d.run(std::future::pending::<()>()).await, None);
        assert_eq!(Instant::now() - begun, Duration::from_secs(5));
        // Once counted, the deadline stays where it fell.
        assert_eq!(d.run(std::future::pending::<()>()).await, None);
        assert_eq!(Instant::now() - begun, Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_set_outright_replaces_a_patience_not_yet_counted() {
        let mut d = Deadline::default();
        d.set_after(Duration::from_secs(60));
        let start = Instant::now();
        d.set(start.into_std() + Duration::from_secs(2));
        assert_eq!(d.run(std::future::pending::<()>()).await, None);
        assert_eq!(Instant::now() - start, Duration::from_secs(2));
    }
}
