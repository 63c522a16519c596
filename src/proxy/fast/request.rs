//! Request heads the HTTP/1 fast path forwards itself: parsed with
//! httparse, taken only when nothing about their framing, routing or
//! headers needs the general path, and rewritten for the upstream from the
//! parsed fields (never copied through as received).

use std::mem::MaybeUninit;
use std::ops::Range;

use http::Method;

use crate::policy::fields::{self, RequestField};
use crate::policy::forwarding::{self, Relayed, Value};
use crate::policy::{cookies, Decision, Policy};

/// Most header fields a request may carry (as on the general path).
pub const MAX_HEADERS: usize = 256;

/// The largest request body the fast path takes; it is read whole before
/// the request goes upstream. Larger uploads stream on the general path.
pub const MAX_BODY: u64 = 64 * 1024;

/// What the fast path may take, fixed at startup.
pub struct Limits<'a> {
    pub max_uri_bytes: usize,
    pub max_header_bytes: usize,
    pub identity_headers: &'a [String],
    /// Only what it decides needs a session is the fast path's.
    pub policy: &'a Policy,
    /// The client is a trusted proxy: its forwarding headers stay, its
    /// `X-Forwarded-For` chain is extended (`policy::forwarding`).
    pub trusted: bool,
}

/// What to do with the bytes a client has sent so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Intake {
    /// The head is not complete yet.
    Partial,
    /// A signed-in person's ordinary request: forwarded by the fast path.
    Forward(Head),
    /// Anything else: served by the general path, from these bytes on.
    HandOff,
    /// Bytes that are no request head (httparse, which hyper reads with
    /// too, refuses them): answered with 400, the connection closed.
    Malformed,
}

/// A parsed request head; ranges index the client's buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct Head {
    /// Bytes of the head, its blank line included.
    pub len: usize,
    pub method: Method,
    pub target: Range<usize>,
    /// The path, without the query.
    pub path: Range<usize>,
    pub host: Range<usize>,
    pub cookie: Range<usize>,
    /// The body's length; `None` for a request without one.
    pub content_length: Option<u64>,
    /// The client asked to close the connection after this answer.
    pub close: bool,
    /// The client prefers pages (`Accept: text/html`).
    pub html: bool,
    /// It came from a trusted proxy (`Limits::trusted`).
    pub relayed: bool,
    /// A trusted proxy's `X-Forwarded-For` value (one line at most).
    pub forwarded_for: Option<Range<usize>>,
    /// A trusted proxy sent `X-Forwarded-Proto`, and `X-Forwarded-Host`
    /// (kept among the fields).
    pub forwarded_proto: bool,
    pub forwarded_host: bool,
}

/// A field forwarded as it came.
#[derive(Debug, PartialEq, Eq)]
pub struct Field {
    pub name: Range<usize>,
    pub value: Range<usize>,
}

