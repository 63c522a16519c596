//! Signing out beyond the gateway, end to end with the real binary and the
//! local Entra-shaped provider: `POST /.idgate/logout` sends the browser on
//! to the provider's sign-out and back to `/.idgate/signed-out`, and the
//! provider's front-channel logout ends exactly the sessions of one `sid`.

mod common;

use common::login::{provider, provider_toml, register, Browser, CLIENT_ID, TENANT};
use common::upstream::Upstream;
use common::Gateway;
use idgate::demo::provider::Provider;

const DOMAINS: &str = r#"allowed_email_domains = ["example.com"]"#;

async fn gateway(idp: &Provider) -> (Upstream, Gateway) {
    let up = Upstream::start().await;
    let gw = Gateway::start(&up.url(), &provider_toml(idp, "entra", TENANT, DOMAINS)).await;
    register(idp, &gw, "entra");
    (up, gw)
}

/// A browser signed in as Ada, in the provider session `sid`.
async fn signed_in(gw: &Gateway, sid: &str) -> Browser {
    let b = Browser::new();
    let claims = [("email", "ada@example.com"), ("sid", sid)];
    assert_eq!(b.login(gw, "entra", "/", &claims).await.status(), 302);
    assert_eq!(b.me(gw).await, 200);
    b
}

async fn logout(b: &Browser, gw: &Gateway) -> reqwest::Response {
    b.http
        .post(gw.url("/.idgate/logout"))
        .header("origin", &gw.origin)
        .send()
        .await
        .unwrap()
}

fn location(r: &reqwest::Response) -> String {
    r.headers()["location"].to_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn signing_out_goes_on_to_the_provider_and_back_to_the_signed_out_page() {
    let idp = provider().await;
    let (_up, gw) = gateway(&idp).await;
    let b = signed_in(&gw, "sid-of-ada").await;

    let out = logout(&b, &gw).await;
    assert_eq!(out.status(), 303);
    assert_eq!(b.me(&gw).await, 401, "the session ended before leaving");
    let to = url::Url::parse(&location(&out)).unwrap();
    let endpoint = format!("{}/{TENANT}/oauth2/v2.0/logout", idp.base_url());
    assert_eq!(to[..url::Position::AfterPath], endpoint);
    let query: Vec<(String, String)> = to.query_pairs().into_owned().collect();
    let names: Vec<&str> = query.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        ["post_logout_redirect_uri", "client_id", "logout_hint"],
        "never id_token_hint: {to}"
    );
    assert_eq!(query[0].1, gw.url("/.idgate/signed-out"));
    assert_eq!(query[1].1, CLIENT_ID);
    assert!(!query[2].1.is_empty());

    let back = b.get(to.as_str()).await;
    assert_eq!(back.status(), 302);
    assert_eq!(location(&back), gw.url("/.idgate/signed-out"));
    assert_eq!(idp.counters().logout, 1);
    let page = b.get(&location(&back)).await;
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let html = page.text().await.unwrap();
    assert!(html.contains("You are signed out."), "{html}");
    assert!(html.contains(r#"href="/oauth/login""#), "{html}");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_an_end_session_endpoint_signing_out_stays_local() {
    let idp = provider().await;
    idp.without_sign_out();
    let (_up, gw) = gateway(&idp).await;
    let b = signed_in(&gw, "sid-of-ada").await;
    let out = logout(&b, &gw).await;
    assert_eq!(out.status(), 303);
    assert_eq!(location(&out), "/oauth/login");
    assert_eq!(b.me(&gw).await, 401);
    assert_eq!(idp.counters().logout, 0);
}

/// `GET /oauth/login/entra/front-channel-logout?…` as the provider's
/// sign-out page loads it in a frame, with the caller's own cookies.
async fn front_channel(gw: &Gateway, caller: &Browser, query: &str) -> reqwest::Response {
    caller
        .get(&gw.url(&format!("/oauth/login/entra/front-channel-logout{query}")))
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_front_channel_logout_ends_the_sessions_of_its_sid_and_no_other() {
    let idp = provider().await;
    let (_up, gw) = gateway(&idp).await;
    let a = signed_in(&gw, "sid-a-1f0e2d3c").await;
    let a_again = signed_in(&gw, "sid-a-1f0e2d3c").await;
    let b = signed_in(&gw, "sid-b-9a8d7c6b").await;

    // Nothing ends for a call that names no sid, a malformed one, an
    // unknown one, or another issuer; an unknown provider is a 404.
    for query in [
        "",
        "?sid=",
        "?sid=a%20b",
        "?sid=sid-unknown",
        "?sid=sid-a-1f0e2d3c&iss=https%3A%2F%2Fissuer.invalid%2Fv2.0",
    ] {
        assert_eq!(front_channel(&gw, &b, query).await.status(), 200, "{query}");
    }
    let unknown = b
        .get(&gw.url("/oauth/login/nobody/front-channel-logout?sid=sid-a-1f0e2d3c"))
        .await;
    assert_eq!(unknown.status(), 404);
    for browser in [&a, &a_again, &b] {
        assert_eq!(browser.me(&gw).await, 200);
    }

    // B's browser loads the frame for A's provider session.
    let iss = idp.issuer_for(TENANT);
    let query = format!(
        "?sid=sid-a-1f0e2d3c&iss={}",
        url::form_urlencoded::byte_serialize(iss.as_bytes()).collect::<String>()
    );
    let ended = front_channel(&gw, &b, &query).await;
    assert_eq!(ended.status(), 200);
    let headers = ended.headers();
    assert!(headers.get("set-cookie").is_none(), "{headers:?}");
    assert!(headers.get("x-frame-options").is_none(), "{headers:?}");
    assert!(
        headers.get("content-security-policy").is_none(),
        "{headers:?}"
    );
    assert_eq!(a.me(&gw).await, 401);
    assert_eq!(a_again.me(&gw).await, 401);
    assert_eq!(
        b.me(&gw).await,
        200,
        "the caller's own session is untouched"
    );

    // Without iss, as Entra may call it.
    assert_eq!(
        front_channel(&gw, &a, "?sid=sid-b-9a8d7c6b").await.status(),
        200
    );
    assert_eq!(b.me(&gw).await, 401);
    let log = gw.logs_with(&["front-channel logout", "sid=sid-…"]).await;
    assert!(!log.contains("sid-a-1f0e2d3c"), "a sid in the log:\n{log}");
    assert!(!log.contains(" ERROR "), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_database_holds_no_sid_in_clear() {
    let idp = provider().await;
    let (_up, gw) = gateway(&idp).await;
    let _b = signed_in(&gw, "sid-bearer-secret-4b6c").await;
    let mut stored = Vec::new();
    for name in ["idgate.db", "idgate.db-wal"] {
        if let Ok(bytes) = std::fs::read(gw.dir.path().join(name)) {
            stored.extend(bytes);
        }
    }
    assert!(stored.len() > 4096, "the database was read");
    let needle = b"sid-bearer-secret-4b6c";
    assert!(!stored.windows(needle.len()).any(|w| w == needle));
}
