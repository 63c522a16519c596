//! Several replicas on one PostgreSQL database: a sign-in started on one
//! may finish on another, and a used login state is refused on every one.

mod common;

use common::login::{provider, provider_toml, register, Browser, Callback, TENANT};
use common::upstream::Upstream;
use common::{client, Gateway};

#[tokio::test(flavor = "multi_thread")]
async fn a_used_login_state_is_refused_on_every_replica() {
    let url = common::pg::fresh_database().await;
    let idp = provider().await;
    let up = Upstream::start().await;
    let shared = format!(
        "[database]\nurl = \"{url}\"\n{}",
        provider_toml(
            &idp,
            "entra",
            TENANT,
            r#"allowed_email_domains = ["example.com"]"#
        )
    );
    let one = Gateway::start(&up.url(), &shared).await;
    // Behind one load balancer both replicas have one public URL.
    let two = Gateway::start(
        &up.url(),
        &format!("[server]\npublic_url = \"{}\"\n{shared}", one.origin),
    )
    .await;
    register(&idp, &one, "entra");

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
