//! Wall-clock time as the gateway stores and compares it: Unix seconds for
//! expiries, RFC 3339 UTC with microseconds for what people read.

/// Now, in Unix seconds (read on every proxied request: no calendar
/// arithmetic).
pub fn unix_now() -> i64 {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(since) => since.as_secs() as i64,
        Err(before) => -(before.duration().as_secs() as i64),
    }
}

/// Now, as the contract prints timestamps: RFC 3339 UTC with microseconds.
pub fn timestamp_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}
