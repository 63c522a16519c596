//! The schema of the configuration: every key the gateway knows, its type,
//! and the environment variable that overrides it. Unknown keys and values of
//! the wrong type are reported here, before serde ever sees the file.

use super::Problem;

/// The type a configuration value must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Str,
    Int,
    Bool,
    StrList,
    /// A human duration string such as `"10s"` or `"500ms"`.
    Duration,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::Str => "a string",
            Kind::Int => "a non-negative integer",
            Kind::Bool => "true or false",
            Kind::StrList => "a list of strings",
            Kind::Duration => "a duration such as \"10s\" or \"500ms\"",
        }
    }
}

/// One configuration key: its dotted path, its type, and a line of help.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    pub path: &'static str,
    pub kind: Kind,
    pub help: &'static str,
}

const fn key(path: &'static str, kind: Kind, help: &'static str) -> Key {
    Key { path, kind, help }
}

/// Every key of the configuration, in the order the reference documents them.
pub const KEYS: &[Key] = &[
    key("server.listen", Kind::Str, "public listener address"),
    key("server.public_url", Kind::Str, "the address browsers use"),
    key(
        "server.trusted_proxies",
        Kind::StrList,
        "addresses or CIDRs whose X-Forwarded-* are kept",
    ),
    key(
        "server.max_header_bytes",
        Kind::Int,
        "largest request head accepted (431 above)",
    ),
    key(
        "server.max_uri_bytes",
        Kind::Int,
        "longest request target accepted (414 above)",
    ),
    key(
        "server.shutdown_grace",
        Kind::Duration,
        "how long SIGTERM waits for in-flight requests",
    ),
    key(
        "server.client_timeout",
        Kind::Duration,
        "longest wait on a client: for a request, between parts of it, to take the answer",
    ),
    key(
        "server.threads",
        Kind::Int,
        "proxy worker threads (0 = one per core)",
    ),
    key(
        "server.fast_path",
        Kind::Bool,
        "forward signed-in HTTP/1.1 requests on the fast path (false: hyper serves all)",
    ),
    key(
        "server.tls.cert",
        Kind::Str,
        "PEM certificate chain for the public listener",
    ),
    key(
        "server.tls.key",
        Kind::Str,
        "PEM private key for the public listener",
    ),
    key(
        "upstream.url",
        Kind::Str,
        "the application behind the gateway",
    ),
    key(
        "upstream.connect_timeout",
        Kind::Duration,
        "connect timeout towards the upstream",
    ),
    key(
        "upstream.read_timeout",
        Kind::Duration,
        "longest wait for upstream bytes (504 above)",
    ),
    key(
        "upstream.write_timeout",
        Kind::Duration,
        "longest wait to write to the upstream",
    ),
    key(
        "upstream.idle_timeout",
        Kind::Duration,
        "how long idle upstream connections are kept",
    ),
    key(
        "upstream.tls_verify",
        Kind::Bool,
        "verify the upstream's certificate",
    ),
    key(
        "upstream.pass_host_header",
        Kind::Bool,
        "send the client's Host header upstream",
    ),
    key(
        "admin.listen",
        Kind::Str,
        "admin API, health and metrics listener",
    ),
    key(
        "admin.token",
        Kind::Str,
        "bearer token for the admin API (empty disables it)",
    ),
    key("database.url", Kind::Str, "sqlite://… or postgres://…"),
    key("database.max_connections", Kind::Int, "database pool size"),
    key("log.format", Kind::Str, "text or json"),
    key(
        "log.level",
        Kind::Str,
        "a tracing filter such as info or idgate=debug",
    ),
    key(
        "oidc.allow_insecure_http",
        Kind::Bool,
        "accept http:// provider URLs beyond loopback",
    ),
    key(
        "oidc.timeout",
        Kind::Duration,
        "limit for each call to a provider (502 past it)",
    ),
    key(
        "oidc.login_timeout",
        Kind::Duration,
        "how long a started login may take",
    ),
    key(
        "oidc.graph_url",
        Kind::Str,
        "Microsoft Graph, asked for the groups left out of a token (groups overage)",
    ),
    key(
        "oidc.login_attempts_per_minute",
        Kind::Int,
        "failed sign-in callbacks and restarted sign-ins per client address and minute (0: no limit)",
    ),
    key(
        "session.lifetime",
        Kind::Duration,
        "absolute session lifetime",
    ),
    key(
        "session.idle_timeout",
        Kind::Duration,
        "a session unused this long ends",
    ),
    key(
        "session.revalidate_every",
        Kind::Duration,
        "how long the provider's word holds before a session is checked again with it",
    ),
    key(
        "session.revalidate_grace",
        Kind::Duration,
        "how long past that a session goes on while the provider cannot be asked",
    ),
    key("headers.user", Kind::Str, "header carrying the username"),
    key("headers.email", Kind::Str, "header carrying the email"),
    key(
        "headers.preferred_username",
        Kind::Str,
        "header carrying preferred_username",
    ),
    key(
        "headers.provider",
        Kind::Str,
        "header carrying the provider ID",
    ),
    key(
        "headers.assertion",
        Kind::Str,
        "header carrying the signed assertion",
    ),
    key(
        "headers.groups",
        Kind::Str,
        "header for the token's groups (empty: not sent)",
    ),
    key(
        "headers.roles",
        Kind::Str,
        "header for the token's roles (empty: not sent)",
    ),
    key(
        "headers.oid",
        Kind::Str,
        "header for Entra's oid (empty: not sent)",
    ),
    key(
        "headers.tid",
        Kind::Str,
        "header for Entra's tid (empty: not sent)",
    ),
    key(
        "access.allowed_groups",
        Kind::StrList,
        "Entra group object IDs; any one admits (empty: no group rule)",
    ),
    key(
        "access.allowed_roles",
        Kind::StrList,
        "app roles; any one admits (empty: no role rule)",
    ),
    key(
        "assertion.audience",
        Kind::Str,
        "aud of the assertion (empty: the upstream URL)",
    ),
    key(
        "assertion.lifetime",
        Kind::Duration,
        "assertion lifetime, at most 10m",
    ),
    key(
        "assertion.key_file",
        Kind::Str,
        "PEM ES256 key (empty: generated and stored)",
    ),
    key(
        "tts.url",
        Kind::Str,
        "The Things Stack's HTTP address as idgate reaches it (empty: upstream.url)",
    ),
    key(
        "tts.api_key",
        Kind::Str,
        "API key of an admin user of the stack (empty with api_key_file: no console sign-in)",
    ),
    key(
        "tts.api_key_file",
        Kind::Str,
        "file holding that API key (instead of tts.api_key)",
    ),
    key(
        "tts.account_mount",
        Kind::Str,
        "the stack's is.oauth.mount (its account app)",
    ),
    key("tts.console_mount", Kind::Str, "the stack's console mount"),
    key(
        "tts.timeout",
        Kind::Duration,
        "limit for each call to the stack (502 past it)",
    ),
];

