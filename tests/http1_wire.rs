//! HTTP/1 framing and request smuggling at the wire: raw bytes from a
//! client, a scripted upstream that records every byte it receives and
//! answers with bytes of the test's choosing. These guard what any data
//! path of the gateway (hyper's or a faster one forwarding raw heads) must
//! keep: a refused request reaches the upstream not at all, every message is
//! framed once and the same way on both sides, and nothing the client or the
//! upstream smuggles in after a message becomes a request or an answer of
//! its own.

mod common;

use std::time::Duration;

use common::login::{signed_in, SignedIn};
use common::raw_upstream::{RawUpstream, Reply};
use common::{KeepAlive, WireResponse};

/// How long a test waits for bytes that must not come.
const QUIET: Duration = Duration::from_millis(300);
/// How long the gateway may take to close a connection it must close.
const CLOSE: Duration = Duration::from_secs(3);

/// A signed-in `GET path` request head.
fn get(path: &str, cookie: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: gw\r\nCookie: {cookie}\r\n\r\n")
}

/// Sends `request` on a new connection; returns the gateway's answer after
/// checking that it closed the connection, as it must after a request it
/// could not frame.
fn refused(s: &SignedIn, request: &str) -> WireResponse {
    let mut c = KeepAlive::open(s.gw.public);
    c.send(request);
    let answer = c.response(false);
    assert!(
        c.closed_within(CLOSE),
        "connection left open after refusing {request:?}"
    );
    answer
}

/// Sends a good request on a new connection, then checks that the upstream
/// received `earlier` and that request, and not one byte besides: refused
/// requests got nowhere.
fn then_only_these_arrived(s: &SignedIn, up: &RawUpstream, earlier: &[&str]) {
    let mut c = KeepAlive::open(s.gw.public);
    c.send(get("/after", &s.cookie));
    let answer = c.response(false);
    assert_eq!(answer.status, 200, "{answer:?}");
    let mut expected = earlier.to_vec();
    expected.push("/after");
    up.assert_received_only(&expected);
}

/// The `error` of one of the gateway's own JSON error answers.
fn error_code(answer: &WireResponse) -> String {
    let json: serde_json::Value = serde_json::from_slice(&answer.body)
        .unwrap_or_else(|_| panic!("a JSON error answer: {answer:?}"));
    json["error"].as_str().expect("an error code").to_string()
}

/// Content-Length next to Transfer-Encoding: chunked. RFC 9112 §6.1 lets a
/// server go by the chunked framing alone provided it closes the connection
/// afterwards, and that is what the gateway does: the upstream gets the
/// chunked body without any Content-Length, and a request hidden after the
/// last chunk (where a Content-Length reader would see body) never runs.
#[tokio::test(flavor = "multi_thread")]
async fn content_length_beside_chunked_is_framed_as_chunked_then_closed() {
    let up = RawUpstream::answering_targets().await;
    let s = signed_in(&up.url(), "", None).await;
    let smuggled = get("/smuggled", &s.cookie);
    let body = format!("5\r\nhello\r\n0\r\n\r\n{smuggled}");
    let mut c = KeepAlive::open(s.gw.public);
    c.send(format!(
        "POST /both HTTP/1.1\r\nHost: gw\r\nCookie: {}\r\nContent-Length: {}\r\n\
         Transfer-Encoding: chunked\r\n\r\n{body}",
        s.cookie,
        body.len()
    ));
    let answer = c.response(false);
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body_text(), "/both");
    assert_eq!(answer.headers_named("connection"), ["close"]);
    assert!(c.closed_within(CLOSE), "the connection must close after");
    then_only_these_arrived(&s, &up, &["/both"]);
    let both = &up.requests()[0];
    assert_eq!(both.body, b"hello");
    assert!(both.headers_named("content-length").is_empty(), "{both:?}");
}

/// Two different Content-Length values, or one that is not plain digits,
/// leave the body's end unknown: 400, the connection closed, and nothing of
/// the request (nor of what was sent after it) at the upstream.
#[tokio::test(flavor = "multi_thread")]
async fn conflicting_or_invalid_content_lengths_are_refused() {
    let up = RawUpstream::answering_targets().await;
    let s = signed_in(&up.url(), "", None).await;
    let smuggled = get("/smuggled", &s.cookie);
    for lengths in [
        "Content-Length: 5\r\nContent-Length: 6",
        "Content-Length: 5, 6",
        "Content-Length: +5",
        "Content-Length: 0x5",
        "Content-Length: 5 5",
        "Content-Length: -1",
    ] {
        let answer = refused(
            &s,
            &format!(
                "POST /cl HTTP/1.1\r\nHost: gw\r\nCookie: {}\r\n{lengths}\r\n\r\nhello{smuggled}",
                s.cookie
            ),
        );
        assert_eq!(answer.status, 400, "{lengths}: {answer:?}");
    }
    then_only_these_arrived(&s, &up, &[]);
}

/// A chunked upload (chunk extensions and a trailer included) reaches the
/// upstream as the same bytes, framed once, and the connection carries on.
#[tokio::test(flavor = "multi_thread")]
async fn a_chunked_request_body_arrives_intact() {
    let up = RawUpstream::answering_targets().await;
    let s = signed_in(&up.url(), "", None).await;
    let mut c = KeepAlive::open(s.gw.public);
    c.send(format!(
        "POST /upload HTTP/1.1\r\nHost: gw\r\nCookie: {}\r\nTransfer-Encoding: chunked\r\n\r\n\
         5;name=value\r\nhello\r\n1\r\n,\r\nA\r\n chunked w\r\n4\r\norld\r\n0\r\nX-Trailer: t\r\n\r\n",
        s.cookie
    ));
    assert_eq!(c.response(false).body_text(), "/upload");
    c.send(get("/next", &s.cookie));
    assert_eq!(c.response(false).body_text(), "/next");
    up.assert_received_only(&["/upload", "/next"]);
    assert_eq!(up.requests()[0].body, b"hello, chunked world");
}

