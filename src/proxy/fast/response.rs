//! The upstream's response heads, for the fast path and the gateway's own
//! client on hyper (`direct`): parsed with httparse, their framing decided
//! as RFC 9112 §6.3 has it (chunked wins over a length; two lengths or
//! another coding are refused), and said anew for the client without
//! hop-by-hop headers: as HTTP/1.1 bytes, or into a header map (`Relay`).

use std::io::Write as _;
use std::mem::MaybeUninit;

use super::chunked::Chunks;
use super::request::{line, MAX_HEADERS};
use crate::policy::fields;

/// How the response body is delimited.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Framing {
    /// No body (HEAD, 204, 304).
    Empty,
    Length(u64),
    /// Relayed chunk by chunk (written anew for an HTTP/1.1 client).
    Chunked,
    /// Until the upstream closes; chunked for an HTTP/1.1 client, whose
    /// connection stays open.
    UntilClose,
}

/// Where a response body stands as it is read, by its framing: what a
/// sized one has still to come, a chunked one's state, whether it has
/// ended. Both readers of upstream bodies go by it: the fast path's relay
/// and the gateway's own client on hyper (`direct`).
#[derive(Debug)]
pub struct Progress {
    framing: Framing,
    left: u64,
    pub chunks: Chunks,
}

impl Progress {
    pub fn new(framing: Framing) -> Self {
        let left = match framing {
            Framing::Length(n) => n,
            _ => 0,
        };
        Self {
            framing,
            left,
            chunks: Chunks::default(),
        }
    }

    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// What a sized body has still to come.
    pub fn left(&self) -> u64 {
        self.left
    }

    /// How many of `available` bytes read belong to a sized body, now
    /// counted as taken.
    pub fn take_sized(&mut self, available: usize) -> usize {
        let n = available.min(usize::try_from(self.left).unwrap_or(usize::MAX));
        self.left -= n as u64;
        n
    }

    /// The whole body has been read (one until close never is: its end is
    /// the upstream closing).
    pub fn ended(&self) -> bool {
        match self.framing {
            Framing::Empty => true,
            Framing::Length(_) => self.left == 0,
            Framing::Chunked => self.chunks.done(),
            Framing::UntilClose => false,
        }
    }
}

/// What the bytes the upstream has sent so far hold.
#[derive(Debug, PartialEq, Eq)]
pub enum UpstreamHead {
    Partial,
    /// A 1xx interim answer of this many bytes, skipped.
    Interim(usize),
    Final(Final),
    /// A `101 Switching Protocols` nobody asked for.
    Switch,
    Malformed(&'static str),
}

/// A final response head, already said to the `Relay`.
#[derive(Debug, PartialEq, Eq)]
pub struct Final {
    /// Bytes of the head in the upstream's buffer.
    pub len: usize,
    pub status: u16,
    pub framing: Framing,
    /// The upstream connection may carry another request afterwards.
    pub reusable: bool,
    /// The client's connection closes after this answer.
    pub close: bool,
}

/// Where a final response head goes as the client will get it: its status,
/// the fields the client may see, and the framing said anew.
pub trait Relay {
    /// The status, and its reason phrase (the upstream's, else the usual).
    fn status(&mut self, status: u16, reason: &str);
    /// A field the client may see.
    fn field(&mut self, name: &[u8], value: &[u8]);
    /// The body's length (or, on a bodyless answer, what a GET would get).
    fn length(&mut self, n: u64);
    /// The body is relayed chunked (on HTTP/1; HTTP/2 frames it itself).
    fn chunked(&mut self);
    /// The client's connection closes after this answer.
    fn close(&mut self);
    /// The head is complete.
    fn end(&mut self);
}

/// An HTTP/1.1 response head, as bytes.
impl Relay for Vec<u8> {
    fn status(&mut self, status: u16, reason: &str) {
        self.extend_from_slice(b"HTTP/1.1 ");
        self.extend_from_slice(itoa::Buffer::new().format(status).as_bytes());
        self.push(b' ');
        self.extend_from_slice(reason.as_bytes());
        self.extend_from_slice(b"\r\n");
    }

    fn field(&mut self, name: &[u8], value: &[u8]) {
        line(self, name, value);
    }

    fn length(&mut self, n: u64) {
        let _ = write!(self, "content-length: {n}\r\n");
    }

    fn chunked(&mut self) {
        self.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }

