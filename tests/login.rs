//! The Entra login end to end: the real binary, the local Entra-shaped
//! provider signing real RS256 tokens, and an echo upstream that shows what
//! it received.

mod common;

use futures_util::StreamExt;

use common::login::{
    provider, provider_that_stops, provider_toml, register, Browser, Callback, TENANT,
};
use common::upstream::{echoed, Upstream};
use common::{client, Gateway};
use idgate::demo::provider::Provider;

const DOMAINS: &str = r#"allowed_email_domains = ["example.com"]"#;

struct Stack {
    idp: Provider,
    up: Upstream,
    gw: Gateway,
    toml: String,
}

async fn stack(extra_provider: &str, extra_toml: &str) -> Stack {
    stack_at(provider().await, extra_provider, extra_toml).await
}

/// A gateway with the provider `entra` at `idp`.
async fn stack_at(idp: Provider, extra_provider: &str, extra_toml: &str) -> Stack {
    let up = Upstream::start().await;
    let toml = format!(
        "{extra_toml}\n{}",
        provider_toml(&idp, "entra", TENANT, extra_provider)
    );
    let gw = Gateway::start(&up.url(), &toml).await;
    register(&idp, &gw, "entra");
    Stack { idp, up, gw, toml }
}

/// Stops the gateway and starts it again on the same database with `toml`.
async fn restart(s: Stack, toml: String) -> Stack {
    let gw = s.gw.restart(&s.up.url(), &toml).await;
    register(&s.idp, &gw, "entra");
    Stack {
        idp: s.idp,
        up: s.up,
        gw,
        toml,
    }
}

const ADA: &[(&str, &str)] = &[
    ("email", "ada@example.com"),
    ("name", "Ada Lovelace"),
    ("given_name", "Ada"),
    ("family_name", "Lovelace"),
    ("preferred_username", "ada@example.com"),
];