/// A Transfer-Encoding whose final coding is not chunked (or chunked said
/// in one field and undone in another) gives no way to find the body's
/// end: 400, the connection closed, nothing upstream.
#[tokio::test(flavor = "multi_thread")]
async fn transfer_encodings_other_than_final_chunked_are_refused() {
    let up = RawUpstream::answering_targets().await;
    let s = signed_in(&up.url(), "", None).await;
    let smuggled = get("/smuggled", &s.cookie);
    for coding in [
        "gzip",
        "chunked, gzip",
        "identity",
        "chunked\r\nTransfer-Encoding: gzip",
    ] {
        let answer = refused(
            &s,
            &format!(
                "POST /te HTTP/1.1\r\nHost: gw\r\nCookie: {}\r\nTransfer-Encoding: {coding}\r\n\r\n\
                 5\r\nhello\r\n0\r\n\r\n{smuggled}",
                s.cookie
            ),
        );
        assert_eq!(answer.status, 400, "{coding}: {answer:?}");
    }
    then_only_these_arrived(&s, &up, &[]);
}

/// A chunk size that is not hex ends the request there: the client's
/// connection is closed, the upstream never receives a complete request,
/// and a request written after the bad chunk never reaches it.
#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_chunk_size_ends_the_connection() {
    let up = RawUpstream::answering_targets().await;
    let s = signed_in(&up.url(), "", None).await;
    let mut c = KeepAlive::open(s.gw.public);
    c.send(format!(
        "POST /upload HTTP/1.1\r\nHost: gw\r\nCookie: {}\r\nTransfer-Encoding: chunked\r\n\r\n\
         zz\r\nhello\r\n0\r\n\r\n{}",
        s.cookie,
        get("/smuggled", &s.cookie)
    ));
    let answer = c.response(false);
    assert_eq!(answer.status, 400, "{answer:?}");
    assert!(c.closed_within(CLOSE));
    assert_eq!(error_code(&answer), "request_incomplete");
    let mut c = KeepAlive::open(s.gw.public);
    c.send(get("/after", &s.cookie));
    assert_eq!(c.response(false).status, 200);
    assert_eq!(up.targets(), ["/after"], "{}", up.received_text());
    assert!(!up.received_text().contains("smuggled"));
}

/// Two requests in one write are answered in order, each reaching the
/// upstream once.
#[tokio::test(flavor = "multi_thread")]
async fn pipelined_requests_are_answered_in_order() {
    let up = RawUpstream::answering_targets().await;
    let s = signed_in(&up.url(), "", None).await;
    let mut c = KeepAlive::open(s.gw.public);
    c.send(get("/one", &s.cookie) + &get("/two", &s.cookie));
    assert_eq!(c.response(false).body_text(), "/one");
    assert_eq!(c.response(false).body_text(), "/two");
    assert!(c.unasked(QUIET).is_empty());
    up.assert_received_only(&["/one", "/two"]);
}

/// A body that reads like a request stays a body: the upstream gets it as
/// the body of the one request it belongs to, and the request pipelined
/// after it is answered as itself.
#[tokio::test(flavor = "multi_thread")]
async fn a_body_that_looks_like_a_request_stays_a_body() {
    let up = RawUpstream::answering_targets().await;
    let s = signed_in(&up.url(), "", None).await;
    let body = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut c = KeepAlive::open(s.gw.public);
    c.send(format!(
        "POST /form HTTP/1.1\r\nHost: gw\r\nCookie: {}\r\nContent-Length: {}\r\n\r\n{body}{}",
        s.cookie,
        body.len(),
        get("/next", &s.cookie)
    ));
    assert_eq!(c.response(false).body_text(), "/form");
    assert_eq!(c.response(false).body_text(), "/next");
    up.assert_received_only(&["/form", "/next"]);
    assert_eq!(up.requests()[0].body, body.as_bytes());
}

/// Header lines that parsers disagree on (obs-fold, whitespace before the
/// colon, NUL or a bare CR in a value) are refused with 400 and go no
/// further.
#[tokio::test(flavor = "multi_thread")]
async fn ambiguous_header_lines_are_refused() {
    let up = RawUpstream::answering_targets().await;
    let s = signed_in(&up.url(), "", None).await;
    for (what, line) in [
        ("obs-fold", "X-A: 1\r\n folded"),
        ("obs-fold by tab", "X-A: 1\r\n\tfolded"),
        ("space before the colon", "Host : other.example"),
        ("NUL in a value", "X-A: a\0b"),
        ("bare CR in a value", "X-A: a\rb"),
    ] {
        let answer = refused(
            &s,
            &format!(
                "GET /h HTTP/1.1\r\nHost: gw\r\nCookie: {}\r\n{line}\r\n\r\n",
                s.cookie
            ),
        );
        assert_eq!(answer.status, 400, "{what}: {answer:?}");
    }
    then_only_these_arrived(&s, &up, &[]);
}

/// An HTTP/1.0 client has its connection closed after the answer unless it
/// asked to keep it alive. A chunked answer from the upstream reaches it
/// unchunked (HTTP/1.0 knows no chunks), delimited by the close; the
/// upstream is spoken to in HTTP/1.1 all the same.
#[tokio::test(flavor = "multi_thread")]
async fn http_1_0_clients_get_answers_they_can_frame() {
    let up = RawUpstream::start(|r| match r.target.as_str() {
        "/chunked" => Reply::raw(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n",
        ),
        target => Reply::ok(target),
    })
    .await;
    let s = signed_in(&up.url(), "", None).await;
    let old = |path: &str, extra: &str| {
        format!(
            "GET {path} HTTP/1.0\r\nHost: gw\r\nCookie: {}\r\n{extra}\r\n",
            s.cookie
        )
    };

    let mut c = KeepAlive::open(s.gw.public);
    c.send(old("/old", ""));
    let answer = c.response(false);
    assert_eq!((answer.status, answer.body_text().as_str()), (200, "/old"));
    assert!(c.closed_within(CLOSE), "HTTP/1.0 closes by default");

    let mut c = KeepAlive::open(s.gw.public);
    c.send(old("/kept", "Connection: keep-alive\r\n"));
    let answer = c.response(false);
    assert_eq!(answer.body_text(), "/kept");
    assert_eq!(answer.headers_named("connection"), ["keep-alive"]);
    c.send(old("/chunked", "Connection: keep-alive\r\n"));
    let answer = c.response(false);
    assert!(answer.headers_named("transfer-encoding").is_empty());
    assert!(answer.headers_named("content-length").is_empty());
    assert_eq!(answer.body_text(), "abcdef", "{answer:?}");

    up.assert_received_only(&["/old", "/kept", "/chunked"]);
    assert!(up.requests().iter().all(|r| r.version == 1));
}

