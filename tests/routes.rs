//! `[[routes]]` through the real binary: requests that pass without a
//! session reach the upstream with exactly the path that matched, identity
//! headers still stripped; no traversal or encoding trick carries a request
//! past a route into a path that needs a session; and `check-config`
//! refuses bad or overlapping routes.

mod common;

use common::login::signed_in;
use common::upstream::{echoed, Upstream};
use common::{client, run_idgate, Gateway, KeepAlive};

const ROUTES: &str = r#"
[[routes]]
path = "/api/v3/"
allow = "bearer"

[[routes]]
path = "/healthz"
methods = ["GET", "HEAD"]
allow = "public"
"#;

/// Sends `request` (a head without its blank line) on a new connection;
/// returns the answer.
fn send(gw: &Gateway, request: &str) -> common::WireResponse {
    let mut c = KeepAlive::open(gw.public);
    c.send(format!("{request}\r\nConnection: close\r\n\r\n"));
    c.response(request.starts_with("HEAD "))
}

fn echo(r: &common::WireResponse) -> serde_json::Value {
    assert_eq!(r.status, 200, "{}", r.body_text());
    serde_json::from_slice(&r.body).unwrap_or_else(|_| panic!("not an echo: {}", r.body_text()))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_public_route_passes_without_a_session_and_without_forged_identity() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&up.url(), ROUTES).await;
    let r = send(
        &gw,
        "GET /healthz?probe=1 HTTP/1.1\r\nHost: gw\r\nX-Forwarded-User: admin\r\n\
         X_Forwarded_User: admin\r\nX-Idgate-Assertion: forged",
    );
    let e = echo(&r);
    assert_eq!(e["uri"], "/healthz?probe=1");
    for name in ["x-forwarded-user", "x_forwarded_user", "x-idgate-assertion"] {
        assert!(
            echoed(&e, name).is_empty(),
            "{name} reached the upstream: {e}"
        );
    }
    // Only the methods named pass; the rest needs a session.
    let post = send(
        &gw,
        "POST /healthz HTTP/1.1\r\nHost: gw\r\nContent-Length: 0",
    );
    assert_eq!(post.status, 401, "{}", post.body_text());
    // An exact route covers nothing below it.
    let below = send(&gw, "GET /healthz/x HTTP/1.1\r\nHost: gw");
    assert_eq!(below.status, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bearer_route_needs_a_token_and_passes_it_on() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&up.url(), ROUTES).await;
    let r = send(
        &gw,
        "GET /api/v3/gateways/g1 HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer NNSXS.KEY",
    );
    let e = echo(&r);
    assert_eq!(e["uri"], "/api/v3/gateways/g1");
    assert_eq!(echoed(&e, "authorization"), vec!["Bearer NNSXS.KEY"]);
    assert!(echoed(&e, "x-forwarded-user").is_empty());
    // The bare prefix is covered too.
    let bare = send(
        &gw,
        "GET /api/v3 HTTP/1.1\r\nHost: gw\r\nAuthorization: bearer k",
    );
    assert_eq!(echo(&bare)["uri"], "/api/v3");
    for auth in [
        "",
        "\r\nAuthorization: Bearer ",
        "\r\nAuthorization: Bearer    ",
        "\r\nAuthorization: Basic YTpi",
    ] {
        let r = send(
            &gw,
            &format!("GET /api/v3/users HTTP/1.1\r\nHost: gw{auth}"),
        );
        assert_eq!(r.status, 401, "{auth:?}: {}", r.body_text());
        assert!(
            r.body_text().contains("unauthenticated"),
            "{}",
            r.body_text()
        );
    }
    // A browser without a token is sent to sign in, as anywhere else.
    let browser = send(
        &gw,
        "GET /api/v3/users HTTP/1.1\r\nHost: gw\r\nAccept: text/html",
    );
    assert_eq!(browser.status, 302);
}

