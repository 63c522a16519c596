//! `idgate serve`: opens the store, starts the admin listener on a small
//! control runtime, and runs the proxy threads until a shutdown signal
//! drains them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;

use crate::admin::api::ApiState;
use crate::admin::{self, AdminState};
use crate::config::Loaded;
use crate::identity::assertion::SigningKey;
use crate::identity::keys::{AssertionKeys, SignerSettings};
use crate::login::console::ConsoleSignIn;
use crate::login::revalidate::Revalidator;
use crate::login::sign_out::SignOut;
use crate::login::AccessSettings;
use crate::login::LoginFlow;
use crate::metrics::Metrics;
use crate::oidc::{CacheConfig, OidcCache};
use crate::policy::fields::DEFAULT_IDENTITY_HEADERS;
use crate::policy::Policy;
use crate::provider_registry::Registry;
use crate::proxy::identity_headers::IdentityHeaders;
use crate::proxy::listener::{self, ListenerSettings};
use crate::proxy::upstream::Upstream;
use crate::proxy::Auth;
use crate::proxy::{Gateway, ProxySettings};
use crate::session::cookies::CookieCodec;
use crate::session::sealed::Sealer;
use crate::session::{Lifetimes, Sessions};
use crate::shutdown::{self, Signals};
use crate::store::announce::Announcement;
use crate::store::Store;
use crate::tts::bridge::Bridge;
use crate::tts::client::StackClient;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// Longest wait for the database pool to close at exit.
const STORE_CLOSE: std::time::Duration = std::time::Duration::from_secs(2);