/// `Connection: close` from the client: the answer says close, the socket
/// closes, and a request written after it is neither answered nor
/// forwarded.
#[tokio::test(flavor = "multi_thread")]
async fn connection_close_from_the_client_ends_the_connection() {
    let up = RawUpstream::answering_targets().await;
    let s = signed_in(&up.url(), "", None).await;
    let mut c = KeepAlive::open(s.gw.public);
    c.send(format!(
        "GET /last HTTP/1.1\r\nHost: gw\r\nCookie: {}\r\nConnection: close\r\n\r\n{}",
        s.cookie,
        get("/ignored", &s.cookie)
    ));
    let answer = c.response(false);
    assert_eq!(answer.body_text(), "/last");
    assert_eq!(answer.headers_named("connection"), ["close"]);
    assert!(c.closed_within(CLOSE));
    then_only_these_arrived(&s, &up, &["/last"]);
}

/// Headers that any of several `Connection` fields names, in any letter
/// case, stop at the gateway, and so do the `Connection` fields naming
/// them. Read off the upstream's bytes, not a parsed map.
#[tokio::test(flavor = "multi_thread")]
async fn headers_named_by_connection_stay_on_the_client_side() {
    let up = RawUpstream::answering_targets().await;
    let s = signed_in(&up.url(), "", None).await;
    let mut c = KeepAlive::open(s.gw.public);
    c.send(format!(
        "GET /hop HTTP/1.1\r\nHost: gw\r\nCookie: {}\r\nConnection: keep-alive\r\n\
         X-Secret: 1\r\nconnection: x-secret, X-Other\r\nx-other: 2\r\nX-Kept: 3\r\n\r\n",
        s.cookie
    ));
    assert_eq!(c.response(false).body_text(), "/hop");
    up.assert_received_only(&["/hop"]);
    let raw = up.received_text().to_ascii_lowercase();
    for gone in ["x-secret", "x-other"] {
        assert!(!raw.contains(gone), "{gone} was forwarded:\n{raw}");
    }
    assert!(raw.contains("\r\nx-kept: 3\r\n"), "{raw}");
}

/// An absolute-form target goes upstream in origin form (its query kept,
/// even without a path), and its authority is the Host (RFC 9112 §3.2.2)
/// and X-Forwarded-Host the upstream sees; the request goes to the
/// configured upstream all the same.
#[tokio::test(flavor = "multi_thread")]
async fn absolute_form_targets_go_upstream_in_origin_form() {
    let up = RawUpstream::answering_targets().await;
    let s = signed_in(&up.url(), "", None).await;
    let mut c = KeepAlive::open(s.gw.public);
    c.send(format!(
        "GET http://other.example/x?q=1 HTTP/1.1\r\nHost: gw\r\nCookie: {}\r\n\r\n",
        s.cookie
    ));
    assert_eq!(c.response(false).body_text(), "/x?q=1");
    up.assert_received_only(&["/x?q=1"]);
    let r = &up.requests()[0];
    assert!(r.raw.starts_with(b"GET /x?q=1 HTTP/1.1\r\n"));
    assert_eq!(r.headers_named("host"), ["other.example"]);
    assert_eq!(r.headers_named("x-forwarded-host"), ["other.example"]);
    // No path, a query: the path is `/`, and the query goes with it.
    c.send(format!(
        "GET http://other.example:8080?q=2 HTTP/1.1\r\nHost: gw\r\nCookie: {}\r\n\r\n",
        s.cookie
    ));
    assert_eq!(c.response(false).body_text(), "/?q=2");
    let r = &up.requests()[1];
    assert!(r.raw.starts_with(b"GET /?q=2 HTTP/1.1\r\n"));
    assert_eq!(r.headers_named("host"), ["other.example:8080"]);
}

/// `Expect: 100-continue`: the gateway itself tells the client to go on
/// (this upstream never says 100) before the body is sent, then the final
/// answer follows; the body reaches the upstream intact.
#[tokio::test(flavor = "multi_thread")]
async fn expect_100_continue_gets_continue_then_the_answer() {
    let up = RawUpstream::answering_targets().await;
    let s = signed_in(&up.url(), "", None).await;
    let mut c = KeepAlive::open(s.gw.public);
    c.send(format!(
        "POST /expect HTTP/1.1\r\nHost: gw\r\nCookie: {}\r\nContent-Length: 5\r\n\
         Expect: 100-continue\r\n\r\n",
        s.cookie
    ));
    let interim = c.response(false);
    assert_eq!(interim.status, 100, "{interim:?}");
    c.send("hello");
    let answer = c.response(false);
    assert_eq!(
        (answer.status, answer.body_text().as_str()),
        (200, "/expect")
    );
    up.assert_received_only(&["/expect"]);
    assert_eq!(up.requests()[0].body, b"hello");
}

/// Each request on a keep-alive connection is judged by its own cookie:
/// signed in, then without a cookie (401, not forwarded), then with a
/// forged one (401), then signed in again.
#[tokio::test(flavor = "multi_thread")]
async fn every_request_on_a_connection_is_authenticated_on_its_own() {
    let up = RawUpstream::answering_targets().await;
    let s = signed_in(&up.url(), "", None).await;
    let (name, value) = s
        .cookie
        .split("; ")
        .find_map(|c| {
            c.split_once('=')
                .filter(|(n, _)| n.ends_with("idgate_session"))
        })
        .expect("a session cookie");
    let forged = format!("{name}={}", "A".repeat(value.len()));
    let mut c = KeepAlive::open(s.gw.public);
    c.send(get("/one", &s.cookie));
    assert_eq!(c.response(false).status, 200);
    c.send("GET /two HTTP/1.1\r\nHost: gw\r\n\r\n");
    let answer = c.response(false);
    assert_eq!(
        (answer.status, error_code(&answer)),
        (401, "unauthenticated".into())
    );
    c.send(get("/three", &forged));
    let answer = c.response(false);
    assert_eq!(
        (answer.status, error_code(&answer)),
        (401, "unauthenticated".into())
    );
    c.send(get("/four", &s.cookie));
    let answer = c.response(false);
    assert_eq!((answer.status, answer.body_text().as_str()), (200, "/four"));
    up.assert_received_only(&["/one", "/four"]);
}

