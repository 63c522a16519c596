//! The access log: one fixed-layout line per request, text or JSON, written
//! straight into the log sink's buffer with no allocation per request. Every
//! field is always there (`-` in text, `null` in JSON when it does not
//! apply), in this order: time, method, path, status, route class, client,
//! user, upstream time, total time, error.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::sink::Sink;

/// The `tracing` target whose level switches the access log on and off.
const TARGET: &str = "idgate::access";

static ENABLED: AtomicBool = AtomicBool::new(false);
static JSON: AtomicBool = AtomicBool::new(false);

/// Switches the access log on when the log filter lets `idgate::access`
/// through at info (read once, after the subscriber is installed), in JSON
/// (`log.format = "json"`) or text.
pub fn init(json: bool) {
    JSON.store(json, Ordering::Relaxed);
    let on = tracing::enabled!(target: TARGET, tracing::Level::INFO);
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether access lines are written.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// What one line says.
pub struct Line<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub route: &'static str,
    /// The client's address, as text.
    pub client: Option<&'a str>,
    pub user: Option<&'a str>,
    pub upstream: Option<Duration>,
    pub total: Duration,
    pub error: Option<&'static str>,
}

impl Line<'_> {
    /// Appends the line to the process's log.
    pub fn write(&self) {
        let json = JSON.load(Ordering::Relaxed);
        Sink::global().line(false, |out| {
            if json {
                self.json(out, SystemTime::now());
            } else {
                self.text(out, SystemTime::now());
            }
        });
    }

    /// The fields in their fixed order, for either layout.
    fn fields(&self) -> [(&'static str, Value<'_>); 9] {
        [
            ("method", Value::Text(Some(self.method))),
            ("path", Value::Text(Some(self.path))),
            ("status", Value::Number(self.status)),
            ("route", Value::Text(Some(self.route))),
            ("client", Value::Text(self.client)),
            ("user", Value::Text(self.user)),
            ("upstream_ms", Value::Millis(self.upstream)),
            ("total_ms", Value::Millis(Some(self.total))),
            ("error", Value::Text(self.error)),
        ]
    }

    /// `2026-12-07T01:23:45.123Z  INFO idgate::access: request method=GET
    /// path=/ status=200 route=proxy client=192.0.2.1 user=alice
    /// upstream_ms=0.512 total_ms=0.734 error=-`, on one line.
    pub fn text(&self, out: &mut Vec<u8>, now: SystemTime) {
        timestamp(out, now);
        out.extend_from_slice(b"  INFO idgate::access: request");
        for (name, value) in self.fields() {
            out.push(b' ');
            out.extend_from_slice(name.as_bytes());
            out.push(b'=');
            value.text(out);
        }
        out.push(b'\n');
    }

    /// The same fields as one JSON object.
    pub fn json(&self, out: &mut Vec<u8>, now: SystemTime) {
        out.extend_from_slice(b"{\"timestamp\":\"");
        timestamp(out, now);
        out.extend_from_slice(
            b"\",\"level\":\"INFO\",\"target\":\"idgate::access\",\"message\":\"request\"",
        );
        for (name, value) in self.fields() {
            out.extend_from_slice(b",\"");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":");
            value.json(out);
        }
        out.extend_from_slice(b"}\n");
    }
}

/// One field's value.
enum Value<'a> {
    Text(Option<&'a str>),
    Number(u16),
    Millis(Option<Duration>),
}

impl Value<'_> {
    /// `-` when absent.
    fn text(&self, out: &mut Vec<u8>) {
        match *self {
            Value::Text(text) => text_value(out, text),
            Value::Number(n) => out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
            Value::Millis(Some(d)) => millis(out, d),
            Value::Millis(None) => out.push(b'-'),
        }
    }

    /// `null` when absent.
    fn json(&self, out: &mut Vec<u8>) {
        match *self {
            Value::Text(text) => json_string(out, text),
            Value::Number(n) => out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
            Value::Millis(Some(d)) => millis(out, d),
            Value::Millis(None) => out.extend_from_slice(b"null"),
        }
    }
}

