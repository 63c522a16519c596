//! The upstream the tests put behind the gateway: it reports what it
//! received, streams large bodies both ways, holds an SSE stream open until
//! the test releases it, echoes WebSocket messages, and can be slow.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

/// A running upstream on loopback.
pub struct Upstream {
    pub addr: SocketAddr,
    release: Arc<Notify>,
}

#[derive(Clone)]
struct AppState {
    release: Arc<Notify>,
}

impl Upstream {
    pub async fn start() -> Upstream {
        let (router, release) = router();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Upstream { addr, release }
    }

    /// The same upstream over TLS, with a self-signed certificate for
    /// `localhost`.
    pub async fn start_tls() -> Upstream {
        use hyper_util::rt::{TokioExecutor, TokioIo};
        use hyper_util::service::TowerToHyperService;

        let (router, release) = router();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let key =
            rustls::pki_types::PrivateKeyDer::try_from(cert.key_pair.serialize_der()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let acceptor = acceptor.clone();
                let service = TowerToHyperService::new(router.clone());
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                            .serve_connection_with_upgrades(TokioIo::new(tls), service)
                            .await;
                    }
                });
            }
        });
        Upstream { addr, release }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Lets a held SSE stream send its second event.
    pub fn release(&self) {
        self.release.notify_one();
    }
}

fn router() -> (Router, Arc<Notify>) {
    let release = Arc::new(Notify::new());
    let router = Router::new()
        .route("/upload", post(upload))
        .route("/download", get(download))
        .route("/sse", get(sse))
        .route("/slow", get(slow))
        .route("/ws", get(ws))
        .route("/status/{code}", any(status))
        .fallback(any(echo))
        .with_state(AppState {
            release: release.clone(),
        });
    (router, release)
}

/// What the upstream received: method, path and query, every header.
async fn echo(req: Request) -> Json<serde_json::Value> {
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    Json(serde_json::json!({
        "method": req.method().as_str(),
        "uri": req.uri().to_string(),
        "headers": headers,
    }))
}

/// The length and SHA-256 of the body; 400 when it breaks off (the gateway
/// gave up on a client's upload).
async fn upload(body: Body) -> Result<Json<serde_json::Value>, StatusCode> {
    let mut stream = body.into_data_stream();
    let mut hasher = Sha256::new();
    let mut len = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| StatusCode::BAD_REQUEST)?;
        len += chunk.len() as u64;
        hasher.update(&chunk);
    }
    Ok(Json(
        serde_json::json!({ "len": len, "sha256": hex(&hasher.finalize()) }),
    ))
}

/// Every value of header `name` (any letter case) in an echo answer.
pub fn echoed<'a>(echo: &'a serde_json::Value, name: &str) -> Vec<&'a str> {
    echo["headers"]
        .as_array()
        .expect("an echo answer")
        .iter()
        .filter(|h| h[0].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))
        .filter_map(|h| h[1].as_str())
        .collect()
}

/// The deterministic body `/download?bytes=N` serves, chunk by chunk.
pub fn pattern_chunk(offset: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| ((offset + i) % 251) as u8)
        .collect()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(serde::Deserialize)]
struct DownloadQuery {
    bytes: u64,
}

async fn download(Query(q): Query<DownloadQuery>) -> Response {
    const CHUNK: u64 = 64 * 1024;
    let total = q.bytes;
    let stream = futures_util::stream::unfold(0u64, move |offset| async move {
        if offset >= total {
            return None;
        }
        let len = CHUNK.min(total - offset);
        let chunk = Bytes::from(pattern_chunk(offset, len as usize));
        Some((Ok::<_, std::io::Error>(chunk), offset + len))
    });
    Response::builder()
        .header("content-length", total.to_string())
        .body(Body::from_stream(stream))
        .unwrap()
}

async fn sse(State(state): State<AppState>) -> Response {
    let release = state.release.clone();
    let stream = futures_util::stream::unfold(0u8, move |step| {
        let release = release.clone();
        async move {
            match step {
                0 => Some((Ok::<_, std::io::Error>(Bytes::from("data: one\n\n")), 1)),
                1 => {
                    release.notified().await;
                    Some((Ok(Bytes::from("data: two\n\n")), 2))
                }
                _ => None,
            }
        }
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}

#[derive(serde::Deserialize)]
struct SlowQuery {
    ms: u64,
}

async fn slow(Query(q): Query<SlowQuery>) -> &'static str {
    tokio::time::sleep(Duration::from_millis(q.ms)).await;
    "finally"
}

async fn ws(upgrade: WebSocketUpgrade, headers: HeaderMap) -> Response {
    let user = headers
        .get("x-forwarded-user")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    upgrade.on_upgrade(move |socket| echo_socket(socket, user))
}

async fn echo_socket(mut socket: WebSocket, user: Option<String>) {
    let hello = format!("hello {}", user.as_deref().unwrap_or("anonymous"));
    if socket.send(Message::Text(hello.into())).await.is_err() {
        return;
    }
    while let Some(Ok(msg)) = socket.recv().await {
        let reply = match msg {
            Message::Text(t) => Message::Text(format!("echo: {t}").into()),
            Message::Close(_) => return,
            _ => continue,
        };
        if socket.send(reply).await.is_err() {
            return;
        }
    }
}

async fn status(axum::extract::Path(code): axum::extract::Path<u16>) -> impl IntoResponse {
    (
        StatusCode::from_u16(code).unwrap(),
        format!("status {code}"),
    )
}
