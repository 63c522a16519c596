//! The `idgate` binary: see `idgate --help`.

use libmimalloc_sys::{mi_option_set, mi_option_t};

/// mimalloc: the data plane allocates small, short-lived buffers per
/// request, which it serves with less CPU than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (its place in `mi_option_e`, which
/// the sys crate names no constant for).
const MI_OPTION_PURGE_DELAY: mi_option_t = 15;

fn main() -> std::process::ExitCode {
    // Memory freed goes back to the system at once. By default mimalloc
    // waits a second and then purges only at the thread's next allocation:
    // a proxy thread whose connections all went idle kept the memory of
    // their last requests. Measured with benches/load.sh: no CPU cost per
    // request, the idle connections' memory a tenth.
    // SAFETY: sets an option before any thread but this one runs.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    idgate::cli::run()
}

#[cfg(test)]
mod tests {
    use libmimalloc_sys::mi_option_get;

    use super::MI_OPTION_PURGE_DELAY;

    /// The option set is the purge delay: its default in this mimalloc
    /// (v3) is 1000 ms, which no neighbouring option has.
    #[test]
    fn the_option_set_is_the_purge_delay() {
        // SAFETY: reads an option.
        assert_eq!(unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) }, 1000);
    }
}
