//! The gateway's configuration: a TOML file, `IDGATE_<SECTION>_<KEY>`
//! environment overrides that win over it, and embedded defaults when there
//! is no file at all.
//!
//! Loading never stops at the first mistake: every problem is collected and
//! reported as `key: what is wrong`, so an operator fixes a config in one go.

mod keys;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use keys::{env_name, Kind, KEYS};

/// Where `serve` and `check-config` look when neither `--config` nor
/// `IDGATE_CONFIG` names a file.
pub const DEFAULT_PATH: &str = "config/idgate.toml";

/// One thing wrong with a configuration, tied to the key it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl Problem {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Every problem found in a configuration.
#[derive(Debug, Clone)]
pub struct Problems(pub Vec<Problem>);

impl std::fmt::Display for Problems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Config {
    pub server: ServerConfig,
    pub upstream: UpstreamConfig,
    pub admin: AdminConfig,
    pub database: DatabaseConfig,
    pub log: LogConfig,
    pub oidc: OidcConfig,
    pub session: SessionConfig,
    pub headers: HeadersConfig,
    pub access: AccessConfig,
    pub assertion: AssertionConfig,
    /// Providers declared here are read-only through the admin API.
    pub providers: Vec<crate::providers::ProviderChange>,
    /// Requests that pass without a session; first match wins.
    pub routes: Vec<RouteConfig>,
    pub tts: TtsConfig,
}

/// `[access]`: the groups and app roles a person needs to sign in.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AccessConfig {
    pub allowed_groups: Vec<String>,
    pub allowed_roles: Vec<String>,
}

/// One `[[routes]]` entry as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// A prefix when it ends in `/` (also covering the path without it),
    /// else the exact path.
    pub path: String,
    /// Empty: every method.
    #[serde(default)]
    pub methods: Vec<String>,
    /// `public` or `bearer`: passes without a session.
    pub allow: Option<String>,
    /// Groups (any one) a session needs here, beside `[access]`.
    #[serde(default)]
    pub require_groups: Vec<String>,
    /// Roles (any one) a session needs here, beside `[access]`.
    #[serde(default)]
    pub require_roles: Vec<String>,
}

/// `[tts]`: signing people in to The Things Stack's console.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct TtsConfig {
    /// The stack's HTTP address as idgate reaches it; empty: `upstream.url`.
    pub url: String,
    pub api_key: String,
    pub api_key_file: String,
    pub account_mount: String,
    pub console_mount: String,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for TtsConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            api_key: String::new(),
            api_key_file: String::new(),
            account_mount: "/oauth".into(),
            console_mount: "/console".into(),
            timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct OidcConfig {
    pub allow_insecure_http: bool,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub login_timeout: Duration,
    pub login_attempts_per_minute: u32,
    /// Microsoft Graph, asked for the groups of a person in too many for
    /// the token.
    pub graph_url: String,
}

impl Default for OidcConfig {
    fn default() -> Self {
        Self {
            allow_insecure_http: false,
            timeout: Duration::from_secs(10),
            login_timeout: Duration::from_secs(600),
            login_attempts_per_minute: 30,
            graph_url: "https://graph.microsoft.com".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SessionConfig {
    #[serde(with = "humantime_serde")]
    pub lifetime: Duration,
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// How long the provider's word holds before a session is checked
    /// again with it (refresh token).
    #[serde(with = "humantime_serde")]
    pub revalidate_every: Duration,
    /// How long past that a session goes on while the provider cannot be
    /// asked.
    #[serde(with = "humantime_serde")]
    pub revalidate_grace: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            lifetime: Duration::from_secs(12 * 3600),
            idle_timeout: Duration::from_secs(2 * 3600),
            revalidate_every: Duration::from_secs(3600),
            revalidate_grace: Duration::from_secs(3600),
        }
    }
}

/// Names of the identity headers sent upstream; an empty name is not sent.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct HeadersConfig {
    pub user: String,
    pub email: String,
    pub preferred_username: String,
    pub provider: String,
    pub assertion: String,
    pub groups: String,
    pub roles: String,
    pub oid: String,
    pub tid: String,
}

impl Default for HeadersConfig {
    fn default() -> Self {
        Self {
            user: "X-Forwarded-User".into(),
            email: "X-Forwarded-Email".into(),
            preferred_username: "X-Forwarded-Preferred-Username".into(),
            provider: "X-Idgate-Provider".into(),
            assertion: "X-Idgate-Assertion".into(),
            groups: String::new(),
            roles: String::new(),
            oid: String::new(),
            tid: String::new(),
        }
    }
}

