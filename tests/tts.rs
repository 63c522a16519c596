//! The Things Stack console sign-in through the real binary, in front of a
//! fake stack that answers every call as the real one does
//! (`common::fake_tts`): the person's stack user created once and kept up
//! to date, every name clash, the console landing as the right user, one
//! person at a time, sign-out both ways, each failure mode, the closed
//! login-token routes, and `idgate tts check`.

mod common;

use common::fake_tts::{FakeStack, Options, ADMIN_KEY};
use common::login::{provider, provider_toml, register, Browser, TENANT};
use common::{run_idgate, Gateway};
use idgate::demo::provider::Provider;

/// A gateway in front of a fake stack, with console sign-in on.
struct Setup {
    stack: FakeStack,
    idp: Provider,
    gw: Gateway,
}

fn toml(idp: &Provider, stack: &FakeStack, key: &str, extra: &str) -> String {
    let mount = stack.account_mount();
    format!(
        r#"
[tts]
api_key = "{key}"
account_mount = "{mount}"
timeout = "3s"
[[routes]]
path = "/api/v3/"
allow = "bearer"
[[routes]]
path = "/healthz"
allow = "public"
{extra}
{}"#,
        provider_toml(
            idp,
            "entra",
            TENANT,
            r#"allowed_email_domains = ["example.com"]"#
        )
    )
}

async fn setup() -> Setup {
    setup_with(FakeStack::start().await, "").await
}

async fn setup_with(stack: FakeStack, extra: &str) -> Setup {
    let idp = provider().await;
    let gw = Gateway::start(&stack.url, &toml(&idp, &stack, ADMIN_KEY, extra)).await;
    register(&idp, &gw, "entra");
    stack.set_console_root_url(&gw.origin);
    Setup { stack, idp, gw }
}

/// A person's claims: `email` and `preferred_username`, a fixed `sub`.
fn person<'a>(sub: &'a str, email: &'a str, username: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("sub", sub),
        ("email", email),
        ("preferred_username", username),
        ("name", "Ada Lovelace"),
    ]
}

/// Signs `claims` in with `browser`; returns the gateway's answer.
async fn sign_in(s: &Setup, browser: &Browser, claims: &[(&str, &str)]) -> reqwest::Response {
    browser.login(&s.gw, "entra", "/console", claims).await
}

/// Follows redirects from `url` as a browser would (at most 12); returns
/// the final answer and every URL visited.
async fn follow(s: &Setup, browser: &Browser, url: &str) -> (reqwest::Response, Vec<String>) {
    let mut url = url::Url::parse(url).unwrap();
    let mut seen = Vec::new();
    for _ in 0..12 {
        seen.push(url.to_string());
        let r = browser.get(url.as_str()).await;
        if !r.status().is_redirection() {
            return (r, seen);
        }
        let location = r.headers()["location"].to_str().unwrap().to_string();
        url = url.join(&location).unwrap();
        assert_eq!(
            url.origin().ascii_serialization(),
            s.gw.origin,
            "sent off the gateway: {seen:?} → {url}"
        );
    }
    panic!("too many redirects: {seen:?}");
}

