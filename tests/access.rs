//! Groups and app roles, end to end with the real binary and the local
//! Entra-shaped provider: `[access]` at sign-in and when a session is read
//! again, a route's `require_groups` / `require_roles`, Entra's groups
//! overage (refused, never admitted on a partial list, the token's own
//! Graph address never called), and groups and roles sent upstream.

mod common;

use common::login::{provider, provider_toml, register, Browser, TENANT};
use common::raw_upstream::RawUpstream;
use common::upstream::{echoed, Upstream};
use common::{run_idgate, Gateway};
use idgate::demo::provider::Provider;

const DOMAINS: &str = r#"allowed_email_domains = ["example.com"]"#;
const ADMINS: &str = "6f1c0d2e-0000-4000-8000-00000000a11";
const STAFF: &str = "6f1c0d2e-0000-4000-8000-000000005af";
const ADMIN_TOKEN: &str = "access-admin-token-0123456789";

/// `[oidc]` naming the demo provider's small Graph, then `toml`.
fn with_graph(idp: &Provider, toml: &str) -> String {
    format!(
        "[oidc]\ngraph_url = \"{}\"\n{toml}\n{}",
        idp.base_url(),
        provider_toml(idp, "entra", TENANT, DOMAINS)
    )
}

async fn gateway(idp: &Provider, toml: &str) -> (Upstream, Gateway) {
    let up = Upstream::start().await;
    let toml = with_graph(idp, toml);
    let gw = Gateway::start(&up.url(), &toml).await;
    register(idp, &gw, "entra");
    (up, gw)
}

/// A gateway with `toml` in front of an upstream that records every
/// request it gets.
async fn recorded(idp: &Provider, toml: &str) -> (RawUpstream, Gateway) {
    let up = RawUpstream::answering_targets().await;
    let gw = Gateway::start(&up.url(), &with_graph(idp, toml)).await;
    register(idp, &gw, "entra");
    (up, gw)
}

/// The claims of an identity assertion, read without checking it (the
/// assertion tests check signatures).
fn assertion_claims(assertion: &str) -> serde_json::Value {
    use base64::Engine as _;
    let payload = assertion.split('.').nth(1).expect("a compact JWT");
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&json).unwrap()
}

/// Signs in with `claims` beside Ada's email; the callback's answer.
async fn sign_in(b: &Browser, gw: &Gateway, claims: &[(&str, &str)]) -> reqwest::Response {
    let mut all = vec![("email", "ada@example.com")];
    all.extend_from_slice(claims);
    b.login(gw, "entra", "/", &all).await
}

