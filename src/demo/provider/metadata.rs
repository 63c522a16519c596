//! The demo provider's metadata endpoints: OpenID discovery and the JWKS,
//! shaped like Entra ID's v2.0 documents, including the `{tenantid}` issuer
//! template of the `common` and `organizations` tenants.
//!
//! Demo and test use only.

use std::sync::atomic::Ordering;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::{is_valid_tenant, json_error, read, Provider};

/// The OpenID discovery document.
#[derive(Serialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_session_endpoint: Option<String>,
    frontchannel_logout_supported: bool,
    response_modes_supported: [&'static str; 3],
    response_types_supported: [&'static str; 1],
    subject_types_supported: [&'static str; 1],
    id_token_signing_alg_values_supported: [&'static str; 1],
    token_endpoint_auth_methods_supported: [&'static str; 2],
    scopes_supported: [&'static str; 3],
    claims_supported: [&'static str; 19],
    request_uri_parameter_supported: bool,
}

/// `GET /<tenant>/v2.0/.well-known/openid-configuration`.
pub(super) async fn discovery(
    State(provider): State<Provider>,
    Path(tenant): Path<String>,
) -> Response {
    provider
        .inner
        .counters
        .discovery
        .fetch_add(1, Ordering::Relaxed);
    if !is_valid_tenant(&tenant) {
        return json_error(StatusCode::BAD_REQUEST, "invalid_tenant", "bad tenant");
    }
    Json(Discovery {
        issuer: provider.issuer_for(&tenant),
        authorization_endpoint: provider.endpoint(&tenant, "oauth2/v2.0/authorize"),
        token_endpoint: provider.endpoint(&tenant, "oauth2/v2.0/token"),
        jwks_uri: provider.endpoint(&tenant, "discovery/v2.0/keys"),
        end_session_endpoint: provider
            .inner
            .sign_out
            .load(Ordering::Relaxed)
            .then(|| provider.endpoint(&tenant, "oauth2/v2.0/logout")),
        frontchannel_logout_supported: true,
        response_modes_supported: ["query", "fragment", "form_post"],
        response_types_supported: ["code"],
        subject_types_supported: ["pairwise"],
        id_token_signing_alg_values_supported: ["RS256"],
        token_endpoint_auth_methods_supported: ["client_secret_post", "client_secret_basic"],
        scopes_supported: ["openid", "profile", "email"],
        claims_supported: [
            "sub",
            "iss",
            "aud",
            "azp",
            "exp",
            "iat",
            "nbf",
            "nonce",
            "name",
            "given_name",
            "family_name",
            "preferred_username",
            "email",
            "oid",
            "tid",
            "ver",
            "xms_edov",
            "sid",
            "login_hint",
        ],
        request_uri_parameter_supported: false,
    })
    .into_response()
}

/// `GET /<tenant>/discovery/v2.0/keys`.
pub(super) async fn jwks(State(provider): State<Provider>, Path(tenant): Path<String>) -> Response {
    provider.inner.counters.keys.fetch_add(1, Ordering::Relaxed);
    if !is_valid_tenant(&tenant) {
        return json_error(StatusCode::BAD_REQUEST, "invalid_tenant", "bad tenant");
    }
    let issuer = provider.issuer_for(&tenant);
    Json(read(&provider.inner.keys).jwks(&issuer)).into_response()
}