/// Reads the request head at the start of `buf`, filling `fields` with the
/// ones forwarded as they are.
pub fn parse(buf: &[u8], limits: &Limits<'_>, kept: &mut Vec<Field>) -> Intake {
    // Left uninitialised: httparse fills what it uses (zeroing 256 entries
    // for every request would cost more than parsing the head).
    let mut storage = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut storage) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() <= limits.max_header_bytes => {
            return Intake::Partial
        }
        // Too large: hyper answers 431.
        Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
            return Intake::HandOff
        }
        Err(_) => return Intake::Malformed,
    };
    if len > limits.max_header_bytes || req.version != Some(1) {
        return Intake::HandOff;
    }
    let at = |part: &[u8]| {
        let start = part.as_ptr() as usize - buf.as_ptr() as usize;
        start..start + part.len()
    };
    let (Some(method), Some(target)) = (req.method, req.path) else {
        return Intake::HandOff;
    };
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return Intake::HandOff;
    };
    let path = target.split('?').next().unwrap_or_default();
    if method == Method::CONNECT
        || target.len() > limits.max_uri_bytes
        || !target.starts_with('/')
        || !target.bytes().all(is_target_byte)
        || limits.policy.decide(&method, path) != Decision::Session
    {
        return Intake::HandOff;
    }
    let (target, path) = (at(target.as_bytes()), at(path.as_bytes()));

    kept.clear();
    let (mut host, mut cookie, mut length) = (None, None, None);
    let (mut close, mut html) = (false, false);
    let mut forwarded_for = None;
    let (mut forwarded_proto, mut forwarded_host) = (false, false);
    for h in req.headers.iter() {
        let (name, value) = (at(h.name.as_bytes()), at(h.value));
        match fields::request_field(h.name.as_bytes(), limits.identity_headers) {
            RequestField::Keep => kept.push(Field { name, value }),
            RequestField::Accept => {
                html |= fields::accepts_html(h.value);
                kept.push(Field { name, value });
            }
            // An invalid host is the general path's to refuse.
            RequestField::Host if host.is_none() && fields::valid_host(h.value) => {
                host = Some(value)
            }
            RequestField::Cookie if cookie.is_none() => cookie = Some(value),
            RequestField::ContentLength if length.is_none() => {
                match fields::content_length(h.value) {
                    Some(n) if n <= MAX_BODY => length = Some(n),
                    _ => return Intake::HandOff,
                }
            }
            RequestField::Connection => {
                for token in h.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                    if token.eq_ignore_ascii_case(b"close") {
                        close = true;
                    } else if !token.eq_ignore_ascii_case(b"keep-alive") && !token.is_empty() {
                        // It names further hop-by-hop headers.
                        return Intake::HandOff;
                    }
                }
            }
            // A trusted proxy's forwarding headers stay (its chain goes
            // into the one `X-Forwarded-For` line written upstream).
            RequestField::Forwarding if limits.trusted => {
                let name = h.name.as_bytes();
                if name.eq_ignore_ascii_case(b"x-forwarded-for") {
                    if forwarded_for.replace(value.clone()).is_some() {
                        return Intake::HandOff;
                    }
                    continue;
                }
                forwarded_proto |= name.eq_ignore_ascii_case(b"x-forwarded-proto");
                forwarded_host |= name.eq_ignore_ascii_case(b"x-forwarded-host");
                kept.push(Field {
                    name: at(name),
                    value,
                });
            }
            RequestField::HopByHop | RequestField::Forwarding | RequestField::Reserved => {}
            // Repeated Host, Cookie or Content-Length; chunked bodies,
            // upgrades and `Expect`.
            _ => return Intake::HandOff,
        }
    }
    let (Some(host), Some(cookie)) = (host, cookie) else {
        return Intake::HandOff;
    };
    Intake::Forward(Head {
        len,
        method,
        target,
        path,
        host,
        cookie,
        content_length: length,
        close,
        html,
        relayed: limits.trusted,
        forwarded_for,
        forwarded_proto,
        forwarded_host,
    })
}

/// Bytes of an origin-form target that every parser reads alike: RFC 3986's
/// unreserved, sub-delims, `:`, `@`, `/`, `?` and `%`.
fn is_target_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b)
}

/// What the upstream request says besides the client's fields.
pub struct Rewrite<'a> {
    /// `Host` naming the upstream instead of the client's.
    pub host: Option<&'a [u8]>,
    pub client: &'a [u8],
    pub proto: &'a [u8],
}

/// Writes the upstream's request head into `out`; `identity` appends the
/// identity header lines.
pub fn write_head(
    out: &mut Vec<u8>,
    buf: &[u8],
    head: &Head,
    fields: &[Field],
    rewrite: &Rewrite<'_>,
    identity: impl FnOnce(&mut Vec<u8>),
) {
    out.extend_from_slice(head.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(&buf[head.target.clone()]);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let client_host = &buf[head.host.clone()];
    line(out, b"host", rewrite.host.unwrap_or(client_host));
    cookie_line(out, &buf[head.cookie.clone()]);
    if let Some(n) = head.content_length {
        use std::io::Write as _;
        let _ = write!(out, "content-length: {n}\r\n");
    }
    for f in fields {
        line(out, &buf[f.name.clone()], &buf[f.value.clone()]);
    }
    let relayed = head.relayed.then(|| Relayed {
        chain: head.forwarded_for.iter().map(|r| &buf[r.clone()]),
        proto: head.forwarded_proto,
        host: head.forwarded_host,
    });
    forwarding_lines(
        out,
        rewrite.client,
        rewrite.proto,
        Some(client_host),
        relayed,
    );
    identity(out);
    out.extend_from_slice(b"\r\n");
}

/// Appends the X-Forwarded-* lines `policy::forwarding` writes, for both
/// data paths' heads written as bytes: `client` is the peer's address,
/// `proto` the scheme, `host` the host the client named, `relayed` what a
/// trusted proxy sent.
pub fn forwarding_lines<'v>(
    out: &mut Vec<u8>,
    client: &[u8],
    proto: &[u8],
    host: Option<&[u8]>,
    relayed: Option<Relayed<impl Iterator<Item = &'v [u8]>>>,
) {
    forwarding::forwarded(client, host.is_some(), relayed, |name, value| {
        let value = match value {
            Value::Peer => client,
            Value::Proto => proto,
            Value::Host => host.expect("named only with a host"),
            Value::Chain(chain) => chain,
        };
        line(out, name.name().as_bytes(), value);
    });
}

