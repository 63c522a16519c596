//! Sessions that follow the directory, end to end with the real binary and
//! the local Entra-shaped provider: after `session.revalidate_every` a
//! session is checked again with its refresh token, once however many
//! requests come at that moment; a revoked person, or one removed from the
//! admitting group, is signed out; a provider that is down is waited out
//! for `session.revalidate_grace`, without asking at every request; the
//! refresh token is never stored in clear.

mod common;

use std::time::Duration;

use common::login::{provider, provider_toml, register, Browser, TENANT};
use common::raw_upstream::RawUpstream;
use common::Gateway;
use idgate::demo::provider::{Provider, RefreshFault};

const DOMAINS: &str = r#"allowed_email_domains = ["example.com"]"#;
const STAFF: &str = "6f1c0d2e-0000-4000-8000-000000005af";
const SUB: &str = "sub-of-ada-revalidated";

async fn gateway(idp: &Provider, toml: &str) -> (RawUpstream, Gateway) {
    let up = RawUpstream::answering_targets().await;
    let toml = format!("{toml}\n{}", provider_toml(idp, "entra", TENANT, DOMAINS));
    let gw = Gateway::start(&up.url(), &toml).await;
    register(idp, &gw, "entra");
    (up, gw)
}

async fn signed_in(gw: &Gateway, claims: &[(&str, &str)]) -> Browser {
    let b = Browser::new();
    let mut all = vec![("email", "ada@example.com"), ("sub", SUB)];
    all.extend_from_slice(claims);
    assert_eq!(b.login(gw, "entra", "/", &all).await.status(), 302);
    b
}

async fn status(b: &Browser, gw: &Gateway, path: &str) -> u16 {
    b.http
        .get(gw.url(path))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_requests_at_the_revalidation_time_cause_one_refresh() {
    let idp = provider().await;
    let (up, gw) = gateway(&idp, "[session]\nrevalidate_every = \"1s\"").await;
    let b = signed_in(&gw, &[("name", "Ada")]).await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let requests = (0..20).map(|i| {
        let (b, gw) = (&b, &gw);
        async move { status(b, gw, &format!("/r{i}")).await }
    });
    let statuses = futures_util::future::join_all(requests).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(idp.counters().refresh, 1, "one refresh for twenty requests");
    assert_eq!(up.requests().len(), 20);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_person_is_signed_out_at_the_next_revalidation() {
    let idp = provider().await;
    let (_up, gw) = gateway(&idp, "[session]\nrevalidate_every = \"1s\"").await;
    let b = signed_in(&gw, &[]).await;
    assert_eq!(status(&b, &gw, "/before").await, 200);
    // The demo provider's switch, as an operator trying it by hand uses it.
    let revoked = common::client()
        .post(format!("{}/_revoke?sub={SUB}", idp.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(status(&b, &gw, "/after").await, 401);
    assert_eq!(
        b.me(&gw).await,
        401,
        "the session is gone, not only refused once"
    );
    let log = gw.logs_with(&["session ended at revalidation"]).await;
    assert!(log.contains("reason=\"refused_by_provider\""), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn leaving_the_admitting_group_ends_the_session_and_new_claims_replace_old() {
    let idp = provider().await;
    let toml = format!(
        "[session]\nrevalidate_every = \"1s\"\n[access]\nallowed_groups = [\"{STAFF}\"]\n\
         [oidc]\ngraph_url = \"{}\"",
        idp.base_url()
    );
    let (_up, gw) = gateway(&idp, &toml).await;
    let b = signed_in(&gw, &[("groups", STAFF)]).await;
    // Still in the group, one more besides: the session goes on, and the
    // new group shows.
    idp.set_groups(SUB, &[STAFF, "another-group"]);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(status(&b, &gw, "/x").await, 200);
    let me = b.identity(&gw).await;
    assert_eq!(me["groups"], serde_json::json!([STAFF, "another-group"]));

    idp.set_groups(SUB, &["another-group"]);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(status(&b, &gw, "/y").await, 401);
    let log = gw.logs_with(&["session ended at revalidation"]).await;
    assert!(log.contains("reason=\"not_in_allowed_group\""), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_down_is_waited_out_for_the_grace_without_asking_at_every_request() {
    let idp = provider().await;
    let toml = "[session]\nrevalidate_every = \"1s\"\nrevalidate_grace = \"3s\"";
    let (_up, gw) = gateway(&idp, toml).await;
    let b = signed_in(&gw, &[]).await;
    idp.refresh_fault(Some(RefreshFault::Outage));
    tokio::time::sleep(Duration::from_millis(1300)).await;
    for i in 0..10 {
        assert_eq!(status(&b, &gw, &format!("/during{i}")).await, 200);
    }
    assert_eq!(
        idp.counters().refresh,
        1,
        "retried after a back-off, not per request"
    );
    let log = gw.logs_with(&["it goes on within its grace"]).await;
    assert!(!log.contains("session ended at revalidation"), "{log}");
    // Past the interval and its grace, still unanswered: asked once more
    // when the grace ends, and ended.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert_eq!(status(&b, &gw, "/after").await, 401);
    assert_eq!(idp.counters().refresh, 2);
    let log = gw.logs_with(&["session ended at revalidation"]).await;
    assert!(
        log.contains("reason=\"provider_unanswered_past_grace\""),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_refresh_token_is_stored_sealed() {
    let idp = provider().await;
    let (_up, gw) = gateway(&idp, "").await;
    let _b = signed_in(&gw, &[]).await;
    let mut stored = Vec::new();
    for name in ["idgate.db", "idgate.db-wal"] {
        if let Ok(bytes) = std::fs::read(gw.dir.path().join(name)) {
            stored.extend(bytes);
        }
    }
    let text = String::from_utf8_lossy(&stored);
    // The demo provider's refresh tokens are 43 base64url characters; a
    // sealed one is longer and never contains one in clear. The row must
    // hold something in the column, and no token the provider issued.
    let issued = idp.refresh_tokens_issued();
    assert_eq!(issued.len(), 1);
    assert!(!text.contains(&issued[0]), "a refresh token in clear");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refresh_without_an_id_token_or_for_another_sub_ends_the_session() {
    for (fault, reason) in [
        (RefreshFault::NoIdToken, "refresh_without_id_token"),
        (RefreshFault::OtherSub, "refreshed_for_another_sub"),
    ] {
        let idp = provider().await;
        let (_up, gw) = gateway(&idp, "[session]\nrevalidate_every = \"1s\"").await;
        let b = signed_in(&gw, &[]).await;
        idp.refresh_fault(Some(fault));
        tokio::time::sleep(Duration::from_millis(1300)).await;
        assert_eq!(status(&b, &gw, "/after").await, 401, "{fault:?}");
        let log = gw.logs_with(&["session ended at revalidation"]).await;
        assert!(
            log.contains(&format!("reason=\"{reason}\"")),
            "{fault:?}: {log}"
        );
    }
}

#[test]
fn check_config_refuses_a_revalidation_interval_under_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("idgate.toml");
    for every in ["0s", "500ms"] {
        std::fs::write(&path, format!("[session]\nrevalidate_every = \"{every}\"")).unwrap();
        let p = path.display().to_string();
        let (code, _, err) = common::run_idgate(&["check-config", "--config", &p], dir.path(), &[]);
        assert_ne!(code, 0, "{every}");
        assert!(
            err.contains("session.revalidate_every: must be at least 1s"),
            "{every}: {err}"
        );
    }
}
