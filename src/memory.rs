//! Gives the memory a proxy thread has freed back to the system, once a
//! second. mimalloc (the binary's allocator) keeps freed pages for reuse
//! and returns them only after a delay (ten seconds for its arenas), and
//! then only when some thread next allocates: a thread whose connections
//! all went idle would keep the memory of their last requests. Returning
//! freed memory at every free instead (purge delay 0) made the pages freed
//! and reused under load fault in again each time: 5 % of the CPU of an
//! HTTP/2 request in page faults and 1.6 % in `madvise` (`perf`,
//! `benches/load.sh --variant h2`). Once a second, whatever is free at that
//! moment goes back (and faults in again if reused): an idle thread's
//! memory is with the system within a second of its last request, and a
//! busy one pays once a second rather than at every free.

use std::time::Duration;

/// How often a proxy thread gives its free memory back.
const GIVE_BACK_EVERY: Duration = Duration::from_secs(1);

/// Runs on a proxy thread for as long as its runtime does.
pub async fn give_back_freed() {
    let mut tick = tokio::time::interval(GIVE_BACK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // SAFETY: a forced collection frees this thread's empty pages and
        // purges every free range of the process's arenas (one thread at a
        // time: another thread's purge in progress is skipped, not waited
        // on); mimalloc allows it from any thread between allocations,
        // which an await point is.
        unsafe { libmimalloc_sys::mi_collect(true) };
    }
}
