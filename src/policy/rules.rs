//! `[[routes]]`: requests that pass without a session (`allow`), and
//! requests whose session must hold groups or roles of the route's own
//! (`require_groups`, `require_roles`). A rule is checked once, when the
//! configuration loads (leading `/`, normal form, known `allow` and
//! methods, one kind of rule, not covering the gateway's own paths, not
//! shadowed by an earlier rule), and then matched on the normalised path
//! alone.

use std::borrow::Cow;
use std::sync::Arc;

use http::Method;

use super::access::Requirement;
use crate::paths;

/// How a request that matches a rule may pass without a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allow {
    /// Always.
    Public,
    /// When it carries `Authorization: Bearer <token>` with a non-empty
    /// token (the upstream checks the token).
    Bearer,
}

/// What a matching request gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// It passes without a session, as `allow` says.
    Pass(Allow),
    /// It needs a session that meets the requirement.
    Require(Arc<Requirement>),
}

/// One `[[routes]]` entry as written.
#[derive(Debug, Clone, Default)]
pub struct RouteSpec {
    pub path: String,
    pub methods: Vec<String>,
    pub allow: Option<String>,
    pub require_groups: Vec<String>,
    pub require_roles: Vec<String>,
}

/// One validated `[[routes]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Normal form; ends in `/` for a prefix.
    path: String,
    /// `path` in lower case, for requirements read in any letter case.
    folded: String,
    /// Empty: every method.
    methods: Vec<Method>,
    pub action: Action,
}

/// Methods a rule may name (CONNECT never reaches the upstream).
const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE",
];

/// Paths only the gateway answers.
const OWN: &[&str] = &["/oauth/login", "/.idgate/"];

impl Rule {
    /// A rule from its configured fields, or what is wrong with them.
    pub fn new(spec: &RouteSpec) -> Result<Rule, String> {
        let (path, methods) = (spec.path.as_str(), &spec.methods);
        let requirement = Requirement {
            groups: spec.require_groups.clone(),
            roles: spec.require_roles.clone(),
        };
        let action = match (spec.allow.as_deref(), requirement.is_empty()) {
            (Some(_), false) => {
                return Err(
                    "allow and require_groups/require_roles exclude each other: a route either passes without a session or asks more of one".into(),
                )
            }
            (None, true) => {
                return Err(
                    "needs allow = \"public\" or \"bearer\", or require_groups / require_roles"
                        .into(),
                )
            }
            (Some("public"), true) => Action::Pass(Allow::Public),
            (Some("bearer"), true) => Action::Pass(Allow::Bearer),
            (Some(other), true) => {
                return Err(format!(
                    "allow = {other:?} is not one of \"public\", \"bearer\""
                ))
            }
            (None, false) => {
                if let Some(problem) = requirement.problem() {
                    return Err(format!("require_groups/require_roles {problem}"));
                }
                Action::Require(Arc::new(requirement))
            }
        };
        if !path.starts_with('/') {
            return Err(format!("path {path:?} must start with /"));
        }
        if path.contains(['?', '#']) {
            return Err(format!(
                "path {path:?} must be a path alone, without a query or fragment"
            ));
        }
        if paths::for_routes(path).as_deref() != Some(path) {
            return Err(format!(
                "path {path:?} is not in normal form (no `.` or `..` segments, no `//`, no percent-encoded unreserved characters, no encoded `/` or `\\`); requests are matched after normalising, so write {:?}",
                paths::for_routes(path).unwrap_or_else(|| "a plain path".into())
            ));
        }
        let mut parsed = Vec::new();
        for m in methods {
            let upper = m.to_ascii_uppercase();
            if !METHODS.contains(&upper.as_str()) {
                return Err(format!("method {m:?} is not one of {}", METHODS.join(", ")));
            }
            let method = Method::from_bytes(upper.as_bytes()).expect("a known method");
            if !parsed.contains(&method) {
                parsed.push(method);
            }
        }
        let rule = Rule {
            path: path.to_string(),
            folded: path.to_ascii_lowercase(),
            methods: parsed,
            action,
        };
        if let Some(own) = OWN
            .iter()
            .find(|own| rule.covers_path(own) || path.starts_with(**own))
        {
            return Err(format!(
                "path {path:?} covers the gateway's own paths ({own}…), which never pass to the upstream"
            ));
        }
        Ok(rule)
    }

