//! Wall-clock time as the gateway stores and compares it: Unix seconds for
//! expiries, RFC 3339 UTC with microseconds for what people read.

/// Now, in Unix seconds.
pub fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Now, as the contract prints timestamps: RFC 3339 UTC with microseconds.
pub fn timestamp_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}