/// A chunked answer (extensions and trailer fields included) reaches the
/// client whole, and the next request on both connections is answered as
/// itself: the end of the chunked body was found.
#[tokio::test(flavor = "multi_thread")]
async fn a_chunked_answer_arrives_intact() {
    let up = RawUpstream::start(|r| match r.target.as_str() {
        "/chunked" => Reply::raw(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
             5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n",
        ),
        target => Reply::ok(target),
    })
    .await;
    let s = signed_in(&up.url(), "", None).await;
    let mut c = KeepAlive::open(s.gw.public);
    c.send(get("/chunked", &s.cookie));
    assert_eq!(c.response(false).body_text(), "hello, world");
    c.send(get("/next", &s.cookie));
    assert_eq!(c.response(false).body_text(), "/next");
    up.assert_received_only(&["/chunked", "/next"]);
    assert_eq!(up.connections(), 1, "the upstream connection was reused");
}

/// An upstream whose answer to `/both` says `Content-Length: 4` and is
/// chunked: a Content-Length reader takes the chunk-size line as the body
/// and the chunk's content, itself an answer, as the answer to the next
/// request. Returns the upstream and that chunk's content.
async fn framed_twice_upstream() -> (RawUpstream, &'static str) {
    let inner = "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled";
    let size_line = format!("{:x}\r\n", inner.len());
    let both = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n\
         {size_line}{inner}\r\n0\r\n\r\n",
        size_line.len()
    );
    let up = RawUpstream::start(move |r| match r.target.as_str() {
        "/both" => Reply::raw(both.clone()),
        target => Reply::ok(target),
    })
    .await;
    (up, inner)
}

/// An upstream answer with both Content-Length and chunked framing reaches
/// the client framed one way only (as chunked), and the client's next
/// request gets its own answer, not the chunk's content.
#[tokio::test(flavor = "multi_thread")]
async fn an_answer_with_length_and_chunked_is_never_framed_twice() {
    let (up, _) = framed_twice_upstream().await;
    let s = signed_in(&up.url(), "", None).await;
    let mut c = KeepAlive::open(s.gw.public);
    c.send(get("/both", &s.cookie));
    let answer = c.response(false);
    assert_ne!(answer.body_text(), "smuggled");
    if answer.headers_named("connection") == ["close"] {
        // Refused as a 502: the next request comes on a new connection.
        assert!(c.closed_within(QUIET));
        c = KeepAlive::open(s.gw.public);
    }
    c.send(get("/next", &s.cookie));
    assert_eq!(c.response(false).body_text(), "/next");
    assert!(c.unasked(QUIET).is_empty());
    up.assert_received_only(&["/both", "/next"]);
}

/// Transfer-Encoding overrides Content-Length, and a proxy must drop the
/// Content-Length before forwarding (RFC 9112 §6.3): the client gets the
/// whole chunked body, on both paths, and the upstream connection that
/// carried such an answer carries no other.
#[tokio::test(flavor = "multi_thread")]
async fn an_answer_with_length_and_chunked_is_read_as_chunked() {
    let (up, inner) = framed_twice_upstream().await;
    let s = signed_in(&up.url(), "", None).await;
    for connection in BOTH_PATHS {
        let mut c = KeepAlive::open(s.gw.public);
        c.send(format!(
            "GET /both HTTP/1.1\r\nHost: gw\r\nCookie: {}\r\nConnection: {connection}\r\n\r\n",
            s.cookie
        ));
        let answer = c.response(false);
        assert_eq!(
            (answer.status, answer.body_text().as_str()),
            (200, inner),
            "{connection}"
        );
        assert!(
            answer.headers_named("content-length").is_empty(),
            "{answer:?}"
        );
        c.send(get("/next", &s.cookie));
        assert_eq!(c.response(false).body_text(), "/next");
    }
    let requests = up.requests();
    let targets: Vec<&str> = requests.iter().map(|r| r.target.as_str()).collect();
    assert_eq!(targets, ["/both", "/next", "/both", "/next"]);
    for pair in requests.chunks(2) {
        assert_ne!(
            pair[0].connection, pair[1].connection,
            "the upstream connection was reused"
        );
    }
}

/// Bytes after the end of an upstream answer (here: an answer of their
/// own) are no answer to the client's next request, even one pipelined
/// right behind: that one gets its own, from a new upstream connection.
#[tokio::test(flavor = "multi_thread")]
async fn bytes_past_an_answers_length_are_no_answer() {
    let up = RawUpstream::start(|r| match r.target.as_str() {
        "/first" => Reply::raw(
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello\
             HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled",
        ),
        target => Reply::ok(target),
    })
    .await;
    let s = signed_in(&up.url(), "", None).await;
    let mut c = KeepAlive::open(s.gw.public);
    c.send(get("/first", &s.cookie) + &get("/second", &s.cookie));
    assert_eq!(c.response(false).body_text(), "hello");
    let second = c.response(false);
    assert_eq!(second.body_text(), "/second", "{second:?}");
    assert!(c.unasked(QUIET).is_empty());
    let on: Vec<usize> = up.requests().iter().map(|r| r.connection).collect();
    assert_eq!(
        on,
        [0, 1],
        "the upstream connection that said too much was dropped"
    );
}

