//! `server.client_timeout`: how long the gateway waits on a client. A
//! request body that stops coming gets 408 and reaches the upstream as no
//! request; a client that stops reading an answer loses its connection; an
//! idle keep-alive connection is closed. Each on the fast path (requests a
//! signed-in person's connection starts with) and on hyper's (the rest of a
//! connection after a request of the gateway's own).

mod common;

use std::io::Read;
use std::time::Duration;

use common::login::{signed_in, signed_in_over_tls, SignedIn};
use common::raw_upstream::RawUpstream;
use common::upstream::Upstream;
use common::KeepAlive;

const TOML: &str = "[server]\nclient_timeout = \"1s\"\n[log]\nformat = \"json\"";
/// Well past the client timeout, well within any test's patience.
const PAST_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection on the path under test: the fast path's, or hyper's once a
/// request for the login page (the gateway's own) has moved it there.
fn connection(s: &SignedIn, hyper: bool) -> KeepAlive {
    let mut c = KeepAlive::open(s.gw.public);
    if hyper {
        c.send("GET /oauth/login HTTP/1.1\r\nHost: gw\r\n\r\n");
        assert_eq!(c.response(false).status, 200);
    }
    c
}

/// The gateway's access log line for its `nth` (from 0) request for `path`
/// (the log leaves out query strings), once it is written.
async fn access_line(s: &SignedIn, path: &str, nth: usize) -> serde_json::Value {
    let deadline = std::time::Instant::now() + PAST_TIMEOUT;
    loop {
        let logs = s.gw.logs();
        let line = logs
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|l| l["target"] == "idgate::access" && l["path"] == path)
            .nth(nth);
        if let Some(line) = line {
            return line;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no access line {nth} for {path}:\n{logs}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An upload that stops halfway: the client is told 408 (a page for a
/// browser, JSON otherwise), its connection is closed, the upstream has no
/// complete request, and the operator's log says why. The fast path holds
/// a small body until it is whole, so the upstream hears nothing of it;
/// hyper's path streams it, so the upstream sees a request that breaks off.
#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_upload_gets_408_and_reaches_no_one() {
    let up = RawUpstream::answering_targets().await;
    let s = signed_in(&up.url(), TOML, None).await;
    for (hyper, framing, part) in [
        (false, "Content-Length: 100", "hello"),
        (true, "Transfer-Encoding: chunked", "5\r\nhello\r\n"),
    ] {
        for html in [false, true] {
            let path = format!("/upload-{hyper}-{html}");
            let accept = if html { "text/html" } else { "*/*" };
            let mut c = connection(&s, hyper);
            c.send(format!(
                "POST {path} HTTP/1.1\r\nHost: gw\r\nCookie: {}\r\nAccept: {accept}\r\n{framing}\r\n\r\n{part}",
                s.cookie
            ));
            let answer = c.response(false);
            assert_eq!(answer.status, 408, "{path}: {answer:?}");
            if html {
                assert!(
                    answer.body_text().contains("Request timed out"),
                    "{path}: {answer:?}"
                );
            } else {
                let json: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
                assert_eq!(json["error"], "request_timeout", "{path}: {answer:?}");
            }
            assert!(
                c.closed_within(PAST_TIMEOUT),
                "{path}: connection left open"
            );
            let line = access_line(&s, &path, 0).await;
            assert_eq!(line["status"], 408, "{line}");
            assert_eq!(line["error"], "client_timeout", "{line}");
        }
        if !hyper {
            assert_eq!(up.connections(), 0, "{}", up.received_text());
        }
    }
    assert!(
        up.received_text().contains("POST /upload-true-false"),
        "hyper's path streams the upload: {}",
        up.received_text()
    );
    assert!(
        up.requests().is_empty(),
        "the upstream took a stalled upload as a request:\n{}",
        up.received_text()
    );
}

/// An upload that keeps coming, each part well within the client timeout,
/// may take far longer than the timeout as a whole.
#[tokio::test(flavor = "multi_thread")]
async fn a_slow_but_steady_upload_gets_through() {
    let up = Upstream::start().await;
    let s = signed_in(&up.url(), TOML, None).await;
    let mut c = connection(&s, true);
    c.send(format!(
        "POST /upload HTTP/1.1\r\nHost: gw\r\nCookie: {}\r\nTransfer-Encoding: chunked\r\n\r\n",
        s.cookie
    ));
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        c.send("5\r\nhello\r\n");
    }
    c.send("0\r\n\r\n");
    let answer = c.response(false);
    assert_eq!(answer.status, 200, "{answer:?}");
    let json: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(json["len"], 30);
}

/// The size of the answer a stalling client asks for.
const TOTAL: usize = 256 * 1024 * 1024;

/// A client that stalled reading its `nth` download read only `got` bytes
/// of it afterwards, and the access log says it was gone.
async fn assert_cut_short(s: &SignedIn, nth: usize, hyper: bool, got: usize) {
    assert!(
        got < TOTAL,
        "hyper={hyper}: the client read all {got} bytes; the connection outlived its stall"
    );
    let line = access_line(s, "/download", nth).await;
    assert_eq!(line["error"], "client_gone", "{line}");
}

/// A client that asks for a large answer and then reads none of it: once
/// its socket is full and the client timeout passes, the gateway closes the
/// connection, so the client finds far less than the answer when it reads.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_stops_reading_loses_its_connection() {
    let up = Upstream::start().await;
    let s = signed_in(&up.url(), TOML, None).await;
    for (nth, hyper) in [false, true].into_iter().enumerate() {
        let path = format!("/download?bytes={TOTAL}");
        let mut c = connection(&s, hyper);
        c.send(format!(
            "GET {path} HTTP/1.1\r\nHost: gw\r\nCookie: {}\r\n\r\n",
            s.cookie
        ));
        tokio::time::sleep(PAST_TIMEOUT).await;
        let mut got = 0usize;
        let mut buf = vec![0u8; 1 << 20];
        while let Ok(n) = c.reader().read(&mut buf) {
            if n == 0 {
                break;
            }
            got += n;
        }
        assert_cut_short(&s, nth, hyper, got).await;
    }
}

