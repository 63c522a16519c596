//! Both data paths compared on one corpus of requests: ordinary ones,
//! odd-but-valid ones and hostile ones, each sent as raw bytes to a gateway
//! whose HTTP/1.1 requests start on the fast path and to one where hyper
//! serves all of them (`server.fast_path = false`), each in front of a raw
//! upstream that records every byte. Both must decide alike (the same
//! answer status to the client) and send the upstream the same requests:
//! the same request line, body, and header fields with the same values in
//! the same order per name. What may differ, and why, is listed in the
//! README ("Both data paths"): the case of header names and the order of
//! fields with different names, and the upstream's `Date`.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::login::{signed_in, SignedIn};
use common::raw_upstream::{ParsedRequest, RawUpstream};

/// One request of the corpus; `{c}` stands for the gateway's session cookie.
struct Case {
    name: &'static str,
    raw: String,
}

fn case(name: &'static str, raw: &str) -> Case {
    Case {
        name,
        raw: raw.to_string(),
    }
}

fn corpus() -> Vec<Case> {
    let big = "a".repeat(70_000);
    vec![
        case("get", "GET /a?x=1 HTTP/1.1\r\nHost: gw\r\nCookie: {c}\r\nAccept: text/html\r\nConnection: close\r\n\r\n"),
        case("post", "POST /p HTTP/1.1\r\nHost: gw\r\nCookie: {c}\r\nContent-Length: 5\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nhello"),
        case("head", "HEAD /h HTTP/1.1\r\nHost: gw:8080\r\nCookie: {c}\r\nConnection: close\r\n\r\n"),
        case("other cookies", "GET /c HTTP/1.1\r\nHost: gw\r\nCookie: a=1; {c}; _session=x; b=2\r\nConnection: close\r\n\r\n"),
        case("repeated fields", "GET /r HTTP/1.1\r\nHost: gw\r\nCookie: {c}\r\nX-A: 1\r\nx-a: 2\r\nX-B: 3\r\nX-A: 4\r\nConnection: close\r\n\r\n"),
        case("odd spacing", "GET /s HTTP/1.1\r\nHost:gw\r\nCookie: {c}\r\nX-Pad:   padded   \r\nX-Empty:\r\nConnection: close\r\n\r\n"),
        case("bare lf", "GET /lf HTTP/1.1\nHost: gw\nCookie: {c}\nConnection: close\n\n"),
        case("identity forged", "GET /i HTTP/1.1\r\nHost: gw\r\nCookie: {c}\r\nX-Forwarded-User: root\r\nX_Forwarded_User: root\r\nX-Idgate-Any: x\r\nX-Forwarded-Client-Cert: Hash=1\r\nConnection: close\r\n\r\n"),
        case("forwarded twice", "GET /f2 HTTP/1.1\r\nHost: gw\r\nCookie: {c}\r\nX-Forwarded-For: 203.0.113.1\r\nX-Forwarded-For: 10.0.0.2, 10.0.0.3\r\nX_Forwarded_For: 6.6.6.6\r\nConnection: close\r\n\r\n"),
        case("forwarded repeated", "GET /f3 HTTP/1.1\r\nHost: gw\r\nCookie: {c}\r\nx-forwarded-for: 203.0.113.1\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: a\r\nX-Forwarded-Host: b\r\nX-Forwarded-Port: 443\r\nX-Forwarded-Prefix: /p\r\nX_Forwarded_Proto: ftp\r\nConnection: close\r\n\r\n"),
        case("forwarded empty", "GET /f4 HTTP/1.1\r\nHost: gw\r\nCookie: {c}\r\nX-Forwarded-For:\r\nConnection: close\r\n\r\n"),
        case("forwarding forged", "GET /f HTTP/1.1\r\nHost: gw\r\nCookie: {c}\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Host: evil\r\nX-Forwarded-Proto: https\r\nForwarded: for=6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nConnection: close\r\n\r\n"),
        // With a body: on hyper, sent by its client, the fields added to
        // its header map rather than written as bytes.
        case("forwarded twice with a body", "POST /f2b HTTP/1.1\r\nHost: gw\r\nCookie: {c}\r\nX-Forwarded-For: 203.0.113.1\r\nX-Forwarded-For: 10.0.0.2, 10.0.0.3\r\nX_Forwarded_For: 6.6.6.6\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"),
        case("forwarding forged with a body", "POST /fb HTTP/1.1\r\nHost: gw\r\nCookie: {c}\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Host: evil\r\nX-Forwarded-Proto: https\r\nForwarded: for=6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"),
        case("hop by hop", "GET /hop HTTP/1.1\r\nHost: gw\r\nCookie: {c}\r\nKeep-Alive: 5\r\nTE: trailers\r\nTrailer: X\r\nProxy-Authorization: Basic eA==\r\nProxy-Connection: keep-alive\r\nConnection: close\r\n\r\n"),
        case("connection names", "GET /cn HTTP/1.1\r\nHost: gw\r\nCookie: {c}\r\nConnection: close, X-Secret, Host, Content-Length\r\nX-Secret: 1\r\n\r\n"),
        case("connection names identity", "GET /ci HTTP/1.1\r\nHost: gw\r\nCookie: {c}\r\nConnection: close, X-Forwarded-User, Cookie\r\n\r\n"),
        case("obs-fold", "GET /fold HTTP/1.1\r\nHost: gw\r\nCookie: {c}\r\nX-A: 1\r\n folded\r\nConnection: close\r\n\r\n"),
        case("space before colon", "GET /sp HTTP/1.1\r\nHost: gw\r\nCookie: {c}\r\nX-A : 1\r\nConnection: close\r\n\r\n"),
        case("two lengths same", "POST /cl2 HTTP/1.1\r\nHost: gw\r\nCookie: {c}\r\nContent-Length: 3\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"),
        case("two lengths differ", "POST /cl3 HTTP/1.1\r\nHost: gw\r\nCookie: {c}\r\nContent-Length: 3\r\nContent-Length: 4\r\nConnection: close\r\n\r\nabcd"),
        case("length list", "POST /cl4 HTTP/1.1\r\nHost: gw\r\nCookie: {c}\r\nContent-Length: 3, 3\r\nConnection: close\r\n\r\nabc"),
        case("signed length", "POST /cl5 HTTP/1.1\r\nHost: gw\r\nCookie: {c}\r\nContent-Length: +3\r\nConnection: close\r\n\r\nabc"),
        case("length and chunked", "POST /clte HTTP/1.1\r\nHost: gw\r\nCookie: {c}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
        case("chunked", "POST /ch HTTP/1.1\r\nHost: gw\r\nCookie: {c}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3;ext=1\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n"),
        case("chunked upper", "POST /chu HTTP/1.1\r\nHost: gw\r\nCookie: {c}\r\nTransfer-Encoding: Chunked\r\nConnection: close\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n"),
        case("gzip chunked", "POST /gz HTTP/1.1\r\nHost: gw\r\nCookie: {c}\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n0\r\n\r\n"),
        case("two codings", "POST /te2 HTTP/1.1\r\nHost: gw\r\nCookie: {c}\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n"),
        case("huge chunk", "POST /hc HTTP/1.1\r\nHost: gw\r\nCookie: {c}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nFFFFFFFFFFFFFFFFF\r\nabc\r\n0\r\n\r\n"),
        case("te lookalike", "POST /tel HTTP/1.1\r\nHost: gw\r\nCookie: {c}\r\nTransfer_Encoding: chunked\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"),
        case("pipelined", "GET /p1 HTTP/1.1\r\nHost: gw\r\nCookie: {c}\r\n\r\nGET /p2 HTTP/1.1\r\nHost: gw\r\nCookie: {c}\r\n\r\nGET /p3 HTTP/1.1\r\nHost: gw\r\nCookie: {c}\r\nConnection: close\r\n\r\n"),
        case("pipelined mixed", "GET /m1 HTTP/1.1\r\nHost: gw\r\nCookie: {c}\r\n\r\nGET /.idgate/me HTTP/1.1\r\nHost: gw\r\nCookie: {c}\r\n\r\nGET /m3 HTTP/1.1\r\nHost: gw\r\nCookie: {c}\r\nConnection: close\r\n\r\n"),
        case("h2c upgrade", "GET /h2c HTTP/1.1\r\nHost: gw\r\nCookie: {c}\r\nConnection: Upgrade, HTTP2-Settings, close\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"),
        case("http/1.0 upgrade", "GET /ws10 HTTP/1.0\r\nHost: gw\r\nCookie: {c}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"),
        case("absolute form", "GET http://other.example/abs?q=1 HTTP/1.1\r\nHost: gw\r\nCookie: {c}\r\nConnection: close\r\n\r\n"),
        case("absolute form userinfo", "GET http://user@other.example/abs HTTP/1.1\r\nHost: gw\r\nCookie: {c}\r\nConnection: close\r\n\r\n"),
        case("expect continue", "POST /exp HTTP/1.1\r\nHost: gw\r\nCookie: {c}\r\nExpect: 100-continue\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"),
        case("no host", "GET /nh HTTP/1.1\r\nCookie: {c}\r\nConnection: close\r\n\r\n"),
        case("empty host", "GET /eh HTTP/1.1\r\nHost: \r\nCookie: {c}\r\nConnection: close\r\n\r\n"),
        case("bad host", "GET /bh HTTP/1.1\r\nHost: gw@evil.example\r\nCookie: {c}\r\nConnection: close\r\n\r\n"),
        case("two hosts", "GET /2h HTTP/1.1\r\nHost: gw\r\nHost: evil\r\nCookie: {c}\r\nConnection: close\r\n\r\n"),
        case("http/1.0", "GET /10 HTTP/1.0\r\nHost: gw\r\nCookie: {c}\r\n\r\n"),
        case("http/1.0 no host", "GET /10nh HTTP/1.0\r\nCookie: {c}\r\n\r\n"),
        case("control byte", "GET /ctl HTTP/1.1\r\nHost: gw\r\nCookie: {c}\r\nX-A: a\x01b\r\nConnection: close\r\n\r\n"),
        case("nul in value", "GET /nul HTTP/1.1\r\nHost: gw\r\nCookie: {c}\r\nX-A: a\0b\r\nConnection: close\r\n\r\n"),
        case("bad method", "G(T /bm HTTP/1.1\r\nHost: gw\r\nCookie: {c}\r\nConnection: close\r\n\r\n"),
        case("lower version", "GET /v HTTP/1.2\r\nHost: gw\r\nCookie: {c}\r\nConnection: close\r\n\r\n"),
        case("encoded path", "GET /a/%2e%2e/b%2Fc?q=%00 HTTP/1.1\r\nHost: gw\r\nCookie: {c}\r\nConnection: close\r\n\r\n"),
        case("two cookies", "GET /2c HTTP/1.1\r\nHost: gw\r\nCookie: a=1\r\nCookie: {c}\r\nConnection: close\r\n\r\n"),
        case("no session", "GET /ns HTTP/1.1\r\nHost: gw\r\nCookie: a=1\r\nConnection: close\r\n\r\n"),
        case("large body", &format!("POST /big HTTP/1.1\r\nHost: gw\r\nCookie: {{c}}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{big}", big.len())),
    ]
}

/// Sends `bytes` on a new connection; returns everything the gateway wrote
/// until it closed the connection or went quiet.
fn exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return out,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                // Once an answer has begun, a pause means it is complete.
                s.set_read_timeout(Some(Duration::from_millis(700)))
                    .unwrap();
            }
        }
    }
}