/// An answer without Content-Length or chunks ends when the upstream
/// closes: the client gets all of it, rechunked, and keeps its connection;
/// the next request goes out on a new upstream connection.
#[tokio::test(flavor = "multi_thread")]
async fn a_close_delimited_answer_is_reframed_for_the_client() {
    let up = RawUpstream::start(|r| match r.target.as_str() {
        "/until-close" => {
            Reply::raw("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it, then close")
                .then_close()
        }
        target => Reply::ok(target),
    })
    .await;
    let s = signed_in(&up.url(), "", None).await;
    let mut c = KeepAlive::open(s.gw.public);
    c.send(get("/until-close", &s.cookie));
    let answer = c.response(false);
    assert_eq!(answer.body_text(), "all of it, then close");
    assert_eq!(answer.headers_named("transfer-encoding"), ["chunked"]);
    c.send(get("/next", &s.cookie));
    assert_eq!(c.response(false).body_text(), "/next");
    up.assert_received_only(&["/until-close", "/next"]);
    assert_eq!(up.connections(), 2);
}

/// Answers that have no body whatever their Content-Length says (to HEAD,
/// 204, 304) arrive at once, and the next request on the same connection is
/// answered as itself: nobody waited for the 100 bytes, nor took the next
/// answer for them.
#[tokio::test(flavor = "multi_thread")]
async fn bodiless_answers_do_not_wait_for_their_length() {
    let up = RawUpstream::start(|r| match r.target.as_str() {
        "/head" => Reply::raw("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"),
        "/204" => Reply::raw("HTTP/1.1 204 No Content\r\nContent-Length: 100\r\n\r\n"),
        "/304" => Reply::raw("HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n"),
        target => Reply::ok(target),
    })
    .await;
    let s = signed_in(&up.url(), "", None).await;
    let mut c = KeepAlive::open(s.gw.public);
    c.send(format!(
        "HEAD /head HTTP/1.1\r\nHost: gw\r\nCookie: {}\r\n\r\n",
        s.cookie
    ));
    let head = c.response(true);
    assert_eq!(head.status, 200);
    assert_eq!(up.requests()[0].method, "HEAD");
    assert_eq!(head.headers_named("content-length"), ["100"]);
    assert!(c.unasked(QUIET).is_empty());
    c.send(get("/next", &s.cookie));
    assert_eq!(c.response(false).body_text(), "/next");
    for status in [204, 304] {
        c.send(get(&format!("/{status}"), &s.cookie));
        let answer = c.response(false);
        assert_eq!(answer.status, status);
        assert!(c.unasked(QUIET).is_empty());
        c.send(get("/next", &s.cookie));
        assert_eq!(c.response(false).body_text(), "/next");
    }
    up.assert_received_only(&["/head", "/next", "/204", "/next", "/304", "/next"]);
}

/// A protocol switch the client never asked for is a failed exchange
/// (502), not a tunnel: the client sees none of the upstream's bytes after
/// the 101, and the upstream none of the client's.
#[tokio::test(flavor = "multi_thread")]
async fn an_unasked_protocol_switch_is_a_502_not_a_tunnel() {
    let up = RawUpstream::start(|r| match r.target.as_str() {
        "/switch" => Reply::raw(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\
             FROM-THE-TUNNEL",
        ),
        target => Reply::ok(target),
    })
    .await;
    let s = signed_in(&up.url(), "", None).await;
    let mut c = KeepAlive::open(s.gw.public);
    c.send(get("/switch", &s.cookie) + "INTO-THE-TUNNEL");
    let answer = c.response(false);
    assert_eq!(answer.status, 502, "{answer:?}");
    assert_eq!(error_code(&answer), "upstream_unavailable");
    assert!(c.closed_within(CLOSE), "no tunnel left open");
    then_only_these_arrived(&s, &up, &["/switch"]);
}

/// An interim `100 Continue` from the upstream is followed by the real
/// answer, which the client gets.
#[tokio::test(flavor = "multi_thread")]
async fn the_final_answer_after_an_interim_one_reaches_the_client() {
    let up = RawUpstream::start(|r| match r.target.as_str() {
        "/interim" => Reply::raw(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal",
        ),
        target => Reply::ok(target),
    })
    .await;
    let s = signed_in(&up.url(), "", None).await;
    let mut c = KeepAlive::open(s.gw.public);
    c.send(get("/interim", &s.cookie));
    let mut answer = c.response(false);
    while answer.status < 200 {
        answer = c.response(false);
    }
    assert_eq!((answer.status, answer.body_text().as_str()), (200, "final"));
    c.send(get("/next", &s.cookie));
    assert_eq!(c.response(false).body_text(), "/next");
    up.assert_received_only(&["/interim", "/next"]);
}

/// The upstream's hop-by-hop headers, and the ones its `Connection` names,
/// stay between it and the gateway.
#[tokio::test(flavor = "multi_thread")]
async fn hop_by_hop_answer_headers_are_not_forwarded() {
    let up = RawUpstream::start(|_| {
        Reply::raw(
            "HTTP/1.1 200 OK\r\nConnection: x-foo\r\nX-Foo: 1\r\nKeep-Alive: timeout=5\r\n\
             Proxy-Connection: keep-alive\r\nX-Kept: 2\r\nContent-Length: 2\r\n\r\nok",
        )
    })
    .await;
    let s = signed_in(&up.url(), "", None).await;
    let mut c = KeepAlive::open(s.gw.public);
    c.send(get("/hop", &s.cookie));
    let answer = c.response(false);
    assert_eq!(answer.body_text(), "ok");
    for gone in ["x-foo", "keep-alive", "proxy-connection"] {
        assert!(answer.headers_named(gone).is_empty(), "{gone}: {answer:?}");
    }
    let connection = answer.headers_named("connection").join(",");
    assert!(
        !connection.to_ascii_lowercase().contains("x-foo"),
        "{answer:?}"
    );
    assert_eq!(answer.headers_named("x-kept"), ["2"]);
}