    /// Whether this rule matches a request for normalised `path`.
    pub fn matches(&self, method: &Method, path: &str) -> bool {
        self.takes(method) && self.covers_path(path)
    }

    /// Whether this rule asks more of the session for a request the
    /// upstream may read as `path` (decoded): such a rule holds on the path
    /// in any letter case too (a case-insensitive upstream serves
    /// `/Console/Admin` as `/console/admin`).
    pub fn guards(&self, method: &Method, path: &str) -> bool {
        if !self.guards_any() || !self.takes(method) {
            return false;
        }
        let folded: Cow<'_, str> = if path.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(path.to_ascii_lowercase())
        } else {
            Cow::Borrowed(path)
        };
        covers(&self.folded, true, &folded)
    }

    fn guards_any(&self) -> bool {
        matches!(self.action, Action::Require(_))
    }

    /// Whether the rule applies to `method`; a requirement on GET holds on
    /// HEAD too (upstreams answer HEAD with the GET handler).
    fn takes(&self, method: &Method) -> bool {
        self.methods.is_empty()
            || self.methods.contains(method)
            || (self.guards_any() && *method == Method::HEAD && self.methods.contains(&Method::GET))
    }

    fn covers_path(&self, path: &str) -> bool {
        covers(&self.path, self.guards_any(), path)
    }

    /// Whether every request `later` could match for some method is matched
    /// by this rule first: `later` then never applies to that method.
    pub fn shadows(&self, later: &Rule) -> bool {
        let paths = match later.path.strip_suffix('/') {
            // A prefix is covered when its own bare path and everything
            // under it is.
            Some(_) => self.path.ends_with('/') && self.covers_path(&later.path),
            None => self.covers_path(&later.path),
        };
        let methods = self.methods.is_empty()
            || later.methods.is_empty()
            || later.methods.iter().any(|m| self.methods.contains(m));
        paths && methods
    }
}

/// Whether a rule for `rule_path` covers normalised `path`: a prefix (ending
/// in `/`) its bare path and everything below, else the exact path, and for
/// a requirement (`guard`) that path with a trailing `/` too (many
/// upstreams serve both alike).
fn covers(rule_path: &str, guard: bool, path: &str) -> bool {
    match rule_path.strip_suffix('/') {
        Some(bare) if !bare.is_empty() => path == bare || path.starts_with(rule_path),
        Some(_) => true,
        None => path == rule_path || (guard && path.strip_suffix('/') == Some(rule_path)),
    }
}

/// The rules of `[[routes]]`, each checked alone and against the ones
/// before it; problems are `(index, message)`.
pub fn check_all(configured: &[RouteSpec]) -> (Vec<Rule>, Vec<(usize, String)>) {
    let mut rules: Vec<Rule> = Vec::new();
    let mut problems = Vec::new();
    let mut at = Vec::new();
    for (i, spec) in configured.iter().enumerate() {
        let rule = match Rule::new(spec) {
            Ok(rule) => rule,
            Err(e) => {
                problems.push((i, e));
                continue;
            }
        };
        if let Some((earlier, j)) = rules.iter().zip(&at).find(|(r, _)| r.shadows(&rule)) {
            problems.push((
                i,
                format!(
                    "overlaps routes[{j}] ({:?}), which comes first and matches the same requests; put the more specific route first or merge them",
                    earlier.path
                ),
            ));
            continue;
        }
        rules.push(rule);
        at.push(i);
    }
    (rules, problems)
}

/// Every group the rules of `rules` ask for.
pub fn named_groups(rules: &[Rule]) -> impl Iterator<Item = &String> {
    rules.iter().flat_map(|r| match &r.action {
        Action::Require(needs) => needs.groups.as_slice(),
        Action::Pass(_) => &[],
    })
}