/// The status codes of the answers in `raw`, in order.
fn statuses(raw: &[u8]) -> Vec<u16> {
    let mut codes = Vec::new();
    let mut rest = raw;
    loop {
        let mut storage = [httparse::EMPTY_HEADER; 64];
        let mut r = httparse::Response::new(&mut storage);
        let Ok(httparse::Status::Complete(len)) = r.parse(rest) else {
            return codes;
        };
        let code = r.code.unwrap_or_default();
        codes.push(code);
        let length: usize = r
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
            .unwrap_or(0);
        if code == 100 {
            rest = &rest[len..];
            continue;
        }
        let chunked = r
            .headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case("transfer-encoding"));
        rest = &rest[len..];
        if chunked {
            match rest.windows(5).position(|w| w == b"0\r\n\r\n") {
                Some(end) => rest = &rest[end + 5..],
                None => return codes,
            }
        } else {
            rest = &rest[length.min(rest.len())..];
        }
    }
}

/// What an upstream request is, up to what may differ between the paths:
/// header names in lower case, grouped by name in order of first
/// appearance (values keep their order within a name); the assertion,
/// signed by each gateway's own key, only counted.
fn comparable(r: &ParsedRequest) -> Comparable {
    let mut fields: Vec<(String, Vec<String>)> = Vec::new();
    for (name, value) in &r.headers {
        let name = name.to_ascii_lowercase();
        let value = if name == "x-idgate-assertion" {
            "<signed>".to_string()
        } else {
            value.clone()
        };
        match fields.iter_mut().find(|(n, _)| *n == name) {
            Some((_, values)) => values.push(value),
            None => fields.push((name, vec![value])),
        }
    }
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    Comparable {
        line: (r.method.clone(), r.target.clone(), r.version),
        fields,
        body: r.body.clone(),
    }
}