    fn close(&mut self) {
        self.extend_from_slice(b"connection: close\r\n");
    }

    fn end(&mut self) {
        self.extend_from_slice(b"\r\n");
    }
}

/// Parses the response head at the start of `buf` (an answer to a HEAD
/// request when `head_request`); a final one is said to `out` for a client
/// whose connection closes afterwards when `close`.
pub fn parse<R: Relay>(
    buf: &[u8],
    max_bytes: usize,
    head_request: bool,
    close: bool,
    out: &mut R,
) -> UpstreamHead {
    let mut storage = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut res,
        buf,
        &mut storage,
    );
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) if len <= max_bytes => len,
        Ok(httparse::Status::Partial) if buf.len() <= max_bytes => return UpstreamHead::Partial,
        Ok(_) | Err(httparse::Error::TooManyHeaders) => {
            return UpstreamHead::Malformed("response head too large")
        }
        Err(_) => return UpstreamHead::Malformed("response head does not parse"),
    };
    let status = res.code.unwrap_or_default();
    match status {
        101 => return UpstreamHead::Switch,
        100..=199 => return UpstreamHead::Interim(len),
        _ => {}
    }
    let mut reusable = res.version == Some(1);
    let mut named: Vec<&[u8]> = Vec::new();
    let (mut length, mut chunked) = (None, false);
    for h in res.headers.iter() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"connection") {
            for token in h.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if token.eq_ignore_ascii_case(b"close") {
                    reusable = false;
                } else if !token.is_empty() && !fields::response_hop_by_hop(token) {
                    // `keep-alive`, the usual one, goes anyway: no list.
                    named.push(token);
                }
            }
        } else if name.eq_ignore_ascii_case(b"content-length") {
            match (fields::content_length(h.value), length) {
                (None, _) => return UpstreamHead::Malformed("invalid Content-Length"),
                (Some(n), Some(seen)) if n != seen => {
                    return UpstreamHead::Malformed("conflicting Content-Length")
                }
                (n, _) => length = n,
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            if chunked || !h.value.eq_ignore_ascii_case(b"chunked") {
                return UpstreamHead::Malformed("transfer coding other than chunked");
            }
            chunked = true;
        }
    }
    let bodyless = fields::bodyless_answer(head_request, status);
    reusable &= fields::reusable_after_answer(bodyless, chunked, length.is_some(), length);
    let framing = if bodyless {
        Framing::Empty
    } else {
        match (length, chunked) {
            // Transfer-Encoding overrides Content-Length (RFC 9112 §6.3),
            // as on the general path; the length is not forwarded.
            (_, true) => Framing::Chunked,
            (Some(n), false) => Framing::Length(n),
            (None, false) => Framing::UntilClose,
        }
    };
    let reason = res
        .reason
        .filter(|r| !r.is_empty())
        .or_else(|| http::StatusCode::from_u16(status).ok()?.canonical_reason())
        .unwrap_or("");
    out.status(status, reason);
    for h in res.headers.iter() {
        let name = h.name.as_bytes();
        // Content-Length is written below from the framing, so that no
        // `Connection` token can take it away.
        let skipped = fields::response_hop_by_hop(name)
            || named.iter().any(|n| name.eq_ignore_ascii_case(n))
            || name.eq_ignore_ascii_case(b"content-length");
        if !skipped {
            out.field(name, h.value);
        }
    }
    match (framing, length) {
        (Framing::Length(n), _) => out.length(n),
        // A 204 has no content to measure (RFC 9110 §8.6); a HEAD or 304
        // answer tells the length of what a GET would get.
        (Framing::Empty, Some(n)) if status != 204 => out.length(n),
        _ => {}
    }
    if matches!(framing, Framing::Chunked | Framing::UntilClose) {
        out.chunked();
    }
    if close {
        out.close();
    }
    out.end();
    UpstreamHead::Final(Final {
        len,
        status,
        framing,
        reusable: reusable && framing != Framing::UntilClose,
        close,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(raw: &str, head_request: bool) -> (UpstreamHead, String) {
        let mut out = Vec::new();
        let r = parse(raw.as_bytes(), 1024, head_request, false, &mut out);
        (r, String::from_utf8(out).unwrap())
    }

    fn final_of(raw: &str) -> (Final, String) {
        match reply(raw, false) {
            (UpstreamHead::Final(f), out) => (f, out),
            other => panic!("not a final answer: {other:?}"),
        }
    }

    #[test]
    fn a_sized_answer_is_relayed_without_hop_by_hop_headers() {
        let raw = "HTTP/1.1 200 Fine\r\nContent-Length: 2\r\nConnection: keep-alive, X-Foo\r\n\
                   X-Foo: secret\r\nKeep-Alive: timeout=5\r\nProxy-Connection: x\r\n\
                   Set-Cookie: a=1\r\n\r\nhi";
        let (f, out) = final_of(raw);
        assert_eq!(f.len, raw.len() - 2);
        assert_eq!(
            (f.status, f.framing, f.reusable, f.close),
            (200, Framing::Length(2), true, false)
        );
        assert_eq!(
            out,
            "HTTP/1.1 200 Fine\r\nSet-Cookie: a=1\r\ncontent-length: 2\r\n\r\n"
        );
    }

    #[test]
    fn chunked_answers_are_announced_anew() {
        let (f, out) =
            final_of("HTTP/1.1 200 OK\r\nTransfer-Encoding: CHUNKED\r\nTrailer: x\r\n\r\n");
        assert_eq!(f.framing, Framing::Chunked);
        assert_eq!(out, "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n");
    }

    #[test]
    fn an_answer_until_close_is_chunked_for_the_client() {
        let (f, out) = final_of("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n");
        assert_eq!(
            (f.framing, f.reusable, f.close),
            (Framing::UntilClose, false, false)
        );
        assert!(out.ends_with("transfer-encoding: chunked\r\n\r\n"));
    }

    #[test]
    fn bodyless_answers_keep_their_length_header_but_204() {
        for (raw, head, reusable) in [
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n",
                true,
                false,
            ),
            (
                "HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n",
                false,
                false,
            ),
            ("HTTP/1.1 204 No Content\r\n\r\n", false, true),
            (
                "HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n",
                false,
                false,
            ),
            (
                "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n",
                false,
                true,
            ),
        ] {
            let (UpstreamHead::Final(f), out) = reply(raw, head) else {
                panic!("{raw}")
            };
            assert_eq!((f.framing, f.reusable), (Framing::Empty, reusable), "{raw}");
            let length = raw.contains("Content-Length") && f.status != 204;
            assert_eq!(out.contains("content-length"), length, "{raw}");
        }
    }

    #[test]
    fn no_connection_token_takes_the_length_away() {
        let raw = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: Content-Length\r\n\r\nhello";
        let (f, out) = final_of(raw);
        assert_eq!(f.framing, Framing::Length(5));
        assert_eq!(out, "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n");
        let twice = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n";
        assert_eq!(final_of(twice).1.matches("content-length").count(), 1);
    }

    #[test]
    fn upstream_close_and_http_1_0_end_the_upstream_connection() {
        let (f, _) = final_of("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
        assert!(!f.reusable && !f.close);
        let (f, _) = final_of("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert!(!f.reusable);
    }

    #[test]
    fn interim_answers_and_switches_are_told_apart() {
        let raw = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n";
        assert_eq!(reply(raw, false).0, UpstreamHead::Interim(25));
        let switch = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
        assert_eq!(reply(switch, false).0, UpstreamHead::Switch);
    }

    #[test]
    fn ambiguous_framing_is_refused() {
        for raw in [
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
            "garbage\r\n\r\n",
        ] {
            assert!(
                matches!(reply(raw, false).0, UpstreamHead::Malformed(_)),
                "{raw}"
            );
        }
        let (r, out) = reply(
            &format!("HTTP/1.1 200 OK\r\nX: {}", "a".repeat(2000)),
            false,
        );
        assert!(matches!(r, UpstreamHead::Malformed(_)) && out.is_empty());
    }

    #[test]
    fn chunked_overrides_a_length_and_ends_the_upstream_connection() {
        let raw = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n";
        let (f, out) = final_of(raw);
        assert_eq!(f.framing, Framing::Chunked);
        assert!(!f.reusable);
        assert!(
            !out.to_ascii_lowercase().contains("content-length"),
            "{out}"
        );
    }

    #[test]
    fn a_partial_head_waits_for_more() {
        assert_eq!(
            reply("HTTP/1.1 200 OK\r\nContent-", false).0,
            UpstreamHead::Partial
        );
    }
}