/// An upstream that closes after each answer (`Connection: close`) does not
/// close the client's connection: the next request is answered, over a new
/// upstream connection.
#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_closing_leaves_the_client_connection_open() {
    let up = RawUpstream::start(|r| {
        Reply::raw(format!(
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{}",
            r.target.len(),
            r.target
        ))
        .then_close()
    })
    .await;
    let s = signed_in(&up.url(), "", None).await;
    let mut c = KeepAlive::open(s.gw.public);
    c.send(get("/one", &s.cookie));
    let answer = c.response(false);
    assert_eq!(answer.body_text(), "/one");
    let connection = answer.headers_named("connection").join(",");
    assert!(
        !connection.to_ascii_lowercase().contains("close"),
        "{answer:?}"
    );
    c.send(get("/two", &s.cookie));
    assert_eq!(c.response(false).body_text(), "/two");
    up.assert_received_only(&["/one", "/two"]);
    let on: Vec<usize> = up.requests().iter().map(|r| r.connection).collect();
    assert_eq!(on, [0, 1]);
}

/// An answer the gateway cannot frame (no HTTP at all, a bad status line,
/// an invalid or doubled Content-Length, a folded header) is a 502, and
/// the client's connection is closed.
#[tokio::test(flavor = "multi_thread")]
async fn unframeable_answers_are_a_502() {
    let up = RawUpstream::start(|r| match r.target.as_str() {
        "/garbage" => Reply::raw("this is not HTTP\r\n\r\n"),
        "/status" => Reply::raw("HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n"),
        "/length" => Reply::raw("HTTP/1.1 200 OK\r\nContent-Length: 0x5\r\n\r\nhello"),
        "/lengths" => {
            Reply::raw("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!")
        }
        "/fold" => Reply::raw("HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 0\r\n\r\n"),
        target => Reply::ok(target),
    })
    .await;
    let s = signed_in(&up.url(), "", None).await;
    for path in ["/garbage", "/status", "/length", "/lengths", "/fold"] {
        let mut c = KeepAlive::open(s.gw.public);
        c.send(get(path, &s.cookie));
        let answer = c.response(false);
        assert_eq!(answer.status, 502, "{path}: {answer:?}");
        assert_eq!(error_code(&answer), "upstream_unavailable");
        assert!(c.closed_within(CLOSE), "{path}");
    }
}

/// One connection carrying signed-in requests, a request for the gateway's
/// own login page, and signed-in requests again, all pipelined in one
/// write: each gets its own answer, in order, whichever of the gateway's
/// paths serves it, and the upstream sees exactly the signed-in ones.
#[tokio::test(flavor = "multi_thread")]
async fn a_connection_mixing_proxied_and_gateway_requests_keeps_its_order() {
    let up = RawUpstream::answering_targets().await;
    let s = signed_in(&up.url(), "", None).await;
    let mut c = KeepAlive::open(s.gw.public);
    let post = format!(
        "POST /form HTTP/1.1\r\nHost: gw\r\nCookie: {}\r\nContent-Length: 5\r\n\r\nhello",
        s.cookie
    );
    c.send(format!(
        "{}{}{}{post}",
        get("/one", &s.cookie),
        get("/oauth/login", &s.cookie),
        get("/two", &s.cookie)
    ));
    assert_eq!(c.response(false).body_text(), "/one");
    let login = c.response(false);
    assert!(
        login.status == 200 && login.body_text().contains("Login to"),
        "{login:?}"
    );
    assert_eq!(c.response(false).body_text(), "/two");
    assert_eq!(c.response(false).body_text(), "/form");
    assert!(c.unasked(QUIET).is_empty());
    up.assert_received_only(&["/one", "/two", "/form"]);
    assert_eq!(up.requests()[2].body, b"hello");
}

/// An upstream that closes a kept-alive connection while it is idle, as one
/// with a short keep-alive timeout does: the next request, a POST (never
/// sent twice), goes out on a new connection instead of the dead one.
#[tokio::test(flavor = "multi_thread")]
async fn a_post_after_the_upstream_closed_an_idle_connection_goes_on_a_new_one() {
    let up = RawUpstream::start(|r| Reply::ok(&r.target).then_close()).await;
    let s = signed_in(&up.url(), "", None).await;
    let mut c = KeepAlive::open(s.gw.public);
    c.send(get("/first", &s.cookie));
    assert_eq!(c.response(false).body_text(), "/first");
    tokio::time::sleep(QUIET).await;
    c.send(format!(
        "POST /second HTTP/1.1\r\nHost: gw\r\nCookie: {}\r\nContent-Length: 4\r\n\r\nonce",
        s.cookie
    ));
    let answer = c.response(false);
    assert_eq!(
        (answer.status, answer.body_text().as_str()),
        (200, "/second")
    );
    up.assert_received_only(&["/first", "/second"]);
    assert_eq!(up.connections(), 2);
}

/// Framing and forwarding headers spelt with `_` (which CGI-style upstreams
/// read as the real ones) never reach the upstream, on either path: the
/// first request is an ordinary one, the second a chunked upload.
#[tokio::test(flavor = "multi_thread")]
async fn underscore_lookalikes_of_framing_and_forwarding_headers_stay_behind() {
    let up = RawUpstream::answering_targets().await;
    let s = signed_in(&up.url(), "", None).await;
    let lookalikes = "Content_Length: 3\r\nTransfer_Encoding: chunked\r\n\
                      X_Forwarded_For: 10.0.0.1\r\nX_Forwarded_Host: admin.internal\r\n\
                      X_Real_IP: 10.0.0.1\r\nFront_End_Https: on\r\nX_Url_Scheme: https\r\n\
                      X_Custom: kept\r\n";
    let mut c = KeepAlive::open(s.gw.public);
    c.send(format!(
        "GET /plain HTTP/1.1\r\nHost: gw\r\nCookie: {}\r\n{lookalikes}\r\n\
         POST /chunked HTTP/1.1\r\nHost: gw\r\nCookie: {}\r\n{lookalikes}\
         Transfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
        s.cookie, s.cookie
    ));
    assert_eq!(c.response(false).body_text(), "/plain");
    assert_eq!(c.response(false).body_text(), "/chunked");
    up.assert_received_only(&["/plain", "/chunked"]);
    for r in up.requests() {
        let raw = String::from_utf8_lossy(&r.raw).to_ascii_lowercase();
        for name in [
            "content_length",
            "transfer_encoding",
            "x_forwarded",
            "x_real_ip",
            "front_end_https",
            "x_url_scheme",
        ] {
            assert!(!raw.contains(name), "{name} reached the upstream:\n{raw}");
        }
        assert!(raw.contains("x_custom: kept"), "{raw}");
        assert_eq!(r.headers_named("x-forwarded-for"), ["127.0.0.1"]);
    }
}

