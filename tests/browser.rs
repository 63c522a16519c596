//! A real headless Chromium, driven over WebDriver, clicks "Login to
//! <name>", signs in at the local Entra-shaped provider's form, and lands
//! on the upstream with its identity; in front of (a fake of) The Things
//! Stack, it lands in the console signed in as its derived user; signing
//! out, it goes through the provider's sign-out (whose front-channel frames
//! end the person's other session) to the signed-out page. Needs
//! Debian's `chromium` and `chromium-driver` (`scripts/setup --test`
//! installs them).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::fake_tts::{FakeStack, ADMIN_KEY};
use common::login::{provider, provider_toml, register, Browser, CLIENT_ID, TENANT};
use common::upstream::Upstream;
use common::Gateway;
use fantoccini::{ClientBuilder, Locator};

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn find(binary: &str) -> String {
    for dir in ["/usr/bin", "/usr/local/bin", "/usr/lib/chromium"] {
        let path = format!("{dir}/{binary}");
        if std::path::Path::new(&path).exists() {
            return path;
        }
    }
    panic!(
        "{binary} is needed for the browser test and is not installed: \
         run `scripts/setup --test` (Debian packages chromium and chromium-driver)"
    );
}

async fn start_driver() -> (Driver, u16) {
    let port = common::free_port();
    let child = Command::new(find("chromedriver"))
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (Driver(child), port)
}

/// A WebDriver session of a headless Chromium with a fresh profile; the
/// driver and the profile live as long as the returned guards.
async fn chromium() -> (fantoccini::Client, Driver, tempfile::TempDir) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let chromium = find("chromium");
    let (driver, port) = start_driver().await;
    let profile = tempfile::tempdir().unwrap();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                format!("--user-data-dir={}", profile.path().display()),
            ],
        }),
    );
    let c = ClientBuilder::rustls()
        .expect("rustls client")
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("WebDriver session");
    (c, driver, profile)
}

/// Clicks the provider's button on the login page, signs Grace Hopper in at
/// the provider's form, and waits until the browser is at `path`.
async fn sign_in_as_grace(c: &fantoccini::Client, path: &str) -> url::Url {
    let button = c
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::LinkText("Login to Contoso Entra"))
        .await
        .expect("the login page shows the button");
    button.click().await.unwrap();

    let email = c
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("input[name=email]"))
        .await
        .expect("the provider's sign-in form");
    email.clear().await.unwrap();
    email.send_keys("grace@example.com").await.unwrap();
    let preferred = c
        .find(Locator::Css("input[name=preferred_username]"))
        .await
        .unwrap();
    preferred.clear().await.unwrap();
    preferred.send_keys("Grace.Hopper").await.unwrap();
    c.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_path(c, path).await
}

fn grace_provider(idp: &idgate::demo::provider::Provider) -> String {
    provider_toml(
        idp,
        "entra",
        TENANT,
        r#"allowed_email_domains = ["example.com"]"#,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_signs_in_with_a_real_browser() {
    let (c, _driver, _profile) = chromium().await;
    let idp = provider().await;
    let up = Upstream::start().await;
    let gw = Gateway::start(&up.url(), &grace_provider(&idp)).await;
    register(&idp, &gw, "entra");

    c.goto(&gw.url("/console/applications?page=2"))
        .await
        .unwrap();
    let url = sign_in_as_grace(&c, "/console/applications").await;
    assert_eq!(url.query(), Some("page=2"));
    let page = c.source().await.unwrap();
    assert!(page.contains("x-forwarded-user"), "{page}");
    assert!(page.contains("grace-hopper"), "{page}");
    c.close().await.unwrap();
}

/// Waits until the browser is at `path`.
async fn wait_for_path(c: &fantoccini::Client, path: &str) -> url::Url {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let url = c.current_url().await.unwrap();
        if url.path() == path {
            return url;
        }
        assert!(
            Instant::now() < deadline,
            "the browser did not land on {path}: {url}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn signing_out_goes_through_the_provider_to_the_signed_out_page() {
    let (c, _driver, _profile) = chromium().await;
    let idp = provider().await;
    let up = Upstream::start().await;
    let gw = Gateway::start(&up.url(), &grace_provider(&idp)).await;
    register(&idp, &gw, "entra");

    idp.set_front_channel_logout(
        CLIENT_ID,
        &gw.url("/oauth/login/entra/front-channel-logout"),
    );

    c.goto(&gw.url("/console")).await.unwrap();
    sign_in_as_grace(&c, "/console").await;
    // Grace is signed in on another device too (another provider session).
    let elsewhere = Browser::new();
    let claims = [
        ("email", "grace@example.com"),
        ("preferred_username", "Grace.Hopper"),
    ];
    let r = elsewhere.login(&gw, "entra", "/", &claims).await;
    assert_eq!(r.status(), 302);
    assert_eq!(elsewhere.me(&gw).await, 200);
    // A sign-out button, as an application's page has one.
    c.execute(
        "const f = document.createElement('form'); f.method = 'post'; \
         f.action = '/.idgate/logout'; document.body.appendChild(f); f.submit();",
        vec![],
    )
    .await
    .unwrap();
    let url = wait_for_path(&c, "/.idgate/signed-out").await;
    assert_eq!(url.origin(), url::Url::parse(&gw.origin).unwrap().origin());
    assert_eq!(
        idp.counters().logout,
        1,
        "the browser went through the provider"
    );
    let page = c.source().await.unwrap();
    assert!(page.contains("You are signed out."), "{page}");
    // The provider's sign-out page loaded the front-channel logout in a
    // frame for each of Grace's provider sessions: the other one is over.
    assert_eq!(elsewhere.me(&gw).await, 401);

    // The session is gone: the console asks for a sign-in again.
    c.goto(&gw.url("/console")).await.unwrap();
    wait_for_path(&c, "/oauth/login").await;
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_lands_in_the_console_as_their_stack_user() {
    let (c, _driver, _profile) = chromium().await;
    let stack = FakeStack::start().await;
    let idp = provider().await;
    let gw = Gateway::start(
        &stack.url,
        &format!(
            "[tts]\napi_key = \"{ADMIN_KEY}\"\naccount_mount = \"/account\"\n{}",
            grace_provider(&idp)
        ),
    )
    .await;
    register(&idp, &gw, "entra");
    stack.set_console_root_url(&gw.origin);

    c.goto(&gw.url("/console/applications")).await.unwrap();
    sign_in_as_grace(&c, "/console/applications").await;
    let page = c.source().await.unwrap();
    assert!(page.contains("Signed in as grace-hopper"), "{page}");
    let user = stack.user("grace-hopper").expect("the stack has Grace");
    assert_eq!(user.email, "grace@example.com");
    assert_eq!(stack.live_sessions("grace-hopper"), 1);
    c.close().await.unwrap();
}
