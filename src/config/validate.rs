//! Semantic checks of a well-typed configuration: addresses that parse, URLs
//! with the right scheme, TLS files that can be read, limits that make sense.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use super::{Config, Loaded, Problem, Problems, Source, TtsSettings};
use crate::policy::access::Requirement;
use crate::policy::{rules, RouteSpec, Rule};
use crate::providers::validate::{self, Rules};
use crate::providers::{Provider, SOURCE_CONFIG};
use crate::time::timestamp_now;

/// The largest request head the gateway buffers.
const PARSER_MAX_HEADER_BYTES: usize = 1_048_575;
/// The longest request target hyper's HTTP/1 parser accepts.
const PARSER_MAX_URI_BYTES: usize = 65_534;

pub fn validate(config: Config, source: Source) -> Result<Loaded, Problems> {
    let mut p = Vec::new();
    let listen = socket_addr("server.listen", &config.server.listen, &mut p);
    let admin_listen = socket_addr("admin.listen", &config.admin.listen, &mut p);
    let public_url = http_url("server.public_url", &config.server.public_url, &mut p);
    let upstream_url = http_url("upstream.url", &config.upstream.url, &mut p);
    if let (Some(a), Some(b)) = (listen, admin_listen) {
        if a == b {
            p.push(Problem::new(
                "admin.listen",
                "must differ from server.listen",
            ));
        }
    }
    let trusted_proxies = config
        .server
        .trusted_proxies
        .iter()
        .filter_map(|s| ip_net(s, &mut p))
        .collect();
    let tls = check_tls(&config, &mut p);
    check_limits(&config, &mut p);
    check_database(&config.database.url, &mut p);
    check_log(&config, &mut p);
    let providers = declared_providers(&config, &mut p);
    let routes = pass_rules(&config, &mut p);
    if let Err(e) = crate::oidc::discovery::check_endpoint(
        &config.oidc.graph_url,
        config.oidc.allow_insecure_http,
    ) {
        p.push(Problem::new("oidc.graph_url", e.to_string()));
    }
    let access = Requirement {
        groups: config.access.allowed_groups.clone(),
        roles: config.access.allowed_roles.clone(),
    };
    for (key, list) in [
        ("access.allowed_groups", &access.groups),
        ("access.allowed_roles", &access.roles),
    ] {
        if list.iter().any(|v| v.trim().is_empty()) {
            p.push(Problem::new(key, "holds an empty entry"));
        }
    }
    let tts = tts_settings(&config, upstream_url.as_ref(), &mut p);
    match (listen, admin_listen, public_url, upstream_url) {
        (Some(listen), Some(admin_listen), Some(public_url), Some(upstream_url))
            if p.is_empty() =>
        {
            Ok(Loaded {
                config,
                source,
                listen,
                admin_listen,
                public_url,
                upstream_url,
                trusted_proxies,
                providers,
                tls,
                routes,
                access,
                tts,
            })
        }
        _ => Err(Problems(p)),
    }
}

/// The `[[providers]]` as providers, each checked by the same rules as the
/// admin API applies.
fn declared_providers(config: &Config, p: &mut Vec<Problem>) -> Vec<Provider> {
    let rules = Rules {
        allow_insecure_http: config.oidc.allow_insecure_http,
    };
    let now = timestamp_now();
    let mut out: Vec<Provider> = Vec::new();
    for (i, change) in config.providers.iter().enumerate() {
        let key = format!("providers[{i}]");
        let Some(id) = change.ids.as_ref().map(|ids| ids.provider_id.clone()) else {
            p.push(Problem::new(key, "missing ids = { provider_id = \"…\" }"));
            continue;
        };
        let mut provider = change.clone().into_new(&id, &now);
        provider.source = Some(SOURCE_CONFIG.to_string());
        if let Err(e) = validate::provider(&provider, rules) {
            p.push(Problem::new(key, e));
        } else if out.iter().any(|o| o.id() == id) {
            p.push(Problem::new(
                key,
                format!("provider ID {id:?} is declared twice"),
            ));
        } else {
            out.push(provider);
        }
    }
    out
}