/// The two ways through the gateway for the same request: as it is (the
/// fast path takes an ordinary signed-in request) and with `Connection`
/// naming an extra header (which the fast path hands to hyper).
const BOTH_PATHS: [&str; 2] = ["keep-alive", "keep-alive, X-Hand-Off"];

/// A request without a host, with an empty one, or with one that is no
/// valid host gets 400 on both paths (RFC 9112 §3.2, as nginx answers) and
/// never reaches the upstream, not even as X-Forwarded-Host.
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_or_invalid_host_is_refused() {
    let up = RawUpstream::answering_targets().await;
    let s = signed_in(&up.url(), "", None).await;
    for connection in BOTH_PATHS {
        for host in [
            None,
            Some(""),
            Some("a b"),
            Some("gw@evil.example"),
            Some("evil.example/x?"),
            Some("gw:http"),
            Some("ev%69l.example"),
            Some("gw:99999"),
        ] {
            let host_line = host.map(|h| format!("Host: {h}\r\n")).unwrap_or_default();
            let answer = refused(
                &s,
                &format!(
                    "GET /bad-host HTTP/1.1\r\n{host_line}Cookie: {}\r\nConnection: {connection}\r\n\
                     Accept: application/json\r\n\r\n",
                    s.cookie
                ),
            );
            assert_eq!(answer.status, 400, "{host:?} ({connection}): {answer:?}");
            assert_eq!(error_code(&answer), "bad_request", "{host:?}");
        }
    }
    // An absolute target does not stand in for Host in HTTP/1.1.
    let answer = refused(
        &s,
        &format!(
            "GET http://gw/abs HTTP/1.1\r\nCookie: {}\r\nAccept: application/json\r\n\r\n",
            s.cookie
        ),
    );
    assert_eq!(answer.status, 400, "{answer:?}");
    then_only_these_arrived(&s, &up, &[]);
    // HTTP/1.0 may name no host; bracketed addresses and ports are hosts.
    let mut c = KeepAlive::open(s.gw.public);
    c.send(format!(
        "GET /old HTTP/1.0\r\nCookie: {}\r\nConnection: keep-alive\r\n\r\n",
        s.cookie
    ));
    assert_eq!(c.response(false).status, 200);
    c.send(format!(
        "GET /v6 HTTP/1.1\r\nHost: [::1]:8080\r\nCookie: {}\r\n\r\n",
        s.cookie
    ));
    assert_eq!(c.response(false).status, 200);
    up.assert_received_only(&["/after", "/old", "/v6"]);
}

/// Transfer codings other than one final `chunked`, which hyper alone would
/// read as chunked: 501 for a list, 400 for two lines, as nginx answers;
/// nothing reaches the upstream.
#[tokio::test(flavor = "multi_thread")]
async fn transfer_coding_lists_are_not_rewritten_to_chunked() {
    let up = RawUpstream::answering_targets().await;
    let s = signed_in(&up.url(), "", None).await;
    for (coding, status) in [
        ("gzip, chunked", 501),
        ("chunked, chunked", 501),
        ("identity, chunked", 501),
        ("chunked\r\nTransfer-Encoding: chunked", 400),
    ] {
        let answer = refused(
            &s,
            &format!(
                "POST /te HTTP/1.1\r\nHost: gw\r\nCookie: {}\r\nTransfer-Encoding: {coding}\r\n\
                 Accept: application/json\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                s.cookie
            ),
        );
        assert_eq!(answer.status, status, "{coding}: {answer:?}");
    }
    then_only_these_arrived(&s, &up, &[]);
}

