//! The demo provider's authorization endpoint: request validation, the HTML
//! sign-in form for made-up users, the non-interactive `auto=1` mode for
//! tests, code issuance, and the `query`/`fragment`/`form_post` replies.
//!
//! Demo and test use only: anyone may sign in as anyone, with any claims.
//! Besides the profile claims, a request may name `sid` (else one is made
//! per sign-in), `groups` and `roles` (comma-separated), and `overage`
//! (`claim_names` or `hasgroups`: the groups are left out as Entra does
//! for a person in too many); `graph_page` and `graph_status` shape what the
//! small Graph answers for the sign-in's access token.

use std::time::Instant;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use url::Url;

use super::codes::{Grant, CODE_TTL};
use super::id_token::{Fault, Overage, UserClaims};
use super::reply::{Mode, Reply};
use super::{html, is_multi_tenant, is_valid_tenant, random_token, Params, Provider, DEFAULT_TID};

const DEFAULT_NAME: &str = "Ada Lovelace";
const DEFAULT_GIVEN_NAME: &str = "Ada";
const DEFAULT_FAMILY_NAME: &str = "Lovelace";
const DEFAULT_EMAIL: &str = "ada@example.com";

/// Parameters the sign-in form shows as fields instead of carrying hidden.
const USER_FIELDS: [&str; 9] = [
    "name",
    "given_name",
    "family_name",
    "email",
    "preferred_username",
    "xms_edov",
    "groups",
    "roles",
    "overage",
];

/// The sign-in form for made-up users.
#[derive(Template)]
#[template(path = "demo_signin.html")]
struct SignInPage<'a> {
    action: String,
    tenant: &'a str,
    client_id: &'a str,
    name: &'a str,
    given_name: &'a str,
    family_name: &'a str,
    email: &'a str,
    preferred_username: &'a str,
    xms_edov: bool,
    groups: &'a str,
    roles: &'a str,
    overage: &'a str,
    /// Shown only for `common` and `organizations`, where the user picks it.
    tid: Option<&'a str>,
    /// The original authorization request, carried through the form.
    hidden: Vec<(&'a str, &'a str)>,
}

/// A request that cannot go back to the client: no redirect is made.
#[derive(Template)]
#[template(
    ext = "html",
    source = r#"{% extends "base.html" %}
{% block title %}Sign-in request refused{% endblock %}
{% block content %}
<h1>Sign-in request refused</h1>
<p>{{ message }}</p>
<p class="code">Demo identity provider · HTTP 400</p>
{% endblock %}"#
)]
struct ErrorPage<'a> {
    message: &'a str,
}

/// `GET /<tenant>/oauth2/v2.0/authorize`.
pub(super) async fn get(
    State(provider): State<Provider>,
    Path(tenant): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    authorize(&provider, &tenant, &params)
}

/// `POST /<tenant>/oauth2/v2.0/authorize`, also the sign-in form's target.
pub(super) async fn post(
    State(provider): State<Provider>,
    Path(tenant): Path<String>,
    body: Bytes,
) -> Response {
    authorize(&provider, &tenant, &Params::parse(&body))
}

fn authorize(provider: &Provider, tenant: &str, params: &Params) -> Response {
    provider
        .inner
        .counters
        .authorize
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if !is_valid_tenant(tenant) {
        return error_page("The tenant in the address is not a valid tenant name.");
    }
    if let Some(name) = params.repeated() {
        return error_page(&format!("The parameter {name} is given more than once."));
    }
    let Some(client_id) = params.get("client_id") else {
        return error_page("The request names no client_id.");
    };
    let Some(client) = provider.client(client_id) else {
        return error_page("The client_id is not a registered application.");
    };
    let Some(registered_uri) = params.get("redirect_uri") else {
        return error_page("The request names no redirect_uri.");
    };
    if !client.redirect_uris.iter().any(|uri| uri == registered_uri) {
        return error_page("The redirect_uri is not registered for this application.");
    }
    let Ok(redirect_uri) = Url::parse(registered_uri) else {
        return error_page("The registered redirect_uri is not an absolute URL.");
    };

    // From here on, errors go back to the client.
    let state = params.get("state");
    let Some(mode) = Mode::parse(params.get("response_mode")) else {
        return Reply::new(redirect_uri, state, Mode::Query)
            .error("invalid_request", "unsupported response_mode");
    };
    let reply = Reply::new(redirect_uri, state, mode);
    let request = match validate(params) {
        Ok(request) => request,
        Err((error, description)) => return reply.error(error, description),
    };

    let auto = params.get("auto") == Some("1");
    let signin = params.get("signin") == Some("1");
    if !auto && !signin {
        return sign_in_page(provider, tenant, client_id, params);
    }
    let user = match user_claims(params, tenant, client_id, signin) {
        Ok(user) => user,
        Err(description) => return reply.error("invalid_request", description),
    };
    let now = Instant::now();
    let grant = Grant {
        tenant: tenant.to_owned(),
        client_id: client_id.to_owned(),
        // As the client sent it: the token request must repeat it verbatim.
        redirect_uri: registered_uri.to_owned(),
        nonce: request.nonce.to_owned(),
        code_challenge: request.code_challenge.to_owned(),
        user,
        fault: request.fault,
        offline: request.offline,
        expires_at: now + CODE_TTL,
    };
    let code = random_token(32);
    if provider.codes().insert(code.clone(), grant, now).is_err() {
        return reply.error(
            "temporarily_unavailable",
            "too many outstanding authorization codes",
        );
    }
    reply.send(&[("code", &code)])
}

