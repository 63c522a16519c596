//! The `idgate` binary: see `idgate --help`.

/// mimalloc: the data plane allocates small, short-lived buffers per
/// request, which it serves with less CPU than the system allocator. Each
/// proxy thread gives what it freed back to the system once a second
/// (`idgate::memory`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    idgate::cli::run()
}