/// The `[[routes]]`, each checked alone and against the ones before it.
fn pass_rules(config: &Config, p: &mut Vec<Problem>) -> Vec<Rule> {
    let configured: Vec<RouteSpec> = config
        .routes
        .iter()
        .map(|r| RouteSpec {
            path: r.path.clone(),
            methods: r.methods.clone(),
            allow: r.allow.clone(),
            require_groups: r.require_groups.clone(),
            require_roles: r.require_roles.clone(),
        })
        .collect();
    let (rules, problems) = rules::check_all(&configured);
    p.extend(
        problems
            .into_iter()
            .map(|(i, message)| Problem::new(format!("routes[{i}]"), message)),
    );
    rules
}

/// `[tts]`: console sign-in is on when an API key is given.
fn tts_settings(
    config: &Config,
    upstream: Option<&url::Url>,
    p: &mut Vec<Problem>,
) -> Option<TtsSettings> {
    let t = &config.tts;
    let url = if t.url.is_empty() {
        upstream.cloned()
    } else {
        http_url("tts.url", &t.url, p)
    };
    for (key, mount) in [
        ("tts.account_mount", &t.account_mount),
        ("tts.console_mount", &t.console_mount),
    ] {
        if !mount.starts_with('/')
            || mount.len() < 2
            || mount.ends_with('/')
            || crate::paths::for_routes(mount).as_deref() != Some(mount.as_str())
        {
            p.push(Problem::new(
                key,
                format!("{mount:?} must be a path like /oauth: a leading /, no trailing /"),
            ));
        }
    }
    if t.timeout.is_zero() {
        p.push(Problem::new("tts.timeout", "must be longer than zero"));
    }
    let key = match (t.api_key.is_empty(), t.api_key_file.is_empty()) {
        (true, true) => return None,
        (false, false) => {
            p.push(Problem::new(
                "tts.api_key_file",
                "set either tts.api_key or tts.api_key_file, not both",
            ));
            return None;
        }
        (false, true) => t.api_key.trim().to_string(),
        (true, false) => match std::fs::read_to_string(&t.api_key_file) {
            Ok(text) => text.trim().to_string(),
            Err(e) => {
                p.push(Problem::new(
                    "tts.api_key_file",
                    format!("cannot read {}: {e}", t.api_key_file),
                ));
                return None;
            }
        },
    };
    if key.is_empty() || key.contains(|c: char| c.is_whitespace() || c.is_control()) {
        let which = if t.api_key.is_empty() {
            "tts.api_key_file"
        } else {
            "tts.api_key"
        };
        p.push(Problem::new(
            which,
            "holds no usable API key (one line, no spaces); create one with `ttn-lw-cli users api-keys create` for an admin user",
        ));
        return None;
    }
    Some(TtsSettings {
        url: url?,
        api_key: key,
        account_mount: t.account_mount.clone(),
        console_mount: t.console_mount.clone(),
        timeout: t.timeout,
    })
}

fn socket_addr(key: &str, value: &str, p: &mut Vec<Problem>) -> Option<SocketAddr> {
    match value.parse() {
        Ok(a) => Some(a),
        Err(_) => {
            p.push(Problem::new(
                key,
                format!("{value:?} is not an address like 0.0.0.0:8080 or [::1]:8080"),
            ));
            None
        }
    }
}