/// The array of tables `[[providers]]`, checked field by field by serde.
pub const PROVIDERS: &str = "providers";
/// The array of tables `[[routes]]`, checked field by field by serde.
pub const ROUTES: &str = "routes";

/// Environment variables that start with `IDGATE_` but are not config keys.
const NON_CONFIG_ENV: &[&str] = &["IDGATE_CONFIG", "IDGATE_ADMIN_URL"];

/// The environment variable that overrides `path`: `server.tls.cert` →
/// `IDGATE_SERVER_TLS_CERT`.
pub fn env_name(path: &str) -> String {
    format!("IDGATE_{}", path.replace('.', "_").to_ascii_uppercase())
}

fn find(path: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.path == path)
}

fn is_section(path: &str) -> bool {
    KEYS.iter().any(|k| {
        k.path.len() > path.len()
            && k.path.starts_with(path)
            && k.path.as_bytes()[path.len()] == b'.'
    })
}

fn type_matches(kind: Kind, value: &toml::Value) -> bool {
    match (kind, value) {
        (Kind::Str, toml::Value::String(_)) => true,
        (Kind::Int, toml::Value::Integer(i)) => *i >= 0,
        (Kind::Bool, toml::Value::Boolean(_)) => true,
        (Kind::StrList, toml::Value::Array(items)) => items.iter().all(|v| v.is_str()),
        (Kind::Duration, toml::Value::String(s)) => humantime::parse_duration(s).is_ok(),
        _ => false,
    }
}

/// Reports every unknown key and every value of the wrong type in `table`.
pub fn check_types(table: &toml::Table) -> Vec<Problem> {
    let mut problems = Vec::new();
    walk(table, "", &mut problems);
    problems
}

