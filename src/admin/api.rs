//! The provider admin API: `/api/v1/providers[/<id>]`, behind a bearer
//! token compared in constant time. Errors are JSON a person can act on.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use constant_time_eq::constant_time_eq;
use sha2::{Digest, Sha256};

use crate::identity::keys::{AssertionKeys, KeyError};
use crate::provider_registry::{Registry, RegistryError};
use crate::providers::{Provider, ProviderChange};
use crate::session::Sessions;
use crate::store::users::UserRecord;
use crate::store::{Store, StoreError};

/// What the API routes need.
#[derive(Clone)]
pub struct ApiState {
    pub store: Store,
    pub registry: Arc<Registry>,
    pub sessions: Arc<Sessions>,
    pub keys: Arc<AssertionKeys>,
    /// SHA-256 of the admin token; `None` disables the API.
    pub token_digest: Option<[u8; 32]>,
}

impl ApiState {
    pub fn new(
        store: Store,
        registry: Arc<Registry>,
        sessions: Arc<Sessions>,
        keys: Arc<AssertionKeys>,
        token: &str,
    ) -> Self {
        let token_digest = (!token.is_empty()).then(|| Sha256::digest(token.as_bytes()).into());
        Self {
            store,
            registry,
            sessions,
            keys,
            token_digest,
        }
    }
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/providers", get(list).post(create))
        .route(
            "/api/v1/providers/{id}",
            get(fetch).put(update).delete(remove),
        )
        .route("/api/v1/users", get(list_users))
        .route("/api/v1/assertion-keys/rotate", post(rotate_key))
        .route(
            "/api/v1/users/{username}",
            get(fetch_user).delete(remove_user),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .with_state(state)
}

/// An error answer: status and a JSON body `{"error", "message"}`.
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.code, "message": self.message });
        (self.status, Json(body)).into_response()
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        let (status, code) = match &e {
            RegistryError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid"),
            RegistryError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            RegistryError::Duplicate(_) => (StatusCode::CONFLICT, "already_exists"),
            RegistryError::ReadOnly(_) => (StatusCode::CONFLICT, "read_only"),
            RegistryError::Store(err) => {
                tracing::error!(error = %err, "admin API: database error");
                (StatusCode::INTERNAL_SERVER_ERROR, "database")
            }
        };
        let message = match e {
            RegistryError::Store(_) => "the gateway's database failed; see its log".to_string(),
            other => other.to_string(),
        };
        ApiError::new(status, code, message)
    }
}

async fn authenticate(
    State(state): State<ApiState>,
    headers: HeaderMap,
    req: Request,
    next: Next,
) -> Response {
    let Some(expected) = state.token_digest else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "disabled",
            "the admin API is disabled: set admin.token (or IDGATE_ADMIN_TOKEN) on the gateway",
        )
        .into_response();
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| Sha256::digest(t.trim().as_bytes()));
    match presented {
        Some(digest) if constant_time_eq(digest.as_slice(), &expected) => next.run(req).await,
        Some(_) => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the admin token was refused",
        )
        .into_response(),
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing Authorization: Bearer <admin token>",
        )
        .into_response(),
    }
}

#[derive(serde::Deserialize)]
struct Secrets {
    #[serde(default)]
    include_secrets: bool,
}

fn shown(p: Provider, include_secrets: bool) -> Provider {
    if include_secrets {
        p
    } else {
        p.without_secret()
    }
}

async fn list(State(s): State<ApiState>, Query(q): Query<Secrets>) -> Json<Vec<Provider>> {
    let all = s.registry.list();
    Json(
        all.iter()
            .map(|p| shown((**p).clone(), q.include_secrets))
            .collect(),
    )
}

async fn fetch(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Query(q): Query<Secrets>,
) -> Result<Json<Provider>, ApiError> {
    let p = s.registry.get(&id).ok_or(RegistryError::NotFound(id))?;
    Ok(Json(shown((*p).clone(), q.include_secrets)))
}

fn parse_change(body: &Bytes) -> Result<ProviderChange, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            format!("invalid provider JSON: {e}"),
        )
    })
}

async fn create(
    State(s): State<ApiState>,
    body: Bytes,
) -> Result<(StatusCode, Json<Provider>), ApiError> {
    let change = parse_change(&body)?;
    let id = change
        .ids
        .as_ref()
        .map(|i| i.provider_id.clone())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid",
                "missing ids.provider_id",
            )
        })?;
    let created = s.registry.create(&id, change).await?;
    s.sessions.provider_changed(&id, false).await;
    tracing::info!(provider = %id, "provider created");
    Ok((StatusCode::CREATED, Json(created)))
}

async fn update(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Provider>, ApiError> {
    let change = parse_change(&body)?;
    if change.ids.as_ref().is_some_and(|i| i.provider_id != id) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            "ids.provider_id cannot be changed; create a new provider instead",
        ));
    }
    let before = s.registry.get(&id);
    let updated = s.registry.update(&id, &change).await?;
    // When the rules changed, its sessions are checked against the new ones
    // at their next request here; other replicas read the provider again
    // and check its sessions as soon as they hear of it (PostgreSQL), else
    // within about 35 s (the providers' refresh and the session cache).
    let rules_changed = before.is_none_or(|b| !b.same_sign_in_rules(&updated));
    s.sessions.provider_changed(&id, rules_changed).await;
    tracing::info!(provider = %id, "provider updated");
    Ok(Json(updated))
}

async fn remove(State(s): State<ApiState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    s.registry.delete(&id).await?;
    s.sessions
        .end_provider(&id)
        .await
        .map_err(RegistryError::from)?;
    tracing::info!(provider = %id, "provider deleted; its sessions ended");
    Ok(StatusCode::NO_CONTENT)
}

fn store_failure(e: StoreError) -> ApiError {
    ApiError::from(RegistryError::Store(e))
}

fn user_not_found(username: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("user {username:?} not found"),
    )
}

async fn list_users(State(s): State<ApiState>) -> Result<Json<Vec<UserRecord>>, ApiError> {
    Ok(Json(s.store.list_users().await.map_err(store_failure)?))
}

async fn fetch_user(
    State(s): State<ApiState>,
    Path(username): Path<String>,
) -> Result<Json<UserRecord>, ApiError> {
    match s
        .store
        .user_by_username(&username)
        .await
        .map_err(store_failure)?
    {
        Some(u) => Ok(Json(u)),
        None => Err(user_not_found(&username)),
    }
}

async fn remove_user(
    State(s): State<ApiState>,
    Path(username): Path<String>,
) -> Result<StatusCode, ApiError> {
    match s
        .store
        .delete_user(&username)
        .await
        .map_err(store_failure)?
    {
        Some(u) => {
            s.sessions.forget_user(&u.provider_id, &u.sub).await;
            tracing::info!(username = %username, "user deleted; their sessions ended");
            Ok(StatusCode::NO_CONTENT)
        }
        None => Err(user_not_found(&username)),
    }
}

async fn rotate_key(State(s): State<ApiState>) -> Result<Json<serde_json::Value>, ApiError> {
    match s.keys.rotate().await {
        Ok(kid) => Ok(Json(serde_json::json!({ "kid": kid }))),
        Err(KeyError::FromFile) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "read_only",
            KeyError::FromFile.to_string(),
        )),
        Err(KeyError::Store(e)) => Err(store_failure(e)),
        Err(e) => {
            tracing::error!(error = %e, "assertion key rotation failed");
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the key rotation failed; see the gateway's log",
            ))
        }
    }
}