/// RFC 3339 UTC with milliseconds; the part up to the second is formatted
/// once a second per thread.
fn timestamp(out: &mut Vec<u8>, now: SystemTime) {
    thread_local! {
        static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    SECOND.with_borrow_mut(|(second, text)| {
        if *second != since.as_secs() {
            *second = since.as_secs();
            text.clear();
            let at = i64::try_from(*second)
                .ok()
                .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
                .unwrap_or_default();
            let _ = std::fmt::Write::write_fmt(
                text,
                format_args!("{}", at.format("%Y-%m-%dT%H:%M:%S")),
            );
        }
        out.extend_from_slice(text.as_bytes());
    });
    let ms = since.subsec_millis();
    out.extend_from_slice(&[
        b'.',
        b'0' + (ms / 100) as u8,
        b'0' + (ms / 10 % 10) as u8,
        b'0' + (ms % 10) as u8,
        b'Z',
    ]);
}

/// A duration in milliseconds with three decimals, `0.512`.
fn millis(out: &mut Vec<u8>, d: Duration) {
    let micros = d.as_micros();
    out.extend_from_slice(itoa::Buffer::new().format(micros / 1000).as_bytes());
    let frac = (micros % 1000) as u16;
    out.extend_from_slice(&[
        b'.',
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ]);
}

/// A text field: `-` when absent; spaces, quotes, backslashes and anything
/// outside printable ASCII as `\xHH`, so a field never breaks the layout.
fn text_value(out: &mut Vec<u8>, value: Option<&str>) {
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        out.push(b'-');
        return;
    };
    for &b in value.as_bytes() {
        if b.is_ascii_graphic() && b != b'"' && b != b'\\' {
            out.push(b);
        } else {
            hex_escape(out, b"\\x", b);
        }
    }
}

/// A JSON string (or `null`), escaped as JSON requires.
fn json_string(out: &mut Vec<u8>, value: Option<&str>) {
    let Some(value) = value else {
        out.extend_from_slice(b"null");
        return;
    };
    out.push(b'"');
    for &b in value.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0..0x20 | 0x7f => hex_escape(out, b"\\u00", b),
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

fn hex_escape(out: &mut Vec<u8>, prefix: &[u8], b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(prefix);
    out.push(HEX[usize::from(b >> 4)]);
    out.push(HEX[usize::from(b & 0xf)]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(path: &'a str, user: Option<&'a str>) -> Line<'a> {
        Line {
            method: "GET",
            path,
            status: 200,
            route: "proxy",
            client: Some("192.0.2.1"),
            user,
            upstream: Some(Duration::from_micros(512)),
            total: Duration::from_micros(12_034),
            error: None,
        }
    }

    fn at() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_796_606_625_007)
    }

    #[test]
    fn text_has_every_field_in_order() {
        let mut out = Vec::new();
        line("/devices", Some("alice")).text(&mut out, at());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2026-12-07T01:23:45.007Z  INFO idgate::access: request method=GET path=/devices \
             status=200 route=proxy client=192.0.2.1 user=alice upstream_ms=0.512 \
             total_ms=12.034 error=-\n"
        );
    }

    #[test]
    fn text_escapes_what_would_break_the_layout() {
        let mut out = Vec::new();
        line("/a b\"\\\n/ü", None).text(&mut out, at());
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains(" path=/a\\x20b\\x22\\x5c\\x0a/\\xc3\\xbc status="),
            "{text}"
        );
        assert!(text.contains(" user=- "), "{text}");
        assert_eq!(text.lines().count(), 1);
    }

    #[test]
    fn an_unknown_client_is_a_dash_or_null() {
        let mut l = line("/", None);
        l.client = None;
        let mut out = Vec::new();
        l.text(&mut out, at());
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(" client=- user=- "), "{text}");
        let mut out = Vec::new();
        l.json(&mut out, at());
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert!(v["client"].is_null(), "{v}");
    }

    #[test]
    fn json_parses_back_to_the_same_fields() {
        let mut out = Vec::new();
        let mut l = line("/\"quoted\"\\\u{1}/ü", None);
        l.upstream = None;
        l.error = Some("client_gone");
        l.json(&mut out, at());
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["timestamp"], "2026-12-07T01:23:45.007Z");
        assert_eq!(v["target"], "idgate::access");
        assert_eq!(v["path"], "/\"quoted\"\\\u{1}/ü");
        assert_eq!(v["status"], 200);
        assert_eq!(v["client"], "192.0.2.1");
        assert!(v["user"].is_null() && v["upstream_ms"].is_null());
        assert_eq!(v["total_ms"], 12.034);
        assert_eq!(v["error"], "client_gone");
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
    }
}