fn walk(table: &toml::Table, prefix: &str, problems: &mut Vec<Problem>) {
    for (name, value) in table {
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        if path == PROVIDERS {
            check_providers(value, problems);
            continue;
        }
        if path == ROUTES {
            check_routes(value, problems);
            continue;
        }
        match (find(&path), value) {
            (Some(k), v) if type_matches(k.kind, v) => {}
            (Some(k), _) => problems.push(Problem::new(
                &path,
                format!("must be {}", k.kind.describe()),
            )),
            (None, toml::Value::Table(inner)) if is_section(&path) => walk(inner, &path, problems),
            (None, _) if is_section(&path) => {
                problems.push(Problem::new(&path, "must be a section"))
            }
            (None, _) => problems.push(Problem::new(&path, unknown_key_message(&path))),
        }
    }
}

fn check_providers(value: &toml::Value, problems: &mut Vec<Problem>) {
    check_tables::<crate::providers::ProviderChange>(PROVIDERS, value, problems);
}

fn check_routes(value: &toml::Value, problems: &mut Vec<Problem>) {
    check_tables::<super::RouteConfig>(ROUTES, value, problems);
}

/// Each table of the array `[[name]]` read as a `T`, every failure reported.
fn check_tables<T: serde::de::DeserializeOwned>(
    name: &str,
    value: &toml::Value,
    problems: &mut Vec<Problem>,
) {
    let Some(items) = value.as_array() else {
        problems.push(Problem::new(
            name,
            format!("must be an array of tables ([[{name}]])"),
        ));
        return;
    };
    for (i, item) in items.iter().enumerate() {
        if let Err(e) = item.clone().try_into::<T>() {
            problems.push(Problem::new(
                format!("{name}[{i}]"),
                e.message().trim().to_string(),
            ));
        }
    }
}

fn unknown_key_message(path: &str) -> String {
    let section = path.rsplit_once('.').map(|(s, _)| s).unwrap_or("");
    let mut names: Vec<&str> = Vec::new();
    for k in KEYS {
        let rest = if section.is_empty() {
            Some(k.path)
        } else {
            k.path
                .strip_prefix(section)
                .and_then(|r| r.strip_prefix('.'))
        };
        if let Some(name) = rest.and_then(|r| r.split('.').next()) {
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    if section.is_empty() {
        names.push(PROVIDERS);
        names.push(ROUTES);
    }
    format!("unknown key (expected one of: {})", names.join(", "))
}

/// Applies `IDGATE_<SECTION>_<KEY>` variables from `env` onto `table`; they
/// win over the file. A variable naming no key is reported, so a typo in a
/// deployment's environment does not pass silently.
pub fn apply_env(table: &mut toml::Table, env: &[(String, String)]) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (name, raw) in env {
        if !name.starts_with("IDGATE_") || NON_CONFIG_ENV.contains(&name.as_str()) {
            continue;
        }
        let Some(key) = KEYS.iter().find(|k| env_name(k.path) == *name) else {
            if !is_service_link(name, env) {
                problems.push(Problem::new(name, "no such configuration key"));
            }
            continue;
        };
        match parse_env_value(key.kind, raw) {
            Some(value) => set_path(table, key.path, value),
            None => problems.push(Problem::new(
                format!("{name} ({})", key.path),
                format!("must be {}", key.kind.describe()),
            )),
        }
    }
    problems
}

/// Whether `name` is one of the variables Kubernetes injects for a Service
/// (`<SVC>_SERVICE_HOST`, `<SVC>_SERVICE_PORT[_<NAME>]`, `<SVC>_PORT`,
/// `<SVC>_PORT_<n>_<PROTO>[_PROTO|_PORT|_ADDR]`): a Service named `idgate`
/// or `idgate-admin` gives `IDGATE_PORT`, `IDGATE_ADMIN_SERVICE_HOST`, … in
/// every pod of its namespace. Only a name whose `<SVC>_SERVICE_HOST` is
/// set too counts, as Kubernetes always sets it: a mistyped key alone is
/// still refused.
fn is_service_link(name: &str, env: &[(String, String)]) -> bool {
    // Every place a marker starts, overlapping ones included
    // (`IDGATE_SERVICE_SERVICE_HOST` is the Service `idgate-service`).
    let at = |marker: &'static str| {
        (0..name.len()).filter(move |&i| name.as_bytes()[i..].starts_with(marker.as_bytes()))
    };
    let mut services: Vec<&str> = Vec::new();
    for i in at("_SERVICE_") {
        let rest = &name[i + "_SERVICE_".len()..];
        let port_name = rest.strip_prefix("PORT_").is_some_and(|n| {
            !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        });
        if rest == "HOST" || rest == "PORT" || port_name {
            services.push(&name[..i]);
        }
    }
    if let Some(service) = name.strip_suffix("_PORT") {
        services.push(service);
    }
    for i in at("_PORT_") {
        let mut parts = name[i + "_PORT_".len()..].split('_');
        let number = parts.next().is_some_and(|n| n.parse::<u16>().is_ok());
        let proto = parts
            .next()
            .is_some_and(|p| matches!(p, "TCP" | "UDP" | "SCTP"));
        let field = match (parts.next(), parts.next()) {
            (None, None) => true,
            (Some(f), None) => matches!(f, "PROTO" | "PORT" | "ADDR"),
            _ => false,
        };
        if number && proto && field {
            services.push(&name[..i]);
        }
    }
    services.into_iter().any(|service| {
        let host = format!("{service}_SERVICE_HOST");
        env.iter().any(|(n, _)| *n == host)
    })
}

