//! Log output: text by default, JSON by config, to stderr. Every line, the
//! access log's and `tracing`'s, goes through one buffered sink written by a
//! background thread (`sink`), so a request never waits on the terminal or
//! the log collector; the access log (`access`) formats its fixed-layout
//! line straight into that buffer.

pub mod access;
pub mod sink;

use std::io::IsTerminal;

use crate::config::LogConfig;
use sink::Sink;

pub fn init(config: &LogConfig) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let json = config.format == "json";
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(Sink::global());
    let result = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
    match result {
        Ok(()) => access::init(json),
        Err(e) => eprintln!("idgate: logging already initialised: {e}"),
    }
}

/// Writes out every pending line; call before the process exits.
pub fn flush() {
    Sink::global().close();
}
