//! Who may pass and what goes through, decided once for both data paths
//! (hyper and the HTTP/1 fast path): which of the gateway's own routes a
//! request is for, which stack paths it treats itself, which `[[routes]]`
//! entry lets a request through without a session, and what the upstream
//! then receives (`fields`: every header by name; `forwarding`:
//! X-Forwarded-*; `cookies`: the gateway's own cookies kept back). The paths only carry out what is decided here.

pub mod cookies;
pub mod fields;
pub mod forwarding;
pub mod own;
pub mod rules;
pub mod stack;

use http::Method;

pub use own::Route;
pub use rules::{carries_bearer, Allow, PassRule};
use stack::{StackPaths, StackRoute};

/// What a request is, before any session is looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// One of the gateway's own routes.
    Own(Route),
    /// A path only the gateway itself may call at The Things Stack: 403.
    Closed,
    /// The console's own sign-out: forwarded, and the idgate session ends.
    StackLogout,
    /// The stack's login page: a signed-in person is signed in to the
    /// stack again and sent on.
    StackLogin,
    /// A `[[routes]]` entry matched: it passes without a session as `allow`
    /// says; the upstream receives `path` (the normalised path that matched).
    Pass { allow: Allow, path: String },
    /// Anything else: forwarded for a signed-in person.
    Session,
}

/// The decisions of one gateway, fixed at startup.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    rules: Vec<PassRule>,
    stack: Option<StackPaths>,
}

impl Policy {
    /// `rules` from `[[routes]]`; `account_mount` when the console sign-in
    /// is on.
    pub fn new(rules: Vec<PassRule>, account_mount: Option<&str>) -> Self {
        Self {
            rules,
            stack: account_mount.map(StackPaths::new),
        }
    }

    pub fn decide(&self, method: &Method, path: &str) -> Decision {
        if let Some(stack) = &self.stack {
            match stack.route(method, path) {
                Some(StackRoute::Closed) => return Decision::Closed,
                Some(StackRoute::Logout) => return Decision::StackLogout,
                Some(StackRoute::Login) => {
                    // With the account app at /oauth, its login page is the
                    // gateway's own.
                    return match own::classify(method, path) {
                        Route::Proxy => Decision::StackLogin,
                        route => Decision::Own(route),
                    };
                }
                None => {}
            }
        }
        match own::classify(method, path) {
            Route::Proxy => {}
            route => return Decision::Own(route),
        }
        if !self.rules.is_empty() {
            if let Some(normal) = crate::paths::for_routes(path) {
                if let Some(rule) = self.rules.iter().find(|r| r.matches(method, &normal)) {
                    return Decision::Pass {
                        allow: rule.allow,
                        path: normal.into_owned(),
                    };
                }
            }
        }
        Decision::Session
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        let (rules, problems) = rules::check_all(&[
            ("/api/v3/".into(), vec![], "bearer".into()),
            ("/healthz".into(), vec!["GET".into()], "public".into()),
        ]);
        assert!(problems.is_empty());
        Policy::new(rules, Some("/account"))
    }

    #[test]
    fn traversal_never_reaches_a_session_path_through_a_route() {
        let p = policy();
        let get = Method::GET;
        for raw in [
            "/api/v3/../console",
            "/api/v3/%2e%2e/console",
            "/api/v3/%2E%2E/console",
            "/api/v3%2F..%2Fconsole",
            "/api/v3/..%2Fconsole",
            "/api/v3/..%5Cconsole",
            "/api/v3\\..\\console",
            "//console/admin",
            "/healthz/../console",
        ] {
            assert_eq!(p.decide(&get, raw), Decision::Session, "{raw}");
        }
        assert_eq!(
            p.decide(&get, "//api/v3//users/./x"),
            Decision::Pass {
                allow: Allow::Bearer,
                path: "/api/v3/users/x".into()
            }
        );
        assert_eq!(
            p.decide(&get, "/healthz"),
            Decision::Pass {
                allow: Allow::Public,
                path: "/healthz".into()
            }
        );
        assert_eq!(p.decide(&Method::POST, "/healthz"), Decision::Session);
    }

    #[test]
    fn stack_paths_come_before_routes() {
        let p = policy();
        assert_eq!(
            p.decide(&Method::POST, "/api/v3/users/ada/login%2Dtokens"),
            Decision::Closed
        );
        assert_eq!(
            p.decide(&Method::GET, "/account/logout"),
            Decision::StackLogout
        );
        assert_eq!(
            p.decide(&Method::GET, "/account/login"),
            Decision::StackLogin
        );
        let at_oauth = Policy::new(Vec::new(), Some("/oauth"));
        assert_eq!(
            at_oauth.decide(&Method::GET, "/oauth/login"),
            Decision::Own(Route::LoginPage)
        );
        assert_eq!(
            at_oauth.decide(&Method::GET, "/oauth/token-login"),
            Decision::Closed
        );
        let without = Policy::new(Vec::new(), None);
        assert_eq!(
            without.decide(&Method::POST, "/api/v3/users/ada/login-tokens"),
            Decision::Session
        );
    }
}