fn http_url(key: &str, value: &str, p: &mut Vec<Problem>) -> Option<url::Url> {
    let url = match url::Url::parse(value) {
        Ok(u) => u,
        Err(url::ParseError::RelativeUrlWithoutBase)
            if value.starts_with('/') || value.is_empty() =>
        {
            p.push(Problem::new(
                key,
                format!("{value:?} is not an absolute URL; write one like http://localhost:8080"),
            ));
            return None;
        }
        Err(url::ParseError::RelativeUrlWithoutBase) => {
            p.push(Problem::new(
                key,
                format!(
                    "{value:?} is not an absolute URL; write it with a scheme, e.g. http://{value}"
                ),
            ));
            return None;
        }
        Err(e) => {
            p.push(Problem::new(
                key,
                format!("{value:?} is not a valid URL: {e}"),
            ));
            return None;
        }
    };
    let problem = if !matches!(url.scheme(), "http" | "https") {
        Some(format!(
            "{value:?} must start with http:// or https:// (a bare host:port is read as scheme {:?})",
            url.scheme()
        ))
    } else if url.host_str().is_none_or(str::is_empty) {
        Some(format!("{value:?} has no host"))
    } else if url.path() != "/" {
        Some(format!(
            "{value:?} must not have a path; idgate serves from the root"
        ))
    } else if url.query().is_some() || url.fragment().is_some() {
        Some(format!("{value:?} must not have a query or fragment"))
    } else if !url.username().is_empty() || url.password().is_some() {
        Some("must not carry a user name or password".to_string())
    } else {
        None
    };
    match problem {
        Some(m) => {
            p.push(Problem::new(key, m));
            None
        }
        None => Some(url),
    }
}

fn ip_net(value: &str, p: &mut Vec<Problem>) -> Option<ipnet::IpNet> {
    if let Ok(net) = value.parse::<ipnet::IpNet>() {
        return Some(net);
    }
    if let Ok(ip) = value.parse::<std::net::IpAddr>() {
        return Some(ip.into());
    }
    p.push(Problem::new(
        "server.trusted_proxies",
        format!("{value:?} is not an IP address or CIDR such as 10.0.0.0/8"),
    ));
    None
}

/// Checks `server.tls` and, when it is set and usable, returns the
/// listener's TLS settings built from it.
fn check_tls(config: &Config, p: &mut Vec<Problem>) -> Option<Arc<rustls::ServerConfig>> {
    let tls = &config.server.tls;
    match (tls.cert.is_empty(), tls.key.is_empty()) {
        (true, true) => return None,
        (false, true) => p.push(Problem::new(
            "server.tls.key",
            "must be set when server.tls.cert is",
        )),
        (true, false) => p.push(Problem::new(
            "server.tls.cert",
            "must be set when server.tls.key is",
        )),
        (false, false) => {}
    }
    for (key, path, marker) in [
        ("server.tls.cert", &tls.cert, "CERTIFICATE"),
        ("server.tls.key", &tls.key, "PRIVATE KEY"),
    ] {
        if path.is_empty() {
            continue;
        }
        match std::fs::read_to_string(Path::new(path)) {
            Ok(text) if text.contains("-----BEGIN") && text.contains(marker) => {}
            Ok(_) => p.push(Problem::new(key, format!("{path} holds no PEM {marker}"))),
            Err(e) => p.push(Problem::new(key, format!("cannot read {path}: {e}"))),
        }
    }
    let readable = !p
        .iter()
        .any(|problem| problem.key.starts_with("server.tls"));
    if !readable || tls.cert.is_empty() || tls.key.is_empty() {
        return None;
    }
    crate::tls::server_config(&tls.cert, &tls.key)
        .map_err(|e| p.push(Problem::new(e.key, e.message)))
        .ok()
}

