//! Gives the memory a proxy thread has freed back to the system, once a
//! second. mimalloc (the binary's allocator) keeps freed pages for reuse
//! and returns them only after a delay, and then only when the thread next
//! allocates: a thread whose connections all went idle would keep the
//! memory of their last requests. Returning freed memory at once instead
//! (purge delay 0) made every page freed and reused under load fault in
//! again: 5 % of the CPU of an HTTP/2 request in page faults and 1.6 % in
//! `madvise` (`perf`, `benches/load.sh --variant h2`). Once a second, memory
//! reused within the second never leaves, and an idle thread's is back with
//! the system a second after its last request.

use std::time::Duration;

/// How often a proxy thread gives its free memory back.
const GIVE_BACK_EVERY: Duration = Duration::from_secs(1);

/// Runs on a proxy thread for as long as its runtime does.
pub async fn give_back_freed() {
    let mut tick = tokio::time::interval(GIVE_BACK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // SAFETY: collects this thread's own heap and the free pages of
        // the process; mimalloc allows it from any thread at any time.
        unsafe { libmimalloc_sys::mi_collect(true) };
    }
}