/// What the authorization request asks for, once it is known to be valid.
struct AuthRequest<'a> {
    nonce: &'a str,
    code_challenge: &'a str,
    fault: Option<Fault>,
    /// `offline_access` was asked for: the code brings a refresh token.
    offline: bool,
}

/// Checks the parameters whose errors go back to the client.
fn validate(params: &Params) -> Result<AuthRequest<'_>, (&'static str, &'static str)> {
    match params.get("response_type") {
        Some("code") => {}
        None => return Err(("invalid_request", "response_type is required")),
        Some(_) => {
            return Err((
                "unsupported_response_type",
                "only response_type=code is supported",
            ))
        }
    }
    let scope = params.get("scope").unwrap_or_default();
    if !scope.split(' ').any(|s| s == "openid") {
        return Err(("invalid_scope", "scope must include openid"));
    }
    let offline = scope.split(' ').any(|s| s == "offline_access");
    if params.get("state").unwrap_or_default().is_empty() {
        return Err(("invalid_request", "state is required"));
    }
    let nonce = params.get("nonce").unwrap_or_default();
    if nonce.is_empty() {
        return Err(("invalid_request", "nonce is required"));
    }
    if params.get("code_challenge_method") != Some("S256") {
        return Err(("invalid_request", "code_challenge_method=S256 is required"));
    }
    let code_challenge = params.get("code_challenge").unwrap_or_default();
    let is_s256_output = code_challenge.len() == 43
        && code_challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !is_s256_output {
        return Err((
            "invalid_request",
            "code_challenge must be BASE64URL(SHA256(code_verifier))",
        ));
    }
    let fault = match params.get("fault") {
        None => None,
        Some(name) => Some(Fault::parse(name).ok_or(("invalid_request", "unknown fault"))?),
    };
    Ok(AuthRequest {
        nonce,
        code_challenge,
        fault,
        offline,
    })
}

/// The made-up user from the request's claim parameters. `from_form` marks a
/// sign-in form submission, where an unticked `xms_edov` box means false.
fn user_claims(
    params: &Params,
    tenant: &str,
    client_id: &str,
    from_form: bool,
) -> Result<UserClaims, &'static str> {
    let tid = if is_multi_tenant(tenant) {
        match params.get("tid") {
            None | Some("") => DEFAULT_TID,
            Some(tid) if is_valid_tenant(tid) && !is_multi_tenant(tid) => tid,
            Some(_) => return Err("tid must be a tenant id"),
        }
    } else {
        match params.get("tid") {
            None => tenant,
            Some(tid) if tid == tenant => tenant,
            Some(_) => return Err("a named tenant's tid is its own path segment"),
        }
    };
    let xms_edov = match params.get("xms_edov") {
        None => from_form.then_some(false),
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => return Err("xms_edov must be true or false"),
    };
    let email = params.get("email").filter(|email| !email.is_empty());
    let preferred_username = params.get("preferred_username").unwrap_or(DEFAULT_EMAIL);
    let identity = email.unwrap_or(preferred_username);
    let sub = match params.get("sub") {
        Some(sub) if !sub.is_empty() => sub.to_owned(),
        _ => URL_SAFE_NO_PAD.encode(digest(&["sub", tid, client_id, identity])),
    };
    let oid = match params.get("oid") {
        Some(oid) if !oid.is_empty() => oid.to_owned(),
        _ => guid(&digest(&["oid", tid, identity])),
    };
    // A provider session per sign-in, as Entra's `sid`, unless the request
    // names one; the `login_hint` is opaque, stable per account.
    let sid = match params.get("sid") {
        Some(sid) if !sid.is_empty() => sid.to_owned(),
        _ => guid(&digest(&["sid", &random_token(16)])),
    };
    let login_hint = URL_SAFE_NO_PAD.encode(digest(&["login_hint", tid, &oid]));
    let list = |name: &str| -> Vec<String> {
        params
            .get(name)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let overage = match params.get("overage") {
        None | Some("") => None,
        Some("claim_names") => Some(Overage::ClaimNames),
        Some("hasgroups") => Some(Overage::HasGroups),
        Some(_) => return Err("overage must be claim_names or hasgroups"),
    };
    let graph_page = match params.get("graph_page") {
        None | Some("") => 100,
        Some(n) => n.parse().map_err(|_| "graph_page must be a number")?,
    };
    let graph_status = match params.get("graph_status") {
        None | Some("") => None,
        Some(n) => Some(n.parse().map_err(|_| "graph_status must be a number")?),
    };
    Ok(UserClaims {
        graph_page,
        graph_status,
        groups: list("groups"),
        roles: list("roles"),
        overage,
        sub,
        sid,
        login_hint,
        oid,
        tid: tid.to_owned(),
        name: params.get("name").unwrap_or(DEFAULT_NAME).to_owned(),
        given_name: params
            .get("given_name")
            .unwrap_or(DEFAULT_GIVEN_NAME)
            .to_owned(),
        family_name: params
            .get("family_name")
            .unwrap_or(DEFAULT_FAMILY_NAME)
            .to_owned(),
        preferred_username: preferred_username.to_owned(),
        email: email.map(str::to_owned),
        xms_edov,
    })
}

