//! The Things Stack's paths that the gateway treats on its own, matched as
//! the stack routes them (fully percent-decoded, dot segments resolved):
//! the login-token routes only idgate itself may call, the console's
//! sign-out, and the account app's login page.

use http::Method;

use crate::paths;

/// What a stack path is to the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackRoute {
    /// Minting or trading login tokens: never from outside (403).
    Closed,
    /// `<account_mount>/logout`: the console's own sign-out.
    Logout,
    /// `GET <account_mount>/login`: where the stack sends a browser
    /// without a stack session.
    Login,
}

/// The stack's mount points.
#[derive(Debug, Clone)]
pub struct StackPaths {
    token_login_page: String,
    token_login_api: String,
    logout: String,
    login: String,
}

impl StackPaths {
    pub fn new(account_mount: &str) -> Self {
        let account = account_mount.trim_end_matches('/').to_string();
        Self {
            token_login_page: format!("{account}/token-login"),
            token_login_api: format!("{account}/api/auth/token-login"),
            logout: format!("{account}/logout"),
            login: format!("{account}/login"),
        }
    }

    /// What `path` is to the gateway, if anything.
    pub fn route(&self, method: &Method, path: &str) -> Option<StackRoute> {
        let normal = paths::as_the_stack_routes(path);
        let trimmed = match normal.trim_end_matches('/') {
            "" => "/",
            t => t,
        };
        let same = |p: &str| trimmed.eq_ignore_ascii_case(p);
        if same(&self.token_login_page) || same(&self.token_login_api) || mints_tokens(trimmed) {
            Some(StackRoute::Closed)
        } else if same(&self.logout) {
            Some(StackRoute::Logout)
        } else if same(&self.login) && matches!(*method, Method::GET | Method::HEAD) {
            Some(StackRoute::Login)
        } else {
            None
        }
    }
}

/// `/api/v3/users/<id>/login-tokens` (and anything below a user that names
/// `login-tokens`).
fn mints_tokens(path: &str) -> bool {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    segments.len() >= 5
        && segments[0].eq_ignore_ascii_case("api")
        && segments[1].eq_ignore_ascii_case("v3")
        && segments[2].eq_ignore_ascii_case("users")
        && segments[4..]
            .iter()
            .any(|s| s.eq_ignore_ascii_case("login-tokens"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_routes_are_closed_however_spelled() {
        let stack = StackPaths::new("/account");
        for p in [
            "/api/v3/users/ada/login-tokens",
            "/api/v3/users/ada/login-tokens/",
            "/api/v3/users/ada/login%2Dtokens",
            "/api/v3/users/ada%2Flogin-tokens",
            "/api/v3/users/ada/%6cogin-tokens",
            "/api/v3//users/ada/./login-tokens",
            "/api/v3/x/../users/ada/login-tokens",
            "/API/V3/users/ada/Login-Tokens",
            "/account/api/auth/token-login",
            "/account/api/auth%2Ftoken-login",
            "/account/api/auth/token%2Dlogin",
            "/account/token-login",
            "/account/token-login/",
            "//account/./token-login",
        ] {
            assert_eq!(
                stack.route(&Method::POST, p),
                Some(StackRoute::Closed),
                "{p}"
            );
        }
        for p in [
            "/api/v3/users/ada",
            "/api/v3/users/login-tokens",
            "/oauth/token-login",
            "/account/api/auth/login",
        ] {
            assert_eq!(stack.route(&Method::POST, p), None, "{p}");
        }
    }

    #[test]
    fn sign_out_and_login_pages() {
        let stack = StackPaths::new("/account");
        assert_eq!(
            stack.route(&Method::GET, "/account/logout"),
            Some(StackRoute::Logout)
        );
        assert_eq!(
            stack.route(&Method::GET, "/account/login"),
            Some(StackRoute::Login)
        );
        assert_eq!(stack.route(&Method::POST, "/account/login"), None);
        assert_eq!(stack.route(&Method::GET, "/account/loginx"), None);
    }
}
