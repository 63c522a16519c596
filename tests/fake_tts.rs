//! The fake Things Stack (`common/fake_tts.rs`) behaves like The Things
//! Stack v3.32 on each point the console sign-in bridge relies on. These
//! tests talk to the fake over HTTP only; nothing of idgate is involved.

mod common;

use std::time::Duration;

use common::fake_tts::{FakeStack, Options, ADMIN_KEY};
use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};

/// No proxy, no redirects followed, no cookie jar.
fn http() -> Client {
    Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A browser-like client: keeps cookies, follows no redirects.
fn browser() -> Client {
    Client::builder()
        .no_proxy()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn body(r: Response) -> (StatusCode, Value) {
    let status = r.status();
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, v)
}

/// Checks the TTS error shape: a gRPC status with one `ErrorDetails`.
fn assert_error(v: &Value, code: u64, namespace: &str, name: &str) {
    assert_eq!(v["code"], code, "{v:#}");
    let message = v["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("error:{namespace}:{name} (")),
        "{message}"
    );
    let d = &v["details"][0];
    assert_eq!(
        d["@type"],
        "type.googleapis.com/ttn.lorawan.v3.ErrorDetails"
    );
    assert_eq!(d["namespace"], namespace, "{v:#}");
    assert_eq!(d["name"], name, "{v:#}");
    assert_eq!(d["code"], code);
    assert_eq!(d["correlation_id"].as_str().unwrap().len(), 32);
    assert!(d["message_format"].is_string());
}

fn set_cookies(r: &Response) -> Vec<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

fn cookie_value(r: &Response, name: &str) -> Option<String> {
    set_cookies(r).iter().find_map(|c| {
        c.strip_prefix(&format!("{name}="))
            .map(|v| v.split(';').next().unwrap().to_string())
    })
}

fn location(r: &Response) -> String {
    r.headers()["location"].to_str().unwrap().to_string()
}

/// One raw HTTP/1.1 request (the path exactly as given); returns the status
/// line's code and the head.
async fn raw(stack: &FakeStack, method: &str, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = stack.url.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {ADMIN_KEY}\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let code = text[9..12].parse().unwrap();
    (code, text)
}

async fn get_user(stack: &FakeStack, key: Option<&str>, id: &str, mask: &str) -> Response {
    let mut req = http().get(format!("{}/api/v3/users/{id}?field_mask={mask}", stack.url));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    req.send().await.unwrap()
}

async fn create(stack: &FakeStack, key: Option<&str>, user: Value) -> Response {
    let mut req = http().post(format!("{}/api/v3/users", stack.url));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    req.json(&json!({ "user": user })).send().await.unwrap()
}

fn new_user(id: &str, email: &str) -> Value {
    json!({"ids": {"user_id": id}, "name": "New User", "primary_email_address": email,
        "password": "Secret-pass-42"})
}

async fn mint(stack: &FakeStack, key: Option<&str>, id: &str, query: &str) -> Response {
    let mut req = http().post(format!(
        "{}/api/v3/users/{id}/login-tokens{query}",
        stack.url
    ));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    req.send().await.unwrap()
}

async fn admin_token(stack: &FakeStack, id: &str) -> String {
    let (status, v) = body(mint(stack, Some(ADMIN_KEY), id, "?skip_email=true").await).await;
    assert_eq!(status, 200, "{v}");
    v["token"].as_str().unwrap().to_string()
}

async fn token_login(stack: &FakeStack, ctype: &str, payload: &str) -> Response {
    let url = format!(
        "{}{}/api/auth/token-login",
        stack.url,
        stack.account_mount()
    );
    http()
        .post(url)
        .header("content-type", ctype)
        .body(payload.to_string())
        .send()
        .await
        .unwrap()
}

// ------------------------------------------------------------------ auth

#[tokio::test]
async fn auth_info_describes_the_admin_key() {
    let stack = FakeStack::start().await;
    let r = http()
        .get(format!("{}/api/v3/auth_info", stack.url))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    let (status, v) = body(r).await;
    assert_eq!(status, 200);
    assert_eq!(v["is_admin"], true);
    assert_eq!(v["api_key"]["entity_ids"]["user_ids"]["user_id"], "admin");
    let key = &v["api_key"]["api_key"];
    assert_eq!(key["id"], ADMIN_KEY.split('.').nth(1).unwrap());
    assert!(key.get("key").is_none(), "the secret is never echoed");
    let rights: Vec<&str> = key["rights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(rights.contains(&"RIGHT_ALL") && rights.contains(&"RIGHT_USER_SETTINGS_API_KEYS"));
    let universal: Vec<&str> = v["universal_rights"]["rights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(universal.contains(&"RIGHT_USER_INFO"));
    assert!(!universal
        .iter()
        .any(|r| r.ends_with("_KEYS") || r.ends_with("_ALL")));
    assert!(key["created_at"].as_str().unwrap().ends_with('Z'));

    // A normal user's key: no is_admin (zero values are left out).
    stack.add_user("bob", "bob@example.com", false);
    let bob = stack.add_key("bob");
    let r = http()
        .get(format!("{}/api/v3/auth_info", stack.url))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    let (_, v) = body(r).await;
    assert!(
        v.get("is_admin").is_none() && v.get("universal_rights").is_none(),
        "{v}"
    );

    // No key at all: an empty answer, not an error.
    let (status, v) = body(
        http()
            .get(format!("{}/api/v3/auth_info", stack.url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status.as_u16(), v), (200, json!({})));
}

#[tokio::test]
async fn refused_keys_answer_the_tts_error_shape() {
    let stack = FakeStack::start().await;
    let unknown = "NNSXS.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";
    let r = http()
        .get(format!("{}/api/v3/auth_info", stack.url))
        .bearer_auth(unknown)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["content-type"], "application/json");
    let www = r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    let (_, v) = body(r).await;
    assert_error(&v, 16, "pkg/identityserver", "api_key_not_found");
    assert_eq!(
        v["message"],
        "error:pkg/identityserver:api_key_not_found (API key not found)"
    );
    assert_eq!(www, v["message"]);
    let cause = &v["details"][0]["cause"];
    assert_eq!(cause["namespace"], "pkg/identityserver/store");
    assert_eq!(cause["name"], "api_key_not_found");
    assert_eq!(cause["code"], 5);
    assert_eq!(
        cause["attributes"]["api_key_id"],
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    );

    // A revoked key is gone: the same answer.
    let key = stack.add_key("admin");
    stack.revoke_key(&key);
    let r = http()
        .get(format!("{}/api/v3/auth_info", stack.url))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    let (status, v) = body(r).await;
    assert_eq!(status, 401);
    assert_error(&v, 16, "pkg/identityserver", "api_key_not_found");

    // A known key ID with the wrong secret, and a token that is no token.
    let wrong = format!("{}.WRONG", ADMIN_KEY.rsplit_once('.').unwrap().0);
    let r = http()
        .get(format!("{}/api/v3/auth_info", stack.url))
        .bearer_auth(wrong)
        .send()
        .await
        .unwrap();
    let (status, v) = body(r).await;
    assert_eq!(status, 401);
    assert_error(&v, 16, "pkg/identityserver", "invalid_authorization");
    let r = http()
        .get(format!("{}/api/v3/auth_info", stack.url))
        .bearer_auth("garbage")
        .send()
        .await
        .unwrap();
    let (status, v) = body(r).await;
    assert_eq!(status, 400);
    assert_error(&v, 3, "pkg/auth", "token");
}

// ------------------------------------------------------------------ routing

#[tokio::test]
async fn paths_are_decoded_and_cleaned_before_routing() {
    let stack = FakeStack::start().await;
    stack.add_user("bob", "bob@example.com", false);
    // Dot segments and double slashes: a 301 to the cleaned path, query kept.
    for (raw_path, clean) in [
        ("/api/v3/users/../auth_info", "/api/v3/auth_info"),
        ("/api/v3/./auth_info?x=1", "/api/v3/auth_info?x=1"),
        ("/api/v3//auth_info", "/api/v3/auth_info"),
        ("/api/v3/users/x%2F..%2F..%2Fauth_info", "/api/v3/auth_info"),
        ("/account/../console/", "/console/"),
    ] {
        let (code, head) = raw(&stack, "GET", raw_path).await;
        assert_eq!(code, 301, "{raw_path}: {head}");
        assert!(
            head.contains(&format!("location: {clean}\r\n")),
            "{raw_path}: {head}"
        );
    }
    // %2F and %2D are decoded: both reach the login token endpoint.
    for path in [
        "/api/v3/users/bob%2Flogin-tokens",
        "/api/v3/users/bob/login%2Dtokens",
    ] {
        let (code, head) = raw(&stack, "POST", path).await;
        assert_eq!(code, 200, "{path}: {head}");
        assert!(head.contains("{\"token\":\""), "{head}");
    }
    assert_eq!(stack.active_tokens("bob"), 2);
    // The raw path is what requests() records.
    assert!(stack
        .requests()
        .iter()
        .any(|s| s.path == "/api/v3/users/bob%2Flogin-tokens"));
    // Unknown API routes: the gateway's own answers.
    let (status, v) = body(
        http()
            .get(format!("{}/api/v3/nothing", stack.url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status.as_u16(), v),
        (404, json!({"code": 5, "message": "Not Found"}))
    );
    let r = http()
        .delete(format!("{}/api/v3/auth_info", stack.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
}

// ------------------------------------------------------------------ users

#[tokio::test]
async fn get_user_answers_ids_timestamps_and_masked_non_zero_fields() {
    let stack = FakeStack::start().await;
    stack.add_user("bob", "bob@example.com", false);
    let (status, v) = body(
        get_user(
            &stack,
            Some(ADMIN_KEY),
            "bob",
            "admin,state,primary_email_address,name",
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(v["ids"], json!({"user_id": "bob"}));
    assert!(v["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(v["updated_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(v["state"], "STATE_APPROVED");
    assert_eq!(v["primary_email_address"], "bob@example.com");
    assert!(v.get("admin").is_none(), "admin false is left out: {v}");
    assert!(v.get("name").is_none(), "an empty name is left out: {v}");
    assert!(
        v.get("primary_email_address_validated_at").is_none(),
        "not masked: {v}"
    );
    // No mask: only ids and timestamps.
    let (_, v) = body(get_user(&stack, Some(ADMIN_KEY), "bob", "").await).await;
    let mut keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["created_at", "ids", "updated_at"]);
    // field_mask.paths repeated works too.
    let url = format!(
        "{}/api/v3/users/bob?field_mask.paths=primary_email_address&field_mask.paths=state",
        stack.url
    );
    let (_, v) = body(http().get(url).bearer_auth(ADMIN_KEY).send().await.unwrap()).await;
    assert_eq!(
        (v["primary_email_address"].as_str(), v["state"].as_str()),
        (Some("bob@example.com"), Some("STATE_APPROVED"))
    );
    // The admin is shown as such.
    let (_, v) = body(get_user(&stack, Some(ADMIN_KEY), "admin", "admin").await).await;
    assert_eq!(v["admin"], true);
    // A forbidden mask path.
    let (status, v) = body(get_user(&stack, Some(ADMIN_KEY), "bob", "password").await).await;
    assert_eq!(status, 400);
    assert_error(&v, 3, "pkg/rpcmiddleware/validator", "field_mask_paths");
}

#[tokio::test]
async fn get_user_rights_and_missing_users() {
    let stack = FakeStack::start().await;
    stack.add_user("bob", "bob@example.com", false);
    stack.add_user("carol", "carol@example.com", false);
    let bob = stack.add_key("bob");
    // Missing and deleted users: 404 user_not_found from the store.
    let (status, v) = body(get_user(&stack, Some(ADMIN_KEY), "nobody", "name").await).await;
    assert_eq!(status, 404);
    assert_error(&v, 5, "pkg/identityserver/store", "user_not_found");
    assert_eq!(v["details"][0]["attributes"], json!({"user_id": "nobody"}));
    assert_eq!(
        v["message"],
        "error:pkg/identityserver/store:user_not_found (user with id `nobody` not found)"
    );
    stack.add_user("gone", "gone@example.com", false);
    stack.delete_user("gone");
    let (status, _) = body(get_user(&stack, Some(ADMIN_KEY), "gone", "").await).await;
    assert_eq!(status, 404);
    assert!(stack.user("gone").is_none());
    // Invalid key: 401. No key: 401 unauthenticated.
    let (status, v) = body(get_user(&stack, Some("NNSXS.X.Y"), "bob", "").await).await;
    assert_eq!(status, 401);
    assert_error(&v, 16, "pkg/identityserver", "api_key_not_found");
    let (status, v) = body(get_user(&stack, None, "bob", "").await).await;
    assert_eq!(status, 401);
    assert_error(&v, 16, "pkg/identityserver", "unauthenticated");
    // Own key: fine. Another user's private fields: 403 no_user_rights.
    let (status, _) =
        body(get_user(&stack, Some(&bob), "bob", "primary_email_address").await).await;
    assert_eq!(status, 200);
    let (status, v) =
        body(get_user(&stack, Some(&bob), "carol", "primary_email_address").await).await;
    assert_eq!(status, 403);
    assert_error(&v, 7, "pkg/auth/rights", "no_user_rights");
    assert_eq!(v["details"][0]["attributes"], json!({"uid": "carol"}));
    // ...but public fields (name, state, admin) are readable by anyone signed in.
    let (status, v) = body(get_user(&stack, Some(&bob), "carol", "state,admin").await).await;
    assert_eq!(status, 200);
    assert_eq!(v["state"], "STATE_APPROVED");
    // Organizations: admin sees them; an unknown ID is organization_not_found.
    stack.add_org("acme");
    let org = |id: &str| {
        http()
            .get(format!("{}/api/v3/organizations/{id}", stack.url))
            .bearer_auth(ADMIN_KEY)
            .send()
    };
    let (status, v) = body(org("acme").await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(v["ids"], json!({"organization_id": "acme"}));
    for id in ["nothere", "bob"] {
        let (status, v) = body(org(id).await.unwrap()).await;
        assert_eq!(status, 404);
        assert_error(&v, 5, "pkg/identityserver/store", "organization_not_found");
    }
}

#[tokio::test]
async fn admin_creates_users_as_sent() {
    let stack = FakeStack::start().await;
    let mut user = new_user("j-doe", "j.doe@example.com");
    user["state"] = json!("STATE_APPROVED");
    user["primary_email_address_validated_at"] = json!("2025-01-01T00:00:00Z");
    user["attributes"] = json!({"idgate-oid": "oid-1"});
    let r = create(&stack, Some(ADMIN_KEY), user).await;
    let (status, v) = body(r).await;
    assert_eq!(status, 200, "create answers 200, not 201: {v}");
    assert_eq!(v["ids"]["user_id"], "j-doe");
    assert_eq!(v["state"], "STATE_APPROVED");
    assert_eq!(
        v["primary_email_address_validated_at"],
        "2025-01-01T00:00:00Z"
    );
    assert_eq!(v["attributes"]["idgate-oid"], "oid-1");
    assert!(v.get("password").is_none() && v.get("admin").is_none());
    let u = stack.user("j-doe").unwrap();
    assert!(!u.self_registered && !u.admin);
    assert_eq!(
        u.email_validated_at.as_deref(),
        Some("2025-01-01T00:00:00Z")
    );
    assert_eq!(u.password, "Secret-pass-42");
    // The validation email goes out anyway.
    let mails = stack.emails();
    assert_eq!(
        (mails[0].to.as_str(), mails[0].kind.as_str()),
        ("j.doe@example.com", "validate")
    );
    // No state: stored as STATE_REQUESTED, which the answer leaves out.
    let (status, v) =
        body(create(&stack, Some(ADMIN_KEY), new_user("k-doe", "k@example.com")).await).await;
    assert_eq!(status, 200);
    assert!(v.get("state").is_none(), "{v}");
    assert_eq!(stack.user("k-doe").unwrap().state, "STATE_REQUESTED");
    // An admin may create admins.
    let mut boss = new_user("boss", "boss@example.com");
    boss["admin"] = json!(true);
    body(create(&stack, Some(ADMIN_KEY), boss).await).await;
    assert!(stack.user("boss").unwrap().admin);
}

#[tokio::test]
async fn create_checks_in_the_stacks_order() {
    let stack = FakeStack::start().await;
    // The generated validator first: a malformed or long ID.
    for id in ["J-Doe", "a", "-ab", "a--b", &"a".repeat(37)] {
        let (status, v) =
            body(create(&stack, Some(ADMIN_KEY), new_user(id, "x@example.com")).await).await;
        assert_eq!(status, 400, "{id}");
        assert_error(&v, 3, "pkg/errors", "validation");
        let d = &v["details"][0];
        assert_eq!(d["attributes"]["field"], "user");
        assert_eq!(d["attributes"]["name"], "CreateUserRequestValidationError");
        assert_eq!(d["cause"]["attributes"]["field"], "ids");
        assert_eq!(d["cause"]["cause"]["attributes"]["field"], "user_id");
        assert_eq!(
            d["cause"]["cause"]["attributes"]["name"],
            "UserIdentifiersValidationError"
        );
    }
    // Then the blocklist, for admins too.
    for id in [
        "admin",
        "api",
        "auth",
        "account",
        "oauth",
        "console",
        "root",
        "user",
        "users",
        "organization",
        "gateway",
        "application",
        "login",
        "logout",
        "support",
        "www",
        "help",
        "settings",
    ] {
        let (status, v) =
            body(create(&stack, Some(ADMIN_KEY), new_user(id, "x@example.com")).await).await;
        assert_eq!(status, 400, "{id}");
        assert_error(&v, 3, "pkg/identityserver/blocklist", "forbidden_id");
        assert_eq!(v["details"][0]["attributes"]["id"], id);
    }
    // Timestamps must end in Z (a body the gateway cannot decode: no details).
    let mut user = new_user("tz-user", "tz@example.com");
    user["primary_email_address_validated_at"] = json!("2025-01-01T00:00:00+00:00");
    let (status, v) = body(create(&stack, Some(ADMIN_KEY), user).await).await;
    assert_eq!((status.as_u16(), v["code"].as_u64()), (400, Some(3)), "{v}");
    assert!(v.get("details").is_none());
    // Password rules, each with its own error.
    for (password, name) in [
        ("Short1", "password_strength_min_length"),
        ("nouppercase1", "password_strength_uppercase"),
        ("NoDigitsHere", "password_strength_digits"),
        ("Xpw-PW-User-9", "password_contains_user_id"),
        ("", "password_strength_min_length"),
    ] {
        let mut user = new_user("pw-user", "pw@example.com");
        user["password"] = json!(password);
        let (status, v) = body(create(&stack, Some(ADMIN_KEY), user).await).await;
        assert_eq!(status, 400, "{password}");
        assert_error(&v, 3, "pkg/identityserver", name);
    }
    let mut user = new_user("pw-user", "pw@example.com");
    user["password"] = json!("Short1");
    let (_, v) = body(create(&stack, Some(ADMIN_KEY), user).await).await;
    assert_eq!(v["details"][0]["attributes"]["n"], 8);
    assert_eq!(
        v["message"],
        "error:pkg/identityserver:password_strength_min_length (need at least `8` characters)"
    );
    assert!(stack.user("pw-user").is_none() && stack.users().len() == 1);
    assert!(stack.emails().is_empty());
}

#[tokio::test]
async fn id_and_email_clashes_are_already_exists() {
    let stack = FakeStack::start().await;
    stack.add_user("bob", "Bob@Example.com", false);
    stack.add_user("gone", "gone@example.com", false);
    stack.delete_user("gone");
    stack.add_org("acme");
    for (id, email) in [
        ("bob", "other@example.com"),
        ("gone", "other@example.com"),
        ("acme", "other@example.com"),
        ("fresh", "bob@EXAMPLE.com"),
    ] {
        let (status, v) = body(create(&stack, Some(ADMIN_KEY), new_user(id, email)).await).await;
        assert_eq!(status, 409, "{id} {email}");
        assert_error(&v, 6, "pkg/util/store", "already_exists");
        assert_eq!(
            v["message"],
            "error:pkg/util/store:already_exists (already exists)"
        );
        assert!(v["details"][0].get("attributes").is_none());
    }
    assert!(stack.user("fresh").is_none());
    assert!(stack.emails().is_empty());
    // A deleted user's email is free again.
    let (status, _) = body(
        create(
            &stack,
            Some(ADMIN_KEY),
            new_user("fresh", "gone@example.com"),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn without_an_admin_key_create_is_a_self_registration() {
    let stack = FakeStack::start().await;
    let revoked = stack.add_key("admin");
    stack.revoke_key(&revoked);
    for (id, key) in [
        ("self-one", None),
        ("self-two", Some(revoked.as_str())),
        ("self-three", Some("NNSXS.A.B")),
    ] {
        let mut user = new_user(id, &format!("{id}@example.com"));
        user["admin"] = json!(true);
        user["state"] = json!("STATE_SUSPENDED");
        user["primary_email_address_validated_at"] = json!("2025-01-01T00:00:00Z");
        let (status, v) = body(create(&stack, key, user).await).await;
        assert_eq!(status, 200, "{id}: {v}");
        let u = stack.user(id).unwrap();
        assert!(u.self_registered && !u.admin, "{id}");
        assert_eq!(u.email_validated_at, None);
        assert_eq!(u.state, "STATE_APPROVED", "no admin approval by default");
        assert_eq!(v["state"], "STATE_APPROVED");
    }
    assert_eq!(
        stack
            .emails()
            .iter()
            .filter(|m| m.kind == "validate")
            .count(),
        3
    );
    stack.set_admin_approval_required(true);
    body(create(&stack, None, new_user("self-four", "four@example.com")).await).await;
    assert_eq!(stack.user("self-four").unwrap().state, "STATE_REQUESTED");
}

#[tokio::test]
async fn update_changes_only_masked_fields() {
    let stack = FakeStack::start().await;
    stack.add_user("bob", "bob@example.com", false);
    stack.add_user("carol", "carol@example.com", false);
    let validated = stack.user("bob").unwrap().email_validated_at;
    let put = |key: Option<String>, id: &str, payload: Value| {
        let mut req = http()
            .put(format!("{}/api/v3/users/{id}", stack.url))
            .json(&payload);
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        req.send()
    };
    let admin = || Some(ADMIN_KEY.to_string());
    // Only the masked name changes; the answer holds ids, timestamps and it.
    let (status, v) = body(
        put(
            admin(),
            "bob",
            json!({"user": {"name": "Bob B", "primary_email_address": "x@example.com"},
        "field_mask": {"paths": ["name"]}}),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["name"], "Bob B");
    assert!(v.get("primary_email_address").is_none());
    let u = stack.user("bob").unwrap();
    assert_eq!(
        (u.name.as_str(), u.email.as_str()),
        ("Bob B", "bob@example.com")
    );
    // No field mask: every field is validated, so a partial body fails.
    let (status, v) = body(
        put(admin(), "bob", json!({"user": {"name": "Bobby"}}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert_error(&v, 3, "pkg/errors", "validation");
    assert_eq!(
        v["details"][0]["attributes"]["name"],
        "UpdateUserRequestValidationError"
    );
    assert_eq!(stack.user("bob").unwrap().name, "Bob B");
    // An admin's email change keeps the old validation time.
    let (status, v) = body(
        put(
            admin(),
            "bob",
            json!({"user": {"primary_email_address": "new@example.com"},
        "field_mask": {"paths": ["primary_email_address"]}}),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        v["primary_email_address_validated_at"].as_str(),
        validated.as_deref()
    );
    assert_eq!(stack.user("bob").unwrap().email_validated_at, validated);
    assert!(
        stack.emails().is_empty(),
        "still validated: no validation email"
    );
    // Clearing it takes its own PUT with only that path.
    let (status, v) = body(
        put(
            admin(),
            "bob",
            json!({"user": {},
        "field_mask": {"paths": ["primary_email_address_validated_at"]}}),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(v.get("primary_email_address_validated_at").is_none());
    assert_eq!(stack.user("bob").unwrap().email_validated_at, None);
    // An email another user has: 500, nothing changes.
    let (status, v) = body(
        put(
            admin(),
            "bob",
            json!({"user": {"primary_email_address": "CAROL@example.com", "name": "Zed"},
        "field_mask": {"paths": ["primary_email_address", "name"]}}),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 500);
    assert_eq!(v["code"], 13);
    let u = stack.user("bob").unwrap();
    assert_eq!(
        (u.name.as_str(), u.email.as_str()),
        ("Bob B", "new@example.com")
    );
    // Keys: invalid 401; none 403; the user's own key may not touch admin fields.
    let mask = json!({"user": {"name": "x"}, "field_mask": {"paths": ["name"]}});
    let (status, v) = body(
        put(Some("NNSXS.A.B".into()), "bob", mask.clone())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    assert_error(&v, 16, "pkg/identityserver", "api_key_not_found");
    let (status, v) = body(put(None, "bob", mask.clone()).await.unwrap()).await;
    assert_eq!(status, 403);
    assert_error(&v, 7, "pkg/auth/rights", "no_user_rights");
    let own = stack.add_key("bob");
    let (status, v) = body(
        put(
            Some(own.clone()),
            "bob",
            json!({"user": {"admin": true},
        "field_mask": {"paths": ["admin"]}}),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 403);
    assert_error(&v, 7, "pkg/identityserver", "update_admin_field");
    // The user's own email change clears validation and sends an email.
    let (status, _) = body(
        put(
            Some(own),
            "bob",
            json!({"user": {"primary_email_address": "mine@example.com"},
        "field_mask": {"paths": ["primary_email_address"]}}),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(stack.emails().last().unwrap().to, "mine@example.com");
    // A missing user as admin: 404.
    let (status, _) = body(put(admin(), "nobody", mask).await.unwrap()).await;
    assert_eq!(status, 404);
}

// ------------------------------------------------------------------ login tokens

#[tokio::test]
async fn login_tokens_for_admins_and_everyone_else() {
    let stack = FakeStack::start().await;
    stack.add_user("bob", "bob@example.com", false);
    stack.add_user("root-2", "root2@example.com", true);
    // Admin caller, normal target, skip_email in the query: token, no email.
    let (status, v) = body(mint(&stack, Some(ADMIN_KEY), "bob", "?skip_email=true").await).await;
    assert_eq!(status, 200);
    let token = v["token"].as_str().unwrap();
    assert_eq!(token.len(), 52);
    assert!(token
        .chars()
        .all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c)));
    assert!(stack.emails().is_empty());
    // skip_email in a form body counts; in JSON it is ignored.
    let url = format!("{}/api/v3/users/bob/login-tokens", stack.url);
    let form = http()
        .post(&url)
        .bearer_auth(ADMIN_KEY)
        .form(&[("skip_email", "true")])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 200);
    assert!(stack.emails().is_empty());
    let r = http()
        .post(&url)
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"skip_email": true}))
        .send()
        .await
        .unwrap();
    let (_, v) = body(r).await;
    assert_eq!(v["token"].as_str().unwrap().len(), 52);
    let mail = stack.emails().pop().unwrap();
    assert_eq!(
        (mail.to.as_str(), mail.kind.as_str()),
        ("bob@example.com", "login_token")
    );
    assert!(mail
        .body
        .contains(&format!("{}/account/token-login?token=", stack.url)));
    // Nobody, or a revoked key: no rights check, blank answer, email sent.
    let revoked = stack.add_key("admin");
    stack.revoke_key(&revoked);
    for key in [None, Some(revoked.as_str())] {
        let before = stack.emails().len();
        let (status, v) = body(mint(&stack, key, "bob", "?skip_email=true").await).await;
        assert_eq!((status.as_u16(), v), (200, json!({})));
        assert_eq!(stack.emails().len(), before + 1);
    }
    assert_eq!(stack.active_tokens("bob"), 5);
    // Five active tokens: 409.
    let (status, v) = body(mint(&stack, Some(ADMIN_KEY), "bob", "?skip_email=true").await).await;
    assert_eq!(status, 409);
    assert_error(&v, 6, "pkg/identityserver", "login_tokens_still_valid");
    // An admin target: created, counted, but blank.
    let (status, v) = body(mint(&stack, Some(ADMIN_KEY), "root-2", "?skip_email=true").await).await;
    assert_eq!((status.as_u16(), v), (200, json!({})));
    assert_eq!(stack.active_tokens("root-2"), 1);
}

#[tokio::test]
async fn login_token_switch_and_unknown_users() {
    let stack = FakeStack::start().await;
    // Unknown user: entity_not_found, no side effects.
    let (status, v) = body(mint(&stack, Some(ADMIN_KEY), "nobody", "").await).await;
    assert_eq!(status, 404);
    assert_error(&v, 5, "pkg/identityserver/store", "entity_not_found");
    assert_eq!(
        v["message"],
        "error:pkg/identityserver/store:entity_not_found (user entity with id `nobody` not found)"
    );
    assert!(stack.emails().is_empty());
    // Disabled: checked before the user is looked up.
    stack.set_login_tokens_enabled(false);
    let (status, v) = body(mint(&stack, Some(ADMIN_KEY), "nobody", "").await).await;
    assert_eq!(status, 400);
    assert_error(&v, 9, "pkg/identityserver", "login_tokens_disabled");
    let disabled = FakeStack::start_with(Options {
        login_tokens_enabled: false,
        ..Options::default()
    })
    .await;
    let (status, _) = body(mint(&disabled, None, "admin", "").await).await;
    assert_eq!(status, 400);
}

// ------------------------------------------------------------------ account app

#[tokio::test]
async fn token_login_reads_json_only_with_the_exact_content_type() {
    let stack = FakeStack::start().await;
    stack.add_user("bob", "bob@example.com", false);
    let token = admin_token(&stack, "bob").await;
    // A charset parameter: not JSON, so the form is empty: missing_token.
    let r = token_login(
        &stack,
        "application/json; charset=utf-8",
        &json!({"token": token}).to_string(),
    )
    .await;
    let (status, v) = body(r).await;
    assert_eq!(status, 400);
    assert_error(&v, 3, "pkg/account", "missing_token");
    // Empty or broken JSON: parse, 409.
    for payload in ["", "{", "[1,"] {
        let (status, v) = body(token_login(&stack, "application/json", payload).await).await;
        assert_eq!(status, 409, "{payload:?}");
        assert_error(&v, 10, "pkg/account", "parse");
    }
    // Unknown token.
    let (status, v) =
        body(token_login(&stack, "application/json", r#"{"token":"NOPE"}"#).await).await;
    assert_eq!(status, 404);
    assert_error(&v, 5, "pkg/identityserver/store", "login_token_not_found");
    // The right one: 204, a session cookie and a CSRF cookie.
    let r = token_login(
        &stack,
        "application/json",
        &json!({"token": token}).to_string(),
    )
    .await;
    assert_eq!(r.status(), 204);
    let cookies = set_cookies(&r);
    let session = cookies.iter().find(|c| c.starts_with("_session=")).unwrap();
    assert!(
        session.ends_with("; Path=/; HttpOnly; SameSite=Lax"),
        "{session}"
    );
    assert!(
        !session.contains("Max-Age") && !session.contains("Expires"),
        "browser-session scoped"
    );
    assert!(
        cookies.iter().any(|c| c.starts_with("_csrf=")),
        "{cookies:?}"
    );
    assert_eq!(stack.live_sessions("bob"), 1);
    assert_eq!(stack.active_tokens("bob"), 0);
    // Used once: 400 already used.
    let (status, v) = body(
        token_login(
            &stack,
            "application/json",
            &json!({"token": token}).to_string(),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    assert_error(
        &v,
        9,
        "pkg/identityserver/store",
        "login_token_already_used",
    );
    // A form body works; behind https the cookie is Secure.
    let token = admin_token(&stack, "bob").await;
    let r = http()
        .post(format!("{}/account/api/auth/token-login", stack.url))
        .header("x-forwarded-proto", "https")
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(set_cookies(&r)
        .iter()
        .any(|c| c.starts_with("_session=") && c.contains("; Secure")));
    assert_eq!(
        stack.live_sessions("bob"),
        2,
        "an older session is not deleted"
    );
    // Expired tokens.
    stack.set_login_token_ttl(Duration::from_millis(1));
    let token = admin_token(&stack, "bob").await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (status, v) = body(
        token_login(
            &stack,
            "application/json",
            &json!({"token": token}).to_string(),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    assert_error(&v, 9, "pkg/identityserver/store", "login_token_expired");
}

#[tokio::test]
async fn password_login_me_and_logout() {
    let stack = FakeStack::start().await;
    stack.add_user("bob", "bob@example.com", false);
    let value = stack.password_session("bob").await;
    let jar = |v: &str| format!("_session={v}");
    let me = |v: String| {
        http()
            .get(format!("{}/account/api/me", stack.url))
            .header("cookie", jar(&v))
            .send()
    };
    let (status, v) = body(me(value.clone()).await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(v["user"]["ids"]["user_id"], "bob");
    assert_eq!(v["user"]["state"], "STATE_APPROVED");
    assert!(
        v["user"].get("primary_email_address").is_none(),
        "public-safe user"
    );
    assert!(v["logged_in_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(v["session_id"].as_str().unwrap().len(), 36);
    // Wrong password.
    let r = http()
        .post(format!("{}/account/api/auth/login", stack.url))
        .json(&json!({"user_id": "bob", "password": "nope"}))
        .send()
        .await
        .unwrap();
    let (status, v) = body(r).await;
    assert_eq!(status, 400);
    assert_error(&v, 3, "pkg/account/session", "no_user_id_password_match");
    // Logout deletes this session and clears the cookie.
    let r = http()
        .post(format!("{}/account/api/auth/logout", stack.url))
        .header("cookie", jar(&value))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(set_cookies(&r)
        .iter()
        .any(|c| c.starts_with("_session=<deleted>;") && c.contains("Expires=Thu, 01 Jan 1970")));
    assert_eq!(stack.live_sessions("bob"), 0);
    // Afterwards, and without a cookie: 401 not_authenticated.
    let (status, v) = body(me(value).await.unwrap()).await;
    assert_eq!(status, 401);
    assert_error(&v, 16, "pkg/account", "not_authenticated");
    assert_eq!(v["details"][0]["cause"]["name"], "user_session_not_found");
    let (status, v) = body(
        http()
            .get(format!("{}/account/api/me", stack.url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(v["details"][0]["cause"]["name"], "auth_cookie");
}

#[tokio::test]
async fn login_pages_and_their_redirect_when_signed_in() {
    let stack = FakeStack::start_with(Options {
        account_mount: "/oauth".into(),
        ..Options::default()
    })
    .await;
    stack.add_user("bob", "bob@example.com", false);
    for page in ["login", "token-login"] {
        let r = http()
            .get(format!("{}/oauth/{page}?n=/console", stack.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let html = r.text().await.unwrap();
        assert!(html.contains("<title>") && html.contains("Login"), "{html}");
        assert!(html.contains("CSRF_TOKEN"));
    }
    let value = stack.password_session("bob").await;
    let r = http()
        .get(format!(
            "{}/oauth/login?n=%2Foauth%2Fauthorize%3Fclient_id%3Dconsole",
            stack.url
        ))
        .header("cookie", format!("_session={value}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(location(&r), "/oauth/authorize?client_id=console");
    // No n: the account app root, always with a '?'.
    let r = http()
        .get(format!("{}/oauth/token-login", stack.url))
        .header("cookie", format!("_session={value}"))
        .send()
        .await
        .unwrap();
    assert_eq!(location(&r), "/oauth?");
    // A bare mount: 308 to the mount with a slash.
    let r = http()
        .get(format!("{}/oauth", stack.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (r.status().as_u16(), location(&r)),
        (308, "/oauth/".to_string())
    );
}

#[tokio::test]
async fn client_logout_needs_an_access_token_id() {
    let stack = FakeStack::start().await;
    stack.add_user("bob", "bob@example.com", false);
    let value = stack.password_session("bob").await;
    let r = http()
        .get(format!("{}/account/logout", stack.url))
        .header("cookie", format!("_session={value}"))
        .send()
        .await
        .unwrap();
    let (status, v) = body(r).await;
    assert_eq!(status, 403);
    assert_error(&v, 7, "pkg/oauth", "missing_param_access_token_id");
    assert_eq!(stack.live_sessions("bob"), 1);
    // With any ID: the browser's session goes, the cookie is cleared.
    let r = http()
        .get(format!(
            "{}/account/logout?access_token_id=whatever",
            stack.url
        ))
        .header("cookie", format!("_session={value}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert!(cookie_value(&r, "_session").is_some_and(|v| v == "<deleted>"));
    assert_eq!(stack.live_sessions("bob"), 0);
}

// ------------------------------------------------------------------ OAuth and console

#[tokio::test]
async fn authorize_bounces_to_login_without_a_session() {
    let stack = FakeStack::start().await;
    let r = http()
        .get(format!("{}/account/authorize?state=s1&response_type=code&client_id=console&redirect_uri=%2Fconsole%2Foauth%2Fcallback", stack.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let n = "/account/authorize?client_id=console&redirect_uri=%2Fconsole%2Foauth%2Fcallback&response_type=code&state=s1";
    let expected = format!("/account/login?n={}", percent(n));
    assert_eq!(location(&r), expected);
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Follows redirects by hand with a cookie-keeping client; returns the final
/// response and every URL visited.
async fn follow(client: &Client, base: &str, start: &str) -> (Response, Vec<String>) {
    let mut url = format!("{base}{start}");
    let mut seen = vec![url.clone()];
    for _ in 0..12 {
        let r = client.get(&url).send().await.unwrap();
        if !r.status().is_redirection() {
            return (r, seen);
        }
        let loc = location(&r);
        url = if loc.starts_with("http") {
            loc
        } else {
            format!("{base}{loc}")
        };
        seen.push(url.clone());
    }
    panic!("too many redirects: {seen:#?}");
}

#[tokio::test]
async fn a_session_signs_the_browser_into_the_console() {
    let stack = FakeStack::start().await;
    stack.add_user("bob", "bob@example.com", false);
    let b = browser();
    // Without a stack session the round trip ends on the login page.
    let (r, seen) = follow(&b, &stack.url, "/console/applications").await;
    assert!(r.url().path() == "/account/login", "{seen:#?}");
    assert!(
        seen[1].contains("/console/login/ttn-stack?next=%2Fapplications"),
        "{seen:#?}"
    );
    // Sign in with a login token (as the bridge does), then try again.
    let token = admin_token(&stack, "bob").await;
    let r = b
        .post(format!("{}/account/api/auth/token-login", stack.url))
        .json(&json!({"token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (r, seen) = follow(&b, &stack.url, "/console/applications").await;
    assert_eq!(r.status(), 200, "{seen:#?}");
    assert_eq!(r.url().path(), "/console/applications");
    assert!(seen
        .iter()
        .any(|u| u.contains("/account/authorize?client_id=console")));
    assert!(seen
        .iter()
        .any(|u| u.contains("/console/oauth/callback?code=MF2XI.")));
    let html = r.text().await.unwrap();
    assert!(html.contains("Signed in as bob"), "{html}");
    let start = html.find("/account/logout?access_token_id=").unwrap();
    let link = &html[start..start + html[start..].find('"').unwrap()];
    assert!(
        link.ends_with("&post_logout_redirect_uri=/console"),
        "{link}"
    );
    let token_id = link["/account/logout?access_token_id=".len()..]
        .split('&')
        .next()
        .unwrap();
    // The console's token endpoint hands the access token to the SPA; it
    // works as a Bearer token on the user's own record.
    let (status, v) = body(
        b.get(format!("{}/console/api/auth/token", stack.url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let access = v["access_token"].as_str().unwrap().to_string();
    assert!(access.starts_with(&format!("MFRWG.{token_id}.")));
    let (status, v) =
        body(get_user(&stack, Some(&access), "bob", "primary_email_address").await).await;
    assert_eq!(
        (status.as_u16(), v["primary_email_address"].as_str()),
        (200, Some("bob@example.com"))
    );
    let r = http()
        .get(format!("{}/api/v3/applications", stack.url))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Signing out: the access token and the session go; the console bounces
    // back to the login page.
    let (r, seen) = follow(&b, &stack.url, link).await;
    assert_eq!(r.url().path(), "/account/login", "{seen:#?}");
    assert_eq!(seen[1], format!("{}/console", stack.url));
    assert_eq!(stack.live_sessions("bob"), 0);
    let (status, v) = body(get_user(&stack, Some(&access), "bob", "").await).await;
    assert_eq!(status, 401);
    assert_error(&v, 16, "pkg/identityserver", "token_not_found");
}

#[tokio::test]
async fn console_callback_checks_the_state_cookie() {
    let stack = FakeStack::start().await;
    let r = http()
        .get(format!(
            "{}/console/oauth/callback?code=x&state=y",
            stack.url
        ))
        .send()
        .await
        .unwrap();
    let (status, v) = body(r).await;
    assert_eq!(status, 403);
    assert_error(&v, 7, "pkg/web/oauthclient", "invalid_state");
    let r = http()
        .get(format!(
            "{}/console/login/ttn-stack?next=/gateways",
            stack.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let state_cookie = set_cookies(&r)
        .into_iter()
        .find(|c| c.starts_with("_console_state="))
        .unwrap();
    assert!(
        state_cookie.contains("; Path=/console; Max-Age=600; HttpOnly"),
        "{state_cookie}"
    );
    let loc = location(&r);
    assert!(loc.starts_with("/account/authorize?client_id=console&redirect_uri=%2Fconsole%2Foauth%2Fcallback&response_type=code&state="), "{loc}");
}

// ------------------------------------------------------------------ the rest

#[tokio::test]
async fn session_cookie_is_an_api_credential() {
    let stack = FakeStack::start().await;
    stack.add_user("bob", "bob@example.com", false);
    let value = stack.password_session("bob").await;
    let (status, v) = body(
        http()
            .get(format!("{}/api/v3/auth_info", stack.url))
            .header("cookie", format!("_session={value}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(v["user_session"]["user_ids"]["user_id"], "bob");
    // Unsafe calls need the CSRF token.
    let put = |csrf: Option<&str>| {
        let mut req = http()
            .put(format!("{}/api/v3/users/bob", stack.url))
            .header(
                "cookie",
                format!("_session={value}; _csrf=CSRFCSRFCSRFCSRFCSRFCSRFCSRFCSRFCSRFCSRFCSR"),
            )
            .json(&json!({"user": {"name": "B"}, "field_mask": {"paths": ["name"]}}));
        if let Some(t) = csrf {
            req = req.header("x-csrf-token", t);
        }
        req.send()
    };
    let (status, v) = body(put(None).await.unwrap()).await;
    assert_eq!(status, 403);
    assert_error(&v, 7, "pkg/webmiddleware", "invalid_csrf_token");
    let (status, _) = body(
        put(Some("CSRFCSRFCSRFCSRFCSRFCSRFCSRFCSRFCSRFCSRFCSR"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn applications_and_health() {
    let stack = FakeStack::start().await;
    let r = http()
        .get(format!("{}/api/v3/applications", stack.url))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-total-count"], "0");
    let (status, v) = body(r).await;
    assert_eq!(
        (status.as_u16(), v),
        (200, json!({})),
        "an empty list is left out"
    );
    let r = http()
        .get(format!("{}/api/v3/applications", stack.url))
        .bearer_auth("NNSXS.A.B")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http()
        .get(format!("{}/healthz", stack.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ok");
}

#[tokio::test]
async fn failing_delay_and_the_request_log() {
    let stack = FakeStack::start().await;
    stack.set_failing(true);
    let (status, v) = body(get_user(&stack, Some(ADMIN_KEY), "admin", "").await).await;
    assert_eq!(status, 503);
    assert_error(&v, 14, "pkg/util/store", "database_unavailable");
    let r = http()
        .get(format!("{}/account/login", stack.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    stack.set_failing(false);
    stack.set_delay(Duration::from_millis(300));
    let slow = Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    assert!(slow
        .get(format!("{}/healthz", stack.url))
        .send()
        .await
        .unwrap_err()
        .is_timeout());
    let started = std::time::Instant::now();
    assert_eq!(
        http()
            .get(format!("{}/healthz", stack.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
    let seen = stack.requests();
    assert_eq!(seen.len(), 4);
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str()),
        ("GET", "/api/v3/users/admin")
    );
    assert_eq!(seen[0].query.as_deref(), Some("field_mask="));
    assert!(seen[0]
        .headers
        .iter()
        .any(|(k, v)| k == "authorization" && v == &format!("Bearer {ADMIN_KEY}")));
    let r = http()
        .post(format!("{}/api/v3/users", stack.url))
        .body("{\"x\":1}")
        .send()
        .await
        .unwrap();
    drop(r);
    assert_eq!(stack.requests().last().unwrap().body, "{\"x\":1}");
}

#[tokio::test]
async fn dropping_the_fake_closes_even_kept_alive_connections() {
    let client = http();
    let stack = FakeStack::start().await;
    let url = format!("{}/healthz", stack.url);
    assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
    drop(stack);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(client.get(&url).send().await.is_err());
}

#[tokio::test]
async fn console_token_endpoint_needs_a_live_access_token() {
    let stack = FakeStack::start().await;
    let r = http()
        .get(format!("{}/console/api/auth/token", stack.url))
        .send()
        .await
        .unwrap();
    let (status, v) = body(r).await;
    assert_eq!(status, 401);
    assert_error(&v, 16, "pkg/web/oauthclient", "no_auth_cookie");
}

#[tokio::test]
async fn the_callback_goes_to_the_console_canonical_url() {
    let stack = FakeStack::start().await;
    stack.add_user("bob", "bob@example.com", false);
    for (root, expected) in [
        ("https://gw.example", "https://gw.example/console/gateways"),
        ("https://gw.example/", "https://gw.example/console/gateways"),
        (
            "https://gw.example/console",
            "https://gw.example/console/gateways",
        ),
    ] {
        stack.set_console_root_url(root);
        let b = browser();
        let token = admin_token(&stack, "bob").await;
        let r = b
            .post(format!("{}/account/api/auth/token-login", stack.url))
            .json(&json!({"token": token}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
        let mut url = format!("{}/console/login/ttn-stack?next=/gateways", stack.url);
        let r = loop {
            let r = b.get(&url).send().await.unwrap();
            let loc = location(&r);
            if !loc.starts_with('/') {
                break r;
            }
            url = format!("{}{loc}", stack.url);
        };
        assert_eq!(location(&r), expected, "{root}");
    }
}