fn parse_env_value(kind: Kind, raw: &str) -> Option<toml::Value> {
    match kind {
        Kind::Str => Some(toml::Value::String(raw.to_string())),
        Kind::Int => raw
            .trim()
            .parse::<u32>()
            .ok()
            .map(|i| toml::Value::Integer(i.into())),
        Kind::Bool => match raw.trim() {
            "true" | "1" => Some(toml::Value::Boolean(true)),
            "false" | "0" => Some(toml::Value::Boolean(false)),
            _ => None,
        },
        Kind::StrList => Some(toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_string()))
                .collect(),
        )),
        Kind::Duration => humantime::parse_duration(raw.trim())
            .ok()
            .map(|_| toml::Value::String(raw.trim().to_string())),
    }
}

fn set_path(table: &mut toml::Table, path: &str, value: toml::Value) {
    let mut current = table;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            current.insert(part.to_string(), value);
            return;
        }
        let entry = current
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        current = entry.as_table_mut().expect("just made a table");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(names: &[&str]) -> Vec<(String, String)> {
        names.iter().map(|n| (n.to_string(), "x".into())).collect()
    }

    #[test]
    fn kubernetes_service_links_are_not_configuration() {
        let injected = [
            "IDGATE_SERVICE_HOST",
            "IDGATE_SERVICE_PORT",
            "IDGATE_SERVICE_PORT_HTTP",
            "IDGATE_PORT",
            "IDGATE_PORT_8080_TCP",
            "IDGATE_PORT_8080_TCP_PROTO",
            "IDGATE_PORT_8080_TCP_PORT",
            "IDGATE_PORT_8080_TCP_ADDR",
            "IDGATE_ADMIN_SERVICE_HOST",
            "IDGATE_ADMIN_PORT",
            "IDGATE_ADMIN_PORT_9090_TCP_ADDR",
            "IDGATE_SERVICE_SERVICE_HOST",
            "IDGATE_SERVICE_PORT_8080_TCP",
        ];
        let mut table = toml::Table::new();
        let problems = apply_env(&mut table, &env(&injected));
        assert!(problems.is_empty(), "{problems:?}");
        assert!(table.is_empty());
    }

    #[test]
    fn look_alikes_without_their_service_are_still_refused() {
        for name in [
            "IDGATE_PORT",
            "IDGATE_SERVER_PORT",
            "IDGATE_PORT_8080_TCP",
            "IDGATE_SERVICE_PORT",
            "IDGATE_SERVER_LISTN",
        ] {
            let problems = apply_env(&mut toml::Table::new(), &env(&[name]));
            assert_eq!(problems.len(), 1, "{name}");
        }
        // With the service's host set, a malformed link is still refused.
        let problems = apply_env(
            &mut toml::Table::new(),
            &env(&[
                "IDGATE_SERVICE_HOST",
                "IDGATE_PORT_80_HTTP",
                "IDGATE_PORT_X_TCP",
            ]),
        );
        assert_eq!(problems.len(), 2, "{problems:?}");
    }
}