/// Runs the gateway; returns only on a startup failure.
pub fn serve(cfg: Loaded) -> anyhow::Result<()> {
    let public = std::net::TcpListener::bind(cfg.listen)
        .with_context(|| format!("server.listen: cannot listen on {}", cfg.listen))?;
    preflight_bind("admin.listen", cfg.admin_listen)?;

    let control = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("idgate-control")
        .enable_all()
        .build()
        .context("cannot start the control runtime")?;

    let db = &cfg.config.database;
    let store = control.block_on(Store::open(&db.url, db.max_connections))?;
    tracing::info!(database = %crate::store::redact_url(&db.url), "database ready");

    let registry = control.block_on(Registry::load(
        store.clone(),
        cfg.providers.clone(),
        cfg.provider_rules(),
    ))?;
    control.spawn(registry.clone().keep_fresh());
    tracing::info!(
        providers = registry.list().len(),
        declared = cfg.providers.len(),
        "providers loaded"
    );

    let auth = control.block_on(build_auth(&cfg, &store, registry.clone()))?;
    control.spawn(auth.sessions.clone().keep_clean());
    control.spawn(hear_other_replicas(
        store.clone(),
        registry.clone(),
        auth.sessions.clone(),
    ));
    control.spawn(auth.keys.clone().keep_fresh());

    let upstream = Upstream::new(&cfg.upstream_url, cfg.config.upstream.clone())?;
    control.spawn(upstream.clone().keep_resolving());

    let metrics = Metrics::new();
    let draining = Arc::new(AtomicBool::new(false));
    let admin_state = AdminState {
        metrics: metrics.clone(),
        draining: draining.clone(),
        public_probe: probe_address(cfg.listen),
        api: ApiState::new(
            store.clone(),
            registry.clone(),
            auth.sessions.clone(),
            auth.keys.clone(),
            &cfg.config.admin.token,
        ),
    };
    let admin_listener = control
        .block_on(tokio::net::TcpListener::bind(cfg.admin_listen))
        .with_context(|| format!("admin.listen: cannot listen on {}", cfg.admin_listen))?;
    control.spawn(async move {
        if let Err(e) = axum::serve(admin_listener, admin::router(admin_state)).await {
            tracing::error!(error = %e, "admin listener stopped");
        }
    });
    if cfg.config.admin.token.is_empty() {
        tracing::warn!("admin.token is empty: the provider admin API is disabled");
    }

    let tls = cfg.tls.is_some();
    let s = &cfg.config.server;
    let settings = ProxySettings {
        max_header_bytes: s.max_header_bytes,
        max_uri_bytes: s.max_uri_bytes,
        client_timeout: s.client_timeout,
        trusted_proxies: cfg.trusted_proxies.clone(),
        identity_headers: DEFAULT_IDENTITY_HEADERS
            .iter()
            .map(|s| s.to_string())
            .chain(cfg.config.headers.names())
            .collect(),
        proto: if tls { "https" } else { "http" },
        fast_path: s.fast_path,
        login_attempts_per_minute: cfg.config.oidc.login_attempts_per_minute,
        policy: Policy::new(
            cfg.routes.clone(),
            cfg.tts.as_ref().map(|t| t.account_mount.as_str()),
        ),
    };
    let listener_settings = ListenerSettings {
        threads: match s.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        },
        tls: cfg.tls.clone().map(tokio_rustls::TlsAcceptor::from),
        max_head_bytes: head_buffer(s.max_header_bytes, s.max_uri_bytes),
        client_timeout: s.client_timeout,
        open_connections: metrics.open_connections.clone(),
        refused_connections: metrics.refused_connections.clone(),
    };
    let mut signals = {
        let _runtime = control.enter();
        Signals::listen().context("cannot listen for SIGTERM")?
    };
    let gateway = Arc::new(Gateway::new(settings, upstream, metrics.clone(), auth));
    listener::start(public, listener_settings, gateway.clone())
        .context("cannot start the proxy threads")?;

    tracing::info!(
        listen = %cfg.listen,
        tls,
        public_url = %cfg.public_url,
        upstream = %cfg.upstream_url,
        admin = %cfg.admin_listen,
        config = %cfg.source,
        "idgate is serving"
    );
    let signal = control.block_on(signals.recv());
    draining.store(true, Ordering::SeqCst);
    gateway.stop();
    let grace = cfg.config.server.shutdown_grace;
    tracing::info!(
        signal,
        in_flight = metrics.active_requests.get(),
        connections = metrics.open_connections.get(),
        grace_secs = grace.as_secs(),
        "shutting down: no new connections, draining in-flight requests"
    );
    shutdown::wait_drained(&metrics.active_requests, &metrics.open_connections, grace);
    // A request stuck on an unreachable database must not hold the exit.
    let closed = control.block_on(async { tokio::time::timeout(STORE_CLOSE, store.close()).await });
    if closed.is_err() {
        tracing::warn!("database connections still busy at exit; closed without waiting");
    }
    crate::logging::flush();
    std::process::exit(0)
}

/// The request head hyper may buffer: room for the largest head the
/// configured limits allow, so that the gateway's own 414 and 431 pages
/// answer a request over them rather than a bare refusal from the parser.
fn head_buffer(max_header_bytes: usize, max_uri_bytes: usize) -> usize {
    (max_header_bytes + max_uri_bytes + 4096).max(8192)
}