impl HeadersConfig {
    /// Every configured name, lower-case with `-` for `_` (the form header
    /// stripping compares against): all are removed from client requests.
    pub fn names(&self) -> Vec<String> {
        [
            &self.user,
            &self.email,
            &self.preferred_username,
            &self.provider,
            &self.assertion,
            &self.groups,
            &self.roles,
            &self.oid,
            &self.tid,
        ]
        .into_iter()
        .filter(|n| !n.is_empty())
        .map(|n| n.to_ascii_lowercase().replace('_', "-"))
        .collect()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct AssertionConfig {
    /// `aud` of the assertion; empty means the upstream URL.
    pub audience: String,
    #[serde(with = "humantime_serde")]
    pub lifetime: Duration,
    /// A PEM ES256 key to sign with instead of the generated one.
    pub key_file: String,
}

impl Default for AssertionConfig {
    fn default() -> Self {
        Self {
            audience: String::new(),
            lifetime: Duration::from_secs(300),
            key_file: String::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ServerConfig {
    pub listen: String,
    pub public_url: String,
    pub trusted_proxies: Vec<String>,
    pub max_header_bytes: usize,
    pub max_uri_bytes: usize,
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    #[serde(with = "humantime_serde")]
    pub client_timeout: Duration,
    pub threads: usize,
    /// HTTP/1.1 requests of signed-in people forwarded by the fast path
    /// (false: hyper serves every request).
    pub fast_path: bool,
    pub tls: TlsConfig,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TlsConfig {
    pub cert: String,
    pub key: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct UpstreamConfig {
    pub url: String,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub read_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub write_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    pub tls_verify: bool,
    pub pass_host_header: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct AdminConfig {
    pub listen: String,
    pub token: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct DatabaseConfig {
    pub url: String,
    pub max_connections: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    pub format: String,
    pub level: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8080".into(),
            public_url: "http://localhost:8080".into(),
            trusted_proxies: Vec::new(),
            max_header_bytes: 32 * 1024,
            max_uri_bytes: 8 * 1024,
            shutdown_grace: Duration::from_secs(30),
            client_timeout: Duration::from_secs(30),
            threads: 0,
            fast_path: true,
            tls: TlsConfig::default(),
        }
    }
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:1885".into(),
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            tls_verify: true,
            pass_host_header: true,
        }
    }
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9090".into(),
            token: String::new(),
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://data/idgate.db".into(),
            max_connections: 8,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

/// Where a configuration came from, for the startup log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    File(PathBuf),
    Defaults,
    /// Built by `idgate demo`.
    Demo,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Defaults => write!(f, "built-in defaults (no file at {DEFAULT_PATH})"),
            Source::Demo => write!(f, "the demo's own configuration"),
        }
    }
}

/// A configuration that passed every check, with the parsed forms of the
/// values that the rest of the gateway needs.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub source: Source,
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub public_url: url::Url,
    pub upstream_url: url::Url,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The `[[providers]]` of the file, validated.
    pub providers: Vec<crate::providers::Provider>,
    /// The public listener's TLS settings, when `server.tls` is set.
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    /// The `[[routes]]`, validated.
    pub routes: Vec<crate::policy::Rule>,
    /// `[access]`, validated.
    pub access: crate::policy::access::Requirement,
    /// The console sign-in, when `[tts]` has an API key.
    pub tts: Option<TtsSettings>,
}

/// `[tts]` once validated: console sign-in is on.
#[derive(Clone)]
pub struct TtsSettings {
    pub url: url::Url,
    pub api_key: String,
    pub account_mount: String,
    pub console_mount: String,
    pub timeout: Duration,
}

impl std::fmt::Debug for TtsSettings {
    /// Everything but the API key, which is a root credential of the stack.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TtsSettings")
            .field("url", &self.url.as_str())
            .field("api_key", &"<redacted>")
            .field("account_mount", &self.account_mount)
            .field("console_mount", &self.console_mount)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Loaded {
    /// The provider rules this gateway applies.
    pub fn provider_rules(&self) -> crate::providers::validate::Rules {
        crate::providers::validate::Rules {
            allow_insecure_http: self.config.oidc.allow_insecure_http,
        }
    }

    /// Whether browsers reach the gateway over https (decides cookie flags).
    pub fn public_is_https(&self) -> bool {
        self.public_url.scheme() == "https"
    }
}

/// Loads the configuration from `explicit` (from `--config` or
/// `IDGATE_CONFIG`), else from [`DEFAULT_PATH`] when it exists, else from
/// the embedded defaults; then applies environment overrides and validates.
pub fn load(explicit: Option<&Path>) -> Result<Loaded, Problems> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    load_with_env(explicit, &env)
}

/// [`load`] with the environment given explicitly (tests, `demo`).
pub fn load_with_env(
    explicit: Option<&Path>,
    env: &[(String, String)],
) -> Result<Loaded, Problems> {
    let (text, source) = read_source(explicit)?;
    from_toml_str(&text, source, env)
}

fn read_source(explicit: Option<&Path>) -> Result<(String, Source), Problems> {
    let (path, required) = match explicit {
        Some(p) => (p.to_path_buf(), true),
        None => (PathBuf::from(DEFAULT_PATH), false),
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok((text, Source::File(path))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            Ok((String::new(), Source::Defaults))
        }
        Err(e) => Err(Problems(vec![Problem::new(
            "config",
            format!("cannot read {}: {e}", path.display()),
        )])),
    }
}

/// Parses, overrides from `env`, and validates a configuration text.
pub fn from_toml_str(
    text: &str,
    source: Source,
    env: &[(String, String)],
) -> Result<Loaded, Problems> {
    let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        Problems(vec![Problem::new(
            "config",
            format!("not valid TOML: {}", e.message()),
        )])
    })?;
    let mut problems = keys::check_types(&table);
    problems.extend(keys::apply_env(&mut table, env));
    if !problems.is_empty() {
        return Err(Problems(problems));
    }
    let config: Config = toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| Problems(vec![Problem::new("config", e.message())]))?;
    validate::validate(config, source)
}
