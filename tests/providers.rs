//! Provider management end to end: `idgate ap` against a running gateway,
//! the admin API, the login page, restarts, and config-declared providers.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::upstream::Upstream;
use common::{client, Gateway};

const TOKEN: &str = "test-admin-token-0123456789";

async fn gateway(extra: &str) -> (Upstream, Gateway) {
    let up = Upstream::start().await;
    let toml = format!("[admin]\ntoken = \"{TOKEN}\"\n{extra}");
    let gw = Gateway::start(&up.url(), &toml).await;
    (up, gw)
}

/// Runs `idgate ap <args>` against `gw`; returns (exit code, stdout, stderr).
fn ap(gw: &Gateway, args: &[&str]) -> (i32, String, String) {
    let admin = gw.admin_url("");
    let mut full = vec!["ap"];
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

const ENTRA: &[&str] = &[
    "--name",
    "My OIDC Provider",
    "--allow-registrations",
    "true",
    "--allowed-email-domains",
    "example.com",
    "--configuration.provider.oidc.client-id",
    "client123",
    "--configuration.provider.oidc.client-secret",
    "secret123",
    "--configuration.provider.oidc.provider-url",
    "https://login.microsoftonline.com/tenant/v2.0",
];

fn create(gw: &Gateway, id: &str, flags: &[&str]) -> (i32, String, String) {
    let mut args = vec!["create", id];
    args.extend_from_slice(flags);
    ap(gw, &args)
}

fn list(gw: &Gateway) -> String {
    let (code, out, err) = ap(gw, &["list", "--include-secrets"]);
    assert_eq!(code, 0, "{err}");
    out
}

fn is_contract_timestamp(s: &str) -> bool {
    // 2023-10-05T05:18:11.685215Z
    s.len() == 27
        && s.ends_with('Z')
        && s.as_bytes()[10] == b'T'
        && s.as_bytes()[19] == b'.'
        && chrono::DateTime::parse_from_rfc3339(s).is_ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn create_prints_the_contract_json_exactly() {
    let (_up, gw) = gateway("").await;
    let (code, out, err) = create(&gw, "microsoft-entra", ENTRA);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let created = v["created_at"].as_str().unwrap();
    assert!(is_contract_timestamp(created), "{created}");
    assert_eq!(v["updated_at"], v["created_at"]);
    let expected = format!(
        r#"{{
  "ids": {{
    "provider_id": "microsoft-entra"
  }},
  "created_at": "{created}",
  "updated_at": "{created}",
  "name": "My OIDC Provider",
  "allow_registrations": true,
  "configuration": {{
    "oidc": {{
      "client_id": "client123",
      "client_secret": "secret123",
      "provider_url": "https://login.microsoftonline.com/tenant/v2.0"
    }}
  }},
  "allowed_email_domains": [
    "example.com"
  ]
}}
"#
    );
    assert_eq!(out, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn get_and_list_hide_the_secret_unless_asked() {
    let (_up, gw) = gateway("").await;
    assert_eq!(create(&gw, "entra", ENTRA).0, 0);
    let (code, out, _) = ap(&gw, &["get", "entra"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        v["configuration"]["oidc"].get("client_secret").is_none(),
        "{out}"
    );
    assert_eq!(v["configuration"]["oidc"]["client_id"], "client123");
    let (_, out, _) = ap(&gw, &["get", "entra", "--include-secrets"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["configuration"]["oidc"]["client_secret"], "secret123");
    let (_, out, _) = ap(&gw, &["list"]);
    let all: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(all.len(), 1);
    assert!(all[0]["configuration"]["oidc"]
        .get("client_secret")
        .is_none());
    assert!(!out.contains("secret123"));
}

#[tokio::test(flavor = "multi_thread")]
async fn every_invalid_input_is_refused_with_exit_2_and_nothing_stored() {
    let (_up, gw) = gateway("").await;
    assert_eq!(create(&gw, "existing", ENTRA).0, 0);
    let before = list(&gw);

    let with = |flag: &str, value: &'static str| -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        let mut skip = false;
        for (i, f) in ENTRA.iter().enumerate() {
            if skip {
                skip = false;
                continue;
            }
            if *f == flag {
                out.push(ENTRA[i]);
                out.push(value);
                skip = true;
            } else {
                out.push(f);
            }
        }
        out
    };
    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        ("ab", ENTRA.to_vec(), "^[a-z0-9](?:[-]?[a-z0-9]){2,}$"),
        ("-abc", ENTRA.to_vec(), "^[a-z0-9](?:[-]?[a-z0-9]){2,}$"),
        (
            "abc-",
            ENTRA.to_vec(),
            "no leading, trailing or doubled dash",
        ),
        (
            "a--bc",
            ENTRA.to_vec(),
            "no leading, trailing or doubled dash",
        ),
        ("Entra", ENTRA.to_vec(), "lower-case"),
        ("entra_id", ENTRA.to_vec(), "lower-case"),
        (
            "a234567890123456789012345678901234567",
            ENTRA.to_vec(),
            "3 to 36 characters",
        ),
        (
            "plain-http",
            with(
                "--configuration.provider.oidc.provider-url",
                "http://idp.example.com/t/v2.0",
            ),
            "must be https://",
        ),
        (
            "with-query",
            with(
                "--configuration.provider.oidc.provider-url",
                "https://idp.example.com/v2.0?x=1",
            ),
            "must not have a query or fragment",
        ),
        (
            "relative-url",
            with(
                "--configuration.provider.oidc.provider-url",
                "idp.example.com/v2.0",
            ),
            "absolute https:// URL",
        ),
        (
            "empty-client",
            with("--configuration.provider.oidc.client-id", ""),
            "missing client ID",
        ),
        (
            "empty-secret",
            with("--configuration.provider.oidc.client-secret", ""),
            "missing client secret",
        ),
        (
            "bad-domain",
            with("--allowed-email-domains", "exa mple.com"),
            "invalid email domain",
        ),
        (
            "bad-domain2",
            with("--allowed-email-domains", "example.com,@evil"),
            "invalid email domain",
        ),
        ("existing", ENTRA.to_vec(), "already exists"),
    ];
    for (id, flags, rule) in cases {
        let (code, out, err) = create(&gw, id, &flags);
        assert_eq!(code, 2, "{id}: expected exit 2, got {code}: {err}");
        assert!(out.is_empty(), "{id}: printed {out}");
        assert_eq!(err.lines().count(), 1, "{id}: one line expected: {err}");
        assert!(err.contains(rule), "{id}: {err:?} does not name {rule:?}");
    }
    let (code, _, err) = create(&gw, "no-secret", &ENTRA[..8]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("missing client secret"), "{err}");
    // Command-line errors clap finds: one line too, naming the problem.
    for (args, names) in [
        (
            vec!["update", "existing", "--allow-registrations", "maybe"],
            "'maybe'",
        ),
        (
            vec!["create", "bad-bool", "--allow-registrations", "maybe"],
            "'maybe'",
        ),
        (vec!["create"], "<PROVIDER_ID>"),
        (
            vec!["update", "existing", "--no-such-flag"],
            "--no-such-flag",
        ),
        (vec!["frobnicate"], "frobnicate"),
        (vec!["create", "x", "--name"], "--name"),
    ] {
        let (code, out, err) = ap(&gw, &args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?}: printed {out}");
        assert_eq!(err.lines().count(), 1, "{args:?}: one line expected: {err}");
        assert!(
            err.starts_with("error: ") && err.contains(names) && err.contains("--help"),
            "{args:?}: {err}"
        );
    }
    // `idgate ap` alone lists what can follow, as a manual does.
    let (code, _, err) = ap(&gw, &[]);
    assert_eq!(code, 2, "{err}");
    for verb in ["create", "get", "list", "update", "delete"] {
        assert!(err.contains(verb), "{verb} missing from:\n{err}");
    }
    assert_eq!(list(&gw), before, "nothing may change");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gateway_enforces_https_itself() {
    let (_up, gw) = gateway("").await;
    let r = client()
        .post(gw.admin_url("/api/v1/providers"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({
            "ids": {"provider_id": "plain"},
            "name": "Plain",
            "configuration": {"oidc": {"client_id": "c", "client_secret": "s", "provider_url": "http://idp.example.com/v2.0"}},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("must be https://"),
        "{body}"
    );

    let (_up2, lax) = gateway("[oidc]\nallow_insecure_http = true").await;
    let flags = [
        "--configuration.provider.oidc.client-id",
        "c",
        "--configuration.provider.oidc.client-secret",
        "s",
        "--configuration.provider.oidc.provider-url",
        "http://idp.internal/t/v2.0",
    ];
    let (code, _, err) = create(&lax, "plain", &flags);
    assert_eq!(code, 0, "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn update_changes_only_the_given_fields_and_delete_removes() {
    let (_up, gw) = gateway("").await;
    let (_, created, _) = create(&gw, "entra", ENTRA);
    let created: serde_json::Value = serde_json::from_str(&created).unwrap();
    let (code, out, err) = ap(
        &gw,
        &[
            "update",
            "entra",
            "--name",
            "Contoso",
            "--allowed-email-domains",
            "a.example,*.b.example",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let updated: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(updated["name"], "Contoso");
    assert_eq!(
        updated["allowed_email_domains"],
        serde_json::json!(["a.example", "*.b.example"])
    );
    assert_eq!(updated["allow_registrations"], true);
    assert_eq!(updated["configuration"]["oidc"]["client_id"], "client123");
    assert_eq!(updated["created_at"], created["created_at"]);
    assert_ne!(updated["updated_at"], created["updated_at"]);

    let (code, _, err) = ap(&gw, &["update", "entra"]);
    assert_eq!(code, 2);
    assert!(err.contains("nothing to update"), "{err}");
    let (code, _, err) = ap(&gw, &["update", "missing", "--name", "x"]);
    assert_eq!(code, 1);
    assert!(err.contains("not found"), "{err}");

    let (code, out, err) = ap(&gw, &["delete", "entra"]);
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
    let (code, _, err) = ap(&gw, &["get", "entra"]);
    assert_eq!(code, 1);
    assert_eq!(err.trim(), "error: provider \"entra\" not found");
    let (code, _, _) = ap(&gw, &["delete", "entra"]);
    assert_eq!(code, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_login_page_follows_changes_without_a_restart() {
    let (_up, gw) = gateway("").await;
    let page = || async {
        client()
            .get(gw.url("/oauth/login?rd=%2Fconsole%3Fpage%3D2"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    assert!(page()
        .await
        .contains("No sign-in provider is configured yet"));
    let mut flags = ENTRA.to_vec();
    flags[1] = "Contoso <Staff> & Friends";
    assert_eq!(create(&gw, "entra", &flags).0, 0);
    let html = page().await;
    assert!(
        html.contains("Login to Contoso &#60;Staff&#62; &#38; Friends"),
        "{html}"
    );
    assert!(
        html.contains("href=\"/oauth/login/entra?rd=%2Fconsole%3Fpage%3D2\""),
        "{html}"
    );
    ap(&gw, &["update", "entra", "--name", "Renamed"]);
    assert!(page().await.contains("Login to Renamed"));
    ap(&gw, &["delete", "entra"]);
    assert!(!page().await.contains("Login to"));
}

#[tokio::test(flavor = "multi_thread")]
async fn providers_survive_a_restart() {
    let (up, gw) = gateway("").await;
    assert_eq!(create(&gw, "entra", ENTRA).0, 0);
    let before = list(&gw);
    let toml = format!("[admin]\ntoken = \"{TOKEN}\"");
    let gw = gw.restart(&up.url(), &toml).await;
    assert_eq!(list(&gw), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_creates_of_one_id_have_exactly_one_winner() {
    let (_up, gw) = gateway("").await;
    let admin = gw.admin_url("");
    let children: Vec<_> = (0..8)
        .map(|i| {
            let mut args = vec!["ap".to_string(), "create".into(), "race".into()];
            args.extend(ENTRA.iter().map(|s| s.to_string()));
            args[4] = format!("Racer {i}");
            Command::new(common::idgate_bin())
                .args(&args)
                .env("IDGATE_ADMIN_URL", &admin)
                .env("IDGATE_ADMIN_TOKEN", TOKEN)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outcomes: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let winners = outcomes
        .iter()
        .filter(|o| o.status.code() == Some(0))
        .count();
    let losers: Vec<_> = outcomes
        .iter()
        .filter(|o| o.status.code() == Some(2))
        .collect();
    assert_eq!(winners, 1);
    assert_eq!(losers.len(), 7);
    for l in losers {
        assert!(String::from_utf8_lossy(&l.stderr).contains("already exists"));
    }
    let all: Vec<serde_json::Value> = serde_json::from_str(&list(&gw)).unwrap();
    assert_eq!(all.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_secret_can_come_from_a_file_or_stdin() {
    let (_up, gw) = gateway("").await;
    let file = gw.dir.path().join("secret.txt");
    std::fs::write(&file, "from-a-file\n").unwrap();
    let flags = [
        "--configuration.provider.oidc.client-id",
        "c",
        "--configuration.provider.oidc.client-secret-file",
        file.to_str().unwrap(),
        "--configuration.provider.oidc.provider-url",
        "https://login.microsoftonline.com/t/v2.0",
    ];
    let (code, out, err) = create(&gw, "from-file", &flags);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"client_secret\": \"from-a-file\""), "{out}");

    let mut child = Command::new(common::idgate_bin())
        .args([
            "ap",
            "create",
            "from-stdin",
            "--configuration.provider.oidc.client-id",
            "c",
        ])
        .args(["--configuration.provider.oidc.client-secret-file", "-"])
        .args([
            "--configuration.provider.oidc.provider-url",
            "https://login.microsoftonline.com/t/v2.0",
        ])
        .env("IDGATE_ADMIN_URL", gw.admin_url(""))
        .env("IDGATE_ADMIN_TOKEN", TOKEN)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"from-stdin\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"client_secret\": \"from-stdin\""));
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_token_unreachable_admin_and_disabled_api_exit_1() {
    let (_up, gw) = gateway("").await;
    let admin = gw.admin_url("");
    let (code, _, err) = common::run_idgate(
        &["ap", "list"],
        gw.dir.path(),
        &[
            ("IDGATE_ADMIN_URL", admin.as_str()),
            ("IDGATE_ADMIN_TOKEN", "wrong"),
        ],
    );
    assert_eq!(code, 1);
    assert!(err.contains("the admin token was refused"), "{err}");
    let r = client()
        .get(gw.admin_url("/api/v1/providers"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized");

    let dead = format!("http://127.0.0.1:{}", common::free_port());
    let (code, _, err) = common::run_idgate(
        &["ap", "list"],
        gw.dir.path(),
        &[
            ("IDGATE_ADMIN_URL", dead.as_str()),
            ("IDGATE_ADMIN_TOKEN", TOKEN),
        ],
    );
    assert_eq!(code, 1);
    assert!(err.contains("cannot reach the admin API"), "{err}");

    let up = Upstream::start().await;
    let no_token = Gateway::start(&up.url(), "").await;
    no_token.logs_with(&["admin API is disabled"]).await;
    let admin = no_token.admin_url("");
    let (code, _, err) = common::run_idgate(
        &["ap", "list"],
        no_token.dir.path(),
        &[
            ("IDGATE_ADMIN_URL", admin.as_str()),
            ("IDGATE_ADMIN_TOKEN", "anything"),
        ],
    );
    assert_eq!(code, 1);
    assert!(err.contains("the admin API is disabled"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn config_declared_providers_are_read_only() {
    let declared = r#"
[[providers]]
ids = { provider_id = "declared" }
name = "Declared Entra"
allow_registrations = true
allowed_email_domains = ["example.com"]
[providers.configuration.oidc]
client_id = "cfg-client"
client_secret = "cfg-secret"
provider_url = "https://login.microsoftonline.com/t/v2.0"
"#;
    let (_up, gw) = gateway(declared).await;
    let (code, out, _) = ap(&gw, &["get", "declared"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["name"], "Declared Entra");
    assert_eq!(v["source"], "config");
    for args in [
        vec!["update", "declared", "--name", "x"],
        vec!["delete", "declared"],
    ] {
        let (code, _, err) = ap(&gw, &args);
        assert_eq!(code, 1, "{args:?}");
        assert!(
            err.contains("declared in the config file and is read-only"),
            "{err}"
        );
    }
    let (code, _, err) = create(&gw, "declared", ENTRA);
    assert_ne!(code, 0);
    assert!(err.contains("read-only"), "{err}");
    let page = client()
        .get(gw.url("/oauth/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Login to Declared Entra"));
}

#[test]
fn a_bad_declared_provider_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("idgate.toml");
    std::fs::write(
        &path,
        r#"
[[providers]]
ids = { provider_id = "Bad_ID" }
[providers.configuration.oidc]
client_id = "c"
client_secret = "s"
provider_url = "https://x.example/v2.0"

[[providers]]
ids = { provider_id = "typo" }
nmae = "x"
"#,
    )
    .unwrap();
    let (code, _, err) = common::run_idgate(
        &["check-config", "--config", path.to_str().unwrap()],
        dir.path(),
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("providers[1]: unknown field `nmae`"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn providers_work_on_postgres_too() {
    let url = common::pg::fresh_database().await;
    let (_up, gw) = gateway(&format!("[database]\nurl = \"{url}\"")).await;
    assert_eq!(create(&gw, "entra", ENTRA).0, 0);
    let (code, _, _) = create(&gw, "entra", ENTRA);
    assert_eq!(code, 2);
    let all: Vec<serde_json::Value> = serde_json::from_str(&list(&gw)).unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(
        all[0]["configuration"]["oidc"]["client_secret"],
        "secret123"
    );
}