#[tokio::test(flavor = "multi_thread")]
async fn access_admits_any_listed_group_and_role_and_refuses_the_rest() {
    let idp = provider().await;
    let toml = format!(
        "[admin]\ntoken = \"{ADMIN_TOKEN}\"\n[access]\nallowed_groups = [\"{ADMINS}\", \"{STAFF}\"]\nallowed_roles = [\"Console.User\"]"
    );
    let (_up, gw) = gateway(&idp, &toml).await;

    let member = Browser::new();
    let ok = sign_in(
        &member,
        &gw,
        &[
            ("groups", &format!("other,{}", STAFF.to_uppercase())),
            ("roles", "Console.User"),
        ],
    )
    .await;
    assert_eq!(ok.status(), 302, "{}", ok.text().await.unwrap());
    assert_eq!(member.me(&gw).await, 200);

    for (claims, reason) in [
        (
            vec![("groups", "other"), ("roles", "Console.User")],
            "not in a group",
        ),
        (
            vec![("groups", STAFF), ("roles", "Console.Viewer")],
            "does not have a role",
        ),
        (
            vec![
                ("groups", STAFF),
                ("roles", "Console.User"),
                ("overage", "hasgroups"),
                ("graph_status", "403"),
            ],
            "could not be looked up",
        ),
        (
            vec![
                ("groups", STAFF),
                ("roles", "Console.User"),
                ("overage", "claim_names"),
                ("graph_status", "503"),
            ],
            "could not be looked up",
        ),
        (
            vec![
                ("groups", "other"),
                ("roles", "Console.User"),
                ("overage", "claim_names"),
            ],
            "not in a group",
        ),
    ] {
        let b = Browser::new();
        let refused = sign_in(&b, &gw, &claims).await;
        assert_eq!(refused.status(), 403, "{claims:?}");
        let page = refused.text().await.unwrap();
        assert!(page.contains(reason), "{claims:?}: {page}");
        assert_eq!(b.me(&gw).await, 401, "no session for {claims:?}");
    }
    assert_eq!(
        idp.counters().claim_source,
        0,
        "the token's Graph address was called"
    );
    let users: serde_json::Value = common::client()
        .get(gw.admin_url("/api/v1/users"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        users.as_array().map(Vec::len),
        Some(1),
        "only the member became a user: {users}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_only_a_role_rule_an_overage_token_signs_in_on_its_roles() {
    let idp = provider().await;
    let (_up, gw) = gateway(&idp, "[access]\nallowed_roles = [\"Console.User\"]").await;
    let b = Browser::new();
    let claims = [("roles", "Console.User"), ("overage", "claim_names")];
    assert_eq!(sign_in(&b, &gw, &claims).await.status(), 302);
    assert_eq!(idp.counters().claim_source, 0);
    assert_eq!(idp.counters().graph, 0, "no group rule: Graph is not asked");
}

/// Entra's overage, resolved at the (small) Microsoft Graph: every page is
/// read, only group objects count, the token's own address is never called.
#[tokio::test(flavor = "multi_thread")]
async fn an_overage_is_resolved_at_graph_page_by_page_groups_only() {
    let idp = provider().await;
    let toml = format!("[access]\nallowed_groups = [\"{STAFF}\"]");
    let (_up, gw) = gateway(&idp, &toml).await;

    // Asked for the Graph permission, since a rule needs groups.
    let authorize = Browser::new().start(&gw, "entra", "/").await;
    let scope: String = authorize
        .query_pairs()
        .find(|(k, _)| k == "scope")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    assert_eq!(
        scope,
        format!(
            "openid profile email offline_access {}/User.Read",
            idp.base_url()
        )
    );

    // Four objects a page: the directory role, then groups; Staff is on
    // the second page.
    let groups = format!("g1,g2,g3,g4,g5,{STAFF}");
    let b = Browser::new();
    let claims = [
        ("groups", groups.as_str()),
        ("overage", "claim_names"),
        ("graph_page", "4"),
    ];
    let r = sign_in(&b, &gw, &claims).await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    assert_eq!(idp.counters().graph, 2, "both pages read");
    let me = b.identity(&gw).await;
    assert_eq!(me["groups"].as_array().unwrap().len(), 6, "{me}");
    assert!(me.get("groups_unknown").is_none(), "{me}");
    assert_eq!(idp.counters().claim_source, 0);

    // A directory role's ID is no group, even when Graph lists it.
    let role_rule = format!(
        "[access]\nallowed_groups = [\"{}\"]",
        idgate::demo::provider::DIRECTORY_ROLE_ID
    );
    let (_up2, gw2) = gateway(&idp, &role_rule).await;
    let b = Browser::new();
    let r = sign_in(&b, &gw2, &[("groups", "g1"), ("overage", "hasgroups")]).await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("not in a group"));
    assert_eq!(idp.counters().claim_source, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_route_asks_for_its_own_role_on_every_spelling_of_its_path() {
    let idp = provider().await;
    let toml = "[[routes]]\npath = \"/console/admin/\"\nrequire_roles = [\"Console.Admin\"]\n\
                [headers]\ngroups = \"X-Idgate-Groups\"\nroles = \"X-Idgate-Roles\"";
    let (up, gw) = recorded(&idp, toml).await;

    let admin = Browser::new();
    let claims = [("roles", "Console.User,Console.Admin"), ("groups", ADMINS)];
    assert_eq!(sign_in(&admin, &gw, &claims).await.status(), 302);
    let r = admin.get(&gw.url("/console/admin/users")).await;
    assert_eq!(r.status(), 200);
    let seen = up.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].headers_named("x-idgate-roles"),
        ["Console.User,Console.Admin"]
    );
    assert_eq!(seen[0].headers_named("x-idgate-groups"), [ADMINS]);

    let user = Browser::new();
    assert_eq!(
        sign_in(&user, &gw, &[("roles", "Console.User")])
            .await
            .status(),
        302
    );
    for path in [
        "/console/admin",
        "/console/admin/",
        "/console/admin/users",
        "//console/admin/users",
        "/console/./admin/users",
        "/console/x/../admin/users",
        "/console/admin%2Fusers",
        "/console/%61dmin/users",
        "/console/admin;x/users",
    ] {
        let r = user
            .http
            .get(gw.url(path))
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path}");
        let json: serde_json::Value = r.json().await.unwrap();
        assert_eq!(json["error"], "no_allowed_role", "{path}");
    }
    let page = user
        .http
        .get(gw.url("/console/admin/users"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 403);
    assert!(page.text().await.unwrap().contains("does not have a role"));
    assert_eq!(
        up.requests().len(),
        1,
        "a refused request reached the upstream"
    );

    // Elsewhere the ordinary user passes; without a session, sign in first.
    assert_eq!(
        user.get(&gw.url("/console/applications")).await.status(),
        200
    );
    let seen = up.requests();
    assert_eq!(seen[1].target, "/console/applications");
    assert_eq!(seen[1].headers_named("x-idgate-roles"), ["Console.User"]);
    let anonymous = Browser::new()
        .http
        .get(gw.url("/console/admin/users"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_assertion_carries_groups_and_roles() {
    let idp = provider().await;
    let (_up, gw) = gateway(&idp, "").await;
    let b = Browser::new();
    let claims = [("groups", STAFF), ("roles", "Console.User")];
    assert_eq!(sign_in(&b, &gw, &claims).await.status(), 302);
    let echo = b.echo(&gw, "/").await;
    let assertion = echoed(&echo, "x-idgate-assertion")[0].to_string();
    let claims = assertion_claims(&assertion);
    assert_eq!(claims["groups"], serde_json::json!([STAFF]));
    assert_eq!(claims["roles"], serde_json::json!(["Console.User"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_narrower_access_rule_ends_the_sessions_it_no_longer_admits() {
    let idp = provider().await;
    let (up, gw) = gateway(&idp, "").await;
    let (staff, other) = (Browser::new(), Browser::new());
    assert_eq!(
        sign_in(&staff, &gw, &[("groups", STAFF)]).await.status(),
        302
    );
    assert_eq!(
        sign_in(&other, &gw, &[("groups", "other")]).await.status(),
        302
    );
    let toml = with_graph(&idp, &format!("[access]\nallowed_groups = [\"{STAFF}\"]"));
    let gw = gw.restart(&up.url(), &toml).await;
    register(&idp, &gw, "entra");
    assert_eq!(staff.me(&gw).await, 200);
    assert_eq!(other.me(&gw).await, 401);
}

#[test]
fn check_config_names_bad_access_and_route_rules() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("idgate.toml");
    for (toml, says) in [
        (
            "[access]\nallowed_groups = [\"\"]",
            "access.allowed_groups: holds an empty entry",
        ),
        (
            "[access]\nallowed_roles = [\"R\", \" \"]",
            "access.allowed_roles: holds an empty entry",
        ),
        ("[access]\nallowed_group = [\"g\"]", "access.allowed_group"),
        (
            "[access]\nallowed_groups = \"g\"",
            "access.allowed_groups: must be a list of strings",
        ),
        (
            "[[routes]]\npath = \"/admin/\"\nallow = \"public\"\nrequire_roles = [\"A\"]",
            "exclude each other",
        ),
        ("[[routes]]\npath = \"/admin/\"", "needs allow"),
        (
            "[oidc]\ngraph_url = \"http://graph.example\"",
            "oidc.graph_url",
        ),
        (
            "[[routes]]\npath = \"/admin/\"\nrequire_groups = [\"\"]",
            "empty group ID",
        ),
    ] {
        std::fs::write(&path, toml).unwrap();
        let p = path.display().to_string();
        let (code, _, err) = run_idgate(&["check-config", "--config", &p], dir.path(), &[]);
        assert_ne!(code, 0, "{toml}");
        assert!(err.contains(says), "{toml}: {err}");
    }
}

/// A person in 250 groups: the groups header and the assertion carry only
/// the groups the access rules name (logged once), so the upstream request
/// stays well inside the head limit.
#[tokio::test(flavor = "multi_thread")]
async fn a_person_in_250_groups_gets_through_with_the_groups_that_matter() {
    let idp = provider().await;
    let toml = format!(
        "[access]\nallowed_groups = [\"{STAFF}\"]\n[headers]\ngroups = \"X-Idgate-Groups\""
    );
    let (up, gw) = recorded(&idp, &toml).await;
    let mut groups: Vec<String> = (0..249)
        .map(|i| format!("0b5e{i:04x}-1c2d-4e3f-8a9b-0c1d2e3f4a5b"))
        .collect();
    groups.insert(120, STAFF.to_string());
    let b = Browser::new();
    let r = sign_in(&b, &gw, &[("groups", &groups.join(","))]).await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    for _ in 0..2 {
        assert_eq!(b.get(&gw.url("/console")).await.status(), 200);
    }
    let seen = up.requests();
    assert_eq!(seen[0].headers_named("x-idgate-groups"), [STAFF]);
    let head = seen[0].raw.len();
    assert!(head < 8 * 1024, "the upstream request head is {head} bytes");
    let assertion = seen[0].headers_named("x-idgate-assertion")[0].to_string();
    let claims = assertion_claims(&assertion);
    assert_eq!(claims["groups"], serde_json::json!([STAFF]));
    let log = gw.logs_with(&["too many groups"]).await;
    assert_eq!(log.matches("too many groups").count(), 1, "{log}");
}
