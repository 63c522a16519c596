//! The end of a connection's hold: when a connection waiting for its next
//! request has been idle for `HOLD_UPSTREAM`, its burst lets go of what it
//! holds (see `fast`). A timer per waiting connection would fire, or be
//! moved on, once per hold for a client that keeps asking at intervals a
//! little shorter than the hold (a browser); instead each proxy thread
//! keeps a list of its waiting connections and one task looks them over
//! every `SWEEP_EVERY`, waking only those that have been idle long enough.
//! Joining and leaving the list is a slot in a slab and a waker's clone.
//! The proxy's runtimes are single-threaded: a task, and its hold, never
//! changes thread.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use slab::Slab;
use tokio::time::Instant as Now;

use crate::proxy::upstream::HOLD_UPSTREAM;

/// How often a thread's waiting connections are looked over: a connection
/// is let go between one hold and one hold and this after its last request.
pub const SWEEP_EVERY: Duration = Duration::from_millis(25);

/// One proxy thread's waiting connections.
struct Waiting {
    /// Tells this thread's list from another's (a `Hold` is `Send`).
    id: u64,
    entries: Slab<Entry>,
    /// Whether this thread's sweeping task has been started.
    sweeping: bool,
    /// The sweeping task, while it waits for the list to be non-empty.
    idle_sweeper: Option<Waker>,
    /// When the last sweep looked: a hold due by then ends at once.
    last_sweep: Option<Instant>,
}

struct Entry {
    since: Instant,
    waker: Waker,
    due: bool,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static WAITING: RefCell<Waiting> = RefCell::new(Waiting {
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        entries: Slab::new(),
        sweeping: false,
        idle_sweeper: None,
        last_sweep: None,
    });
}

/// Completes once the connection has been idle, since `since`, for
/// `HOLD_UPSTREAM` (within `SWEEP_EVERY`). It joins its thread's list when
/// first polled and leaves it when dropped.
pub struct Hold {
    since: Instant,
    /// The list joined and the slot taken in it.
    slot: Option<(u64, usize)>,
}

impl Hold {
    pub fn new(since: Instant) -> Self {
        Self { since, slot: None }
    }
}