/// `Connection` naming the host, the framing or a header the gateway
/// writes takes none of them away, on either path.
#[tokio::test(flavor = "multi_thread")]
async fn connection_cannot_remove_the_host_the_framing_or_the_identity() {
    let up = RawUpstream::answering_targets().await;
    let s = signed_in(&up.url(), "", None).await;
    let mut c = KeepAlive::open(s.gw.public);
    c.send(format!(
        "POST /named HTTP/1.1\r\nHost: gw\r\nCookie: {}\r\nContent-Length: 5\r\n\
         Connection: Host, Content-Length, X-Forwarded-For, X-Forwarded-User, X-Gone\r\n\
         X-Gone: 1\r\n\r\nhello",
        s.cookie
    ));
    assert_eq!(c.response(false).body_text(), "/named");
    let r = &up.requests()[0];
    assert_eq!(r.headers_named("host").len(), 1, "{:?}", r.headers);
    assert_eq!(r.headers_named("x-forwarded-host"), ["gw"]);
    assert_eq!(r.headers_named("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(r.headers_named("x-forwarded-user"), ["ada"]);
    assert_eq!(r.body, b"hello");
    assert!(r.headers_named("x-gone").is_empty());
}

/// HTTP/1.0 has no protocol switch: `Upgrade: websocket` from an HTTP/1.0
/// client is an ordinary request, and the upstream never sees `Upgrade`.
#[tokio::test(flavor = "multi_thread")]
async fn an_http_1_0_upgrade_is_an_ordinary_request() {
    let up = RawUpstream::answering_targets().await;
    let s = signed_in(&up.url(), "", None).await;
    let mut c = KeepAlive::open(s.gw.public);
    c.send(format!(
        "GET /ws HTTP/1.0\r\nHost: gw\r\nCookie: {}\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n",
        s.cookie
    ));
    assert_eq!(c.response(false).status, 200);
    let r = &up.requests()[0];
    assert!(r.headers_named("upgrade").is_empty(), "{:?}", r.headers);
    assert!(r
        .headers_named("connection")
        .iter()
        .all(|v| !v.to_ascii_lowercase().contains("upgrade")));
}

/// Headers an upstream reads as the client's TLS certificate or as a
/// sign-in at another proxy never come from a client, on either path; nor
/// do the gateway's own cookies go upstream, while every other cookie
/// arrives as it was sent, in order.
#[tokio::test(flavor = "multi_thread")]
async fn credentials_the_upstream_has_no_use_for_stay_behind() {
    let up = RawUpstream::answering_targets().await;
    let s = signed_in(&up.url(), "", None).await;
    for connection in BOTH_PATHS {
        let mut c = KeepAlive::open(s.gw.public);
        c.send(format!(
            "GET /creds HTTP/1.1\r\nHost: gw\r\nCookie: theme=dark; {}; _session=stack%3D1; b=\"q\"\r\n\
             Connection: {connection}\r\n\
             X-Forwarded-Tls-Client-Cert: MIIBgateway\r\n\
             X_Forwarded_Tls_Client_Cert: MIIBgateway\r\n\
             X-Forwarded-Tls-Client-Cert-Info: Subject%3D%22CN%3Deui-0000%22\r\n\
             x-forwarded-client-cert: Hash=abc;Cert=\"MIIB\"\r\n\
             X_Forwarded_Client_Cert: Hash=abc\r\n\
             Ssl-Client-Cert: MIIB\r\nX-Amzn-Oidc-Identity: root\r\n\
             X-Kept: 1\r\n\r\n",
            s.cookie
        ));
        assert_eq!(c.response(false).status, 200, "{connection}");
    }
    let requests = up.requests();
    assert_eq!(requests.len(), 2);
    for r in &requests {
        let names: Vec<String> = r
            .headers
            .iter()
            .map(|(n, _)| n.to_ascii_lowercase())
            .collect();
        for name in &names {
            assert!(
                !name.contains("cert") && !name.contains("amzn"),
                "{name} reached the upstream: {:?}",
                r.headers
            );
        }
        assert_eq!(r.headers_named("x-kept"), ["1"]);
        assert_eq!(
            r.headers_named("cookie"),
            ["theme=dark; _session=stack%3D1; b=\"q\""],
            "{:?}",
            r.headers
        );
    }
}

/// A request the fast path serves, `GET path` with the session cookie;
/// `Connection: x-trace` (naming a further hop-by-hop header) makes it one
/// hyper serves instead.
fn on_path(fast: bool, path: &str, cookie: &str) -> String {
    let hop = if fast { "" } else { "Connection: x-trace\r\n" };
    format!("GET {path} HTTP/1.1\r\nHost: gw\r\nCookie: {cookie}\r\n{hop}\r\n")
}

/// A client that stays idle after its request gives its upstream connection
/// back once idle (`HOLD_UPSTREAM`), while keeping its own: ten thousand
/// idle browsers do not hold ten thousand upstream connections.
#[tokio::test(flavor = "multi_thread")]
async fn an_idle_client_gives_its_upstream_connection_back() {
    idle_client_gives_its_upstream_connection_back(true).await;
}

/// The same on hyper's path (a connection handed off, as HTTP/2's are
/// served): the rule is one for both data paths.
#[tokio::test(flavor = "multi_thread")]
async fn an_idle_client_on_hyper_gives_its_upstream_connection_back() {
    idle_client_gives_its_upstream_connection_back(false).await;
}

async fn idle_client_gives_its_upstream_connection_back(fast: bool) {
    let up = RawUpstream::answering_targets().await;
    let s = signed_in(&up.url(), "", None).await;
    let mut idle = KeepAlive::open(s.gw.public);
    idle.send(on_path(fast, "/first", &s.cookie));
    assert_eq!(idle.response(false).body_text(), "/first");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Another client's request goes on the same upstream connection.
    let mut other = KeepAlive::open(s.gw.public);
    other.send(on_path(true, "/second", &s.cookie));
    assert_eq!(other.response(false).body_text(), "/second");
    // The idle client's connection is still open and served.
    idle.send(on_path(fast, "/third", &s.cookie));
    assert_eq!(idle.response(false).body_text(), "/third");
    let connections: Vec<usize> = up.requests().iter().map(|r| r.connection).collect();
    assert_eq!(connections[..2], [0, 0]);
}

/// Both data paths draw on one pool of idle upstream connections: the
/// connection a fast-path client used carries a hyper-served request once
/// that client is gone, and back again.
#[tokio::test(flavor = "multi_thread")]
async fn both_paths_share_one_pool_of_upstream_connections() {
    let up = RawUpstream::answering_targets().await;
    let s = signed_in(&up.url(), "", None).await;
    for (fast, path) in [(true, "/fast"), (false, "/hyper"), (true, "/fast-again")] {
        let mut c = KeepAlive::open(s.gw.public);
        c.send(on_path(fast, path, &s.cookie));
        assert_eq!(c.response(false).body_text(), path);
        drop(c);
        // The client's connection closing hands its upstream one back.
        tokio::time::sleep(QUIET).await;
    }
    up.assert_received_only(&["/fast", "/hyper", "/fast-again"]);
    let connections: Vec<usize> = up.requests().iter().map(|r| r.connection).collect();
    assert_eq!(connections, [0, 0, 0]);
    assert_eq!(up.connections(), 1);
}

/// An answer whose head is larger than the fast path's first read of the
/// upstream, and whose body is larger than any read, arrives whole, and so
/// does the next one on the same connections (their buffers grown by then).
#[tokio::test(flavor = "multi_thread")]
async fn answers_larger_than_a_read_arrive_whole() {
    let fields: String = (0..40)
        .map(|i| format!("X-Part-{i}: {}\r\n", "v".repeat(500)))
        .collect();
    let body: String = (0..300_000u32)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let answer = format!(
        "HTTP/1.1 200 OK\r\n{fields}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let up = RawUpstream::start(move |_| Reply::raw(answer.clone())).await;
    let s = signed_in(&up.url(), "", None).await;
    let mut client = KeepAlive::open(s.gw.public);
    for path in ["/first", "/second"] {
        client.send(on_path(true, path, &s.cookie));
        let r = client.response(false);
        assert_eq!(r.status, 200);
        assert_eq!(r.headers_named("x-part-39"), ["v".repeat(500)]);
        assert!(r.body == body.as_bytes(), "the body arrives whole");
    }
    assert_eq!(up.targets(), ["/first", "/second"]);
    assert_eq!(up.connections(), 1, "both on one upstream connection");
}
