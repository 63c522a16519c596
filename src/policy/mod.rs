//! Who may pass and what goes through, decided once for both data paths
//! (hyper and the HTTP/1 fast path): which of the gateway's own routes a
//! request is for, which stack paths it treats itself, which `[[routes]]`
//! entry lets a request through without a session, and what the upstream
//! then receives (`fields`: every header by name; `forwarding`:
//! X-Forwarded-*; `cookies`: the gateway's own cookies kept back). The paths only carry out what is decided here.

pub mod access;
pub mod cookies;
pub mod fields;
pub mod forwarding;
pub mod own;
pub mod rules;
pub mod stack;

use http::Method;

pub use own::Route;
use std::sync::Arc;

use access::Requirement;
pub use rules::{carries_bearer, Action, Allow, RouteSpec, Rule};
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
    /// A `[[routes]]` entry asks more of the session: forwarded for a
    /// signed-in person who meets the requirement.
    Require(Arc<Requirement>),
    /// Anything else: forwarded for a signed-in person.
    Session,
}

/// The decisions of one gateway, fixed at startup.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    rules: Vec<Rule>,
    /// Whether a rule asks for groups or roles.
    guarded: bool,
    stack: Option<StackPaths>,
}

impl Policy {
    /// `rules` from `[[routes]]`; `account_mount` when the console sign-in
    /// is on.
    pub fn new(rules: Vec<Rule>, account_mount: Option<&str>) -> Self {
        Self {
            guarded: rules.iter().any(|r| matches!(r.action, Action::Require(_))),
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
        if self.rules.is_empty() {
            return Decision::Session;
        }
        let normal = crate::paths::for_routes(path);
        let first = normal
            .as_deref()
            .and_then(|n| self.rules.iter().find(|r| r.matches(method, n)));
        if let Some(Action::Require(needs)) = first.map(|r| &r.action) {
            return Decision::Require(needs.clone());
        }
        // A path may be read otherwise by the upstream (an encoded `/`,
        // encoded twice, a backslash, `;` parameters, another letter
        // case): a requirement holds on the fully decoded path too, and on
        // it without parameters, before any route lets the request pass.
        if self.guarded {
            let decoded = crate::paths::decoded_repeatedly(path);
            let bare = crate::paths::without_segment_params(&decoded);
            let bare = crate::paths::as_the_stack_routes(&bare);
            let guard = self.rules.iter().find_map(|r| match &r.action {
                Action::Require(needs) if r.guards(method, &decoded) || r.guards(method, &bare) => {
                    Some(needs)
                }
                _ => None,
            });
            if let Some(needs) = guard {
                return Decision::Require(needs.clone());
            }
        }
        if let (Some(rule), Some(normal)) = (first, normal) {
            if let Action::Pass(allow) = rule.action {
                return Decision::Pass {
                    allow,
                    path: normal.into_owned(),
                };
            }
        }
        Decision::Session
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        let spec = |path: &str, methods: &[&str], allow: &str| RouteSpec {
            path: path.into(),
            methods: methods.iter().map(|m| m.to_string()).collect(),
            allow: Some(allow.into()),
            ..Default::default()
        };
        let (rules, problems) = rules::check_all(&[
            spec("/api/v3/", &[], "bearer"),
            spec("/healthz", &["GET"], "public"),
        ]);
        assert!(problems.is_empty());
        Policy::new(rules, Some("/account"))
    }

    /// A requirement holds on every reading of its path an upstream may
    /// have: a trailing `/` on an exact path, HEAD for GET, another letter
    /// case, and before a public route that the raw path also matches.
    #[test]
    fn a_requirement_holds_on_every_reading_of_its_path() {
        let guard = |path: &str, methods: &[&str]| RouteSpec {
            path: path.into(),
            methods: methods.iter().map(|m| m.to_string()).collect(),
            require_roles: vec!["Admin".into()],
            ..Default::default()
        };
        let public = RouteSpec {
            path: "/static/".into(),
            allow: Some("public".into()),
            ..Default::default()
        };
        let (rules, problems) = rules::check_all(&[guard("/console/admin", &["GET"]), public]);
        assert!(problems.is_empty(), "{problems:?}");
        let p = Policy::new(rules, None);
        let guarded = |m: &Method, path: &str| matches!(p.decide(m, path), Decision::Require(_));
        for path in [
            "/console/admin",
            "/console/admin/",
            "/Console/Admin",
            "/console/ADMIN/",
            "/console/admin;x",
            "/static/..%2Fconsole/admin",
            "/static/%2E%2E/console/admin",
            "/static/..%252Fconsole/admin",
        ] {
            assert!(guarded(&Method::GET, path), "GET {path}");
        }
        assert!(guarded(&Method::HEAD, "/console/admin"));
        assert!(
            !guarded(&Method::POST, "/console/admin"),
            "the route names GET only"
        );
        assert!(!guarded(&Method::GET, "/console/administrator"));
        assert_eq!(p.decide(&Method::GET, "/console"), Decision::Session);
        assert!(matches!(
            p.decide(&Method::GET, "/static/app.js"),
            Decision::Pass { .. }
        ));
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