/// The value of cookie `name` in a `Cookie` header.
fn cookie_value(header: &str, name: &str) -> Option<String> {
    header
        .split("; ")
        .find_map(|c| c.strip_prefix(&format!("{name}=")))
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_first_sign_in_creates_the_stack_user_and_lands_in_the_console() {
    let s = setup().await;
    let browser = Browser::new();
    let r = sign_in(&s, &browser, &person("s-ada", "ada@example.com", "ada")).await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    assert_eq!(r.headers()["location"], "/console");
    let set: Vec<&str> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(
        set.iter().any(|c| c.starts_with("_session=")
            && c.contains("Path=/;")
            && c.contains("HttpOnly")
            && c.contains("SameSite=Lax")),
        "{set:?}"
    );
    assert!(
        set.iter()
            .any(|c| c.starts_with("_console_auth=;") && c.contains("Path=/console")),
        "{set:?}"
    );

    let user = s.stack.user("ada").expect("the stack has the user");
    assert_eq!(user.state, "STATE_APPROVED");
    assert!(!user.admin && !user.self_registered);
    assert_eq!(user.email, "ada@example.com");
    assert_eq!(user.name, "Ada Lovelace");
    assert!(
        user.email_validated_at.is_some(),
        "vouched email not validated"
    );
    assert_eq!(s.stack.active_tokens("ada"), 0, "a token was left behind");
    assert_eq!(s.stack.live_sessions("ada"), 1);
    // The password is random and kept nowhere: not in idgate's database.
    assert!(user.password.len() >= 16);
    let db = std::fs::read(s.gw.dir.path().join("idgate.db")).unwrap();
    let wal = std::fs::read(s.gw.dir.path().join("idgate.db-wal")).unwrap_or_default();
    for bytes in [&db, &wal] {
        assert!(
            !bytes
                .windows(user.password.len())
                .any(|w| w == user.password.as_bytes()),
            "the stack password is in idgate's database"
        );
    }
    assert!(!s.gw.logs().contains(&user.password));

    // The console signs in by itself as Ada, through the gateway.
    let (page, visited) = follow(&s, &browser, &s.gw.url("/console")).await;
    assert_eq!(page.status(), 200, "{visited:?}");
    let body = page.text().await.unwrap();
    assert!(body.contains("Signed in as ada"), "{visited:?}\n{body}");
    assert!(
        !visited.iter().any(|u| u.contains("/oauth/login")),
        "the person was asked to sign in again: {visited:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_later_sign_in_keeps_the_user_and_brings_name_and_email_up_to_date() {
    let s = setup().await;
    let first = Browser::new();
    let claims = person("s-ada", "ada@example.com", "ada");
    assert_eq!(sign_in(&s, &first, &claims).await.status(), 302);
    let before = s.stack.users().len();

    let second = Browser::new();
    let mut renamed = person("s-ada", "ada.l@example.com", "ada");
    renamed[3] = ("name", "Ada King");
    assert_eq!(sign_in(&s, &second, &renamed).await.status(), 302);
    assert_eq!(s.stack.users().len(), before, "a second user was created");
    let user = s.stack.user("ada").unwrap();
    assert_eq!(user.name, "Ada King");
    assert_eq!(user.email, "ada.l@example.com");
    assert_eq!(s.stack.active_tokens("ada"), 0);
    assert_eq!(s.stack.live_sessions("ada"), 2);
    let me = second.identity(&s.gw).await;
    assert_eq!(me["username"], "ada");
}

#[tokio::test(flavor = "multi_thread")]
async fn ids_held_in_the_stack_or_reserved_by_it_are_taken() {
    let s = setup().await;
    s.stack.add_user("ada", "someone.else@example.org", false);
    s.stack.add_org("bob");
    for (sub, email, wanted) in [
        ("s-ada", "ada@example.com", "ada"),
        ("s-bob", "bob@example.com", "bob"),
        ("s-admin", "boss@example.com", "admin"),
    ] {
        let browser = Browser::new();
        let r = sign_in(&s, &browser, &person(sub, email, wanted)).await;
        assert_eq!(r.status(), 302, "{wanted}: {}", r.text().await.unwrap());
        let me = browser.identity(&s.gw).await;
        let username = me["username"].as_str().unwrap().to_string();
        assert_ne!(username, wanted);
        let user = s.stack.user(&username).expect("created under the new name");
        assert_eq!(user.email, email);
    }
    // The local user and the organization are untouched.
    assert_eq!(
        s.stack.user("ada").unwrap().email,
        "someone.else@example.org"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_email_the_stack_holds_for_another_user_is_refused_and_nothing_is_created() {
    let s = setup().await;
    s.stack.add_user("carol-local", "carol@example.com", false);
    let users_before = s.stack.users().len();
    let browser = Browser::new();
    let r = sign_in(
        &s,
        &browser,
        &person("s-carol", "Carol@example.com", "carol"),
    )
    .await;
    assert_eq!(r.status(), 409);
    let page = r.text().await.unwrap();
    assert!(page.contains("already in use"), "{page}");
    assert!(page.contains("administrator"), "{page}");
    assert_eq!(browser.me(&s.gw).await, 401, "an idgate session was made");
    assert!(!browser.cookies(&s.gw).contains("_session="));
    assert_eq!(
        s.stack.users().len(),
        users_before,
        "a stack user was created"
    );
    assert_eq!(idgate_users(&s.gw).await, 0, "idgate kept a user");
}

/// How many people idgate's database holds.
async fn idgate_users(gw: &Gateway) -> i64 {
    use sqlx::Connection;
    let url = format!("sqlite://{}", gw.dir.path().join("idgate.db").display());
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&mut db)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_people_racing_for_one_name_get_two_users() {
    let s = setup().await;
    let (a, b) = (Browser::new(), Browser::new());
    let (one, two) = (
        person("s-eve-1", "eve@example.com", "eve"),
        person("s-eve-2", "eve.two@example.com", "eve"),
    );
    let (ra, rb) = tokio::join!(sign_in(&s, &a, &one), sign_in(&s, &b, &two));
    assert_eq!((ra.status().as_u16(), rb.status().as_u16()), (302, 302));
    let eves: Vec<_> = s
        .stack
        .users()
        .into_iter()
        .filter(|u| u.email.starts_with("eve"))
        .collect();
    assert_eq!(eves.len(), 2, "{eves:?}");
    assert_ne!(eves[0].id, eves[1].id);
    assert!(eves.iter().any(|u| u.id == "eve"), "{eves:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn another_users_stack_session_is_never_forwarded() {
    let s = setup().await;
    s.stack.add_user("mallory", "mallory@example.org", false);
    let browser = Browser::new();
    assert_eq!(
        sign_in(&s, &browser, &person("s-ada", "ada@example.com", "ada"))
            .await
            .status(),
        302
    );
    let foreign = s.stack.password_session("mallory").await;
    let idgate = cookie_value(&browser.cookies(&s.gw), "idgate_session").unwrap();
    // A request carrying Mallory's stack session with Ada's idgate session.
    let r = common::client()
        .get(s.gw.url("/console/applications?x=1"))
        .header(
            "cookie",
            format!("idgate_session={idgate}; _session={foreign}"),
        )
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 307);
    assert_eq!(r.headers()["location"], "/console/applications?x=1");
    let fresh = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .find_map(|v| {
            v.to_str()
                .unwrap()
                .strip_prefix("_session=")
                .map(|c| c.split(';').next().unwrap().to_string())
        })
        .expect("a new stack session for Ada");
    assert_ne!(fresh, foreign);
    // Spelled as the stack still reads it, or next to a second copy: never
    // forwarded either.
    for cookie in [
        format!("idgate_session={idgate}; _session ={foreign}"),
        format!("idgate_session={idgate};\t_session\t= {foreign}"),
        format!("idgate_session={idgate}; _session={fresh}; _session={foreign}"),
    ] {
        let r = common::client()
            .get(s.gw.url("/console/x"))
            .header("cookie", cookie.as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 307, "{cookie}");
    }
    // Sent again, now that the owner is cached, on both data paths: still
    // never forwarded.
    let mut c = common::KeepAlive::open(s.gw.public);
    for _ in 0..2 {
        let status = c.get(
            "/console/applications",
            &format!("idgate_session={idgate}; _session={foreign}"),
        );
        assert_eq!(status, 307);
    }
    // The stack never saw Mallory's session on anything but the owner check.
    for seen in s.stack.requests() {
        let carries = seen
            .headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("cookie") && v.contains(&foreign));
        if carries {
            assert_eq!(seen.path, "/account/api/me", "forwarded: {seen:?}");
        }
    }
    // With Ada's own stack session the request goes through, and the fast
    // path forwards it from the cache.
    let ok = common::client()
        .get(s.gw.url("/console/applications"))
        .header(
            "cookie",
            format!("idgate_session={idgate}; _session={fresh}"),
        )
        .send()
        .await
        .unwrap();
    assert_ne!(ok.status(), 307);
    let me_checks = |stack: &FakeStack| {
        stack
            .requests()
            .iter()
            .filter(|r| r.path == "/account/api/me")
            .count()
    };
    let checks = me_checks(&s.stack);
    let mut c = common::KeepAlive::open(s.gw.public);
    for _ in 0..3 {
        let status = c.get(
            "/console/x",
            &format!("idgate_session={idgate}; _session={fresh}"),
        );
        assert_ne!(status, 307);
    }
    assert_eq!(me_checks(&s.stack), checks, "the owner was asked again");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_browsers_parallel_requests_share_one_new_stack_session() {
    let s = setup().await;
    s.stack.add_user("mallory", "mallory@example.org", false);
    let browser = Browser::new();
    sign_in(&s, &browser, &person("s-ada", "ada@example.com", "ada")).await;
    let sessions = s.stack.live_sessions("ada");
    let foreign = s.stack.password_session("mallory").await;
    let idgate = cookie_value(&browser.cookies(&s.gw), "idgate_session").unwrap();
    let cookie = format!("idgate_session={idgate}; _session={foreign}");
    let requests = (0..8).map(|i| {
        common::client()
            .get(s.gw.url(&format!("/console/api/{i}")))
            .header("cookie", cookie.as_str())
            .send()
    });
    let answers = futures_util::future::join_all(requests).await;
    let mut handed = std::collections::BTreeSet::new();
    for r in answers {
        let r = r.unwrap();
        assert_eq!(r.status(), 307);
        for v in r.headers().get_all("set-cookie") {
            if let Some(c) = v.to_str().unwrap().strip_prefix("_session=") {
                handed.insert(c.split(';').next().unwrap().to_string());
            }
        }
    }
    assert_eq!(handed.len(), 1, "{handed:?}");
    assert_eq!(s.stack.live_sessions("ada"), sessions + 1);
    assert_eq!(s.stack.active_tokens("ada"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_consoles_sign_out_needs_a_session() {
    let s = setup().await;
    let browser = Browser::new();
    sign_in(&s, &browser, &person("s-ada", "ada@example.com", "ada")).await;
    let stack_session = cookie_value(&browser.cookies(&s.gw), "_session").unwrap();
    for path in [
        "/account/logout?access_token_id=x",
        "/account%2Flogout?access_token_id=x",
    ] {
        let r = common::client()
            .get(s.gw.url(path))
            .header("cookie", format!("_session={stack_session}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path}");
    }
    assert_eq!(s.stack.live_sessions("ada"), 1);
    assert!(!s.stack.requests().iter().any(|r| r.path.contains("logout")));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_stack_session_heals_through_the_stack_login_page() {
    let s = setup().await;
    let browser = Browser::new();
    assert_eq!(
        sign_in(&s, &browser, &person("s-ada", "ada@example.com", "ada"))
            .await
            .status(),
        302
    );
    let old = cookie_value(&browser.cookies(&s.gw), "_session").unwrap();
    // The stack forgets the session (a restart without fixed cookie keys).
    let r = common::client()
        .post(format!("{}/account/api/auth/logout", s.stack.url))
        .header("cookie", format!("_session={old}"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    assert_eq!(s.stack.live_sessions("ada"), 0);

    let (page, visited) = follow(&s, &browser, &s.gw.url("/console")).await;
    assert_eq!(page.status(), 200, "{visited:?}");
    assert!(page.text().await.unwrap().contains("Signed in as ada"));
    assert!(
        visited.iter().any(|u| u.contains("/account/login?n=")),
        "{visited:?}"
    );
    assert_eq!(s.stack.live_sessions("ada"), 1);

    // An `n` leaving the gateway's origin is not followed.
    let r = browser
        .get(&s.gw.url("/account/login?n=https%3A%2F%2Fevil.example%2F"))
        .await;
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "/");
    // Healing a browser whose stack session still lived leaves no second
    // session behind.
    assert_eq!(s.stack.live_sessions("ada"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn signing_out_at_idgate_ends_the_stack_session_too() {
    let s = setup().await;
    let browser = Browser::new();
    sign_in(&s, &browser, &person("s-ada", "ada@example.com", "ada")).await;
    let (page, _) = follow(&s, &browser, &s.gw.url("/console")).await;
    assert_eq!(page.status(), 200);
    assert!(browser
        .cookies_at(&s.gw, "/console")
        .contains("_console_auth="));
    let r = browser
        .http
        .post(s.gw.url("/.idgate/logout"))
        .header("origin", &s.gw.origin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(s.stack.live_sessions("ada"), 0);
    let jar = browser.cookies_at(&s.gw, "/console");
    for name in ["_session", "_console_auth", "idgate_session"] {
        assert_eq!(cookie_value(&jar, name), None, "{jar}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_consoles_own_sign_out_ends_the_idgate_session() {
    let s = setup().await;
    let browser = Browser::new();
    sign_in(&s, &browser, &person("s-ada", "ada@example.com", "ada")).await;
    let (page, _) = follow(&s, &browser, &s.gw.url("/console")).await;
    let body = page.text().await.unwrap();
    let href = body
        .split("href=\"")
        .map(|h| h.split('"').next().unwrap().replace("&amp;", "&"))
        .find(|h| h.contains("/logout?access_token_id="))
        .expect("the console's sign-out link");
    let r = browser.get(&s.gw.url(&href)).await;
    assert!(r.status().is_redirection(), "{}", r.status());
    assert_eq!(s.stack.live_sessions("ada"), 0);
    assert_eq!(browser.me(&s.gw).await, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_administrator_of_the_stack_gets_no_console_session() {
    let s = setup().await;
    let browser = Browser::new();
    sign_in(&s, &browser, &person("s-ada", "ada@example.com", "ada")).await;
    // A stack administrator makes Ada an administrator.
    let r = common::client()
        .put(format!("{}/api/v3/users/ada", s.stack.url))
        .bearer_auth(ADMIN_KEY)
        .json(&serde_json::json!({
            "user": { "ids": { "user_id": "ada" }, "admin": true },
            "field_mask": { "paths": ["admin"] }
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let sessions = s.stack.live_sessions("ada");

    let again = Browser::new();
    let r = sign_in(&s, &again, &person("s-ada", "ada@example.com", "ada")).await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(page.contains("administrator"), "{page}");
    assert!(page.contains("href=\"/account/login\""), "{page}");
    assert_eq!(again.me(&s.gw).await, 200, "no idgate session");
    assert_eq!(cookie_value(&again.cookies(&s.gw), "_session"), None);
    assert_eq!(s.stack.live_sessions("ada"), sessions);
    assert_eq!(s.stack.active_tokens("ada"), 0, "a token was left behind");
}

/// A sign-in that fails at the stack: 502 naming `cause`, no idgate
/// session, nothing created, nothing emailed.
async fn fails_with(s: &Setup, cause: &str) {
    let users = s.stack.users().len();
    let emails = s.stack.emails().len();
    let browser = Browser::new();
    let r = sign_in(s, &browser, &person("s-zed", "zed@example.com", "zed")).await;
    assert_eq!(r.status(), 502);
    let page = r.text().await.unwrap();
    assert!(page.contains(cause), "{page}");
    assert_eq!(browser.me(&s.gw).await, 401);
    assert_eq!(s.stack.users().len(), users, "a user was created");
    assert_eq!(s.stack.emails().len(), emails, "an email was sent");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_key_creates_and_emails_nothing() {
    let s = setup().await;
    s.stack.revoke_key(ADMIN_KEY);
    fails_with(&s, "refused the gateway&#39;s API key").await;
    s.gw.logs_with(&["console sign-in failed", "api_key_not_found"])
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_that_is_not_an_administrators_is_refused() {
    let stack = FakeStack::start().await;
    stack.add_user("plain", "plain@example.org", false);
    let key = stack.add_key("plain");
    let idp = provider().await;
    let gw = Gateway::start(&stack.url, &toml(&idp, &stack, &key, "")).await;
    register(&idp, &gw, "entra");
    let s = Setup { stack, idp, gw };
    fails_with(&s, "not an administrator").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn disabled_login_tokens_fail_the_sign_in() {
    let stack = FakeStack::start_with(Options {
        login_tokens_enabled: false,
        ..Options::default()
    })
    .await;
    let s = setup_with(stack, "").await;
    fails_with(&s, "Login tokens are disabled").await;
    assert_eq!(idgate_users(&s.gw).await, 0, "idgate kept a user");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_or_unreachable_stack_fails_the_sign_in() {
    let s = setup().await;
    s.stack.set_failing(true);
    fails_with(&s, "answered with an error").await;
    s.stack.set_failing(false);

    let Setup { stack, idp, gw } = s;
    let url = stack.url.clone();
    drop(stack);
    let browser = Browser::new();
    let r = browser
        .login(
            &gw,
            "entra",
            "/console",
            &person("s-zed", "zed@example.com", "zed"),
        )
        .await;
    assert_eq!(r.status(), 502);
    assert!(r.text().await.unwrap().contains("not reachable"));
    assert_eq!(browser.me(&gw).await, 401);
    gw.logs_with(&["console sign-in failed", url.trim_start_matches("http://")])
        .await;
    drop(idp);
}

#[tokio::test(flavor = "multi_thread")]
async fn login_token_routes_are_closed_to_browsers_however_spelled() {
    let s = setup().await;
    let browser = Browser::new();
    sign_in(&s, &browser, &person("s-ada", "ada@example.com", "ada")).await;
    let minted_before = s
        .stack
        .requests()
        .iter()
        .filter(|r| r.path.contains("login"))
        .count();
    for path in [
        "/api/v3/users/ada/login-tokens",
        "/api/v3/users/ada/login%2Dtokens",
        "/api/v3/users/ada%2Flogin-tokens",
        "/api/v3/users/ada/%6Cogin-tokens?skip_email=true",
        "/api/v3//users/./ada/login-tokens",
        "/api/v3/users/x/../ada/login-tokens",
        "/account/api/auth/token-login",
        "/account/api/auth%2Ftoken-login",
        "/account/token-login?token=x",
        "/account/%74oken-login",
    ] {
        for signed_in in [true, false] {
            let mut req = common::client()
                .post(s.gw.url(path))
                .bearer_auth(ADMIN_KEY)
                .header("content-type", "application/json")
                .body("{\"token\":\"x\"}");
            if signed_in {
                req = req.header("cookie", browser.cookies(&s.gw));
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 403, "{path} (signed in: {signed_in})");
        }
    }
    let minted_after = s
        .stack
        .requests()
        .iter()
        .filter(|r| r.path.contains("login"))
        .count();
    assert_eq!(
        minted_before, minted_after,
        "a closed route reached the stack"
    );
    // API-key traffic on the same host passes without a session.
    let r = common::client()
        .get(s.gw.url("/api/v3/applications"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let health = common::client()
        .get(s.gw.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_keeps_every_persons_user() {
    let s = setup().await;
    let browser = Browser::new();
    sign_in(&s, &browser, &person("s-ada", "ada@example.com", "ada")).await;
    let Setup { stack, idp, gw } = s;
    let gw = gw
        .restart(&stack.url, &toml(&idp, &stack, ADMIN_KEY, ""))
        .await;
    register(&idp, &gw, "entra");
    let s = Setup { stack, idp, gw };
    let again = Browser::new();
    assert_eq!(
        sign_in(&s, &again, &person("s-ada", "ada@example.com", "ada"))
            .await
            .status(),
        302
    );
    let ids: Vec<String> = s.stack.users().into_iter().map(|u| u.id).collect();
    assert_eq!(
        ids.iter().filter(|id| id.starts_with("ada")).count(),
        1,
        "{ids:?}"
    );
    assert!(cookie_value(&again.cookies(&s.gw), "_session").is_some());
}

fn tts_check(stack: &FakeStack, key: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("idgate.toml");
    std::fs::write(
        &path,
        format!(
            "[tts]\nurl = \"{}\"\napi_key = \"{key}\"\naccount_mount = \"/account\"\ntimeout = \"2s\"\n",
            stack.url
        ),
    )
    .unwrap();
    let (code, out, err) = run_idgate(
        &["tts", "check", "--config", path.to_str().unwrap()],
        dir.path(),
        &[],
    );
    (code, format!("{out}{err}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn tts_check_reports_each_condition_without_side_effects() {
    let stack = FakeStack::start().await;
    let (code, out) = tts_check(&stack, ADMIN_KEY);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("ok  ")).count(),
        3,
        "{out}"
    );
    assert!(out.contains("login tokens enabled: yes"), "{out}");

    stack.set_login_tokens_enabled(false);
    let (code, out) = tts_check(&stack, ADMIN_KEY);
    assert_eq!(code, 1);
    assert!(out.contains("FAIL login tokens enabled: no"), "{out}");
    stack.set_login_tokens_enabled(true);

    stack.add_user("plain", "plain@example.org", false);
    let plain = stack.add_key("plain");
    let (code, out) = tts_check(&stack, &plain);
    assert_eq!(code, 1);
    assert!(
        out.contains("FAIL API key valid and an administrator's: no"),
        "{out}"
    );

    stack.revoke_key(ADMIN_KEY);
    let (code, out) = tts_check(&stack, ADMIN_KEY);
    assert_eq!(code, 1);
    assert!(out.contains("refused idgate's API key"), "{out}");
    assert!(!out.contains(ADMIN_KEY), "the key was printed");

    assert_eq!(stack.users().len(), 2, "a user was created");
    assert!(stack.emails().is_empty(), "an email was sent");

    let url = stack.url.clone();
    drop(stack);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("idgate.toml");
    std::fs::write(&path, format!("[tts]\nurl = \"{url}\"\napi_key = \"k\"\n")).unwrap();
    let (code, out, _) = run_idgate(
        &["tts", "check", "--config", path.to_str().unwrap()],
        dir.path(),
        &[],
    );
    assert_eq!(code, 1);
    assert!(out.contains("FAIL stack reachable: no"), "{out}");
}

#[test]
fn tts_check_without_a_key_says_what_to_set() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run_idgate(&["tts", "check"], dir.path(), &[]);
    assert_eq!(code, 1);
    assert!(err.contains("tts.api_key"), "{err}");
}

#[test]
fn check_config_refuses_a_bad_tts_section() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, "NNSXS.KEY\n").unwrap();
    let empty_file = dir.path().join("empty");
    std::fs::write(&empty_file, "\n").unwrap();
    let check = |tts: &str| {
        let path = dir.path().join("idgate.toml");
        std::fs::write(&path, format!("[tts]\n{tts}\n")).unwrap();
        let (code, out, err) = run_idgate(
            &["check-config", "--config", path.to_str().unwrap()],
            dir.path(),
            &[],
        );
        (code, format!("{out}{err}"))
    };
    let (code, out) = check(&format!("api_key_file = \"{}\"", key_file.display()));
    assert_eq!(code, 0, "{out}");
    for (tts, says) in [
        (
            "api_key_file = \"/nonexistent/key\"".to_string(),
            "tts.api_key_file: cannot read /nonexistent/key",
        ),
        (
            format!("api_key_file = \"{}\"", empty_file.display()),
            "tts.api_key_file: holds no usable API key",
        ),
        (
            format!("api_key = \"k\"\napi_key_file = \"{}\"", key_file.display()),
            "tts.api_key_file: set either tts.api_key or tts.api_key_file, not both",
        ),
        (
            "api_key = \"two words\"".to_string(),
            "tts.api_key: holds no usable API key",
        ),
        (
            "api_key = \"k\"\nurl = \"stack:1885\"".to_string(),
            "tts.url: \"stack:1885\"",
        ),
        (
            "api_key = \"k\"\naccount_mount = \"oauth/\"".to_string(),
            "tts.account_mount: \"oauth/\" must be a path like /oauth",
        ),
        (
            "api_key = \"k\"\nconsole_mount = \"/\"".to_string(),
            "tts.console_mount: \"/\" must be a path like /oauth",
        ),
        (
            "api_key = \"k\"\ntimeout = \"0s\"".to_string(),
            "tts.timeout: must be longer than zero",
        ),
        ("apikey = \"k\"".to_string(), "tts.apikey: unknown key"),
    ] {
        let (code, out) = check(&tts);
        assert_ne!(code, 0, "{tts} was accepted");
        assert!(out.contains(says), "{tts}:\n{out}");
        assert!(!out.contains("NNSXS.KEY"), "the key was printed: {out}");
    }
    // The environment names the key too, and wins over the file.
    let path = dir.path().join("idgate.toml");
    std::fs::write(&path, "[tts]\napi_key = \"two words\"\n").unwrap();
    let (code, _, err) = run_idgate(
        &["check-config", "--config", path.to_str().unwrap()],
        dir.path(),
        &[("IDGATE_TTS_API_KEY", "NNSXS.FROM-ENV")],
    );
    assert_eq!(code, 0, "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_account_app_at_oauth_the_login_page_heals_and_its_token_routes_are_closed() {
    let stack = FakeStack::start_with(Options {
        account_mount: "/oauth".into(),
        ..Options::default()
    })
    .await;
    let s = setup_with(stack, "").await;
    let browser = Browser::new();
    sign_in(&s, &browser, &person("s-ada", "ada@example.com", "ada")).await;
    let old = cookie_value(&browser.cookies(&s.gw), "_session").unwrap();
    common::client()
        .post(format!("{}/oauth/api/auth/logout", s.stack.url))
        .header("cookie", format!("_session={old}"))
        .send()
        .await
        .unwrap();
    assert_eq!(s.stack.live_sessions("ada"), 0);
    // The stack sends the browser to /oauth/login?n=…: idgate's own login
    // page, which signs the person in to the stack again and follows n.
    let (page, visited) = follow(&s, &browser, &s.gw.url("/console")).await;
    assert_eq!(page.status(), 200, "{visited:?}");
    assert!(page.text().await.unwrap().contains("Signed in as ada"));
    assert!(
        visited.iter().any(|u| u.contains("/oauth/login?n=")),
        "{visited:?}"
    );
    // Without an idgate session it is the login page.
    let r = common::client()
        .get(s.gw.url("/oauth/login?n=%2Fconsole"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Login to Contoso Entra"));
    for path in [
        "/oauth/token-login",
        "/oauth/api/auth%2Ftoken-login",
        "/oauth/login/..%2Ftoken-login",
    ] {
        let r = common::client().post(s.gw.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 403, "{path}");
    }
}
