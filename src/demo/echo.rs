//! The demo's echo upstream: a page (or JSON) showing every header it
//! received, so a newcomer sees what idgate forwards. Demo only.

use askama::Template;
use axum::extract::Request;
use axum::response::{Html, IntoResponse, Response};
use axum::Router;

#[derive(Template)]
#[template(path = "demo_echo.html")]
struct EchoPage {
    method: String,
    uri: String,
    user: Option<String>,
    headers: Vec<(String, String)>,
}

/// The echo app: any method, any path.
pub fn router() -> Router {
    Router::new().fallback(echo)
}

async fn echo(req: Request) -> Response {
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
    let wants_json = req
        .headers()
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    if wants_json {
        return axum::Json(serde_json::json!({
            "method": req.method().as_str(),
            "uri": req.uri().to_string(),
            "headers": headers,
        }))
        .into_response();
    }
    let page = EchoPage {
        method: req.method().to_string(),
        uri: req.uri().to_string(),
        user: req
            .headers()
            .get("x-forwarded-user")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
        headers,
    };
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(_) => (http::StatusCode::INTERNAL_SERVER_ERROR, "render failed").into_response(),
    }
}