/// An upstream request as `comparable` reads it.
#[derive(Debug, PartialEq)]
struct Comparable {
    line: (String, String, u8),
    fields: Vec<(String, Vec<String>)>,
    body: Vec<u8>,
}

struct Side {
    up: RawUpstream,
    s: SignedIn,
}

impl Side {
    async fn start(toml: &str) -> Self {
        let up = RawUpstream::answering_targets().await;
        let s = signed_in(&up.url(), toml, None).await;
        Self { up, s }
    }

    /// The statuses the client got and the requests the upstream received.
    fn send(&self, case: &Case) -> (Vec<u16>, Vec<ParsedRequest>) {
        let before = self.up.requests().len();
        let answer = self.answer(case);
        std::thread::sleep(Duration::from_millis(50));
        let received = self.up.requests().split_off(before);
        (statuses(&answer), received)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn both_paths_decide_alike_and_send_the_upstream_the_same() {
    compare_paths("").await;
}

/// The same from a trusted proxy (a load balancer in front): its
/// forwarding headers stay, its `X-Forwarded-For` chain is extended.
#[tokio::test(flavor = "multi_thread")]
async fn behind_a_trusted_proxy_both_paths_send_the_upstream_the_same() {
    compare_paths("trusted_proxies = [\"127.0.0.1/32\"]").await;
}

/// Sends the corpus through a gateway with the fast path and one without,
/// both with `server` settings `extra`, and compares.
async fn compare_paths(extra: &str) {
    let fast = Side::start(&format!("[server]\n{extra}")).await;
    let hyper = Side::start(&format!("[server]\nfast_path = false\n{extra}")).await;
    let mut differences = Vec::new();
    for case in corpus() {
        let (fast_status, fast_up) = tokio::task::block_in_place(|| fast.send(&case));
        let (hyper_status, hyper_up) = tokio::task::block_in_place(|| hyper.send(&case));
        if fast_status != hyper_status {
            differences.push(format!(
                "{}: client got {fast_status:?} on the fast path, {hyper_status:?} on hyper",
                case.name
            ));
        }
        let fast_up: Vec<_> = fast_up.iter().map(comparable).collect();
        let hyper_up: Vec<_> = hyper_up.iter().map(comparable).collect();
        if fast_up != hyper_up {
            differences.push(format!(
                "{}: the upstream received\n  fast:  {fast_up:?}\n  hyper: {hyper_up:?}",
                case.name
            ));
        }
        assert!(!fast_status.is_empty(), "{}: no answer", case.name);
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

/// Upstream answers, ordinary, odd and hostile, as raw bytes.
fn answers() -> Vec<&'static str> {
    vec![
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        "HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello",
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close",
        "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
        "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
        "HTTP/1.1 200 OK\r\nConnection: X-Secret, close\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nProxy-Connection: x\r\nUpgrade: h2c\r\nContent-Length: 2\r\n\r\nok",
        "HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 2\r\n\r\nok",
        "HTTP/1.1 200 Fine\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-Case: Value\r\nContent-Length: 2\r\n\r\nok",
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 2\r\n\r\nok",
        "HTTP/1.1 2OO OK\r\nContent-Length: 2\r\n\r\nok",
        "not HTTP at all\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        "HTTP/1.1 599 Odd\r\nContent-Length: 0\r\n\r\n",
    ]
}

/// The upstream of the answer tests: `/answer/<n>` gets the n-th answer.
fn answer_script(r: &ParsedRequest) -> common::raw_upstream::Reply {
    let n: usize = r.target.trim_start_matches("/answer/").parse().unwrap_or(0);
    common::raw_upstream::Reply::raw(answers()[n]).then_close()
}

/// An HTTP/1.1 request for the n-th answer.
fn answer_case(n: usize) -> Case {
    Case {
        name: "answer",
        raw: format!(
            "GET /answer/{n} HTTP/1.1\r\nHost: gw\r\nCookie: {{c}}\r\nConnection: close\r\n\r\n"
        ),
    }
}

/// What a client can tell of an answer: its status, its header fields
/// (lower-case names, sorted; the framing and `Date` left out) and its
/// body, de-chunked.
fn answer_of(raw: &[u8]) -> Option<Answer> {
    let mut storage = [httparse::EMPTY_HEADER; 64];
    let mut r = httparse::Response::new(&mut storage);
    let httparse::Status::Complete(len) = r.parse(raw).ok()? else {
        return None;
    };
    let mut headers: Vec<(String, String)> = r
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .filter(|(n, _)| {
            !["date", "content-length", "transfer-encoding", "connection"].contains(&n.as_str())
        })
        .collect();
    headers.sort();
    let chunked = r.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("transfer-encoding") && h.value.eq_ignore_ascii_case(b"chunked")
    });
    let mut rest = &raw[len..];
    let body = if chunked {
        let mut body = Vec::new();
        loop {
            let end = rest.windows(2).position(|w| w == b"\r\n")?;
            let size = usize::from_str_radix(std::str::from_utf8(&rest[..end]).ok()?, 16).ok()?;
            rest = &rest[end + 2..];
            if size == 0 {
                break body;
            }
            body.extend_from_slice(rest.get(..size)?);
            rest = rest.get(size + 2..)?;
        }
    } else {
        rest.to_vec()
    };
    Some(Answer {
        status: r.code?,
        headers,
        body,
    })
}

/// An answer as `answer_of` reads it.
#[derive(Debug, PartialEq)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

#[tokio::test(flavor = "multi_thread")]
async fn both_paths_give_the_client_the_same_answers() {
    let start = |toml: &'static str| async move {
        let up = RawUpstream::start(answer_script).await;
        let s = signed_in(&up.url(), toml, None).await;
        Side { up, s }
    };
    let fast = start("").await;
    let hyper = start("[server]\nfast_path = false").await;
    let mut differences = Vec::new();
    for (n, answer) in answers().iter().enumerate() {
        let case = answer_case(n);
        let fast_raw = tokio::task::block_in_place(|| fast.answer(&case));
        let hyper_raw = tokio::task::block_in_place(|| hyper.answer(&case));
        let (f, h) = (answer_of(&fast_raw), answer_of(&hyper_raw));
        if f != h {
            differences.push(format!("{answer:?}:\n  fast:  {f:?}\n  hyper: {h:?}"));
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

/// An HTTP/2 client over TLS gets every answer of the corpus as an
/// HTTP/1.1 client of the fast path gets it (its GETs go by the gateway's
/// own client, `fast::direct`): the same status, fields and body, or, for
/// an answer broken off after its head, an error on both.
#[tokio::test(flavor = "multi_thread")]
async fn http2_clients_get_the_answers_http1_clients_get() {
    let up = RawUpstream::start(answer_script).await;
    let fast = Side {
        s: signed_in(&up.url(), "", None).await,
        up,
    };
    let up = RawUpstream::start(answer_script).await;
    let (s, cert, _dir) = common::login::signed_in_over_tls(&up.url(), "").await;
    let root = reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap();
    let client = reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(root)
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let mut differences = Vec::new();
    for (n, answer) in answers().iter().enumerate() {
        let case = answer_case(n);
        let fast_raw = tokio::task::block_in_place(|| fast.answer(&case));
        let url = s.gw.url(&format!("/answer/{n}"));
        let h2 = match client.get(url).header("cookie", &s.cookie).send().await {
            Ok(r) => {
                assert_eq!(r.version(), reqwest::Version::HTTP_2);
                let status = r.status().as_u16();
                let mut headers: Vec<(String, String)> = r
                    .headers()
                    .iter()
                    .filter(|(n, _)| !["date", "content-length"].contains(&n.as_str()))
                    .map(|(n, v)| (n.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
                    .collect();
                headers.sort();
                let length = r.headers().get("content-length").cloned();
                let body = r.bytes().await.ok();
                // The length said is the length sent, but where nothing
                // is sent: a 304's (or a HEAD's) is a GET's.
                if let (Some(length), Some(body), 200) = (length, &body, status) {
                    if length.to_str().unwrap() != body.len().to_string() {
                        differences.push(format!(
                            "{answer:?}: length {length:?} of a body of {}",
                            body.len()
                        ));
                    }
                }
                body.map(|body| Answer {
                    status,
                    headers,
                    body: body.to_vec(),
                })
            }
            Err(_) => None,
        };
        let f = answer_of(&fast_raw);
        if f != h2 {
            differences.push(format!("{answer:?}:\n  fast:  {f:?}\n  h2:    {h2:?}"));
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

impl Side {
    /// The raw answer the client got.
    fn answer(&self, case: &Case) -> Vec<u8> {
        let session = self
            .s
            .cookie
            .split("; ")
            .find(|c| c.starts_with("idgate_session="))
            .unwrap()
            .to_string();
        exchange(
            self.s.gw.public,
            case.raw.replace("{c}", &session).as_bytes(),
        )
    }
}

/// The one retry rule, on both paths: a request whose reused upstream
/// connection closes without answering is sent again on a new one only when
/// it is idempotent, has no body, and the connection had sat idle a second
/// or more; otherwise the client gets 502 and the upstream saw it once.
#[tokio::test(flavor = "multi_thread")]
async fn both_paths_send_a_request_again_by_the_same_rule() {
    use common::raw_upstream::Reply;
    use std::collections::HashSet;
    use std::sync::Mutex;

    let script = |dropped: std::sync::Arc<Mutex<HashSet<String>>>| {
        move |r: &ParsedRequest| {
            if r.target.starts_with("/drop") && dropped.lock().unwrap().insert(r.target.clone()) {
                // Taken, then the connection closes with no answer.
                Reply::raw("").then_close()
            } else {
                Reply::ok(&r.target)
            }
        }
    };
    for toml in ["", "[server]\nfast_path = false"] {
        let up = RawUpstream::start(script(Default::default())).await;
        let s = signed_in(&up.url(), toml, None).await;
        let mut c = common::KeepAlive::open(s.gw.public);
        let ask = |c: &mut common::KeepAlive, request: String| {
            c.send(request);
            c.response(false)
        };
        let get = |path: &str| {
            format!(
                "GET {path} HTTP/1.1\r\nHost: gw\r\nCookie: {}\r\n\r\n",
                s.cookie
            )
        };
        let put = |path: &str| {
            format!(
                "PUT {path} HTTP/1.1\r\nHost: gw\r\nCookie: {}\r\nContent-Length: 2\r\n\r\nhi",
                s.cookie
            )
        };
        let cases = [
            (get("/drop/idle"), true, 200),
            (put("/drop/with-body"), true, 502),
            (get("/drop/busy"), false, 502),
        ];
        for (request, idle, status) in cases {
            assert_eq!(ask(&mut c, get("/warm")).status, 200);
            if idle {
                tokio::time::sleep(Duration::from_millis(1200)).await;
            }
            let target = request.split(' ').nth(1).unwrap().to_string();
            let answer = ask(&mut c, request);
            assert_eq!(answer.status, status, "{target} ({toml:?}): {answer:?}");
            let times = up.targets().iter().filter(|t| **t == target).count();
            assert_eq!(
                times,
                if status == 200 { 2 } else { 1 },
                "{target} ({toml:?})"
            );
            if answer.headers_named("connection") == ["close"] {
                c = common::KeepAlive::open(s.gw.public);
            }
        }
    }
}