#[tokio::test(flavor = "multi_thread")]
async fn form_post_login_reaches_the_upstream_with_verified_identity() {
    let s = stack(DOMAINS, "").await;
    let b = Browser::new();
    let r = b
        .login(&s.gw, "entra", "/console/applications?page=2", ADA)
        .await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    assert_eq!(r.headers()["location"], "/console/applications?page=2");
    let cookies: Vec<&str> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    let session = cookies
        .iter()
        .find(|c| c.starts_with("idgate_session="))
        .expect("session cookie");
    assert!(
        session.contains("HttpOnly")
            && session.contains("SameSite=Lax")
            && session.contains("Path=/")
    );

    let echo = b.echo(&s.gw, "/console/applications?page=2").await;
    assert_eq!(echoed(&echo, "x-forwarded-user"), vec!["ada-example-com"]);
    assert_eq!(echoed(&echo, "x-forwarded-email"), vec!["ada@example.com"]);
    assert_eq!(
        echoed(&echo, "x-forwarded-preferred-username"),
        vec!["ada@example.com"]
    );
    assert_eq!(echoed(&echo, "x-idgate-provider"), vec!["entra"]);
    let assertion = echoed(&echo, "x-idgate-assertion")[0].to_string();

    // The assertion verifies against the gateway's published keys.
    let jwks: jsonwebtoken::jwk::JwkSet = client()
        .get(s.gw.url("/.idgate/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kid = jsonwebtoken::decode_header(&assertion)
        .unwrap()
        .kid
        .unwrap();
    let jwk = jwks.find(&kid).expect("assertion key published");
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    v.set_audience(&[s.up.url()]);
    v.set_issuer(&[format!("http://{}", s.gw.public)]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(
        &assertion,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
        &v,
    )
    .unwrap()
    .claims;
    assert_eq!(claims["sub"], "ada-example-com");
    assert_eq!(claims["email"], "ada@example.com");
    assert_eq!(claims["provider"], "entra");
    assert!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap() <= 600);

    let me = b.identity(&s.gw).await;
    assert_eq!(me["username"], "ada-example-com");
    assert_eq!(me["provider_id"], "entra");
}

#[tokio::test(flavor = "multi_thread")]
async fn query_response_mode_works_too() {
    let s = stack(DOMAINS, "").await;
    let b = Browser::new();
    let mut authorize = b.start(&s.gw, "entra", "/x").await;
    let pairs: Vec<(String, String)> = authorize
        .query_pairs()
        .filter(|(k, _)| k != "response_mode")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    authorize
        .query_pairs_mut()
        .clear()
        .extend_pairs(pairs)
        .append_pair("response_mode", "query");
    let cb = b.authorize(authorize, ADA).await;
    assert!(matches!(cb, Callback::Get(_)));
    let r = b.deliver(&cb).await;
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "/x");
    assert_eq!(b.me(&s.gw).await, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_authorization_request_is_what_entra_expects() {
    let s = stack(DOMAINS, "").await;
    let b = Browser::new();
    let authorize = b.start(&s.gw, "entra", "/").await;
    let q: std::collections::HashMap<String, String> =
        authorize.query_pairs().into_owned().collect();
    assert!(authorize.as_str().starts_with(&format!(
        "{}/{TENANT}/oauth2/v2.0/authorize",
        s.idp.base_url().trim_end_matches('/')
    )));
    assert_eq!(q["response_type"], "code");
    // offline_access: a refresh token to check the session again with.
    assert_eq!(q["scope"], "openid profile email offline_access");
    assert_eq!(q["response_mode"], "form_post");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(
        q["redirect_uri"],
        format!("http://{}/oauth/login/entra/callback", s.gw.public)
    );
    assert!(q["state"].len() >= 43 && q["nonce"].len() >= 43 && q["code_challenge"].len() == 43);
}

#[tokio::test(flavor = "multi_thread")]
async fn unauthenticated_requests_go_to_the_login_page_or_get_401() {
    let s = stack(DOMAINS, "").await;
    let r = client()
        .get(s.gw.url("/console/applications?page=2"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(
        r.headers()["location"],
        "/oauth/login?rd=%2Fconsole%2Fapplications%3Fpage%3D2"
    );
    let r = client().get(s.gw.url("/api/thing")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "unauthenticated");
    let r = client()
        .get(s.gw.url("/.idgate/auth"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = client()
        .get(s.gw.url("//evil.example/x"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/oauth/login?rd=%2F");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_return_target_that_leaves_the_origin_becomes_root() {
    let s = stack(DOMAINS, "").await;
    for rd in [
        "//evil.example",
        "https://evil.example/",
        "/\\evil.example",
        "/%2F%2Fevil.example",
    ] {
        let b = Browser::new();
        let r = b.login(&s.gw, "entra", rd, ADA).await;
        assert_eq!(r.status(), 302);
        assert_eq!(r.headers()["location"], "/", "rd {rd:?}");
    }
}

async fn refused(s: &Stack, claims: &[(&str, &str)]) -> (u16, String) {
    let b = Browser::new();
    let r = b.login(&s.gw, "entra", "/", claims).await;
    let status = r.status().as_u16();
    let has_session = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .any(|c| c.to_str().unwrap().starts_with("idgate_session="));
    assert!(!has_session, "a refused login set a session cookie");
    let page = r.text().await.unwrap();
    assert!(
        page.contains("href=\"/oauth/login\""),
        "no way back: {page}"
    );
    assert_eq!(b.me(&s.gw).await, 401);
    (status, page)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_bad_id_token_is_refused_with_its_own_reason() {
    let s = stack(DOMAINS, "").await;
    let cases = [
        ("bad_signature", "bad_signature"),
        ("alg_none", "disallowed_alg"),
        ("hmac_public_key", "disallowed_alg"),
        ("unknown_kid", "unknown_kid"),
        ("wrong_iss", "wrong_issuer"),
        ("wrong_aud", "wrong_audience"),
        ("extra_aud_no_azp", "wrong_azp"),
        ("expired", "expired"),
        ("future_nbf", "not_yet_valid"),
        ("wrong_nonce", "nonce_mismatch"),
        ("no_sub", "missing_sub"),
    ];
    for (fault, _) in cases {
        let mut claims = ADA.to_vec();
        claims.push(("fault", fault));
        let (status, page) = refused(&s, &claims).await;
        assert_eq!(status, 400, "{fault}: {page}");
        assert!(page.contains("Sign-in could not be completed"), "{fault}");
    }
    let expected: Vec<String> = cases
        .iter()
        .map(|(_, reason)| format!("reason=\"{reason}\""))
        .collect();
    let needles: Vec<&str> = expected.iter().map(String::as_str).collect();
    s.gw.logs_with(&needles).await;
    // One with extra audiences and the right azp is fine.
    let mut claims = ADA.to_vec();
    claims.push(("fault", "extra_aud_with_azp"));
    let r = Browser::new().login(&s.gw, "entra", "/", &claims).await;
    assert_eq!(r.status(), 302);
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_or_replayed_flows_are_refused() {
    let s = stack(DOMAINS, "").await;
    // State missing.
    let r = client()
        .get(s.gw.url("/oauth/login/entra/callback?code=x"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // From another browser: the login cookie is not there.
    let a = Browser::new();
    let authorize = a.start(&s.gw, "entra", "/").await;
    let cb = a.authorize(authorize, ADA).await;
    let other = Browser::new();
    assert_eq!(other.deliver(&cb).await.status(), 400);
    assert_eq!(other.me(&s.gw).await, 401);
    // Wrong state in this browser.
    let wrong = match &cb {
        Callback::Post(url, fields) => Callback::Post(
            url.clone(),
            fields
                .iter()
                .map(|(k, v)| {
                    if k == "state" {
                        (k.clone(), format!("{v}x"))
                    } else {
                        (k.clone(), v.clone())
                    }
                })
                .collect(),
        ),
        Callback::Get(_) => unreachable!("form_post expected"),
    };
    assert_eq!(a.deliver(&wrong).await.status(), 400);
    // The genuine one works once; replayed with the same cookie, it fails.
    let captured = a.cookies(&s.gw);
    let ok = a.deliver(&cb).await;
    assert_eq!(ok.status(), 302);
    let Callback::Post(url, fields) = &cb else {
        unreachable!()
    };
    let replay = client()
        .post(url)
        .header("cookie", captured)
        .header("accept", "text/html")
        .form(fields)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 400);
    // Unknown provider.
    let r = client()
        .get(s.gw.url("/oauth/login/nope"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // A callback for a provider that does not exist: 404 as well, before
    // any state is looked at, and the browser's own pending login kept.
    for url in [
        "/oauth/login/no-such-provider/callback?code=x&state=y",
        "/oauth/login/no-such-provider/callback",
    ] {
        let r = client()
            .get(s.gw.url(url))
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{url}");
        assert!(r.headers().get("set-cookie").is_none(), "{url}");
        assert!(r.text().await.unwrap().contains("Unknown sign-in provider"));
    }
    s.gw.logs_with(&["state_missing", "state_unknown", "state_replayed"])
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn email_rules_are_enforced() {
    let s = stack(
        r#"allowed_email_domains = ["example.com", "*.corp.example"]"#,
        "",
    )
    .await;
    for (email, edov) in [
        ("mallory@evil.example", None),
        ("mallory@example.com.evil", None),
        ("mallory@corp.example", None),
        ("ada@example.com", Some("false")),
        ("", None),
    ] {
        let mut claims = vec![("email", email), ("preferred_username", "x")];
        if let Some(e) = edov {
            claims.push(("xms_edov", e));
        }
        let (status, _) = refused(&s, &claims).await;
        assert_eq!(status, 403, "{email} {edov:?}");
    }
    let r = Browser::new()
        .login(&s.gw, "entra", "/", &[("email", "eve@eu.corp.example")])
        .await;
    assert_eq!(r.status(), 302);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_domain_list_the_email_must_be_verified() {
    let s = stack("", "").await;
    let (status, _) = refused(&s, &[("email", "ada@anywhere.example")]).await;
    assert_eq!(status, 403);
    let r = Browser::new()
        .login(
            &s.gw,
            "entra",
            "/",
            &[("email", "ada@anywhere.example"), ("xms_edov", "true")],
        )
        .await;
    assert_eq!(r.status(), 302);
}

#[tokio::test(flavor = "multi_thread")]
async fn multi_tenant_needs_edov_or_an_allowed_tenant() {
    let idp = provider().await;
    let up = Upstream::start().await;
    let toml = provider_toml(
        &idp,
        "entra",
        "common",
        r#"allowed_email_domains = ["example.com"]
allowed_tenants = ["aaaaaaaa-0000-0000-0000-000000000001"]"#,
    );
    let gw = Gateway::start(&up.url(), &toml).await;
    register(&idp, &gw, "entra");
    let s = Stack { idp, up, gw, toml };
    let (status, _) = refused(
        &s,
        &[
            ("email", "ada@example.com"),
            ("tid", "bbbbbbbb-0000-0000-0000-000000000002"),
        ],
    )
    .await;
    assert_eq!(status, 403);
    let r = Browser::new()
        .login(
            &s.gw,
            "entra",
            "/",
            &[
                ("email", "ada@example.com"),
                ("tid", "aaaaaaaa-0000-0000-0000-000000000001"),
            ],
        )
        .await;
    assert_eq!(r.status(), 302);
    let r = Browser::new()
        .login(
            &s.gw,
            "entra",
            "/",
            &[
                ("email", "bob@example.com"),
                ("tid", "cccccccc-0000-0000-0000-000000000003"),
                ("xms_edov", "true"),
            ],
        )
        .await;
    assert_eq!(r.status(), 302);
}

#[tokio::test(flavor = "multi_thread")]
async fn key_rotation_is_fetched_once_not_per_login() {
    let s = stack(DOMAINS, "").await;
    for i in 0..3 {
        let email = format!("user{i}@example.com");
        let r = Browser::new()
            .login(&s.gw, "entra", "/", &[("email", email.as_str())])
            .await;
        assert_eq!(r.status(), 302);
    }
    assert_eq!(
        s.idp.counters().keys,
        1,
        "keys fetched once for three logins"
    );
    let idp = s.idp.clone();
    tokio::task::spawn_blocking(move || idp.rotate_keys())
        .await
        .unwrap();
    for i in 3..6 {
        let email = format!("user{i}@example.com");
        let r = Browser::new()
            .login(&s.gw, "entra", "/", &[("email", email.as_str())])
            .await;
        assert_eq!(r.status(), 302);
    }
    assert_eq!(s.idp.counters().keys, 2, "one refetch for the rotation");
    assert_eq!(s.idp.counters().discovery, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_survive_a_restart_and_logout_ends_them() {
    let s = stack(DOMAINS, "").await;
    let b = Browser::new();
    assert_eq!(b.login(&s.gw, "entra", "/", ADA).await.status(), 302);
    let toml = s.toml.clone();
    let s = restart(s, toml).await;
    let gw = &s.gw;
    assert_eq!(b.me(gw).await, 200, "session survives the restart");

    let cross = b
        .http
        .post(gw.url("/.idgate/logout"))
        .header("origin", "https://evil.example")
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);
    assert_eq!(b.me(gw).await, 200, "a cross-site logout changes nothing");

    let out = b
        .http
        .post(gw.url("/.idgate/logout"))
        .header("origin", format!("http://{}", gw.public))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    // On to the provider's sign-out (tests/sign_out.rs).
    let to = out.headers()["location"].to_str().unwrap();
    assert!(to.starts_with(s.idp.base_url()), "{to}");
    assert_eq!(b.me(gw).await, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_that_is_down_keeps_sessions_working_and_fails_new_logins() {
    let (idp, stop) = provider_that_stops();
    let s = stack_at(idp, DOMAINS, "[oidc]\ntimeout = \"2s\"").await;
    let b = Browser::new();
    assert_eq!(b.login(&s.gw, "entra", "/", ADA).await.status(), 302);
    // The provider goes down, and the gateway starts again with nothing
    // cached of it.
    stop();
    let toml = s.toml.clone();
    let s = restart(s, toml).await;
    let echo = b.echo(&s.gw, "/still-works").await;
    assert_eq!(echoed(&echo, "x-forwarded-user"), vec!["ada-example-com"]);
    let r = Browser::new().get(&s.gw.url("/oauth/login/entra")).await;
    assert_eq!(r.status(), 502);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("The sign-in provider is not answering"),
        "{page}"
    );
    assert!(page.contains("href=\"/oauth/login\""));
}

#[tokio::test(flavor = "multi_thread")]
async fn registrations_closed_refuses_new_people_only() {
    let s = stack(DOMAINS, "").await;
    assert_eq!(
        Browser::new()
            .login(&s.gw, "entra", "/", ADA)
            .await
            .status(),
        302
    );
    let toml = s
        .toml
        .replace("allow_registrations = true", "allow_registrations = false");
    let s = restart(s, toml).await;
    let (status, page) = refused(&s, &[("email", "newcomer@example.com")]).await;
    assert_eq!(status, 403);
    assert!(page.contains("Registrations are closed"));
    let r = Browser::new().login(&s.gw, "entra", "/", ADA).await;
    assert_eq!(r.status(), 302, "known people still get in");
}

#[tokio::test(flavor = "multi_thread")]
async fn spoofed_identity_headers_never_pass_even_with_a_session() {
    let s = stack(DOMAINS, "").await;
    let b = Browser::new();
    assert_eq!(b.login(&s.gw, "entra", "/", ADA).await.status(), 302);
    let r = b
        .http
        .get(s.gw.url("/x"))
        .header("accept", "application/json")
        .header("x-forwarded-user", "admin")
        .header("X_Forwarded_Email", "admin@example.com")
        .header("x-idgate-assertion", "forged")
        .send()
        .await
        .unwrap();
    let echo: serde_json::Value = r.json().await.unwrap();
    assert_eq!(echoed(&echo, "x-forwarded-user"), vec!["ada-example-com"]);
    assert_eq!(echoed(&echo, "x-forwarded-email"), vec!["ada@example.com"]);
    assert!(echoed(&echo, "x_forwarded_email").is_empty());
    assert_ne!(echoed(&echo, "x-idgate-assertion"), vec!["forged"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_and_truncated_session_cookies_count_as_none() {
    let s = stack(DOMAINS, "").await;
    let b = Browser::new();
    let r = b.login(&s.gw, "entra", "/", ADA).await;
    let set = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("idgate_session="))
        .unwrap();
    let value = set.split(';').next().unwrap().to_string();
    for cookie in [
        value.clone(),
        value[..value.len() - 5].to_string(),
        format!(
            "{}{}",
            &value[..value.len() - 1],
            if value.ends_with('A') { 'B' } else { 'A' }
        ),
        "idgate_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_string(),
    ]
    .iter()
    .skip(1)
    {
        let r = client().get(s.gw.url("/.idgate/me")).header("cookie", cookie).send().await.unwrap();
        assert_eq!(r.status(), 401, "{cookie}");
    }
    let r = client()
        .get(s.gw.url("/.idgate/me"))
        .header("cookie", &value)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

fn set_cookies(r: &reqwest::Response) -> Vec<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn abandoned_logins_do_not_pile_up_until_a_browser_is_locked_out() {
    let s = stack(DOMAINS, "").await;
    let b = Browser::new();
    for _ in 0..3 {
        b.start(&s.gw, "entra", "/").await;
    }
    let pending = |b: &Browser| b.cookies(&s.gw).matches("idgate_login_").count();
    assert_eq!(pending(&b), 3);
    // The fourth start clears the three abandoned ones.
    let r = b.get(&s.gw.url("/oauth/login/entra")).await;
    let cleared = set_cookies(&r)
        .iter()
        .filter(|c| c.starts_with("idgate_login_") && c.contains("Max-Age=0"))
        .count();
    assert_eq!(cleared, 3);
    assert_eq!(pending(&b), 1);
    // The newest login still completes.
    let authorize = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let cb = b.authorize(authorize, ADA).await;
    assert_eq!(b.deliver(&cb).await.status(), 302);

    // A request already too large is refused, and told to drop them.
    let huge: String = (0..40)
        .map(|i| format!("idgate_login_{i:016}={}", "x".repeat(900)))
        .collect::<Vec<_>>()
        .join("; ");
    let r = client()
        .get(s.gw.url("/"))
        .header("cookie", huge)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 431);
    let cleared = set_cookies(&r)
        .iter()
        .filter(|c| c.starts_with("idgate_login_") && c.contains("Max-Age=0"))
        .count();
    assert_eq!(cleared, 40);
}

/// A browser that keeps starting sign-ins without finishing them is
/// charged from its second start on: past the limit it gets 429 with
/// `Retry-After`, and so do the address's callbacks; a first start from
/// another browser at the same address still passes.
#[tokio::test(flavor = "multi_thread")]
async fn restarted_sign_ins_are_limited_per_client_address() {
    let s = stack(DOMAINS, "[oidc]\nlogin_attempts_per_minute = 3").await;
    let b = Browser::new();
    for _ in 0..4 {
        assert_eq!(b.get(&s.gw.url("/oauth/login/entra")).await.status(), 302);
    }
    let r = b.get(&s.gw.url("/oauth/login/entra")).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "60");
    let page = r.text().await.unwrap();
    assert!(page.contains("Too many sign-in attempts"), "{page}");
    let r = client()
        .get(s.gw.url("/oauth/login/entra/callback?state=x&code=y"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429, "callbacks wait out the minute too");
    let colleague = Browser::new();
    let r = colleague.get(&s.gw.url("/oauth/login/entra")).await;
    assert_eq!(r.status(), 302, "a first start is free");
    // Signed-in traffic and the login page are not limited.
    assert_eq!(b.get(&s.gw.url("/oauth/login")).await.status(), 200);
}

/// A storm of failed callbacks from one address is cut off at the limit,
/// before the gateway calls the provider again.
#[tokio::test(flavor = "multi_thread")]
async fn failed_callbacks_are_limited_per_client_address() {
    let s = stack(DOMAINS, "[oidc]\nlogin_attempts_per_minute = 3").await;
    let callback = || async {
        client()
            .get(s.gw.url("/oauth/login/entra/callback?state=forged&code=forged"))
            .send()
            .await
            .unwrap()
            .status()
    };
    for _ in 0..3 {
        assert_eq!(callback().await, 400);
    }
    assert_eq!(callback().await, 429);
    let b = Browser::new();
    let authorize = b.start(&s.gw, "entra", "/").await;
    let cb = b.authorize(authorize, ADA).await;
    assert_eq!(
        b.deliver(&cb).await.status(),
        429,
        "for the rest of the minute"
    );
}

/// An office behind one NAT address at 9 a.m.: 1,000 people signing in
/// within seconds (16 at a time; a callback in flight holds one of the
/// address's 30 charges until it ends) with the default limit all get in.
#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_people_behind_one_address_all_sign_in_with_the_defaults() {
    let s = stack(r#"allowed_email_domains = ["office.example"]"#, "").await;
    let gw = &s.gw;
    let results: Vec<(u16, u16)> = futures_util::stream::iter(0..1000)
        .map(|n| async move {
            let b = Browser::new();
            let sub = format!("person-{n}");
            let email = format!("person{n}@office.example");
            let authorize = b.start(gw, "entra", "/").await;
            let cb = b
                .authorize(authorize, &[("sub", &sub), ("email", &email)])
                .await;
            let signed_in = b.deliver(&cb).await.status().as_u16();
            (signed_in, b.me(gw).await.as_u16())
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let refused: Vec<_> = results.iter().filter(|r| **r != (302, 200)).collect();
    assert!(
        refused.is_empty(),
        "{} refused: {:?}",
        refused.len(),
        &refused[..refused.len().min(5)]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn behind_a_trusted_proxy_the_limit_counts_the_forwarded_client() {
    let s = stack(
        DOMAINS,
        "[server]\ntrusted_proxies = [\"127.0.0.0/8\"]\n[oidc]\nlogin_attempts_per_minute = 2",
    )
    .await;
    let callback = |ip: &'static str| {
        let url =
            s.gw.url("/oauth/login/entra/callback?state=forged&code=forged");
        async move {
            client()
                .get(url)
                .header("x-forwarded-for", format!("{ip}, 127.0.0.5"))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(callback("203.0.113.1").await, 400);
    assert_eq!(callback("203.0.113.1").await, 400);
    assert_eq!(callback("203.0.113.1").await, 429);
    assert_eq!(
        callback("203.0.113.2").await,
        400,
        "another person behind the same proxy"
    );
}