/// A kept-alive connection with no next request is closed after the client
/// timeout, on both paths.
#[tokio::test(flavor = "multi_thread")]
async fn an_idle_connection_is_closed_after_the_client_timeout() {
    let up = RawUpstream::answering_targets().await;
    let s = signed_in(&up.url(), TOML, None).await;
    for hyper in [false, true] {
        let mut c = connection(&s, hyper);
        assert_eq!(c.get("/first", &s.cookie), 200);
        assert!(
            c.closed_within(PAST_TIMEOUT),
            "hyper={hyper}: an idle connection stayed open"
        );
    }
}

/// A request head that stops halfway is not waited on forever either.
#[tokio::test(flavor = "multi_thread")]
async fn a_head_that_stops_halfway_is_closed_after_the_client_timeout() {
    let up = RawUpstream::answering_targets().await;
    let s = signed_in(&up.url(), TOML, None).await;
    for hyper in [false, true] {
        let mut c = connection(&s, hyper);
        c.send("GET /half HTTP/1.1\r\nHost: gw\r\n");
        assert!(
            c.closed_within(PAST_TIMEOUT),
            "hyper={hyper}: a half head held the connection"
        );
    }
    assert!(up.requests().is_empty());
}

/// Sends `start`, then `byte` every 250 ms, each well within the client
/// timeout; returns how long after `start` the gateway closed the
/// connection and what it said, or `None` if it was still open after 6 s.
fn trickle(addr: std::net::SocketAddr, start: &str, byte: u8) -> Option<(Duration, String)> {
    use std::io::{ErrorKind, Write};
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.write_all(start.as_bytes()).unwrap();
    let begun = std::time::Instant::now();
    c.set_read_timeout(Some(Duration::from_millis(250)))
        .unwrap();
    let mut said = Vec::new();
    while begun.elapsed() < Duration::from_secs(6) {
        let mut buf = [0u8; 4096];
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => said.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
        if c.write_all(&[byte]).is_err() {
            break;
        }
    }
    let elapsed = begun.elapsed();
    (elapsed < Duration::from_secs(6))
        .then(|| (elapsed, String::from_utf8_lossy(&said).into_owned()))
}

/// A head or a body that keeps coming a byte at a time, each byte well
/// within the client timeout, still has only the client timeout to arrive
/// whole on the fast path: trickling does not hold a connection open.
#[tokio::test(flavor = "multi_thread")]
async fn a_trickled_head_or_body_has_the_client_timeout_as_a_whole() {
    let up = RawUpstream::answering_targets().await;
    let s = signed_in(&up.url(), TOML, None).await;
    let head = format!(
        "GET /trickle HTTP/1.1\r\nHost: gw\r\nCookie: {}\r\nX-Slow: ",
        s.cookie
    );
    let body = format!(
        "POST /trickle HTTP/1.1\r\nHost: gw\r\nCookie: {}\r\nContent-Length: 100\r\n\r\n",
        s.cookie
    );
    let addr = s.gw.public;
    let (head, body) = tokio::task::spawn_blocking(move || {
        (trickle(addr, &head, b'a'), trickle(addr, &body, b'b'))
    })
    .await
    .unwrap();
    let (took, said) = head.expect("a trickled head held its connection for 6 s");
    assert!(
        took < Duration::from_secs(4),
        "closed after {took:?}: {said}"
    );
    let (took, said) = body.expect("a trickled body held its connection for 6 s");
    assert!(
        took < Duration::from_secs(4),
        "closed after {took:?}: {said}"
    );
    assert!(said.starts_with("HTTP/1.1 408 "), "{said}");
    assert!(up.requests().is_empty(), "{}", up.received_text());
}

/// A TLS connection to the gateway's listener, trusting `cert`.
async fn tls_connect(
    s: &SignedIn,
    cert: &rustls::pki_types::CertificateDer<'static>,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(s.gw.public).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap()
}