#[tokio::test(flavor = "multi_thread")]
async fn no_traversal_or_encoding_trick_reaches_a_session_path() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&up.url(), ROUTES).await;
    for path in [
        "/api/v3/../console",
        "/api/v3/../../console",
        "/api/v3/%2e%2e/%2e%2e/console",
        "/api/v3/%2E%2E/%2E%2E/console/admin",
        "/api/v3%2F..%2F..%2Fconsole",
        "/api/v3/..%2F..%2Fconsole",
        "/api/v3/..%5C..%5Cconsole",
        "/api/v3/%00/../../console",
        "//console/admin",
        "/healthz/../console",
        "/healthz%2F..%2Fconsole",
        "/%2e%2e/api/v3/../../console",
        "/api/v3/..;/..;/console",
        "/api/v3/%2e%2e;/%2e%2e;/console",
    ] {
        let r = send(
            &gw,
            &format!("GET {path} HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer k"),
        );
        assert_eq!(r.status, 401, "{path} passed: {}", r.body_text());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_upstream_receives_the_path_that_matched() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&up.url(), ROUTES).await;
    for (sent, received) in [
        ("//api/v3//users/./ada?x=%2F", "/api/v3/users/ada?x=%2F"),
        ("/api/v3/users/x/../ada", "/api/v3/users/ada"),
        ("/%61pi/v3/users", "/api/v3/users"),
        ("/api/v3/%7Euser", "/api/v3/~user"),
        ("/api/v3/a%20b", "/api/v3/a%20b"),
    ] {
        let r = send(
            &gw,
            &format!("GET {sent} HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer k"),
        );
        assert_eq!(echo(&r)["uri"], received, "{sent}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_in_person_on_a_route_gets_identity_headers_on_both_paths() {
    let up = Upstream::start().await;
    let s = signed_in(&up.url(), ROUTES, None).await;
    // A keep-alive connection: the first request may take the HTTP/1 fast
    // path, the route goes to the general one; both must send the identity.
    let mut c = KeepAlive::open(s.gw.public);
    for path in ["/console/x", "/api/v3/users", "/console/y", "/healthz"] {
        c.send(format!(
            "GET {path} HTTP/1.1\r\nHost: gw\r\nCookie: {}\r\nX-Forwarded-User: mallory\r\n\r\n",
            s.cookie
        ));
        let e = echo(&c.response(false));
        assert_eq!(e["uri"], path);
        assert_eq!(echoed(&e, "x-forwarded-user"), vec!["ada"], "{path}");
    }
    // A session whose cookie is no longer valid does not pass a bearer
    // route without a token.
    let r = client()
        .get(s.gw.url("/api/v3/users"))
        .header("cookie", "idgate_session=forged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

fn check(toml: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("idgate.toml");
    std::fs::write(&path, toml).unwrap();
    let (code, out, err) = run_idgate(
        &["check-config", "--config", path.to_str().unwrap()],
        dir.path(),
        &[],
    );
    (code, format!("{out}{err}"))
}

#[test]
fn check_config_refuses_bad_and_overlapping_routes() {
    let (code, out) = check(ROUTES);
    assert_eq!(code, 0, "{out}");
    for (routes, says) in [
        (
            "[[routes]]\npath = \"api/v3/\"\nallow = \"bearer\"",
            "routes[0]: path \"api/v3/\" must start with /",
        ),
        (
            "[[routes]]\npath = \"/api/\"\nallow = \"anyone\"",
            "routes[0]: allow = \"anyone\" is not one of \"public\", \"bearer\"",
        ),
        (
            "[[routes]]\npath = \"/api/\"\nmethods = [\"GET\", \"FETCH\"]\nallow = \"public\"",
            "routes[0]: method \"FETCH\" is not one of",
        ),
        (
            "[[routes]]\npath = \"/api/\"",
            "routes[0]: needs allow = \"public\" or \"bearer\", or require_groups / require_roles",
        ),
        (
            "[[routes]]\npath = \"/api/\"\nallow = \"public\"\nallowed = \"x\"",
            "routes[0]: unknown field `allowed`",
        ),
        (
            "[[routes]]\npath = \"/oauth/login/entra/callback\"\nallow = \"public\"",
            "routes[0]: path \"/oauth/login/entra/callback\" covers the gateway's own paths",
        ),
        (
            "[[routes]]\npath = \"/\"\nallow = \"public\"",
            "routes[0]: path \"/\" covers the gateway's own paths",
        ),
        (
            "[[routes]]\npath = \"/.idgate/me\"\nallow = \"public\"",
            "routes[0]: path \"/.idgate/me\" covers the gateway's own paths",
        ),
        (
            "[[routes]]\npath = \"/api/../console\"\nallow = \"public\"",
            "routes[0]: path \"/api/../console\" is not in normal form",
        ),
        (
            "[[routes]]\npath = \"/api/v3/\"\nallow = \"bearer\"\n[[routes]]\npath = \"/api/v3/public/\"\nallow = \"public\"",
            "routes[1]: overlaps routes[0] (\"/api/v3/\")",
        ),
        (
            "[routes]\npath = \"/x\"",
            "routes: must be an array of tables ([[routes]])",
        ),
    ] {
        let (code, out) = check(routes);
        assert_ne!(code, 0, "{routes} was accepted");
        assert!(out.contains(says), "{routes}:\n{out}");
    }
}

#[test]
fn serve_refuses_to_start_on_a_bad_route() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("idgate.toml");
    std::fs::write(
        &path,
        "[[routes]]\npath = \"/.idgate/\"\nallow = \"public\"",
    )
    .unwrap();
    let (code, _, err) = run_idgate(
        &["serve", "--config", path.to_str().unwrap()],
        dir.path(),
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("routes[0]"), "{err}");
    assert!(
        !dir.path().join("data").exists(),
        "serve created its database"
    );
}
