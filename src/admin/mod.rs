//! The admin listener: health, readiness and metrics for orchestrators and
//! Prometheus, and the provider admin API. It listens on its own address,
//! loopback by default.

pub mod api;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

use crate::metrics::Metrics;

/// What the admin routes look at.
#[derive(Clone)]
pub struct AdminState {
    pub metrics: Metrics,
    /// Set once a shutdown signal arrived: the gateway is draining.
    pub draining: Arc<AtomicBool>,
    /// Where the public listener can be reached from this host.
    pub public_probe: SocketAddr,
    pub api: api::ApiState,
}

pub fn router(state: AdminState) -> Router {
    let api = api::router(state.api.clone());
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
        .merge(api)
}

async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

async fn readyz(State(state): State<AdminState>) -> impl IntoResponse {
    let draining = state.draining.load(Ordering::Relaxed);
    let listener = tokio::time::timeout(
        CHECK_TIMEOUT,
        tokio::net::TcpStream::connect(state.public_probe),
    )
    .await
    .is_ok_and(|r| r.is_ok());
    let database = match tokio::time::timeout(CHECK_TIMEOUT, state.api.store.ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer within 2s".to_string()),
    };
    let ready = !draining && listener && database.is_ok();
    let body = serde_json::json!({
        "ready": ready,
        "draining": draining,
        "listener": listener,
        "database": database.err().unwrap_or_else(|| "ok".into()),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

async fn metrics(State(state): State<AdminState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