/// The same over TLS, on both paths: the write timeout sits over the TLS
/// stream, so a client that takes no bytes stalls TLS's writes and loses
/// its connection.
#[tokio::test(flavor = "multi_thread")]
async fn a_tls_client_that_stops_reading_loses_its_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = Upstream::start().await;
    let (s, cert, _dir) = signed_in_over_tls(&up.url(), TOML).await;
    for (nth, hyper) in [false, true].into_iter().enumerate() {
        let mut c = tls_connect(&s, cert.cert.der()).await;
        if hyper {
            c.write_all(b"GET /oauth/login HTTP/1.1\r\nHost: gw\r\n\r\n")
                .await
                .unwrap();
            let mut head = Vec::new();
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let mut chunk = [0u8; 4096];
                let n = c.read(&mut chunk).await.unwrap();
                assert!(n > 0, "closed before the login page");
                head.extend_from_slice(&chunk[..n]);
            }
            assert!(head.starts_with(b"HTTP/1.1 200"), "{head:?}");
        }
        let request = format!(
            "GET /download?bytes={TOTAL} HTTP/1.1\r\nHost: gw\r\nCookie: {}\r\n\r\n",
            s.cookie
        );
        c.write_all(request.as_bytes()).await.unwrap();
        tokio::time::sleep(PAST_TIMEOUT).await;
        let mut got = 0usize;
        let mut buf = vec![0u8; 1 << 20];
        while let Ok(Ok(n)) = tokio::time::timeout(PAST_TIMEOUT, c.read(&mut buf)).await {
            if n == 0 {
                break;
            }
            got += n;
        }
        assert_cut_short(&s, nth, hyper, got).await;
    }
}

/// An idle TLS connection is closed after the client timeout even while
/// bytes trickle in that never make a request: one byte of a TLS record at
/// a time wakes the gateway each time, and none of them is a request, so
/// none of them may restart the wait (a slowloris that kept a connection
/// open forever).
#[tokio::test(flavor = "multi_thread")]
async fn an_idle_tls_connection_trickling_record_bytes_is_closed_after_the_client_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let up = RawUpstream::answering_targets().await;
    let toml = "[server]\nclient_timeout = \"2s\"";
    let (s, cert, _dir) = signed_in_over_tls(&up.url(), toml).await;

    let mut tls = tls_connect(&s, cert.cert.der()).await;
    let request = format!(
        "GET /first HTTP/1.1\r\nHost: gw\r\nCookie: {}\r\n\r\n",
        s.cookie
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    while !answer.ends_with(b"/first") {
        let mut chunk = [0u8; 1024];
        let n = tls.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed before its answer: {answer:?}");
        answer.extend_from_slice(&chunk[..n]);
    }
    let idle_since = std::time::Instant::now();

    // An application-data record of 64 bytes, sent a byte at a time under
    // the TLS session; the server hears from the client all along.
    let (tcp, _) = tls.get_mut();
    let record: Vec<u8> = [0x17, 0x03, 0x03, 0x00, 0x40]
        .into_iter()
        .chain([0; 64])
        .collect();
    let mut closed_after = None;
    for byte in record.iter().take(12) {
        if tcp.write_all(&[*byte]).await.is_err() {
            closed_after = Some(idle_since.elapsed());
            break;
        }
        let mut sink = [0u8; 256];
        // Anything else is the gateway's close_notify, or nothing yet.
        let read = tokio::time::timeout(Duration::from_millis(700), tcp.read(&mut sink)).await;
        if let Ok(Ok(0) | Err(_)) = read {
            closed_after = Some(idle_since.elapsed());
            break;
        }
    }
    let closed_after = closed_after.expect("the trickling connection stayed open past 8 s");
    assert!(
        closed_after < Duration::from_millis(3500),
        "closed only after {closed_after:?} (client timeout 2 s)"
    );
    assert_eq!(
        up.requests().len(),
        1,
        "only the first request reached the upstream"
    );
}

/// A sign-in callback posted as a form whose body stops coming is answered
/// 408 and its connection closed after the client timeout: the gateway's
/// own route does not wait on a client forever either.
#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_callback_form_gets_408() {
    let up = RawUpstream::answering_targets().await;
    let s = signed_in(&up.url(), TOML, None).await;
    let mut c = KeepAlive::open(s.gw.public);
    c.send(
        "POST /oauth/login/x/callback HTTP/1.1\r\nHost: gw\r\nAccept: text/html\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ncode=abc",
    );
    let answer = c.response(false);
    assert_eq!(answer.status, 408, "{answer:?}");
    assert!(
        answer.body_text().contains("Request timed out"),
        "{answer:?}"
    );
    assert!(c.closed_within(PAST_TIMEOUT), "connection left open");
    assert!(up.requests().is_empty());
    let line = access_line(&s, "/oauth/login/x/callback", 0).await;
    assert_eq!(line["status"], 408, "{line}");
    assert_eq!(line["error"], "client_timeout", "{line}");
}
