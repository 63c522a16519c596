//! Several replicas on one PostgreSQL database: a sign-in started on one
//! may finish on another, a used login state is refused on every one, and
//! a sign-out, a deleted user or a provider change on one reaches the
//! others within a second (LISTEN/NOTIFY), not at their caches' limits.

mod common;

use common::login::{provider, provider_toml, register, Browser, Callback, TENANT};
use common::upstream::Upstream;
use common::{client, Gateway};

/// A replica's config: `extra` first, then the shared database `url` and
/// the provider `entra` at `idp`.
fn replica_config(url: &str, idp: &idgate::demo::provider::Provider, extra: &str) -> String {
    format!(
        "{extra}[database]\nurl = \"{url}\"\n{}",
        provider_toml(
            idp,
            "entra",
            TENANT,
            r#"allowed_email_domains = ["example.com"]"#
        )
    )
}

/// Two replicas on a fresh database, `entra` registered.
struct Pair {
    idp: idgate::demo::provider::Provider,
    /// Their upstream, kept running while they are.
    _up: Upstream,
    one: Gateway,
    two: Gateway,
}

/// Two replicas on a fresh database; behind one load balancer both have one
/// public URL. `extra` goes into both configs.
async fn two_replicas(extra: &str) -> Pair {
    let url = common::pg::fresh_database().await;
    let idp = provider().await;
    let up = Upstream::start().await;
    let shared = replica_config(&url, &idp, extra);
    let one = Gateway::start(&up.url(), &shared).await;
    let two = Gateway::start(
        &up.url(),
        &format!("[server]\npublic_url = \"{}\"\n{shared}", one.origin),
    )
    .await;
    register(&idp, &one, "entra");
    Pair {
        idp,
        _up: up,
        one,
        two,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_used_login_state_is_refused_on_every_replica() {
    // Every part is bound, so the provider and upstream live on.
    let Pair {
        idp: _idp,
        _up,
        one,
        two,
    } = two_replicas("").await;

    let browser = Browser::new();
    let authorize = browser.start(&one, "entra", "/").await;
    let cb = browser
        .authorize(authorize, &[("email", "ada@example.com")])
        .await;
    let captured = browser.cookies(&one);
    let Callback::Post(at_one, fields) = cb else {
        panic!("form_post expected")
    };
    let at = |gw: &Gateway| at_one.replace(&one.origin, &gw.origin);
    let deliver = |to: String| {
        client()
            .post(to)
            .header("cookie", captured.as_str())
            .header("accept", "text/html")
            .form(&fields)
            .send()
    };
    // Started on one replica, finished on the other.
    let done = deliver(at(&two)).await.unwrap();
    assert_eq!(done.status(), 302, "{}", done.text().await.unwrap());
    // The same answer replayed, on either replica, is refused.
    for gw in [&one, &two] {
        let replay = deliver(at(gw)).await.unwrap();
        assert_eq!(replay.status(), 400, "replayed at {}", gw.origin);
        gw.logs_with(&["state_replayed"]).await;
    }
}

/// Polls `gw`'s `/.idgate/me` with `cookie` until it answers 401; returns
/// how long that took, or panics after `within`.
async fn refused_within(
    gw: &Gateway,
    cookie: &str,
    within: std::time::Duration,
) -> std::time::Duration {
    let started = std::time::Instant::now();
    loop {
        let r = client()
            .get(gw.url("/.idgate/me"))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        if r.status() == 401 {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{} still admits the session after {within:?}",
            gw.origin
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sign_out_or_a_deleted_user_reaches_every_replica_at_once() {
    let Pair { idp, _up, one, two } =
        two_replicas("[admin]\ntoken = \"replica-admin-token\"\n").await;
    // Both replicas listen before anything is announced.
    for gw in [&one, &two] {
        gw.logs_with(&["listening for other replicas' changes"])
            .await;
    }
    let limit = std::time::Duration::from_secs(1);

    let ada = Browser::new();
    let r = ada
        .login(&one, "entra", "/", &[("email", "ada@example.com")])
        .await;
    assert_eq!(r.status(), 302);
    let cookie = ada.cookies(&one);
    // The other replica has the session in its cache.
    assert_eq!(ada.me(&two).await, 200);
    let r = ada
        .http
        .post(one.url("/.idgate/logout"))
        .header("origin", &one.origin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let took = refused_within(&two, &cookie, limit).await;
    println!("a sign-out reached the other replica in {took:?}");

    let bob = Browser::new();
    let r = bob
        .login(&one, "entra", "/", &[("email", "bob@example.com")])
        .await;
    assert_eq!(r.status(), 302);
    let cookie = bob.cookies(&one);
    assert_eq!(bob.me(&two).await, 200);
    let username = bob.identity(&two).await["username"]
        .as_str()
        .unwrap()
        .to_string();
    let r = client()
        .delete(one.admin_url(&format!("/api/v1/users/{username}")))
        .bearer_auth("replica-admin-token")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let took = refused_within(&two, &cookie, limit).await;
    println!("a user deletion reached the other replica in {took:?}");

    // A provider created, then deleted, on one replica: the other's login
    // page follows within the limit.
    let provider = serde_json::json!({
        "ids": { "provider_id": "second" },
        "name": "Second Tenant",
        "allow_registrations": true,
        "configuration": { "oidc": {
            "client_id": "c", "client_secret": "s",
            "provider_url": format!("{}/{TENANT}/v2.0", idp.base_url().trim_end_matches('/'))
        } }
    });
    let r = client()
        .post(one.admin_url("/api/v1/providers"))
        .bearer_auth("replica-admin-token")
        .json(&provider)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    for present in [true, false] {
        if !present {
            let r = client()
                .delete(one.admin_url("/api/v1/providers/second"))
                .bearer_auth("replica-admin-token")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 204);
        }
        let started = std::time::Instant::now();
        loop {
            let page = client()
                .get(two.url("/oauth/login"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            if page.contains("Login to Second Tenant") == present {
                break;
            }
            assert!(
                started.elapsed() < limit,
                "the other replica's login page lags"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        println!(
            "a provider {} reached the other replica in {:?}",
            if present { "creation" } else { "deletion" },
            started.elapsed()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn three_replicas_behind_nginx_share_sessions_and_survive_one_killed() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    let url = common::pg::fresh_database().await;
    let idp = provider().await;
    let up = Upstream::start().await;
    let port = common::free_port();
    let origin = format!("http://127.0.0.1:{port}");
    let config = replica_config(
        &url,
        &idp,
        &format!("[server]\npublic_url = \"{origin}\"\n"),
    );
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(Gateway::start(&up.url(), &config).await);
    }
    let servers: String = replicas
        .iter()
        .map(|gw| format!("    server {} max_fails=1 fail_timeout=10s;\n", gw.public))
        .collect();
    let _nginx = common::nginx::Nginx::start_on(
        port,
        &format!(
            "  upstream idgate {{\n{servers}  }}\n  server {{\n    listen 127.0.0.1:{port};\n    \
             location / {{ proxy_pass http://idgate; proxy_set_header Host $host; \
             proxy_http_version 1.1; proxy_set_header Connection \"\"; }}\n  }}"
        ),
    )
    .await;
    idp.register_client(idgate::demo::provider::Client {
        client_id: common::login::CLIENT_ID.into(),
        client_secret: common::login::CLIENT_SECRET.into(),
        redirect_uris: vec![format!("{origin}/oauth/login/entra/callback")],
    });

    // Signed in through the balancer: start, provider, callback may each
    // land on another replica.
    let browser = Browser::new();
    let r = browser
        .get(&format!("{origin}/oauth/login/entra?rd=%2Fapp"))
        .await;
    assert_eq!(r.status(), 302);
    let authorize = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let cb = browser
        .authorize(authorize, &[("email", "ada@example.com")])
        .await;
    let done = browser.deliver(&cb).await;
    assert_eq!(done.status(), 302, "{}", done.text().await.unwrap());
    let cookie = browser.cookies(&replicas[0]);
    for gw in &replicas {
        assert_eq!(
            browser.me(gw).await,
            200,
            "{} does not know the session",
            gw.origin
        );
    }

    // Steady load through the balancer while one replica is killed.
    let stop = Arc::new(AtomicBool::new(false));
    let (served, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (stop, served, failed) = (stop.clone(), served.clone(), failed.clone());
        let (url, cookie) = (format!("{origin}/app"), cookie.clone());
        load.push(tokio::spawn(async move {
            let http = client();
            while !stop.load(Ordering::Relaxed) {
                let ok = http
                    .get(&url)
                    .header("cookie", &cookie)
                    .header("accept", "application/json")
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200);
                if ok { &served } else { &failed }.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let before = served.load(Ordering::Relaxed);
    replicas[1].signal(libc::SIGKILL);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let (served, failed) = (
        served.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    println!("{served} requests served, {failed} failed, {before} of them before the kill");
    assert!(served > before + 20, "the survivors stopped answering");
    // At most the requests in flight on the killed replica fail (one per
    // client); nginx sends the rest to the survivors.
    assert!(failed <= 4, "{failed} requests failed");
}

/// Runs `sql` as the PostgreSQL administrator.
async fn as_admin(sql: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&common::pg::admin_url())
        .await
        .unwrap();
    sqlx::query(sql).execute(&mut conn).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn while_postgres_is_down_signed_in_people_go_on_and_it_all_comes_back() {
    let url = common::pg::fresh_database().await;
    let name = url::Url::parse(&url)
        .unwrap()
        .path()
        .trim_start_matches('/')
        .to_string();
    let idp = provider().await;
    let up = Upstream::start().await;
    let gw = Gateway::start(&up.url(), &replica_config(&url, &idp, "")).await;
    register(&idp, &gw, "entra");
    let other = Gateway::start(
        &up.url(),
        &replica_config(
            &url,
            &idp,
            &format!("[server]\npublic_url = \"{}\"\n", gw.origin),
        ),
    )
    .await;
    let ada = Browser::new();
    let r = ada
        .login(&gw, "entra", "/", &[("email", "ada@example.com")])
        .await;
    assert_eq!(r.status(), 302);

    // Steady load on the signed-in path through the outage.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (stop, url, cookie) = (stop.clone(), gw.url("/app"), ada.cookies(&gw));
        tokio::spawn(async move {
            let http = client();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = http.get(&url).header("cookie", &cookie).send().await;
            }
        })
    };

    // The database goes away: no new connection, every open one cut.
    as_admin(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false")).await;
    as_admin(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    ))
    .await;

    let ready = client().get(gw.admin_url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_ne!(body["database"], "ok", "{body}");
    // A signed-in person's requests go on from the cache.
    assert_eq!(ada.me(&gw).await, 200);
    // A sign-in fails with a page a person can read.
    let bob = Browser::new();
    let r = bob
        .login(&gw, "entra", "/", &[("email", "bob@example.com")])
        .await;
    assert_eq!(r.status(), 500);
    let page = r.text().await.unwrap();
    assert!(page.contains("could not complete the sign-in"), "{page}");
    assert_eq!(bob.me(&gw).await, 401);

    // Back: ready again, and sign-ins work, without a restart.
    as_admin(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true")).await;
    let started = std::time::Instant::now();
    while client()
        .get(gw.admin_url("/readyz"))
        .send()
        .await
        .unwrap()
        .status()
        != 200
    {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(15),
            "not ready again"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let r = bob
        .login(&gw, "entra", "/", &[("email", "bob@example.com")])
        .await;
    assert_eq!(r.status(), 302);
    assert_eq!(bob.me(&gw).await, 200);
    assert_eq!(ada.me(&gw).await, 200);
    // And both hear each other again, having listened anew by themselves:
    // a sign-out on one reaches the other within the limit.
    for replica in [&gw, &other] {
        let started = std::time::Instant::now();
        while replica
            .logs()
            .matches("listening for other replicas' changes")
            .count()
            < 2
        {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(10),
                "not listening again:\n{}",
                replica.logs()
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    load.await.unwrap();
    let cookie = ada.cookies(&gw);
    assert_eq!(ada.me(&other).await, 200);
    let r = ada
        .http
        .post(gw.url("/.idgate/logout"))
        .header("origin", &gw.origin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let took = refused_within(&other, &cookie, std::time::Duration::from_secs(1)).await;
    println!("after the database came back, a sign-out reached the other replica in {took:?}");
    // Neither replica crashed.
    for replica in [&gw, &other] {
        let r = client()
            .get(replica.admin_url("/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
}

/// One refresh per session across replicas: twenty requests at the
/// revalidation time, spread over two replicas on one PostgreSQL, make the
/// provider see one refresh; both replicas then serve the renewed session.
#[tokio::test(flavor = "multi_thread")]
async fn a_session_is_revalidated_once_across_replicas() {
    let Pair { idp, _up, one, two } = two_replicas("[session]\nrevalidate_every = \"1s\"\n").await;
    let ada = Browser::new();
    let r = ada
        .login(&one, "entra", "/", &[("email", "ada@example.com")])
        .await;
    assert_eq!(r.status(), 302);
    let cookie = ada.cookies(&one);
    // Both replicas have the session in their caches.
    assert_eq!(ada.me(&two).await, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    let requests = (0..20).map(|i| {
        let gw = if i % 2 == 0 { &one } else { &two };
        let cookie = cookie.clone();
        async move {
            common::client()
                .get(gw.url(&format!("/r{i}")))
                .header("cookie", cookie)
                .header("accept", "application/json")
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    });
    let statuses = futures_util::future::join_all(requests).await;
    assert!(
        statuses.iter().all(|s| *s == 200),
        "{statuses:?}\n{}\n{}",
        one.logs(),
        two.logs()
    );
    assert_eq!(idp.counters().refresh, 1, "one refresh for both replicas");
}