/// Whether an `Authorization` value is `Bearer <token>` with a non-empty
/// token.
pub fn carries_bearer(value: &[u8]) -> bool {
    value.len() > 7
        && value[..7].eq_ignore_ascii_case(b"bearer ")
        && !value[7..].trim_ascii().is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(path: &str, methods: &[&str], allow: &str) -> Result<Rule, String> {
        Rule::new(&RouteSpec {
            path: path.into(),
            methods: methods.iter().map(|m| m.to_string()).collect(),
            allow: Some(allow.into()),
            ..Default::default()
        })
    }

    fn guard(path: &str, groups: &[&str], roles: &[&str]) -> RouteSpec {
        RouteSpec {
            path: path.into(),
            require_groups: groups.iter().map(|g| g.to_string()).collect(),
            require_roles: roles.iter().map(|r| r.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_route_asks_for_groups_or_roles_or_passes_never_both() {
        let r = Rule::new(&guard("/console/admin/", &[], &["Console.Admin"])).unwrap();
        assert!(matches!(r.action, Action::Require(_)));
        assert!(r.matches(&Method::GET, "/console/admin"));
        let mut both = guard("/console/admin/", &["g"], &[]);
        both.allow = Some("public".into());
        assert!(Rule::new(&both).unwrap_err().contains("exclude each other"));
        let neither = guard("/console/admin/", &[], &[]);
        assert!(Rule::new(&neither).unwrap_err().contains("needs allow"));
        let blank = guard("/console/admin/", &[""], &[]);
        assert!(Rule::new(&blank).unwrap_err().contains("empty group ID"));
    }

    #[test]
    fn a_prefix_covers_its_bare_path_and_below() {
        let r = rule("/api/v3/", &[], "bearer").unwrap();
        for p in ["/api/v3", "/api/v3/", "/api/v3/users"] {
            assert!(r.matches(&Method::GET, p), "{p}");
        }
        for p in ["/api/v", "/api/v30", "/api", "/"] {
            assert!(!r.matches(&Method::GET, p), "{p}");
        }
        let exact = rule("/healthz", &["get"], "public").unwrap();
        assert!(exact.matches(&Method::GET, "/healthz"));
        assert!(!exact.matches(&Method::POST, "/healthz"));
        assert!(!exact.matches(&Method::GET, "/healthz/"));
        assert!(!exact.matches(&Method::GET, "/healthzz"));
    }

    #[test]
    fn bad_rules_are_refused_with_the_reason() {
        for (path, methods, allow, says) in [
            ("api/v3/", &[][..], "bearer", "must start with /"),
            ("/api/", &[], "open", "is not one of"),
            ("/api/", &["FETCH"], "public", "method \"FETCH\""),
            ("/api/", &["CONNECT"], "public", "method \"CONNECT\""),
            ("/api/../x", &[], "public", "normal form"),
            ("//api", &[], "public", "normal form"),
            ("/api?x=1", &[], "public", "without a query"),
            ("/", &[], "public", "own paths"),
            ("/oauth/", &[], "public", "own paths"),
            ("/oauth/login", &[], "public", "own paths"),
            ("/oauth/login/entra/callback", &[], "public", "own paths"),
            ("/.idgate/", &[], "public", "own paths"),
            ("/.idgate/me", &[], "public", "own paths"),
        ] {
            let e = rule(path, methods, allow).unwrap_err();
            assert!(e.contains(says), "{path}: {e}");
        }
        assert!(rule("/oauth/token", &[], "public").is_ok());
    }

    #[test]
    fn a_rule_hidden_by_an_earlier_one_is_refused() {
        let c = |v: &[(&str, &[&str])]| {
            let configured: Vec<RouteSpec> = v
                .iter()
                .map(|(p, m)| RouteSpec {
                    path: p.to_string(),
                    methods: m.iter().map(|m| m.to_string()).collect(),
                    allow: Some("public".into()),
                    ..Default::default()
                })
                .collect();
            check_all(&configured).1
        };
        assert_eq!(c(&[("/api/v3/", &[]), ("/api/v3/x/", &[])]).len(), 1);
        assert_eq!(c(&[("/api/v3/", &[]), ("/api/v3", &[])]).len(), 1);
        assert_eq!(
            c(&[("/healthz", &["GET"]), ("/healthz", &["GET", "POST"])]).len(),
            1
        );
        assert!(c(&[("/api/v3/x/", &[]), ("/api/v3/", &[])]).is_empty());
        assert!(c(&[("/healthz", &["GET"]), ("/healthz", &["POST"])]).is_empty());
        assert!(c(&[("/api/v3", &[]), ("/api/v3/", &[])]).is_empty());
    }

    #[test]
    fn bearer_needs_a_token() {
        assert!(carries_bearer(b"Bearer NNSXS.abc"));
        assert!(carries_bearer(b"bearer x"));
        for v in [
            &b"Bearer "[..],
            b"Bearer   ",
            b"Basic YTpi",
            b"Bearer",
            b"NNSXS.abc",
        ] {
            assert!(!carries_bearer(v), "{:?}", String::from_utf8_lossy(v));
        }
    }
}
