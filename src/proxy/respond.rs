//! Answers the gateway writes itself: a readable HTML page for browsers and
//! a small JSON object for everything else.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

use crate::pages::ErrorPage;

/// An error answer, before it is rendered for the client that asked.
pub struct ErrorAnswer<'a> {
    pub status: u16,
    /// A short machine-readable code for JSON clients, e.g. `upstream_unavailable`.
    pub code: &'a str,
    pub title: &'a str,
    pub message: &'a str,
}

/// Whether the client prefers a page a person reads (`Accept: text/html`).
pub fn wants_html(session: &Session) -> bool {
    session
        .req_header()
        .headers
        .get_all(http::header::ACCEPT)
        .iter()
        .any(|v| {
            v.as_bytes()
                .windows(9)
                .any(|w| w.eq_ignore_ascii_case(b"text/html"))
        })
}

/// Writes `answer` as a complete response.
pub async fn error(session: &mut Session, answer: &ErrorAnswer<'_>) -> pingora::Result<()> {
    let (content_type, body) = if wants_html(session) {
        let page = ErrorPage {
            status: answer.status,
            title: answer.title,
            message: answer.message,
            back_href: None,
            back_label: "",
        };
        ("text/html; charset=utf-8", page.html())
    } else {
        let json = serde_json::json!({
            "error": answer.code,
            "message": answer.message,
            "status": answer.status,
        });
        ("application/json", json.to_string())
    };
    session.set_keepalive(None);
    write(session, answer.status, content_type, body).await
}

/// Writes an HTML page as a complete response.
pub async fn html(session: &mut Session, status: u16, body: String) -> pingora::Result<()> {
    write(session, status, "text/html; charset=utf-8", body).await
}

async fn write(
    session: &mut Session,
    status: u16,
    content_type: &str,
    body: String,
) -> pingora::Result<()> {
    let mut header = ResponseHeader::build(status, Some(6))?;
    header.insert_header("content-type", content_type)?;
    header.insert_header("content-length", body.len().to_string())?;
    header.insert_header("cache-control", "no-store")?;
    header.insert_header("x-content-type-options", "nosniff")?;
    header.insert_header("referrer-policy", "no-referrer")?;
    let head_only = session.req_header().method == http::Method::HEAD;
    session
        .write_response_header(Box::new(header), head_only)
        .await?;
    if !head_only {
        session
            .write_response_body(Some(Bytes::from(body)), true)
            .await?;
    }
    Ok(())
}
