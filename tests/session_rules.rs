//! Sessions follow their provider as it is now. When a provider's email
//! rules narrow, the sessions they no longer admit end (changed through the
//! admin API: at once; in the config file: at the next start), going by the
//! same evidence the sign-in went by; the others keep working. When a
//! provider goes away, so do its sessions.

mod common;

use common::login::{provider, provider_toml, register, Browser, CLIENT_ID, CLIENT_SECRET, TENANT};
use common::upstream::Upstream;
use common::{client, Gateway};
use idgate::demo::provider::Provider;

const TOKEN: &str = "test-admin-token-0123456789";
const ADA: &[(&str, &str)] = &[("email", "ada@example.com"), ("preferred_username", "ada")];
const BOB: &[(&str, &str)] = &[
    ("email", "bob@other.example"),
    ("preferred_username", "bob"),
];
/// Vouched for by her tenant, not only by a domain list.
const CAROL: &[(&str, &str)] = &[
    ("email", "carol@example.com"),
    ("preferred_username", "carol"),
    ("xms_edov", "true"),
];
const BOTH_DOMAINS: &str = r#"allowed_email_domains = ["example.com", "other.example"]"#;

/// A new browser signed in at `gw`'s provider `entra` as `claims`.
async fn signed_in(gw: &Gateway, claims: &[(&str, &str)]) -> Browser {
    let b = Browser::new();
    let r = b.login(gw, "entra", "/", claims).await;
    assert_eq!(r.status(), 302, "sign-in as {claims:?}");
    assert_eq!(b.me(gw).await, 200);
    b
}

/// A gateway in front of a new upstream with the provider `entra` declared
/// in its config with `extra`, and registered at a new local provider.
async fn declared(extra: &str) -> (Provider, Upstream, Gateway) {
    let idp = provider().await;
    let up = Upstream::start().await;
    let gw = Gateway::start(&up.url(), &provider_toml(&idp, "entra", TENANT, extra)).await;
    register(&idp, &gw, "entra");
    (idp, up, gw)
}

/// Stops `gw` and starts it again on the same database with `toml`.
async fn restart(gw: Gateway, up: &Upstream, idp: &Provider, toml: &str) -> Gateway {
    let gw = gw.restart(&up.url(), toml).await;
    register(idp, &gw, "entra");
    gw
}

fn admin(gw: &Gateway, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
    client()
        .request(method, gw.admin_url(path))
        .bearer_auth(TOKEN)
}

#[tokio::test(flavor = "multi_thread")]
async fn narrowing_domains_through_the_api_ends_the_sessions_no_longer_admitted() {
    let idp = provider().await;
    let up = Upstream::start().await;
    let gw = Gateway::start(&up.url(), &format!("[admin]\ntoken = \"{TOKEN}\"")).await;
    let created = admin(&gw, reqwest::Method::POST, "/api/v1/providers")
        .json(&serde_json::json!({
            "ids": { "provider_id": "entra" },
            "name": "Contoso",
            "allow_registrations": true,
            "allowed_email_domains": ["example.com", "other.example"],
            "configuration": { "oidc": {
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "provider_url": format!("{}/{TENANT}/v2.0", idp.base_url().trim_end_matches('/')),
            }},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "{}", created.text().await.unwrap());
    register(&idp, &gw, "entra");
    let ada = signed_in(&gw, ADA).await;
    let bob = signed_in(&gw, BOB).await;

    let narrow = |domains: serde_json::Value| {
        admin(&gw, reqwest::Method::PUT, "/api/v1/providers/entra")
            .json(&serde_json::json!({ "allowed_email_domains": domains }))
            .send()
    };
    assert_eq!(
        narrow(serde_json::json!(["other.example"]))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(ada.me(&gw).await, 401, "example.com is no longer admitted");
    assert_eq!(bob.me(&gw).await, 200, "other.example still is");
    gw.logs_with(&[
        "session ended: its provider no longer admits it",
        "email_domain_not_allowed",
    ])
    .await;

    // Ada's session was ended, not hidden: widening again brings it back not.
    assert_eq!(
        narrow(serde_json::json!(["example.com", "other.example"]))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(ada.me(&gw).await, 401);
    assert_eq!(bob.me(&gw).await, 200);

    let deleted = admin(&gw, reqwest::Method::DELETE, "/api/v1/providers/entra")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(bob.me(&gw).await, 401, "a deleted provider's sessions end");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_config_change_takes_effect_on_sessions_at_the_next_start() {
    let (idp, up, gw) = declared(BOTH_DOMAINS).await;
    let ada = signed_in(&gw, ADA).await;
    let bob = signed_in(&gw, BOB).await;

    let narrowed = provider_toml(
        &idp,
        "entra",
        TENANT,
        r#"allowed_email_domains = ["other.example"]"#,
    );
    let gw = restart(gw, &up, &idp, &narrowed).await;
    assert_eq!(ada.me(&gw).await, 401, "example.com is no longer admitted");
    assert_eq!(bob.me(&gw).await, 200);
    gw.logs_with(&[
        "session ended: its provider no longer admits it",
        "email_domain_not_allowed",
    ])
    .await;

    // The provider moves to another tenant: sessions signed in at the old
    // one end.
    const OTHER_TENANT: &str = "99999999-8888-7777-6666-555555555555";
    let moved = provider_toml(&idp, "entra", OTHER_TENANT, BOTH_DOMAINS);
    let gw = restart(gw, &up, &idp, &moved).await;
    assert_eq!(bob.me(&gw).await, 401, "signed in at another tenant");
    gw.logs_with(&["provider_changed"]).await;

    let bob = signed_in(&gw, BOB).await;
    let gw = restart(gw, &up, &idp, "").await;
    assert_eq!(bob.me(&gw).await, 401, "a removed provider's sessions end");
    gw.logs_with(&["session refused: its provider is not configured here"])
        .await;
}

/// A session is checked again with the evidence of its sign-in: when the
/// domain list goes away, a tenant-verified email (`xms_edov`) stays
/// admitted and one that only the list vouched for does not.
#[tokio::test(flavor = "multi_thread")]
async fn the_check_goes_by_the_evidence_of_the_sign_in() {
    let (idp, up, gw) = declared(BOTH_DOMAINS).await;
    let ada = signed_in(&gw, ADA).await;
    let carol = signed_in(&gw, CAROL).await;

    let gw = restart(gw, &up, &idp, &provider_toml(&idp, "entra", TENANT, "")).await;
    assert_eq!(ada.me(&gw).await, 401, "only the list vouched for ada");
    assert_eq!(carol.me(&gw).await, 200, "her tenant vouched for carol");
    gw.logs_with(&["email_not_verified"]).await;
}