fn check_limits(config: &Config, p: &mut Vec<Problem>) {
    let s = &config.server;
    if !(1024..=PARSER_MAX_HEADER_BYTES).contains(&s.max_header_bytes) {
        p.push(Problem::new(
            "server.max_header_bytes",
            format!("must be between 1024 and {PARSER_MAX_HEADER_BYTES}"),
        ));
    }
    if s.max_uri_bytes < 256
        || s.max_uri_bytes > s.max_header_bytes
        || s.max_uri_bytes > PARSER_MAX_URI_BYTES
    {
        p.push(Problem::new(
            "server.max_uri_bytes",
            format!("must be at least 256 and at most server.max_header_bytes and {PARSER_MAX_URI_BYTES}"),
        ));
    }
    let u = &config.upstream;
    for (key, d) in [
        ("server.client_timeout", s.client_timeout),
        ("upstream.connect_timeout", u.connect_timeout),
        ("upstream.read_timeout", u.read_timeout),
        ("upstream.write_timeout", u.write_timeout),
    ] {
        if d.is_zero() {
            p.push(Problem::new(key, "must be longer than zero"));
        }
    }
    let s = &config.session;
    if s.lifetime.as_secs() < 60 {
        p.push(Problem::new("session.lifetime", "must be at least 1m"));
    }
    // Checked in whole seconds: less than one would ask the provider at
    // every request.
    if s.revalidate_every.as_secs() < 1 {
        p.push(Problem::new(
            "session.revalidate_every",
            "must be at least 1s",
        ));
    }
    if s.idle_timeout.as_secs() < 60 || s.idle_timeout > s.lifetime {
        p.push(Problem::new(
            "session.idle_timeout",
            "must be at least 1m and at most session.lifetime",
        ));
    }
    if config.assertion.lifetime.as_secs() < 10 || config.assertion.lifetime.as_secs() > 600 {
        p.push(Problem::new(
            "assertion.lifetime",
            "must be between 10s and 10m",
        ));
    }
    if config.oidc.timeout.is_zero() {
        p.push(Problem::new("oidc.timeout", "must be longer than zero"));
    }
    if config.oidc.login_timeout.as_secs() < 30 {
        p.push(Problem::new("oidc.login_timeout", "must be at least 30s"));
    }
    for (key, name) in [
        ("headers.user", &config.headers.user),
        ("headers.email", &config.headers.email),
        (
            "headers.preferred_username",
            &config.headers.preferred_username,
        ),
        ("headers.provider", &config.headers.provider),
        ("headers.assertion", &config.headers.assertion),
        ("headers.groups", &config.headers.groups),
        ("headers.roles", &config.headers.roles),
        ("headers.oid", &config.headers.oid),
        ("headers.tid", &config.headers.tid),
    ] {
        if name.is_empty() {
            continue;
        }
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            p.push(Problem::new(
                key,
                format!("{name:?} is not a valid header name"),
            ));
            continue;
        }
        // A name the gateway treats itself would be dropped or rewritten.
        if crate::policy::fields::is_named(name.as_bytes()) {
            p.push(Problem::new(
                key,
                format!(
                    "{name:?} is a header the gateway itself writes or removes; pick another name"
                ),
            ));
        }
    }
    if !config.assertion.key_file.is_empty() {
        if let Err(e) = std::fs::read_to_string(&config.assertion.key_file) {
            p.push(Problem::new(
                "assertion.key_file",
                format!("cannot read {}: {e}", config.assertion.key_file),
            ));
        }
    }
    if config.database.max_connections == 0 {
        p.push(Problem::new(
            "database.max_connections",
            "must be at least 1",
        ));
    }
}

fn check_database(url: &str, p: &mut Vec<Problem>) {
    if let Some(rest) = url.strip_prefix("sqlite://") {
        if rest.is_empty() || rest == "/" {
            p.push(Problem::new(
                "database.url",
                "names no file; write sqlite://data/idgate.db",
            ));
        }
        return;
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        if url::Url::parse(url).is_err() {
            p.push(Problem::new(
                "database.url",
                "is not a valid postgres:// URL",
            ));
        }
        return;
    }
    p.push(Problem::new(
        "database.url",
        "must start with sqlite:// or postgres://",
    ));
}

fn check_log(config: &Config, p: &mut Vec<Problem>) {
    if !matches!(config.log.format.as_str(), "text" | "json") {
        p.push(Problem::new(
            "log.format",
            format!("{:?} must be text or json", config.log.format),
        ));
    }
    if tracing_subscriber::EnvFilter::try_new(&config.log.level).is_err() {
        p.push(Problem::new(
            "log.level",
            format!(
                "{:?} is not a level (error, warn, info, debug, trace) or filter",
                config.log.level
            ),
        ));
    }
}
