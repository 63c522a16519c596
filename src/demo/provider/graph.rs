//! A small Microsoft Graph for the demo provider: `GET
//! /v1.0/me/transitiveMemberOf`, answering for the access token of a
//! sign-in with the groups that sign-in chose (`groups`), paged as Graph
//! pages (`@odata.nextLink`, `graph_page` objects a page), a directory role
//! among them as Graph lists one, and Graph's error shape when the sign-in
//! asked for a failure (`graph_status`).
//!
//! Demo and test use only.

use std::sync::atomic::Ordering;

use axum::extract::{RawQuery, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::{Params, Provider};

/// What Graph says about the person an access token was issued for.
#[derive(Clone, Debug)]
pub(super) struct GraphUser {
    pub(super) groups: Vec<String>,
    /// Objects a page.
    pub(super) page: usize,
    /// An error status to answer with instead.
    pub(super) status: Option<u16>,
}

/// The object ID of the Global Administrator role: a directory role, which
/// `transitiveMemberOf` lists beside groups.
pub const DIRECTORY_ROLE_ID: &str = "62e90394-69f5-4237-9190-012177145e10";

fn graph_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({ "error": { "code": code, "message": message } });
    (status, Json(body)).into_response()
}

/// `GET /v1.0/me/transitiveMemberOf[?$skiptoken=N]`.
pub(super) async fn transitive_member_of(
    State(provider): State<Provider>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    provider
        .inner
        .counters
        .graph
        .fetch_add(1, Ordering::Relaxed);
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let user = token.and_then(|t| provider.graph_user(t));
    let Some(user) = user else {
        return graph_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token is empty or not valid.",
        );
    };
    if let Some(status) = user.status {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return graph_error(
            status,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        );
    }
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    let from: usize = params
        .get("$skiptoken")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let role = serde_json::json!({
        "@odata.type": "#microsoft.graph.directoryRole",
        "id": DIRECTORY_ROLE_ID,
    });
    let objects: Vec<serde_json::Value> = std::iter::once(role)
        .chain(
            user.groups
                .iter()
                .map(|g| serde_json::json!({ "@odata.type": "#microsoft.graph.group", "id": g })),
        )
        .collect();
    let page = user.page.max(1);
    let to = (from + page).min(objects.len());
    let mut body = serde_json::json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#directoryObjects(id)",
        "value": objects.get(from..to).unwrap_or_default(),
    });
    if to < objects.len() {
        body["@odata.nextLink"] = serde_json::Value::String(format!(
            "{}/v1.0/me/transitiveMemberOf?$select=id&$skiptoken={to}",
            provider.base_url()
        ));
    }
    Json(body).into_response()
}
