//! Answers the gateway writes itself: pages, JSON, redirects, and error
//! answers (a readable page for browsers, a small JSON object otherwise).

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Response};
use http_body_util::Full;

use crate::pages::ErrorPage;

/// An error answer, before it is rendered for the client that asked.
pub struct ErrorAnswer<'a> {
    pub status: u16,
    /// A short machine-readable code for JSON clients, e.g. `upstream_unavailable`.
    pub code: &'a str,
    pub title: &'a str,
    pub message: &'a str,
}

impl<'a> From<&'a crate::login::Refusal> for ErrorAnswer<'a> {
    /// What a person is told about a refused sign-in (or a step of one).
    fn from(r: &'a crate::login::Refusal) -> Self {
        Self {
            status: r.status,
            code: r.code,
            title: r.title,
            message: &r.message,
        }
    }
}

/// The answer to a client whose request body stopped coming for longer
/// than the client timeout.
pub const BODY_TIMEOUT: ErrorAnswer<'static> = ErrorAnswer {
    status: 408,
    code: "request_timeout",
    title: "Request timed out",
    message: "The rest of the request did not arrive in time. Try sending it again.",
};

/// The 403 for a person whose groups or roles do not admit them: a page
/// naming the reason, or JSON.
pub fn access_refused(headers: &HeaderMap, refused: crate::policy::access::Refused) -> Answer {
    let e = ErrorAnswer {
        status: 403,
        code: refused.reason(),
        title: "Not allowed",
        message: refused.message(),
    };
    Answer::error(headers, &e, None)
}

/// Whether the client prefers a page a person reads (`Accept: text/html`).
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::ACCEPT)
        .iter()
        .any(|v| crate::policy::fields::accepts_html(v.as_bytes()))
}

/// A complete response the gateway sends itself.
pub struct Answer {
    status: u16,
    content_type: &'static str,
    body: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    close: bool,
    /// Whether another site may show it in a frame.
    frameable: bool,
}

impl Answer {
    pub fn html(status: u16, body: String) -> Self {
        Self::new(status, "text/html; charset=utf-8", body)
    }

    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Self::new(status, "application/json", value.to_string())
    }

    /// A redirect to a `location` the gateway built: one of its own paths,
    /// or a provider endpoint from the provider's discovery; never one a
    /// client chose.
    pub fn redirect(status: u16, location: &str) -> Self {
        Self::new(status, "text/plain; charset=utf-8", String::new()).header(
            http::header::LOCATION,
            HeaderValue::from_str(location).unwrap_or(HeaderValue::from_static("/")),
        )
    }

    /// An error page for browsers, JSON for everyone else, with a link back.
    pub fn error(headers: &HeaderMap, answer: &ErrorAnswer<'_>, back: Option<&str>) -> Self {
        Self::error_page(wants_html(headers), answer, back)
    }

    /// The error answer as a page (`html`) or as JSON.
    pub fn error_page(html: bool, answer: &ErrorAnswer<'_>, back: Option<&str>) -> Self {
        if html {
            let page = ErrorPage {
                status: answer.status,
                title: answer.title,
                message: answer.message,
                back_href: back,
                back_label: "Back to sign-in",
            };
            Self::html(answer.status, page.html())
        } else {
            let json = serde_json::json!({
                "error": answer.code,
                "message": answer.message,
                "status": answer.status,
            });
            Self::json(answer.status, &json)
        }
    }

    fn new(status: u16, content_type: &'static str, body: String) -> Self {
        Self {
            status,
            content_type,
            body,
            headers: Vec::new(),
            close: false,
            frameable: false,
        }
    }

    /// The status code the answer will have.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Sets a header, replacing a default of the same name (`cache-control`).
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Adds a `Set-Cookie` built by the gateway's cookie codec.
    pub fn cookie(self, set_cookie: &str) -> Self {
        match HeaderValue::from_str(set_cookie) {
            Ok(v) => self.header(http::header::SET_COOKIE, v),
            Err(_) => self,
        }
    }

    /// Adds every `Set-Cookie` in `set_cookies`.
    pub fn cookies<'a>(self, set_cookies: impl IntoIterator<Item = &'a String>) -> Self {
        set_cookies.into_iter().fold(self, |a, c| a.cookie(c))
    }

    /// Lets another site show this answer in a frame (the provider's
    /// front-channel logout does); no other answer of the gateway may be.
    pub fn frameable(mut self) -> Self {
        self.frameable = true;
        self
    }

    /// Closes the connection after this answer.
    pub fn close(mut self) -> Self {
        self.close = true;
        self
    }

    /// The response. `close` is honoured on HTTP/1 (HTTP/2 has no
    /// `Connection`); a HEAD request gets the headers alone from hyper.
    pub fn into_response(self, http1: bool) -> Response<Full<Bytes>> {
        let (response, body) = self.into_parts(http1);
        response.map(|()| Full::new(body))
    }

    /// The response head and its body.
    pub fn into_parts(self, http1: bool) -> (Response<()>, Bytes) {
        let mut response = Response::new(());
        *response.status_mut() = http::StatusCode::from_u16(self.status)
            .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        let h = response.headers_mut();
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type),
        );
        h.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        );
        h.insert(
            http::header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        h.insert(
            http::header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        if !self.frameable {
            h.insert(
                http::header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("frame-ancestors 'none'"),
            );
            h.insert(
                http::header::X_FRAME_OPTIONS,
                HeaderValue::from_static("DENY"),
            );
        }
        for (name, value) in self.headers {
            // Set-Cookie may repeat; any other header replaces a default.
            if name == http::header::SET_COOKIE {
                h.append(name, value);
            } else {
                h.insert(name, value);
            }
        }
        if self.close && http1 {
            h.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        }
        (response, Bytes::from(self.body))
    }
}