/// SHA-256 over newline-separated parts.
fn digest(parts: &[&str]) -> [u8; 32] {
    Sha256::digest(parts.join("\n").as_bytes()).into()
}

/// The first 16 bytes of `bytes` in GUID form, like Entra's object ids.
fn guid(bytes: &[u8; 32]) -> String {
    let hex: String = bytes[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn sign_in_page(provider: &Provider, tenant: &str, client_id: &str, params: &Params) -> Response {
    let multi_tenant = is_multi_tenant(tenant);
    let hidden = params
        .iter()
        .filter(|(name, _)| {
            let shown = USER_FIELDS.contains(name) || (multi_tenant && *name == "tid");
            !shown && !matches!(*name, "auto" | "signin")
        })
        .collect();
    let page = SignInPage {
        action: provider.endpoint(tenant, "oauth2/v2.0/authorize"),
        tenant,
        client_id,
        name: params.get("name").unwrap_or(DEFAULT_NAME),
        given_name: params.get("given_name").unwrap_or(DEFAULT_GIVEN_NAME),
        family_name: params.get("family_name").unwrap_or(DEFAULT_FAMILY_NAME),
        email: params.get("email").unwrap_or(DEFAULT_EMAIL),
        preferred_username: params.get("preferred_username").unwrap_or(DEFAULT_EMAIL),
        xms_edov: params.get("xms_edov") != Some("false"),
        groups: params.get("groups").unwrap_or_default(),
        roles: params.get("roles").unwrap_or_default(),
        overage: params.get("overage").unwrap_or_default(),
        tid: multi_tenant.then(|| params.get("tid").unwrap_or(DEFAULT_TID)),
        hidden,
    };
    html(StatusCode::OK, page.render())
}

fn error_page(message: &str) -> Response {
    html(StatusCode::BAD_REQUEST, ErrorPage { message }.render())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_has_the_entra_object_id_shape() {
        let id = guid(&digest(&["oid", "t", "ada@example.com"]));
        let lengths: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(lengths, [8, 4, 4, 4, 12]);
    }

    #[test]
    fn sub_is_pairwise_and_stable() {
        let params = Params::parse(b"email=ada%40example.com");
        let a = user_claims(&params, "contoso", "app-a", false).unwrap();
        let again = user_claims(&params, "contoso", "app-a", false).unwrap();
        let b = user_claims(&params, "contoso", "app-b", false).unwrap();
        assert_eq!(a.sub, again.sub);
        assert_ne!(a.sub, b.sub);
        assert_eq!(a.oid, b.oid);
        assert_eq!(a.xms_edov, None);
    }

    #[test]
    fn a_named_tenant_is_its_own_tid() {
        let params = Params::parse(b"tid=fabrikam");
        assert!(user_claims(&params, "contoso", "app", false).is_err());
        let user = user_claims(&Params::parse(b""), "contoso", "app", true).unwrap();
        assert_eq!(user.tid, "contoso");
        assert_eq!(user.xms_edov, Some(false));
        assert_eq!(user.email, None);
    }
}
