//! The data path through the real binary: what the upstream receives, what
//! the client gets back, and how the gateway behaves when the upstream fails.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::login::{signed_in, signed_in_over_tls};
use common::raw_upstream::{RawUpstream, Reply};
use common::upstream::{echoed, hex, pattern_chunk, Upstream};
use common::{client, Gateway};
use futures_util::{SinkExt, StreamExt};
use sha2::{Digest, Sha256};

/// Sends raw bytes and returns the raw response (header names exactly as
/// the test writes them, duplicates and underscores included).
fn raw_request(addr: std::net::SocketAddr, cookie: &str, request: &str) -> String {
    let (line, rest) = request.split_once("\r\n").unwrap();
    let request = format!("{line}\r\nCookie: {cookie}\r\n{rest}");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn body_json(raw: &str) -> serde_json::Value {
    let body = raw.split("\r\n\r\n").nth(1).expect("a body");
    serde_json::from_str(body).unwrap_or_else(|_| panic!("JSON body expected:\n{raw}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn forwards_method_path_query_and_body() {
    let up = Upstream::start().await;
    let s = signed_in(&up.url(), "", None).await;
    let r = s
        .request(reqwest::Method::PUT, "/console/applications?page=2&q=a%20b")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let echo: serde_json::Value = r.json().await.unwrap();
    assert_eq!(echo["method"], "PUT");
    assert_eq!(echo["uri"], "/console/applications?page=2&q=a%20b");
}

#[tokio::test(flavor = "multi_thread")]
async fn client_identity_headers_never_reach_the_upstream() {
    let up = Upstream::start().await;
    let s = signed_in(&up.url(), "", None).await;
    let gw = &s.gw;
    // `Connection` naming an extra header sends the request through hyper
    // rather than the fast path: both must strip alike.
    let ways = ["GET", "POST", "DELETE", "OPTIONS"]
        .into_iter()
        .flat_map(|m| [(m, "close"), (m, "close, X-Hand-Off")]);
    for (method, connection) in ways {
        let raw = raw_request(
            gw.public,
            &s.cookie,
            &format!(
                "{method} /any/path HTTP/1.1\r\nHost: gw\r\n\
                 X-Forwarded-User: admin\r\n\
                 x-forwarded-user: admin2\r\n\
                 X-FORWARDED-USER: admin3\r\n\
                 X_Forwarded_User: admin4\r\n\
                 x_forwarded_email: a@evil.example\r\n\
                 X-Forwarded-Preferred-Username: root\r\n\
                 X-Idgate-Provider: evil\r\n\
                 X-IDGATE-ASSERTION: forged.jwt.value\r\n\
                 X_Idgate_Assertion: forged\r\n\
                 X-Idgate-Future-Header: x\r\n\
                 X-Forwarded-Prefix: /evil\r\n\
                 X-Forwarded-Port: 1\r\n\
                 X-Forwarded-Userx: x\r\n\
                 X-Kept: kept\r\n\
                 Content-Length: 0\r\nConnection: {connection}\r\n\r\n"
            ),
        );
        assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
        let echo = body_json(&raw);
        for name in [
            "x_forwarded_user",
            "x_forwarded_email",
            "x_idgate_assertion",
            "x-idgate-future-header",
        ] {
            assert!(
                echoed(&echo, name).is_empty(),
                "{method} ({connection}): {name} leaked: {echo}"
            );
        }
        // Only the gateway's own, verified values arrive, once each.
        assert_eq!(echoed(&echo, "x-forwarded-user"), vec!["ada"], "{method}");
        assert_eq!(echoed(&echo, "x-forwarded-email"), vec!["ada@example.com"]);
        assert_eq!(echoed(&echo, "x-forwarded-preferred-username"), vec!["ada"]);
        assert_eq!(echoed(&echo, "x-idgate-provider"), vec!["entra"]);
        let assertion = echoed(&echo, "x-idgate-assertion");
        assert_eq!(assertion.len(), 1);
        assert_ne!(assertion[0], "forged.jwt.value");
        // Forwarding headers are the gateway's, whatever their name.
        for name in [
            "x-forwarded-prefix",
            "x-forwarded-port",
            "x-forwarded-userx",
        ] {
            assert!(echoed(&echo, name).is_empty(), "{name} leaked: {echo}");
        }
        assert_eq!(echoed(&echo, "x-kept"), vec!["kept"]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarding_headers_from_untrusted_clients_are_replaced() {
    let up = Upstream::start().await;
    let s = signed_in(&up.url(), "", None).await;
    let gw = &s.gw;
    let raw = raw_request(
        gw.public,
        &s.cookie,
        "GET / HTTP/1.1\r\nHost: console.example:8080\r\n\
         X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\n\
         X-Forwarded-Host: evil.example\r\nForwarded: for=6.6.6.6\r\n\
         Connection: close\r\n\r\n",
    );
    let echo = body_json(&raw);
    assert_eq!(echoed(&echo, "x-forwarded-for"), vec!["127.0.0.1"]);
    assert_eq!(echoed(&echo, "x-forwarded-proto"), vec!["http"]);
    assert_eq!(
        echoed(&echo, "x-forwarded-host"),
        vec!["console.example:8080"]
    );
    assert!(echoed(&echo, "forwarded").is_empty());
    assert_eq!(echoed(&echo, "host"), vec!["console.example:8080"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarding_headers_from_a_trusted_proxy_are_kept_and_extended() {
    let up = Upstream::start().await;
    let s = signed_in(
        &up.url(),
        "[server]\ntrusted_proxies = [\"127.0.0.0/8\"]",
        None,
    )
    .await;
    let gw = &s.gw;
    let raw = raw_request(
        gw.public,
        &s.cookie,
        "GET / HTTP/1.1\r\nHost: gw.internal\r\n\
         X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\n\
         X-Forwarded-Host: console.example\r\nConnection: close\r\n\r\n",
    );
    let echo = body_json(&raw);
    assert_eq!(
        echoed(&echo, "x-forwarded-for"),
        vec!["203.0.113.7, 127.0.0.1"]
    );
    assert_eq!(echoed(&echo, "x-forwarded-proto"), vec!["https"]);
    assert_eq!(echoed(&echo, "x-forwarded-host"), vec!["console.example"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn host_header_can_name_the_upstream_instead() {
    let up = Upstream::start().await;
    let s = signed_in(&up.url(), "[upstream]\npass_host_header = false", None).await;
    let r = s
        .get("/")
        .header("host", "console.example")
        .send()
        .await
        .unwrap();
    let echo: serde_json::Value = r.json().await.unwrap();
    assert_eq!(echoed(&echo, "host"), vec![up.addr.to_string().as_str()]);
    assert_eq!(echoed(&echo, "x-forwarded-host"), vec!["console.example"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn hop_by_hop_headers_are_not_forwarded() {
    let up = Upstream::start().await;
    let s = signed_in(&up.url(), "", None).await;
    let gw = &s.gw;
    let raw = raw_request(
        gw.public,
        &s.cookie,
        "GET / HTTP/1.1\r\nHost: gw\r\nConnection: close, X-Secret-Hop\r\n\
         X-Secret-Hop: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n\
         Proxy-Authorization: Basic Zm9vOmJhcg==\r\n\r\n",
    );
    let echo = body_json(&raw);
    assert!(echoed(&echo, "x-secret-hop").is_empty(), "{echo}");
    assert!(echoed(&echo, "keep-alive").is_empty(), "{echo}");
    assert!(echoed(&echo, "proxy-authorization").is_empty(), "{echo}");
}

const HUNDRED_MB: u64 = 100 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread")]
async fn large_bodies_stream_both_ways_in_constant_memory() {
    let up = Upstream::start().await;
    let s = signed_in(&up.url(), "", None).await;
    let gw = &s.gw;

    let mut expected = Sha256::new();
    let chunks: Vec<Vec<u8>> = (0..(HUNDRED_MB / (1 << 20)))
        .map(|i| pattern_chunk(i * (1 << 20), 1 << 20))
        .collect();
    for c in &chunks {
        expected.update(c);
    }
    let expected = hex(&expected.finalize());
    let stream = futures_util::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
    let r = s
        .request(reqwest::Method::POST, "/upload")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let got: serde_json::Value = r.json().await.unwrap();
    assert_eq!(got["len"], HUNDRED_MB);
    assert_eq!(got["sha256"], expected.as_str());

    let r = s
        .get(&format!("/download?bytes={HUNDRED_MB}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut body = r.bytes_stream();
    let mut hasher = Sha256::new();
    let mut len = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.unwrap();
        len += chunk.len() as u64;
        hasher.update(&chunk);
    }
    assert_eq!(len, HUNDRED_MB);
    assert_eq!(hex(&hasher.finalize()), expected);

    let peak = gw.peak_rss();
    assert!(
        peak < 64 * 1024 * 1024,
        "gateway peak RSS {} MiB: bodies were buffered",
        peak >> 20
    );
}

/// The memory of a crowd's requests goes back to the system once they are
/// answered: the gateway does not keep the high-water mark of its busiest
/// moment while its connections sit idle.
#[tokio::test(flavor = "multi_thread")]
async fn memory_of_a_crowd_goes_back_to_the_system_once_it_is_answered() {
    const CROWD: usize = 300;
    const BODY: usize = 60_000;
    let up = Upstream::start().await;
    let s = signed_in(&up.url(), "", None).await;
    let gw = &s.gw;
    // Each request holds its 60 kB body in the gateway for as long as the
    // upstream takes to answer.
    let request = |ms: u32| {
        format!(
            "GET /slow?ms={ms} HTTP/1.1\r\nHost: gw\r\nContent-Length: {BODY}\r\n\
             Connection: close\r\n\r\n{}",
            "x".repeat(BODY)
        )
    };
    let send = |request: String| {
        let (addr, cookie) = (gw.public, s.cookie.clone());
        std::thread::spawn(move || raw_request(addr, &cookie, &request))
    };
    // One of the same shape first, so what it takes once is there before.
    let first = send(request(0));
    while !first.is_finished() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(first.join().unwrap().ends_with("finally"));
    let before = gw.anon_rss();
    let crowd: Vec<_> = (0..CROWD).map(|_| send(request(2000))).collect();
    let mut busy = before;
    while !crowd.iter().all(|c| c.is_finished()) {
        busy = busy.max(gw.anon_rss());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for c in crowd {
        let answer = c.join().unwrap();
        assert!(answer.ends_with("finally"), "{answer}");
    }
    let grew = busy - before;
    assert!(
        grew > (CROWD * BODY) as u64 / 2,
        "the crowd took only {} KiB: this test measures nothing",
        grew >> 10
    );
    let mut after = gw.anon_rss();
    for _ in 0..50 {
        if after < before + grew / 4 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        after = gw.anon_rss();
    }
    panic!(
        "5 s after the crowd: {} KiB resident, {} KiB before it, {} KiB while it was served",
        after >> 10,
        before >> 10,
        busy >> 10
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn server_sent_events_arrive_chunk_by_chunk() {
    let up = Upstream::start().await;
    let s = signed_in(&up.url(), "", None).await;
    let r = s.get("/sse").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let mut body = r.bytes_stream();
    // The upstream holds the second event until released: the first must
    // reach us on its own, or this read never completes.
    let first = tokio::time::timeout(Duration::from_secs(20), body.next())
        .await
        .expect("first event was held back by the gateway")
        .unwrap()
        .unwrap();
    assert_eq!(&first[..], b"data: one\n\n");
    up.release();
    let second = body.next().await.unwrap().unwrap();
    assert_eq!(&second[..], b"data: two\n\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_upgrades_pass_through() {
    let up = Upstream::start().await;
    let s = signed_in(&up.url(), "", None).await;
    let gw = &s.gw;
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://{}/ws", gw.public),
    )
    .unwrap();
    req.headers_mut()
        .insert("x-forwarded-user", "mallory".parse().unwrap());
    req.headers_mut()
        .insert("cookie", s.cookie.parse().unwrap());
    let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.status(), 101);
    let hello = ws.next().await.unwrap().unwrap();
    assert_eq!(hello.into_text().unwrap().as_str(), "hello ada");
    for i in 0..3 {
        ws.send(format!("ping {i}").into()).await.unwrap();
        let echo = ws.next().await.unwrap().unwrap();
        assert_eq!(
            echo.into_text().unwrap().as_str(),
            format!("echo: ping {i}")
        );
    }
    ws.close(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_down_gives_502_page_or_json() {
    let dead = format!("http://127.0.0.1:{}", common::free_port());
    let s = signed_in(&dead, "", None).await;
    let gw = &s.gw;
    let r = s
        .get("/x")
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let page = r.text().await.unwrap();
    assert!(page.contains("The application is not reachable"), "{page}");

    let r = s.get("/x").send().await.unwrap();
    assert_eq!(r.status(), 502);
    let json: serde_json::Value = r.json().await.unwrap();
    assert_eq!(json["error"], "upstream_unavailable");

    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("idgate_upstream_errors_total{kind=\"unavailable\"} 2"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_upstream_gives_504_and_the_gateway_keeps_serving() {
    let up = Upstream::start().await;
    let s = signed_in(&up.url(), "[upstream]\nread_timeout = \"1s\"", None).await;
    let r = s.get("/slow?ms=4000").send().await.unwrap();
    assert_eq!(r.status(), 504);
    let json: serde_json::Value = r.json().await.unwrap();
    assert_eq!(json["error"], "upstream_timeout");
    let r = s.get("/slow?ms=10").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "finally");
}

/// An upstream that answers `/trickle` with a head one byte every 300 ms,
/// `/interim` with an interim answer every 20 ms, and `/flood` with interim
/// answers as fast as it can, none of them ever final.
async fn endless_head_upstream() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                while !head.ends_with(b"\r\n\r\n") {
                    let mut byte = [0u8; 1];
                    if conn.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let target = String::from_utf8_lossy(&head).into_owned();
                let (first, again, pause): (&[u8], &[u8], u64) = if target.contains("/trickle") {
                    (b"HTTP/1.1 200 OK\r\nX-Slow: ", b"a", 300)
                } else if target.contains("/interim") {
                    (b"", b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", 20)
                } else {
                    (b"", b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", 0)
                };
                let _ = conn.write_all(first).await;
                while conn.write_all(again).await.is_ok() {
                    if pause > 0 {
                        tokio::time::sleep(Duration::from_millis(pause)).await;
                    }
                }
            });
        }
    });
    url
}

/// An upstream's answer head has the read timeout as a whole, however it
/// trickles in, interim answers included, and no stream of interim answers
/// goes on past the head size limit: over HTTP/1.1 (the fast path) and
/// HTTP/2 (the gateway's own client on hyper) alike.
#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_head_that_never_ends_gets_504_or_502_in_time() {
    let url = endless_head_upstream().await;
    let (s, cert, _dir) = signed_in_over_tls(&url, "[upstream]\nread_timeout = \"1s\"").await;
    let root = reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap();
    for client in [h1_client(root.clone()), h2_client(root)] {
        for (path, status) in [("/trickle", 504), ("/interim", 504), ("/flood", 502)] {
            let started = std::time::Instant::now();
            let r = client.get(s.gw.url(path)).header("cookie", &s.cookie);
            let r = r.timeout(Duration::from_secs(30)).send().await.unwrap();
            assert_eq!(r.status(), status, "{path} over {:?}", r.version());
            let waited = started.elapsed();
            assert!(waited < Duration::from_secs(6), "{path}: {waited:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_headers_and_uris_are_refused() {
    let up = Upstream::start().await;
    let s = signed_in(
        &up.url(),
        "[server]\nmax_header_bytes = 4096\nmax_uri_bytes = 1024",
        None,
    )
    .await;
    let long_path = format!("/{}", "a".repeat(2000));
    let r = s.get(&long_path).send().await.unwrap();
    assert_eq!(r.status(), 414);
    let r = s
        .get("/")
        .header("cookie", "x".repeat(5000))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 431);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Request headers too large"));
    let r = s.get("/fine").send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn https_upstream_is_reached_with_verification_configurable() {
    let up = Upstream::start_tls().await;
    let url = format!("https://localhost:{}", up.addr.port());
    let s = signed_in(&url, "[upstream]\ntls_verify = false", None).await;
    let r = s.get("/over-tls").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let echo: serde_json::Value = r.json().await.unwrap();
    assert_eq!(echo["uri"], "/over-tls");

    let s2 = signed_in(&url, "", None).await;
    let r = client()
        .get(s2.gw.url("/over-tls"))
        .header("cookie", &s2.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        502,
        "a self-signed upstream must fail verification"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_listener_serves_http1_and_http2() {
    let up = Upstream::start().await;
    let (s, cert, _dir) = signed_in_over_tls(&up.url(), "").await;
    let root = reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap();
    assert!(
        s.cookie.contains("__Host-idgate_session="),
        "https sessions use the __Host- cookie: {}",
        s.cookie
    );
    let url = s.gw.url("/tls-path");
    for http2 in [false, true] {
        let client = if http2 {
            h2_client(root.clone())
        } else {
            h1_client(root.clone())
        };
        let r = client
            .get(&url)
            .header("cookie", &s.cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let expected = if http2 {
            reqwest::Version::HTTP_2
        } else {
            reqwest::Version::HTTP_11
        };
        assert_eq!(r.version(), expected);
        let echo: serde_json::Value = r.json().await.unwrap();
        assert_eq!(echoed(&echo, "x-forwarded-proto"), vec!["https"]);
    }
    // Plain HTTP at the TLS listener: no handshake, counted, nothing served.
    let mut plain = common::KeepAlive::open(s.gw.public);
    plain.send("GET / HTTP/1.1\r\nHost: gw\r\n\r\n");
    let mut back = Vec::new();
    plain.reader().read_to_end(&mut back).unwrap();
    assert!(!back.starts_with(b"HTTP/"), "{back:?}");
    s.gw.metrics_with("idgate_refused_connections_total{reason=\"tls_handshake\"} 1")
        .await;
}

/// An HTTP/2 client may send each cookie in a `Cookie` field of its own
/// (RFC 9113 §8.2.3): the upstream gets them in one HTTP/1.1 `Cookie`
/// line, in order, without the gateway's session, and the identity
/// headers of the session found among them.
#[tokio::test(flavor = "multi_thread")]
async fn an_http2_clients_split_cookies_reach_the_upstream_in_one_line() {
    let up = Upstream::start().await;
    let (s, cert, _dir) = signed_in_over_tls(&up.url(), "").await;
    let root = reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap();
    let h2 = h2_client(root);
    let r = h2
        .get(s.gw.url("/crumbs"))
        .header("cookie", "a=1")
        .header("cookie", &s.cookie)
        .header("cookie", "b=2; c=3")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    let echo: serde_json::Value = r.json().await.unwrap();
    assert_eq!(echoed(&echo, "cookie"), vec!["a=1; b=2; c=3"]);
    assert_eq!(echoed(&echo, "x-forwarded-user").len(), 1, "{echo}");
}

/// An HTTP/2 client over `root`'s TLS.
fn h2_client(root: reqwest::Certificate) -> reqwest::Client {
    let builder = reqwest::Client::builder().no_proxy();
    builder
        .add_root_certificate(root)
        .http2_prior_knowledge()
        .build()
        .unwrap()
}

/// An HTTP/1.1 client over `root`'s TLS.
fn h1_client(root: reqwest::Certificate) -> reqwest::Client {
    let builder = reqwest::Client::builder().no_proxy();
    builder
        .add_root_certificate(root)
        .http1_only()
        .build()
        .unwrap()
}

/// An HTTP/2 client's GETs, one after another, go on one upstream
/// connection, kept for its connection; once that client has gone, the
/// upstream connection carries an HTTP/1.1 client's request too.
#[tokio::test(flavor = "multi_thread")]
async fn http2_requests_share_one_upstream_connection_with_the_next_client() {
    let up = RawUpstream::answering_targets().await;
    let (s, cert, _dir) = signed_in_over_tls(&up.url(), "").await;
    let root = reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap();
    let h2 = h2_client(root.clone());
    for path in ["/a", "/b", "/c"] {
        let r = h2.get(s.gw.url(path)).header("cookie", &s.cookie);
        let r = r.send().await.unwrap();
        assert_eq!(r.version(), reqwest::Version::HTTP_2);
        assert_eq!(r.text().await.unwrap(), path);
    }
    drop(h2);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let r = h1_client(root).get(s.gw.url("/d"));
    let r = r.header("cookie", &s.cookie);
    assert_eq!(r.send().await.unwrap().text().await.unwrap(), "/d");
    up.assert_received_only(&["/a", "/b", "/c", "/d"]);
    let connections: Vec<usize> = up.requests().iter().map(|r| r.connection).collect();
    assert_eq!(connections, [0, 0, 0, 0], "{}", up.received_text());
}

/// Each request on an upstream connection kept between an HTTP/2 client's
/// requests (with the deadline its reads were timed by) has the whole read
/// timeout for its answer: one answered late, then another on the same
/// connection straight after, both within it, both arrive.
#[tokio::test(flavor = "multi_thread")]
async fn each_request_on_a_kept_upstream_connection_has_the_whole_read_timeout() {
    let up = Upstream::start().await;
    let toml = "[upstream]\nread_timeout = \"1s\"";
    let (s, cert, _dir) = signed_in_over_tls(&up.url(), toml).await;
    let root = reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap();
    let h2 = h2_client(root);
    for _ in 0..3 {
        let r = h2.get(s.gw.url("/slow?ms=700")).header("cookie", &s.cookie);
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), "finally");
    }
}

/// An HTTP/2 client that stops reading an answer halfway leaves its
/// upstream connection closed, never reused: the next request goes on a
/// new one and gets its own answer, nothing of the one left unread.
#[tokio::test(flavor = "multi_thread")]
async fn an_answer_dropped_halfway_never_leaves_its_connection_for_another_request() {
    // Far more than the HTTP/2 windows and socket buffers hold.
    let big = "x".repeat(32 << 20);
    let up = RawUpstream::start(move |r| match r.target.as_str() {
        "/big" => Reply::ok(&big),
        target => Reply::ok(target),
    })
    .await;
    let (s, cert, _dir) = signed_in_over_tls(&up.url(), "").await;
    let root = reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap();
    let h2 = h2_client(root);
    let mut r = h2.get(s.gw.url("/big")).header("cookie", &s.cookie);
    r = r.timeout(Duration::from_secs(10));
    let mut big = r.send().await.unwrap();
    assert!(!big.chunk().await.unwrap().unwrap().is_empty());
    drop(big);
    tokio::time::sleep(Duration::from_millis(300)).await;
    for path in ["/small", "/again"] {
        let r = h2.get(s.gw.url(path)).header("cookie", &s.cookie);
        assert_eq!(r.send().await.unwrap().text().await.unwrap(), path);
    }
    up.assert_received_only(&["/big", "/small", "/again"]);
    let connections: Vec<usize> = up.requests().iter().map(|r| r.connection).collect();
    assert_eq!(connections, [0, 1, 1]);
}

/// A request head the HTTP layer cannot parse gets its 400 there, before
/// any routing; the operator sees it counted.
#[tokio::test(flavor = "multi_thread")]
async fn unparseable_requests_are_refused_and_counted() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&up.url(), "").await;
    // The gateway's own 400: JSON, or a page for a browser.
    for (garbage, html) in [
        ("GARBAGE\r\n\r\n", false),
        ("GET / HTTP/1.1\r\nHost gw\r\n\r\n", false),
        (
            "GET / HTTP/1.1\r\nHost: gw\r\nAccept: text/html\r\nX: a\r\n folded\r\n\r\n",
            true,
        ),
    ] {
        let mut c = common::KeepAlive::open(gw.public);
        c.send(garbage);
        let answer = c.response(false);
        assert_eq!(answer.status, 400, "{garbage:?}");
        let body = answer.body_text();
        if html {
            assert!(
                body.contains("Bad request") && body.contains("<html"),
                "{body}"
            );
        } else {
            let json: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(json["error"], "bad_request", "{body}");
        }
        assert!(c.closed_within(Duration::from_secs(5)));
    }
    gw.metrics_with("idgate_refused_connections_total{reason=\"malformed\"} 3")
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_logout_elsewhere_ends_the_session_on_an_open_connection_too() {
    let up = Upstream::start().await;
    let s = signed_in(&up.url(), "", None).await;
    let gw = s.gw.public;
    let cookie = s.cookie.clone();
    let mut open = tokio::task::spawn_blocking(move || {
        let mut c = common::KeepAlive::open(gw);
        assert_eq!(c.get("/first", &cookie), 200);
        assert_eq!(
            c.get("/second", &cookie),
            200,
            "the same connection, the same session"
        );
        (c, cookie)
    })
    .await
    .unwrap();
    let out = s
        .request(reqwest::Method::POST, "/.idgate/logout")
        .header("origin", format!("http://{gw}"))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    let status = tokio::task::spawn_blocking(move || open.0.get("/after", &open.1))
        .await
        .unwrap();
    assert_eq!(
        status, 401,
        "the open connection must not keep the ended session"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn only_websocket_upgrades_reach_the_upstream() {
    let up = Upstream::start().await;
    let s = signed_in(&up.url(), "", None).await;
    // An h2c upgrade would become a tunnel the gateway cannot look into.
    let raw = raw_request(
        s.gw.public,
        &s.cookie,
        "GET /h2c HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade, HTTP2-Settings, close\r\n\
         Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
    );
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    let echo = body_json(&raw);
    assert!(echoed(&echo, "upgrade").is_empty(), "{echo}");
    assert!(echoed(&echo, "http2-settings").is_empty(), "{echo}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tunnels_and_two_hosts_are_refused_before_the_upstream() {
    let up = Upstream::start().await;
    let s = signed_in(&up.url(), "", None).await;
    let raw = raw_request(
        s.gw.public,
        &s.cookie,
        "CONNECT internal.example:22 HTTP/1.1\r\nHost: internal.example:22\r\n\r\n",
    );
    assert!(raw.starts_with("HTTP/1.1 405"), "{raw}");
    let raw = raw_request(
        s.gw.public,
        &s.cookie,
        "GET /two-hosts HTTP/1.1\r\nHost: gw\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
    );
    assert!(raw.starts_with("HTTP/1.1 400"), "{raw}");
    assert!(raw.contains("more than one host"), "{raw}");
    let r = s.get("/after").send().await.unwrap();
    let echo: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        echo["uri"], "/after",
        "the upstream saw only the good request"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_abandoning_its_upload_is_not_an_upstream_error() {
    let up = Upstream::start().await;
    let s = signed_in(&up.url(), "", None).await;
    let mut c = std::net::TcpStream::connect(s.gw.public).unwrap();
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: gw\r\nCookie: {}\r\nContent-Length: 1000000\r\n\r\n",
        s.cookie
    );
    c.write_all(head.as_bytes()).unwrap();
    c.write_all(&[b'x'; 1000]).unwrap();
    drop(c);
    let logs = s.gw.logs_with(&[" path=/upload "]).await;
    assert!(logs.contains("client_gone"), "{logs}");
    let metrics = s.gw.metrics().await;
    assert!(
        !metrics.contains("idgate_upstream_errors_total{"),
        "{metrics}"
    );
}

/// An upstream that answers the first request on each connection and then,
/// like one whose keep-alive timeout strikes just as the next request
/// arrives, closes the connection on the second without answering.
fn closing_upstream() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::io::BufRead;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            counted.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                let mut reader = std::io::BufReader::new(stream);
                for answered in [true, false] {
                    let mut length = 0usize;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; length];
                    let _ = reader.read_exact(&mut body);
                    if answered {
                        let _ = reader
                            .get_mut()
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                    }
                }
            });
        }
    });
    (addr, connections)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_get_on_a_connection_the_upstream_just_closed_is_sent_again() {
    use std::sync::atomic::Ordering;
    let (addr, connections) = closing_upstream();
    let s = signed_in(&format!("http://{addr}"), "", None).await;
    let gw = s.gw.public;
    let cookie = s.cookie.clone();
    let statuses = tokio::task::spawn_blocking(move || {
        let mut c = common::KeepAlive::open(gw);
        let first = c.get("/one", &cookie);
        // Idle long enough for the upstream connection to count as stale.
        std::thread::sleep(Duration::from_millis(1200));
        let second = c.get("/two", &cookie);
        (first, second)
    })
    .await
    .unwrap();
    assert_eq!(
        statuses,
        (200, 200),
        "the GET was sent again on a new connection"
    );
    assert_eq!(connections.load(Ordering::SeqCst), 2);

    // A request with a body is never sent twice.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let r = s
        .request(reqwest::Method::POST, "/three")
        .body("once")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        502,
        "the POST went out once, on the reused connection"
    );
    assert_eq!(connections.load(Ordering::SeqCst), 2);
}