/// Appends the `Cookie` line without the gateway's own cookies; none when
/// no other cookie is left.
fn cookie_line(out: &mut Vec<u8>, value: &[u8]) {
    let start = out.len();
    out.extend_from_slice(b"cookie: ");
    if cookies::append_foreign(value, out) == 0 {
        out.truncate(start);
    } else {
        out.extend_from_slice(b"\r\n");
    }
}

/// Appends one `name: value` line.
pub fn line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::policy::fields::DEFAULT_IDENTITY_HEADERS;

    fn limits() -> Limits<'static> {
        let names = DEFAULT_IDENTITY_HEADERS.iter().map(|n| n.to_string());
        Limits {
            max_uri_bytes: 64,
            max_header_bytes: 512,
            identity_headers: Vec::leak(names.collect()),
            policy: Box::leak(Box::new(policy())),
            trusted: false,
        }
    }

    fn policy() -> Policy {
        let (rules, _) = crate::policy::rules::check_all(&[crate::policy::RouteSpec {
            path: "/api/v3/".into(),
            allow: Some("bearer".into()),
            ..Default::default()
        }]);
        Policy::new(rules, Some("/account"))
    }

    fn verdict(raw: &str) -> Intake {
        parse(raw.as_bytes(), &limits(), &mut Vec::new())
    }

    fn forwarded(raw: &str) -> (Head, Vec<Field>) {
        let mut fields = Vec::new();
        match parse(raw.as_bytes(), &limits(), &mut fields) {
            Intake::Forward(head) => (head, fields),
            other => panic!("not forwarded: {other:?}\n{raw}"),
        }
    }

    fn upstream(raw: &str) -> String {
        let (head, fields) = forwarded(raw);
        let mut out = Vec::new();
        let rewrite = Rewrite {
            host: None,
            client: b"192.0.2.7",
            proto: b"http",
        };
        write_head(&mut out, raw.as_bytes(), &head, &fields, &rewrite, |o| {
            line(o, b"x-forwarded-user", b"ada")
        });
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn an_ordinary_signed_in_request_is_forwarded_rewritten() {
        let raw = "GET /console/apps?x=1 HTTP/1.1\r\nHost: gw\r\nCookie: s=1\r\n\
                   Accept: text/html\r\nX-Forwarded-User: mallory\r\nX-Idgate-Any: x\r\n\
                   X-Forwarded-For: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\nKeep-Alive: 5\r\n\
                   X_Forwarded_Host: evil\r\nContent_Length: 5\r\nTransfer_Encoding: chunked\r\n\
                   Connection: keep-alive\r\nTE: trailers\r\nUser-Agent: t\r\n\r\nNEXT";
        let (head, _) = forwarded(raw);
        assert_eq!(head.len, raw.len() - 4);
        assert!(head.html && !head.close);
        assert_eq!(&raw[head.path.clone()], "/console/apps");
        assert_eq!(
            upstream(raw),
            "GET /console/apps?x=1 HTTP/1.1\r\nhost: gw\r\ncookie: s=1\r\n\
             Accept: text/html\r\nUser-Agent: t\r\nx-forwarded-for: 192.0.2.7\r\n\
             x-forwarded-proto: http\r\nx-forwarded-host: gw\r\nx-forwarded-user: ada\r\n\r\n"
        );
    }

    #[test]
    fn bare_line_feeds_are_rewritten_with_crlf() {
        let raw = "GET / HTTP/1.1\nHost: gw\nCookie: s=1\n\n";
        assert_eq!(
            upstream(raw),
            "GET / HTTP/1.1\r\nhost: gw\r\ncookie: s=1\r\nx-forwarded-for: 192.0.2.7\r\n\
             x-forwarded-proto: http\r\nx-forwarded-host: gw\r\nx-forwarded-user: ada\r\n\r\n"
        );
    }

    #[test]
    fn a_body_length_is_written_canonically() {
        let raw = "POST /a HTTP/1.1\r\nHost: gw\r\nCookie: s=1\r\nContent-Length: 0005\r\n\r\n";
        let (head, _) = forwarded(raw);
        assert_eq!(head.content_length, Some(5));
        assert!(upstream(raw).contains("\r\ncontent-length: 5\r\n"));
        let bodyless = "POST /a HTTP/1.1\r\nHost: gw\r\nCookie: s=1\r\n\r\n";
        assert_eq!(forwarded(bodyless).0.content_length, None);
        assert!(!upstream(bodyless).contains("content-length"));
    }

    #[test]
    fn connection_close_is_noted_and_not_forwarded() {
        let raw = "GET / HTTP/1.1\r\nHost: gw\r\nCookie: s=1\r\nConnection: Close\r\n\r\n";
        assert!(forwarded(raw).0.close);
        assert!(!upstream(raw).to_ascii_lowercase().contains("connection"));
    }

    #[test]
    fn an_incomplete_head_waits_for_more() {
        assert_eq!(verdict("GET / HTTP/1.1\r\nHost: gw\r\n"), Intake::Partial);
        assert_eq!(verdict("GE"), Intake::Partial);
    }

    #[test]
    fn everything_unusual_goes_to_the_general_path() {
        let base = "Host: gw\r\nCookie: s=1\r\n";
        for raw in [
            // Framing the general path decides on.
            format!("POST / HTTP/1.1\r\n{base}Transfer-Encoding: chunked\r\n\r\n"),
            format!("POST / HTTP/1.1\r\n{base}Content-Length: 1\r\nContent-Length: 1\r\n\r\n"),
            format!("POST / HTTP/1.1\r\n{base}Content-Length: +5\r\n\r\n"),
            format!("POST / HTTP/1.1\r\n{base}Content-Length: 0x5\r\n\r\n"),
            format!("POST / HTTP/1.1\r\n{base}Content-Length: 5 5\r\n\r\n"),
            format!("POST / HTTP/1.1\r\n{base}Content-Length: \r\n\r\n"),
            format!("POST / HTTP/1.1\r\n{base}Content-Length: 65537\r\n\r\n"),
            format!("POST / HTTP/1.1\r\n{base}Expect: 100-continue\r\n\r\n"),
            // Protocol switches, other versions, tunnels, absolute targets.
            format!("GET / HTTP/1.1\r\n{base}Upgrade: websocket\r\nConnection: upgrade\r\n\r\n"),
            format!("GET / HTTP/1.0\r\n{base}\r\n"),
            format!("CONNECT gw:443 HTTP/1.1\r\n{base}\r\n"),
            format!("GET http://other/x HTTP/1.1\r\n{base}\r\n"),
            format!("GET * HTTP/1.1\r\n{base}\r\n"),
            format!("GET /a\"b HTTP/1.1\r\n{base}\r\n"),
            // The gateway's own routes, routes that pass without a
            // session, the stack paths the gateway treats itself.
            format!("GET /oauth/login HTTP/1.1\r\n{base}\r\n"),
            format!("GET /.idgate/me HTTP/1.1\r\n{base}\r\n"),
            format!("GET /api/v3/users HTTP/1.1\r\n{base}\r\n"),
            format!("POST /api/v3/users/a/login%2Dtokens HTTP/1.1\r\n{base}\r\n"),
            format!("GET /account/logout HTTP/1.1\r\n{base}\r\n"),
            // No session, two sessions, no or two hosts.
            "GET / HTTP/1.1\r\nHost: gw\r\n\r\n".to_string(),
            format!("GET / HTTP/1.1\r\n{base}Cookie: t=2\r\n\r\n"),
            "GET / HTTP/1.1\r\nCookie: s=1\r\n\r\n".to_string(),
            format!("GET / HTTP/1.1\r\n{base}Host: other\r\n\r\n"),
            // Connection naming other headers.
            format!("GET / HTTP/1.1\r\n{base}Connection: x-secret\r\nX-Secret: 1\r\n\r\n"),
            // Over the limits.
            format!("GET /{} HTTP/1.1\r\n{base}\r\n", "a".repeat(64)),
            format!("GET / HTTP/1.1\r\n{base}X-Big: {}\r\n\r\n", "a".repeat(512)),
        ] {
            assert_eq!(verdict(&raw), Intake::HandOff, "{raw:?}");
        }
        let endless = format!("GET / HTTP/1.1\r\n{base}X-Big: {}", "a".repeat(600));
        assert_eq!(verdict(&endless), Intake::HandOff);
    }

    #[test]
    fn what_is_no_request_head_is_malformed() {
        let base = "Host: gw\r\nCookie: s=1\r\n";
        for raw in [
            // obs-fold, space before the colon, control bytes, bad version.
            format!("GET / HTTP/1.1\r\n{base}X-A: 1\r\n  folded\r\n\r\n"),
            format!("GET / HTTP/1.1\r\n{base}X-A : 1\r\n\r\n"),
            format!("GET / HTTP/1.1\r\n{base}X-A: a\0b\r\n\r\n"),
            format!("GET / HTTP/1.1\r\n{base}X-A: a\rb\r\n\r\n"),
            format!("GET / HTTP/1.2\r\n{base}\r\n"),
            "GARBAGE\r\n\r\n".to_string(),
        ] {
            assert_eq!(verdict(&raw), Intake::Malformed, "{raw:?}");
        }
        let many: String = (0..300).map(|i| format!("X-{i}: 1\r\n")).collect();
        let too_many = format!("GET / HTTP/1.1\r\n{base}{many}\r\n");
        let limits = Limits {
            max_header_bytes: 1 << 20,
            ..limits()
        };
        assert_eq!(
            parse(too_many.as_bytes(), &limits, &mut Vec::new()),
            Intake::HandOff,
            "hyper answers 431"
        );
    }

    #[test]
    fn configured_identity_headers_are_dropped_too() {
        let names = ["x-remote-user".to_string()];
        let limits = Limits {
            identity_headers: &names,
            ..limits()
        };
        let raw = "GET / HTTP/1.1\r\nHost: gw\r\nCookie: s=1\r\nX_Remote_User: root\r\n\r\n";
        let mut fields = Vec::new();
        assert!(matches!(
            parse(raw.as_bytes(), &limits, &mut fields),
            Intake::Forward(_)
        ));
        assert!(fields.is_empty());
    }

    /// From a trusted proxy the forwarding headers stay and its chain is
    /// extended; from anyone else they go and what the gateway saw is
    /// written. Two `X-Forwarded-For` lines are left to the general path.
    #[test]
    fn a_trusted_proxys_forwarding_headers_stay_and_its_chain_grows() {
        let raw = "GET / HTTP/1.1\r\nHost: gw\r\nCookie: s=1\r\nX-Forwarded-For: 203.0.113.1\r\n\
                   X-Forwarded-Proto: https\r\nX-Real-IP: 203.0.113.1\r\n\r\n";
        let rewrite = Rewrite {
            host: None,
            client: b"10.0.0.9",
            proto: b"http",
        };
        let upstream = |trusted: bool| {
            let limits = Limits {
                trusted,
                ..limits()
            };
            let mut fields = Vec::new();
            let Intake::Forward(head) = parse(raw.as_bytes(), &limits, &mut fields) else {
                panic!("forwarded");
            };
            let mut out = Vec::new();
            write_head(&mut out, raw.as_bytes(), &head, &fields, &rewrite, |_| {});
            String::from_utf8(out).unwrap()
        };
        let trusted = upstream(true);
        assert!(
            trusted.contains("x-forwarded-for: 203.0.113.1, 10.0.0.9\r\n"),
            "{trusted}"
        );
        assert!(
            trusted.contains("X-Forwarded-Proto: https\r\n"),
            "{trusted}"
        );
        assert!(
            !trusted.contains("x-forwarded-proto: http\r\n"),
            "{trusted}"
        );
        assert!(trusted.contains("X-Real-IP: 203.0.113.1\r\n"), "{trusted}");
        assert!(trusted.contains("x-forwarded-host: gw\r\n"), "{trusted}");
        let untrusted = upstream(false);
        assert!(
            untrusted.contains("x-forwarded-for: 10.0.0.9\r\n"),
            "{untrusted}"
        );
        assert!(
            untrusted.contains("x-forwarded-proto: http\r\n"),
            "{untrusted}"
        );
        assert!(!untrusted.contains("203.0.113.1"), "{untrusted}");

        let twice = "GET / HTTP/1.1\r\nHost: gw\r\nCookie: s=1\r\nX-Forwarded-For: a\r\nX-Forwarded-For: b\r\n\r\n";
        let limits = Limits {
            trusted: true,
            ..limits()
        };
        assert_eq!(
            parse(twice.as_bytes(), &limits, &mut Vec::new()),
            Intake::HandOff
        );
    }
}
