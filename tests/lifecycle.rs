//! The gateway as a process: readiness, metrics, the access log, and a
//! graceful shutdown that lets in-flight requests finish.

mod common;

use std::time::Duration;

use common::client;
use common::login::signed_in;
use common::upstream::Upstream;

#[tokio::test(flavor = "multi_thread")]
async fn health_readiness_and_metrics() {
    let up = Upstream::start().await;
    let s = signed_in(&up.url(), "", None).await;
    let gw = &s.gw;
    let h = client().get(gw.admin_url("/healthz")).send().await.unwrap();
    assert_eq!(h.status(), 200);
    let r = client().get(gw.admin_url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let ready: serde_json::Value = r.json().await.unwrap();
    assert_eq!(ready["database"], "ok");
    assert_eq!(ready["listener"], true);

    for _ in 0..3 {
        s.get("/status/404").send().await.unwrap();
    }
    s.get("/").send().await.unwrap();
    let m = client().get(gw.admin_url("/metrics")).send().await.unwrap();
    assert!(m.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    // A request is counted just after its last byte is sent: wait for the
    // counters to settle.
    for settled in [
        "idgate_requests_total{route=\"proxy\",status=\"404\"} 3",
        "idgate_requests_total{route=\"proxy\",status=\"200\"} 1",
        "idgate_request_duration_seconds_count{route=\"proxy\"} 4",
    ] {
        gw.metrics_with(settled).await;
    }
    // A request leaves the in-flight count just after its last byte is
    // sent: wait for the gauge to settle, then it must be zero.
    gw.metrics_with("idgate_active_requests 0").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn access_log_has_one_line_per_request_and_no_secrets() {
    let up = Upstream::start().await;
    let s = signed_in(&up.url(), "[log]\nformat = \"json\"", None).await;
    let gw = &s.gw;
    s.get("/callback?code=SECRETCODE&state=s")
        .header("x-secret", "SECRETCOOKIE")
        .header("authorization", "Bearer SECRETTOKEN")
        .send()
        .await
        .unwrap();
    let logs = gw.logs_with(&["\"path\":\"/callback\""]).await;
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| v["target"] == "idgate::access")
        .collect();
    // The sign-in's two requests, then ours: one line each.
    let paths: Vec<&str> = lines.iter().map(|l| l["path"].as_str().unwrap()).collect();
    assert_eq!(
        paths,
        vec![
            "/oauth/login/entra",
            "/oauth/login/entra/callback",
            "/callback"
        ],
        "{logs}"
    );
    let line = &lines[2];
    assert_eq!(line["method"], "GET");
    assert_eq!(line["status"], 200);
    assert_eq!(line["user"], "ada");
    assert_eq!(line["client"], "127.0.0.1");
    assert!(line["upstream_ms"].is_number());
    assert!(line["total_ms"].is_number());
    let session_value = s.cookie.split_once('=').unwrap().1.to_string();
    for secret in [
        "SECRETCODE",
        "SECRETCOOKIE",
        "SECRETTOKEN",
        session_value.as_str(),
    ] {
        assert!(!logs.contains(secret), "{secret} logged:\n{logs}");
    }
}

/// The access log is buffered, never lost: every request answered before a
/// SIGTERM has its line, in the fixed text layout and in order, once the
/// process has exited.
#[tokio::test(flavor = "multi_thread")]
async fn access_log_loses_no_line_on_a_clean_shutdown() {
    let up = Upstream::start().await;
    // Only the access log: no other line wakes the log writer at the exit.
    let quiet = "[log]\nlevel = \"warn,idgate::access=info\"";
    let mut s = signed_in(&up.url(), quiet, None).await;
    let (addr, cookie) = (s.gw.public, s.cookie.clone());
    tokio::task::spawn_blocking(move || {
        let mut c = common::KeepAlive::open(addr);
        for n in 0..500 {
            assert_eq!(c.get(&format!("/n/{n}"), &cookie), 200);
        }
    })
    .await
    .unwrap();
    // One more in flight at the signal: its line is written just before
    // the exit, with no time for the writer's next round.
    let slow = tokio::spawn(s.get("/slow?ms=800").send());
    s.gw.metrics_with("idgate_active_requests 1").await;
    s.gw.signal(libc::SIGTERM);
    assert_eq!(slow.await.unwrap().unwrap().status(), 200);
    assert_eq!(s.gw.wait_exit(Duration::from_secs(10)).await, Some(0));
    let logs = s.gw.logs();
    assert!(
        logs.contains(" path=/slow status=200 route=proxy "),
        "{logs}"
    );
    let lines: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains(" INFO idgate::access: request method=GET path=/n/"))
        .collect();
    assert_eq!(lines.len(), 500, "{logs}");
    for (n, line) in lines.iter().enumerate() {
        let fields =
            format!(" path=/n/{n} status=200 route=proxy client=127.0.0.1 user=ada upstream_ms=");
        assert!(line.contains(&fields), "{line}");
        assert!(line.ends_with(" error=-"), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_in_flight_requests_then_exits_zero() {
    let up = Upstream::start().await;
    let mut s = signed_in(&up.url(), "", None).await;
    let cookie = s.cookie.clone();
    let gw = &mut s.gw;
    // A keep-alive connection idle long past the hold (`HOLD_UPSTREAM`)
    // after which it waits in a task of its own.
    let parked = kept_alive(gw.public, &s.cookie).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let url = gw.url("/slow?ms=1500");
    let in_flight =
        tokio::spawn(async move { client().get(url).header("cookie", cookie).send().await });
    // An idle keep-alive connection, as browsers keep them.
    let idle = kept_alive(gw.public, &s.cookie).await;
    // Let the request reach the upstream before the signal.
    gw.metrics_with("idgate_active_requests 1").await;
    gw.signal(libc::SIGTERM);
    assert!(
        closed_soon(idle).await,
        "an idle connection is closed at once when draining"
    );
    assert!(
        closed_soon(parked).await,
        "a long-idle connection is closed at once when draining"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ready = client().get(gw.admin_url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503, "a draining gateway is not ready");
    assert!(
        std::net::TcpStream::connect(gw.public).is_err(),
        "no new connections while draining"
    );
    let r = in_flight
        .await
        .unwrap()
        .expect("in-flight request completes");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "finally");
    assert_eq!(gw.wait_exit(Duration::from_secs(8)).await, Some(0));
}

/// A keep-alive connection to `addr` that has carried one request.
async fn kept_alive(addr: std::net::SocketAddr, cookie: &str) -> common::KeepAlive {
    let cookie = cookie.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut c = common::KeepAlive::open(addr);
        assert_eq!(c.get("/before", &cookie), 200);
        c
    })
    .await
    .unwrap()
}

/// Whether the gateway closes `c` within a second.
async fn closed_soon(mut c: common::KeepAlive) -> bool {
    tokio::task::spawn_blocking(move || c.closed_within(Duration::from_secs(1)))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_open_websocket_does_not_hold_the_shutdown() {
    use futures_util::StreamExt;
    let up = Upstream::start().await;
    let mut s = signed_in(&up.url(), "", None).await;
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://{}/ws", s.gw.public),
    )
    .unwrap();
    req.headers_mut()
        .insert("cookie", s.cookie.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let hello = ws.next().await.unwrap().unwrap();
    assert_eq!(hello.into_text().unwrap().as_str(), "hello ada");
    s.gw.signal(libc::SIGTERM);
    // The default grace period is 30 s: the tunnel closes at the signal.
    assert_eq!(s.gw.wait_exit(Duration::from_secs(5)).await, Some(0));
    let after = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("the client learns the tunnel closed");
    assert!(!matches!(
        after,
        Some(Ok(tokio_tungstenite::tungstenite::Message::Text(_)))
    ));
}
