//! Users and what the upstream learns about them: usernames derived by The
//! Things Stack's rules through real logins, the registry's uniqueness under
//! races, `idgate user`, and identity header encoding.

mod common;

use common::login::{provider, provider_toml, register, Browser, TENANT};
use common::upstream::{echoed, Upstream};
use common::Gateway;

const TOKEN: &str = "users-admin-token-0123456789";

async fn stack(
    extra_provider: &str,
    extra_toml: &str,
) -> (idgate::demo::provider::Provider, Upstream, Gateway) {
    let idp = provider().await;
    let up = Upstream::start().await;
    let toml = format!(
        "[admin]\ntoken = \"{TOKEN}\"\n{extra_toml}\n{}",
        provider_toml(&idp, "my-oidc-provider", TENANT, extra_provider)
    );
    let gw = Gateway::start(&up.url(), &toml).await;
    register(&idp, &gw, "my-oidc-provider");
    (idp, up, gw)
}

const DOMAINS: &str = r#"allowed_email_domains = ["example.com", "contoso.com"]"#;

/// Signs in with `claims` and returns the username the upstream receives.
async fn username(gw: &Gateway, claims: &[(&str, &str)]) -> String {
    let b = Browser::new();
    let r = b.login(gw, "my-oidc-provider", "/", claims).await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    let me: serde_json::Value = b
        .http
        .get(gw.url("/.idgate/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    me["username"].as_str().unwrap().to_string()
}

fn user(gw: &Gateway, args: &[&str]) -> (i32, String, String) {
    let admin = gw.admin_url("");
    let mut full = vec!["user"];
    full.extend_from_slice(args);
    common::run_idgate(
        &full,
        gw.dir.path(),
        &[
            ("IDGATE_ADMIN_URL", admin.as_str()),
            ("IDGATE_ADMIN_TOKEN", TOKEN),
        ],
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_reference_examples_end_to_end() {
    let (_idp, _up, gw) = stack(DOMAINS, "").await;
    // 1. preferred_username
    let claims = [
        ("sub", "s1"),
        ("email", "x@example.com"),
        ("preferred_username", "John.Doe"),
    ];
    assert_eq!(username(&gw, &claims).await, "john-doe");
    // 2. the email local part
    assert_eq!(
        username(
            &gw,
            &[
                ("sub", "s2"),
                ("email", "j.doe@example.com"),
                ("preferred_username", "")
            ]
        )
        .await,
        "j-doe"
    );
    // 3. given + family name (the one-letter local part is not a valid username)
    let claims = [
        ("sub", "s3"),
        ("email", "x@contoso.com"),
        ("preferred_username", ""),
        ("given_name", "Jane"),
        ("family_name", "Roe"),
    ];
    assert_eq!(username(&gw, &claims).await, "jane-roe");
    // A taken preferred username is never suffixed: the next candidate is used.
    let claims = [
        ("sub", "s4"),
        ("email", "johnny@example.com"),
        ("preferred_username", "John.Doe"),
    ];
    assert_eq!(username(&gw, &claims).await, "johnny");
}

#[tokio::test(flavor = "multi_thread")]
async fn entra_email_preferred_usernames_and_odd_names() {
    let (_idp, _up, gw) = stack(DOMAINS, "").await;
    assert_eq!(
        username(
            &gw,
            &[
                ("sub", "a"),
                ("email", "j.doe@contoso.com"),
                ("preferred_username", "j.doe@contoso.com")
            ]
        )
        .await,
        "j-doe-contoso-com"
    );
    assert_eq!(
        username(
            &gw,
            &[
                ("sub", "b"),
                ("email", "zoe@example.com"),
                ("preferred_username", "Zoë Łukasz")
            ]
        )
        .await,
        "zoe-lukasz"
    );
    // A preferred username that normalises to nothing is skipped.
    assert_eq!(
        username(
            &gw,
            &[
                ("sub", "c"),
                ("email", "li.wei@example.com"),
                ("preferred_username", "!!!")
            ]
        )
        .await,
        "li-wei"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_person_keeps_their_username_whatever_changes() {
    let (_idp, _up, gw) = stack(DOMAINS, "").await;
    let first = username(
        &gw,
        &[
            ("sub", "stable"),
            ("email", "ada@example.com"),
            ("preferred_username", "ada"),
        ],
    )
    .await;
    assert_eq!(first, "ada");
    let again = username(
        &gw,
        &[
            ("sub", "stable"),
            ("email", "countess@contoso.com"),
            ("preferred_username", "countess"),
        ],
    )
    .await;
    assert_eq!(again, "ada");
    let (code, out, _) = user(&gw, &["get", "ada"]);
    assert_eq!(code, 0);
    let u: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        u["email"], "countess@contoso.com",
        "claims are refreshed, the username is not"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_taken_email_candidate_gets_a_random_suffix() {
    let (_idp, _up, gw) = stack(DOMAINS, "").await;
    assert_eq!(
        username(
            &gw,
            &[
                ("sub", "1"),
                ("email", "sam@example.com"),
                ("preferred_username", "!")
            ]
        )
        .await,
        "sam"
    );
    let second = username(
        &gw,
        &[
            ("sub", "2"),
            ("email", "sam@contoso.com"),
            ("preferred_username", "!"),
        ],
    )
    .await;
    assert!(
        second.len() == "sam-".len() + 5 && second.starts_with("sam-"),
        "expected sam-xxxxx, got {second}"
    );
    assert!(second[4..]
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_first_logins_wanting_one_username_get_two() {
    let (_idp, _up, gw) = stack(DOMAINS, "").await;
    let (a, b) = tokio::join!(
        username(
            &gw,
            &[
                ("sub", "p1"),
                ("email", "max@example.com"),
                ("preferred_username", "!")
            ]
        ),
        username(
            &gw,
            &[
                ("sub", "p2"),
                ("email", "max@contoso.com"),
                ("preferred_username", "!")
            ]
        ),
    );
    assert_ne!(a, b);
    assert!(a == "max" || b == "max", "{a} {b}");
    let (a, b) = tokio::join!(
        username(&gw, &[("sub", "same"), ("email", "twice@example.com")]),
        username(&gw, &[("sub", "same"), ("email", "twice@example.com")]),
    );
    assert_eq!(a, b, "one person, one record");
    let (_, out, _) = user(&gw, &["list"]);
    let all: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(all.iter().filter(|u| u["sub"] == "same").count(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_user_ends_their_sessions_and_frees_the_name() {
    let (_idp, _up, gw) = stack(DOMAINS, "").await;
    let b = Browser::new();
    let r = b
        .login(
            &gw,
            "my-oidc-provider",
            "/",
            &[
                ("sub", "del"),
                ("email", "del@example.com"),
                ("preferred_username", "dora"),
            ],
        )
        .await;
    assert_eq!(r.status(), 302);
    assert_eq!(
        b.http
            .get(gw.url("/.idgate/me"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // A proxied request, so the browser's keep-alive connection remembers
    // the session.
    assert_eq!(
        echoed(&b.echo(&gw, "/before").await, "x-forwarded-user"),
        vec!["dora"]
    );
    let (code, out, err) = user(&gw, &["delete", "dora"]);
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
    let after = b
        .http
        .get(gw.url("/after"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(
        after.status(),
        401,
        "the open connection must not keep the session"
    );
    assert_eq!(
        b.http
            .get(gw.url("/.idgate/me"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let (code, _, err) = user(&gw, &["get", "dora"]);
    assert_eq!(code, 1);
    assert!(err.contains("not found"), "{err}");
    let (code, _, _) = user(&gw, &["get", "Not A Name"]);
    assert_eq!(code, 2);
    for args in [vec!["get"], vec!["frob"], vec!["list", "--bogus"]] {
        let (code, out, err) = user(&gw, &args);
        assert_eq!((code, out.as_str()), (2, ""), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: one line expected: {err}");
        assert!(err.starts_with("error: "), "{args:?}: {err}");
    }
    assert_eq!(
        username(
            &gw,
            &[
                ("sub", "other"),
                ("email", "o@example.com"),
                ("preferred_username", "dora")
            ]
        )
        .await,
        "dora"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn header_values_are_percent_encoded_outside_printable_ascii() {
    let (_idp, _up, gw) = stack(DOMAINS, "").await;
    let b = Browser::new();
    let r = b
        .login(
            &gw,
            "my-oidc-provider",
            "/",
            &[
                ("sub", "enc"),
                ("email", "enc@example.com"),
                ("preferred_username", "Zoë\r\nX-Forwarded-User: admin"),
            ],
        )
        .await;
    assert_eq!(r.status(), 302);
    let echo = b.echo(&gw, "/h").await;
    let values = |name: &str| echoed(&echo, name);
    assert_eq!(
        values("x-forwarded-preferred-username"),
        vec!["Zo%C3%AB%0D%0AX-Forwarded-User: admin"]
    );
    assert_eq!(values("x-forwarded-user").len(), 1);
    assert_ne!(values("x-forwarded-user")[0], "admin");
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_provider_ends_its_sessions_and_its_routes() {
    let idp = provider().await;
    let up = Upstream::start().await;
    let gw = Gateway::start(&up.url(), &format!("[admin]\ntoken = \"{TOKEN}\"")).await;
    let admin = gw.admin_url("");
    let env = [
        ("IDGATE_ADMIN_URL", admin.as_str()),
        ("IDGATE_ADMIN_TOKEN", TOKEN),
    ];
    let url = format!("{}/{TENANT}/v2.0", idp.base_url().trim_end_matches('/'));
    let (code, _, err) = common::run_idgate(
        &[
            "ap",
            "create",
            "runtime",
            "--allow-registrations",
            "--allowed-email-domains",
            "example.com",
            "--configuration.provider.oidc.client-id",
            common::login::CLIENT_ID,
            "--configuration.provider.oidc.client-secret",
            common::login::CLIENT_SECRET,
            "--configuration.provider.oidc.provider-url",
            &url,
        ],
        gw.dir.path(),
        &env,
    );
    assert_eq!(code, 0, "{err}");
    register(&idp, &gw, "runtime");
    let b = Browser::new();
    let r = b
        .login(&gw, "runtime", "/", &[("email", "rt@example.com")])
        .await;
    assert_eq!(
        r.status(),
        302,
        "a provider created at runtime works at once"
    );
    assert_eq!(
        b.http
            .get(gw.url("/.idgate/me"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let (code, _, _) = common::run_idgate(&["ap", "delete", "runtime"], gw.dir.path(), &env);
    assert_eq!(code, 0);
    assert_eq!(
        b.http
            .get(gw.url("/.idgate/me"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(b.get(&gw.url("/oauth/login/runtime")).await.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn optional_headers_carry_oid_and_tid_when_configured() {
    let (_idp, _up, gw) = stack(
        DOMAINS,
        "[headers]\noid = \"X-Entra-Oid\"\ntid = \"X-Entra-Tid\"\nuser = \"X-Remote-User\"\ngroups = \"X-Groups\"",
    )
    .await;
    let b = Browser::new();
    let claims = [
        ("sub", "opt"),
        ("email", "opt@example.com"),
        ("oid", "0b1c2d3e-0000-0000-0000-000000000042"),
    ];
    assert_eq!(
        b.login(&gw, "my-oidc-provider", "/", &claims)
            .await
            .status(),
        302
    );
    let echo: serde_json::Value = b
        .http
        .get(gw.url("/h"))
        .header("accept", "application/json")
        .header("x-entra-oid", "spoofed")
        .header("x-remote-user", "spoofed")
        .header("x-groups", "admins")
        .header("x_groups", "admins")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let values = |name: &str| echoed(&echo, name);
    assert_eq!(
        values("x-entra-oid"),
        vec!["0b1c2d3e-0000-0000-0000-000000000042"]
    );
    assert_eq!(values("x-entra-tid"), vec![TENANT]);
    assert_eq!(
        values("x-remote-user").len(),
        1,
        "a renamed header is still stripped from the client"
    );
    assert_ne!(values("x-remote-user")[0], "spoofed");
    assert!(
        values("x-groups").is_empty() && values("x_groups").is_empty(),
        "a person without groups gets no groups header, and no client's"
    );
    assert!(
        values("x-forwarded-user").is_empty(),
        "the default name is not sent once renamed"
    );
}