/// The cookie key, the assertion signing key (both shared by every replica
/// through the database), sessions and the login flow.
async fn build_auth(cfg: &Loaded, store: &Store, providers: Arc<Registry>) -> anyhow::Result<Auth> {
    let master = store
        .secret_or_create("cookie_key", || {
            let mut key = [0u8; 64];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
            STANDARD.encode(key)
        })
        .await?;
    let master = STANDARD
        .decode(master)
        .ok()
        .filter(|k| k.len() == 64)
        .context("the stored cookie key is damaged; delete the secrets row named cookie_key")?;
    let cookies = CookieCodec::new(&master, cfg.public_is_https());
    let session = &cfg.config.session;
    let lifetimes = Lifetimes {
        absolute: session.lifetime.as_secs() as i64,
        idle: session.idle_timeout.as_secs() as i64,
        revalidate_every: session.revalidate_every.as_secs() as i64,
        revalidate_grace: session.revalidate_grace.as_secs() as i64,
    };
    let sessions = Arc::new(Sessions::new(
        store.clone(),
        providers.clone(),
        cookies,
        lifetimes,
        cfg.access.clone(),
        Sealer::new(&master),
    ));
    let oidc = OidcCache::new(CacheConfig {
        timeout: cfg.config.oidc.timeout,
        allow_insecure_http: cfg.config.oidc.allow_insecure_http,
        ..CacheConfig::default()
    })
    .context("cannot build the HTTP client for identity providers")?;
    let console = match &cfg.tts {
        Some(t) => {
            let client = StackClient::new(&t.url, &t.api_key, &t.account_mount, t.timeout)
                .context("cannot build the HTTP client for The Things Stack")?;
            Some(Arc::new(ConsoleSignIn::new(
                Bridge::new(client, store.clone()),
                &t.account_mount,
                &t.console_mount,
                cfg.public_is_https(),
            )))
        }
        None => None,
    };
    let sign_out = SignOut::new(
        oidc.clone(),
        providers.clone(),
        sessions.clone(),
        &cfg.public_url,
    );
    let access = AccessSettings {
        rule: cfg.access.clone(),
        groups_needed: !cfg.access.groups.is_empty()
            || crate::policy::rules::named_groups(&cfg.routes)
                .next()
                .is_some(),
        graph_url: cfg.config.oidc.graph_url.clone(),
    };
    let revalidator = Arc::new(Revalidator::new(
        oidc.clone(),
        providers.clone(),
        sessions.clone(),
        access.clone(),
    ));
    let login = Arc::new(LoginFlow::new(
        oidc,
        providers.clone(),
        store.clone(),
        sessions.clone(),
        &cfg.public_url,
        cfg.config.oidc.login_timeout,
        console,
        access,
    ));
    let a = &cfg.config.assertion;
    let settings = SignerSettings {
        issuer: cfg.public_url.as_str().trim_end_matches('/').to_string(),
        audience: if a.audience.is_empty() {
            cfg.upstream_url.as_str().trim_end_matches('/').to_string()
        } else {
            a.audience.clone()
        },
        lifetime: a.lifetime,
    };
    let keys = if a.key_file.is_empty() {
        AssertionKeys::load(store.clone(), settings).await?
    } else {
        let pem = std::fs::read_to_string(&a.key_file)
            .with_context(|| format!("assertion.key_file: cannot read {}", a.key_file))?;
        let key = SigningKey::from_pem(&pem).with_context(|| {
            format!(
                "assertion.key_file: {} holds no usable ES256 key",
                a.key_file
            )
        })?;
        AssertionKeys::fixed(store.clone(), settings, key)
    };
    let keys = Arc::new(keys);
    Ok(Auth {
        providers,
        sessions,
        login,
        sign_out,
        revalidator,
        keys,
        headers: IdentityHeaders::new(
            &cfg.config.headers,
            cfg.config.server.max_header_bytes,
            cfg.access
                .groups
                .iter()
                .chain(crate::policy::rules::named_groups(&cfg.routes))
                .cloned()
                .collect(),
        ),
        public_origin: cfg.public_url.origin().ascii_serialization(),
    })
}

/// Applies what other replicas announce (PostgreSQL only): ended sessions
/// and deleted people leave this replica's caches, a changed provider is
/// read again and its cached sessions checked afresh.
async fn hear_other_replicas(store: Store, registry: Arc<Registry>, sessions: Arc<Sessions>) {
    store
        .listen(|a| {
            let (registry, sessions) = (registry.clone(), sessions.clone());
            async move {
                if let Announcement::Provider(_) = a {
                    if let Err(e) = registry.refresh().await {
                        tracing::warn!(error = %e, "cannot read the providers again");
                    }
                }
                sessions.heard(&a).await;
            }
        })
        .await;
}

/// Fails early, with the key to fix, when an address cannot be listened on.
fn preflight_bind(key: &str, addr: SocketAddr) -> anyhow::Result<()> {
    std::net::TcpListener::bind(addr)
        .map(drop)
        .with_context(|| format!("{key}: cannot listen on {addr}"))
}

/// The address to reach a listener from this host (loopback for a wildcard).
fn probe_address(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}
