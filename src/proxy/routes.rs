//! The gateway's own routes on the public listener, told apart from
//! everything that is proxied.

use http::Method;

/// What a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /oauth/login`: the login page.
    LoginPage,
    /// Anything else: forwarded to the upstream.
    Proxy,
}

pub fn classify(method: &Method, path: &str) -> Route {
    match (method, path) {
        (&Method::GET | &Method::HEAD, "/oauth/login" | "/oauth/login/") => Route::LoginPage,
        _ => Route::Proxy,
    }
}

/// The first value of query parameter `name`, decoded.
pub fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}