impl Future for Hold {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let start_sweeping = WAITING.with_borrow_mut(|w| {
            if let Some((id, key)) = self.slot {
                if id == w.id {
                    let entry = &mut w.entries[key];
                    if entry.due {
                        return None;
                    }
                    if !entry.waker.will_wake(cx.waker()) {
                        entry.waker = cx.waker().clone();
                    }
                    return Some(false);
                }
            }
            // Resumed long idle (a wake-up that brought no request): no
            // need to wait for the next sweep to let go.
            let since = self.since;
            if w.last_sweep
                .is_some_and(|t| t.saturating_duration_since(since) >= HOLD_UPSTREAM)
            {
                return None;
            }
            let key = w.entries.insert(Entry {
                since,
                waker: cx.waker().clone(),
                due: false,
            });
            self.slot = Some((w.id, key));
            if let Some(sweeper) = w.idle_sweeper.take() {
                sweeper.wake();
            }
            Some(!std::mem::replace(&mut w.sweeping, true))
        });
        match start_sweeping {
            None => Poll::Ready(()),
            Some(start) => {
                if start {
                    tokio::spawn(sweep(Sweeping));
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        let Some((id, key)) = self.slot else { return };
        // At the thread's end its list may be gone already.
        let _ = WAITING.try_with(|w| {
            if let Ok(mut w) = w.try_borrow_mut() {
                if w.id == id {
                    w.entries.remove(key);
                }
            }
        });
    }
}

/// Held by a thread's sweeping task: when the task goes (its runtime with
/// it), the next hold starts another.
struct Sweeping;

impl Drop for Sweeping {
    fn drop(&mut self) {
        let _ = WAITING.try_with(|w| {
            if let Ok(mut w) = w.try_borrow_mut() {
                w.sweeping = false;
                w.idle_sweeper = None;
            }
        });
    }
}

/// A thread's sweeping task: every `SWEEP_EVERY`, wakes each connection
/// that has been idle for `HOLD_UPSTREAM`; waits without a timer while
/// none is waiting.
async fn sweep(sweeping: Sweeping) {
    let _sweeping = sweeping;
    loop {
        tokio::time::sleep(SWEEP_EVERY).await;
        // The runtime's clock (a test's paused one too).
        let now = Now::now().into_std();
        let empty = WAITING.with_borrow_mut(|w| {
            w.last_sweep = Some(now);
            for (_, entry) in w.entries.iter_mut() {
                if !entry.due && now.saturating_duration_since(entry.since) >= HOLD_UPSTREAM {
                    entry.due = true;
                    entry.waker.wake_by_ref();
                }
            }
            // A crowd's slots go with it.
            if w.entries.is_empty() {
                w.entries.shrink_to_fit();
            }
            w.entries.is_empty()
        });
        if empty {
            std::future::poll_fn(|cx| {
                WAITING.with_borrow_mut(|w| {
                    if !w.entries.is_empty() {
                        return Poll::Ready(());
                    }
                    w.idle_sweeper = Some(cx.waker().clone());
                    Poll::Pending
                })
            })
            .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting() -> usize {
        WAITING.with_borrow(|w| w.entries.len())
    }

    /// Waits for `hold` to end, failing if it does not within a second.
    async fn ended(hold: Hold) {
        let late = tokio::time::timeout(Duration::from_secs(1), hold).await;
        assert!(late.is_ok(), "the hold ends");
    }

    #[tokio::test(start_paused = true)]
    async fn a_hold_ends_one_hold_after_its_start_within_a_sweep() {
        let start = Now::now();
        ended(Hold::new(start.into_std())).await;
        let held = start.elapsed();
        assert!(held >= HOLD_UPSTREAM, "{held:?}");
        assert!(held <= HOLD_UPSTREAM + SWEEP_EVERY, "{held:?}");
        assert_eq!(waiting(), 0, "an ended hold leaves the list");
    }

    #[tokio::test(start_paused = true)]
    async fn a_hold_dropped_early_leaves_the_list_and_later_ones_still_end() {
        let start = Now::now().into_std();
        let early = tokio::time::timeout(HOLD_UPSTREAM / 2, Hold::new(start)).await;
        assert!(early.is_err(), "not due before its hold");
        assert_eq!(waiting(), 0);
        // The sweeper waits, with nothing in the list, and wakes again.
        tokio::time::sleep(SWEEP_EVERY * 2).await;
        assert!(WAITING.with_borrow(|w| w.idle_sweeper.is_some()));
        let again = Now::now();
        ended(Hold::new(again.into_std())).await;
        assert!(again.elapsed() <= HOLD_UPSTREAM + SWEEP_EVERY);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_idle_for_long_already_is_let_go_at_the_next_sweep() {
        let long_ago = Now::now().into_std();
        tokio::time::advance(HOLD_UPSTREAM * 3).await;
        let start = Now::now();
        ended(Hold::new(long_ago)).await;
        assert!(start.elapsed() <= SWEEP_EVERY);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hold_due_by_the_last_sweep_ends_at_once() {
        use futures_util::FutureExt;
        let long_ago = Now::now().into_std();
        ended(Hold::new(long_ago)).await;
        assert!(
            Hold::new(long_ago).now_or_never().is_some(),
            "ends at its first poll"
        );
        assert_eq!(waiting(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_slots_of_a_crowd_go_once_it_has_gone() {
        use futures_util::FutureExt;
        let since = Now::now().into_std();
        let mut crowd: Vec<Hold> = (0..1000).map(|_| Hold::new(since)).collect();
        for hold in &mut crowd {
            assert!(hold.now_or_never().is_none(), "not due yet");
        }
        assert_eq!(waiting(), 1000);
        drop(crowd);
        tokio::time::sleep(SWEEP_EVERY * 2).await;
        let slots = WAITING.with_borrow(|w| w.entries.capacity());
        assert!(slots < 1000, "{slots} slots kept");
    }
}
