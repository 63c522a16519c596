//! The gateway's own routes on the public listener (login, callback,
//! `/.idgate/…`), told apart from everything that is proxied.

use http::Method;

/// What a request is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /oauth/login`: the login page.
    LoginPage,
    /// `GET /oauth/login/<provider>`: start a login.
    LoginStart(String),
    /// `GET`/`POST /oauth/login/<provider>/callback`.
    Callback(String),
    /// `POST /.idgate/logout`.
    Logout,
    /// `GET /.idgate/signed-out`: where the provider's sign-out returns.
    SignedOut,
    /// `GET /oauth/login/<provider>/front-channel-logout`: the provider
    /// ends the sessions of one of its sessions.
    FrontChannelLogout(String),
    /// `GET /.idgate/me`.
    Me,
    /// `GET /.idgate/auth`: forward-auth check.
    ForwardAuth,
    /// `GET /.idgate/jwks.json`.
    Jwks,
    /// Any other method or path under the gateway's own prefixes.
    NotFound,
    /// Anything else: forwarded to the upstream for a signed-in person.
    Proxy,
}

pub fn classify(method: &Method, path: &str) -> Route {
    let read = matches!(*method, Method::GET | Method::HEAD);
    if let Some(rest) = path.strip_prefix("/.idgate/") {
        return match (rest, read) {
            ("me", true) => Route::Me,
            ("auth", true) => Route::ForwardAuth,
            ("jwks.json", true) => Route::Jwks,
            ("logout", false) if *method == Method::POST => Route::Logout,
            ("signed-out", true) => Route::SignedOut,
            _ => Route::NotFound,
        };
    }
    if path == "/oauth/login" || path == "/oauth/login/" {
        return if read {
            Route::LoginPage
        } else {
            Route::NotFound
        };
    }
    if let Some(rest) = path.strip_prefix("/oauth/login/") {
        return match rest.split_once('/') {
            None if read => Route::LoginStart(rest.to_string()),
            Some((id, "callback")) if read || *method == Method::POST => {
                Route::Callback(id.to_string())
            }
            Some((id, "front-channel-logout")) if read => Route::FrontChannelLogout(id.to_string()),
            _ => Route::NotFound,
        };
    }
    Route::Proxy
}

/// The first value of query parameter `name`, decoded.
pub fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let get = Method::GET;
        let post = Method::POST;
        assert_eq!(classify(&get, "/oauth/login"), Route::LoginPage);
        assert_eq!(
            classify(&get, "/oauth/login/entra"),
            Route::LoginStart("entra".into())
        );
        assert_eq!(
            classify(&get, "/oauth/login/entra/callback"),
            Route::Callback("entra".into())
        );
        assert_eq!(
            classify(&post, "/oauth/login/entra/callback"),
            Route::Callback("entra".into())
        );
        assert_eq!(classify(&post, "/oauth/login/entra"), Route::NotFound);
        assert_eq!(classify(&get, "/oauth/login/entra/other"), Route::NotFound);
        assert_eq!(classify(&post, "/.idgate/logout"), Route::Logout);
        assert_eq!(classify(&get, "/.idgate/logout"), Route::NotFound);
        assert_eq!(classify(&get, "/.idgate/signed-out"), Route::SignedOut);
        assert_eq!(classify(&post, "/.idgate/signed-out"), Route::NotFound);
        assert_eq!(
            classify(&get, "/oauth/login/entra/front-channel-logout"),
            Route::FrontChannelLogout("entra".into())
        );
        assert_eq!(
            classify(&post, "/oauth/login/entra/front-channel-logout"),
            Route::NotFound
        );
        assert_eq!(classify(&get, "/.idgate/me"), Route::Me);
        assert_eq!(classify(&get, "/.idgate/auth"), Route::ForwardAuth);
        assert_eq!(classify(&get, "/.idgate/jwks.json"), Route::Jwks);
        assert_eq!(classify(&get, "/.idgate/secret"), Route::NotFound);
        assert_eq!(classify(&get, "/oauth/other"), Route::Proxy);
        assert_eq!(classify(&post, "/console/api"), Route::Proxy);
    }
}
