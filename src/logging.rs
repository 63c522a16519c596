//! Log output: text by default, JSON by config, written to stderr by a
//! background thread so that a request never waits on the terminal or the
//! log collector. Pingora's own `log` records go to the same place.

use std::io::IsTerminal;
use std::sync::Mutex;

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};

use crate::config::LogConfig;

/// Keeps the writer thread alive; dropping it writes out what is buffered.
static WRITER: Mutex<Option<WorkerGuard>> = Mutex::new(None);

pub fn init(config: &LogConfig) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Not lossy: under a flood the request waits rather than a line vanishing.
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer);
    let result = if config.format == "json" {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
    match result {
        Ok(()) => *WRITER.lock().unwrap_or_else(|e| e.into_inner()) = Some(guard),
        Err(e) => eprintln!("idgate: logging already initialised: {e}"),
    }
}

/// Writes out every buffered line; call before the process exits.
pub fn flush() {
    drop(WRITER.lock().unwrap_or_else(|e| e.into_inner()).take());
}
