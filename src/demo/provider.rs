//! A local, Entra-shaped OpenID Provider for `idgate demo` and idgate's
//! end-to-end tests, so that every test runs the real authorization code flow
//! with PKCE and real RS256 ID tokens.
//!
//! **For demos and tests only, never production.** It signs in made-up users
//! without any password, lets the request choose every claim (`auto=1`), mints
//! deliberately broken tokens on request (`fault=`), keeps all keys and codes
//! in memory, and offers unauthenticated `/_counters`, `/_rotate` and `/_revoke` routes.
//!
//! It serves the Microsoft Entra ID v2.0 endpoints under any tenant segment:
//!
//! | route | what |
//! | --- | --- |
//! | `GET /<tenant>/v2.0/.well-known/openid-configuration` | discovery |
//! | `GET /<tenant>/discovery/v2.0/keys` | JWKS: current key and, after a rollover, the previous one |
//! | `GET`/`POST /<tenant>/oauth2/v2.0/authorize` | authorization endpoint: sign-in form, or `auto=1` |
//! | `POST /<tenant>/oauth2/v2.0/token` | token endpoint: `authorization_code` grant |
//! | `GET /<tenant>/oauth2/v2.0/logout` | sign-out: the client's front-channel logout URL in hidden frames for each of the person's sessions, then back to `post_logout_redirect_uri` when it has the origin of one of the client's redirect URIs |
//! | `GET /_counters` | request counts per endpoint, as JSON |
//! | `GET /v1.0/me/transitiveMemberOf` | a small Microsoft Graph: the groups a sign-in chose, for its access token, paged |
//! | `/_claim_source_trap/…` | the `_claim_sources` address of a groups-overage token (`overage=claim_names`): counted, 403 |
//! | `POST /_rotate` | key rollover; `?drop_old=true` publishes only the new key |
//! | `POST /_revoke?sub=<sub>` | revokes a person's refresh tokens: their next revalidation gets `invalid_grant` |
//!
//! As in Entra, the tenants `common` and `organizations` publish the issuer
//! `<base>/{tenantid}/v2.0` and their tokens carry the user's real `tid` in
//! `iss`; any other tenant segment is itself the `tid`.

mod authorize;
mod codes;
mod graph;
pub use graph::DIRECTORY_ROLE_ID;
mod id_token;
mod keys;
mod logout;
mod metadata;
mod reply;
mod token;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, RwLock};

use axum::extract::{RawQuery, State};
use axum::http::header::CACHE_CONTROL;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::rngs::OsRng;
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use url::Url;

use codes::{CodeStore, MAX_CODES};
use keys::{KeySet, SigningKey};

/// The `tid` of users signed in through `common` or `organizations` when the
/// request names none.
pub const DEFAULT_TID: &str = "7d3c6e0a-5b1f-4c2e-9a8d-1f0e2d3c4b5a";

/// A registered application (relying party).
#[derive(Clone)]
pub struct Client {
    pub client_id: String,
    pub client_secret: String,
    /// Redirect URIs a request may name; matched by exact string equality.
    pub redirect_uris: Vec<String>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("redirect_uris", &self.redirect_uris)
            .finish()
    }
}

/// Requests served per endpoint, whatever their outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub discovery: u64,
    pub authorize: u64,
    pub token: u64,
    pub keys: u64,
    pub logout: u64,
    /// Calls to the small Microsoft Graph.
    pub graph: u64,
    /// Refresh-token grants asked for.
    pub refresh: u64,
    /// Calls to the `_claim_sources` address a groups-overage token names,
    /// which a relying party must never call.
    pub claim_source: u64,
}

#[derive(Default)]
struct AtomicCounters {
    discovery: AtomicU64,
    authorize: AtomicU64,
    token: AtomicU64,
    keys: AtomicU64,
    logout: AtomicU64,
    graph: AtomicU64,
    refresh: AtomicU64,
    claim_source: AtomicU64,
}

/// The demo OpenID Provider; cheap to clone, all clones share one state.
/// For demos and tests only, never production.
#[derive(Clone)]
pub struct Provider {
    inner: Arc<Inner>,
}

struct Inner {
    /// Origin (and optional path prefix) without a trailing slash.
    base: String,
    clients: RwLock<HashMap<String, Client>>,
    keys: RwLock<KeySet>,
    /// The key of the `unknown_kid` fault, made on first use, never published.
    unpublished: OnceLock<Arc<SigningKey>>,
    codes: Mutex<CodeStore>,
    counters: AtomicCounters,
    /// Whether discovery names the sign-out endpoint.
    sign_out: std::sync::atomic::AtomicBool,
    /// What the small Graph answers, per access token issued.
    graph: Mutex<HashMap<String, graph::GraphUser>>,
    /// Refresh tokens issued, and what each stands for.
    refresh_tokens: Mutex<HashMap<String, Refreshable>>,
    /// Changes made to people since their sign-in, by `sub`.
    directory: Mutex<HashMap<String, DirectoryChange>>,
    /// How the token endpoint answers refreshes, when not as it should.
    refresh_fault: Mutex<Option<RefreshFault>>,
    /// Front-channel logout URLs, by client ID.
    front_channel: Mutex<HashMap<String, String>>,
    /// Provider sessions (`sid`, and the issuer of its tokens) signed in,
    /// by `login_hint`.
    signed_in: Mutex<HashMap<String, Vec<(String, String)>>>,
}

/// A refresh answered wrongly, on request: what a relying party must
/// survive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefreshFault {
    /// 503 `temporarily_unavailable`: the provider is down.
    Outage,
    /// Tokens without an ID token.
    NoIdToken,
    /// An ID token for another `sub`.
    OtherSub,
}

/// What a refresh token stands for.
#[derive(Clone)]
struct Refreshable {
    tenant: String,
    client_id: String,
    user: id_token::UserClaims,
}

/// A change made to a person at the provider after their sign-in.
#[derive(Clone, Default)]
struct DirectoryChange {
    /// Their refresh tokens are revoked (disabled, password reset).
    revoked: bool,
    /// Their groups now.
    groups: Option<Vec<String>>,
}

impl Provider {
    /// A provider whose endpoints live under `base_url` (for example
    /// `http://127.0.0.1:41234`, or `http://host/idp` when its router is
    /// nested under `/idp`). Generates the first RSA-2048 signing key, which
    /// takes a moment: from async code, call it through `spawn_blocking`.
    pub fn new(base_url: Url) -> Provider {
        Provider {
            inner: Arc::new(Inner {
                base: base_url.as_str().trim_end_matches('/').to_owned(),
                clients: RwLock::new(HashMap::new()),
                keys: RwLock::new(KeySet::new(SigningKey::generate())),
                unpublished: OnceLock::new(),
                codes: Mutex::new(CodeStore::new(MAX_CODES)),
                counters: AtomicCounters::default(),
                sign_out: std::sync::atomic::AtomicBool::new(true),
                graph: Mutex::new(HashMap::new()),
                refresh_tokens: Mutex::new(HashMap::new()),
                directory: Mutex::new(HashMap::new()),
                refresh_fault: Mutex::new(None),
                front_channel: Mutex::new(HashMap::new()),
                signed_in: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Leaves `end_session_endpoint` out of discovery from now on, as a
    /// provider without RP-Initiated Logout does.
    pub fn without_sign_out(&self) {
        self.inner.sign_out.store(false, Ordering::Relaxed);
    }

    /// Registers the front-channel logout URL of client `client_id` (Entra:
    /// *Authentication* → *Front-channel logout URL*): the sign-out page
    /// loads it, in a hidden frame, for each session of the person.
    pub fn set_front_channel_logout(&self, client_id: &str, uri: &str) {
        lock(&self.inner.front_channel).insert(client_id.to_owned(), uri.to_owned());
    }

    fn front_channel_logout_uri(&self, client_id: &str) -> Option<String> {
        lock(&self.inner.front_channel).get(client_id).cloned()
    }

    /// Records the provider session `sid` of the person `login_hint` names,
    /// in tenant `tid`.
    fn signed_in(&self, login_hint: &str, sid: &str, tid: &str) {
        let mut signed_in = lock(&self.inner.signed_in);
        if signed_in.len() >= MAX_CODES {
            signed_in.clear();
        }
        let sids = signed_in.entry(login_hint.to_owned()).or_default();
        if !sids.iter().any(|(s, _)| s == sid) {
            sids.push((sid.to_owned(), self.issuer_for(tid)));
        }
    }

    /// Ends every provider session of the person `login_hint` names: each
    /// `sid` with the issuer of its tokens.
    fn sign_out_sessions(&self, login_hint: &str) -> Vec<(String, String)> {
        lock(&self.inner.signed_in)
            .remove(login_hint)
            .unwrap_or_default()
    }

    /// Registers `client`, replacing any client with the same id.
    pub fn register_client(&self, client: Client) {
        write(&self.inner.clients).insert(client.client_id.clone(), client);
    }

    /// The provider's routes (see the module docs), sharing this provider.
    pub fn router(&self) -> Router {
        Router::new()
            .route(
                "/{tenant}/v2.0/.well-known/openid-configuration",
                get(metadata::discovery),
            )
            .route("/{tenant}/discovery/v2.0/keys", get(metadata::jwks))
            .route(
                "/{tenant}/oauth2/v2.0/authorize",
                get(authorize::get).post(authorize::post),
            )
            .route("/{tenant}/oauth2/v2.0/token", post(token::token))
            .route("/{tenant}/oauth2/v2.0/logout", get(logout::logout))
            .route(
                "/v1.0/me/transitiveMemberOf",
                get(graph::transitive_member_of),
            )
            .route(
                "/_claim_source_trap/{*rest}",
                get(claim_source).post(claim_source),
            )
            .route("/_counters", get(counters))
            .route("/_rotate", post(rotate))
            .route("/_revoke", post(revoke))
            .with_state(self.clone())
    }

    /// Key rollover: a new current signing key; the JWKS publishes it and
    /// still the previous one, as Entra does. Generates an RSA key: from async
    /// code, call it through `spawn_blocking`.
    pub fn rotate_keys(&self) {
        self.rotate(true);
    }

    /// Like [`Provider::rotate_keys`], but the JWKS publishes only the new key.
    pub fn rotate_keys_dropping_old(&self) {
        self.rotate(false);
    }

    fn rotate(&self, keep_previous: bool) {
        let next = SigningKey::generate();
        write(&self.inner.keys).rotate(next, keep_previous);
    }

    /// The kid of the key that signs new tokens.
    pub fn current_kid(&self) -> String {
        read(&self.inner.keys).current().kid.clone()
    }

    /// Requests served so far, per endpoint.
    pub fn counters(&self) -> Counters {
        let c = &self.inner.counters;
        Counters {
            discovery: c.discovery.load(Ordering::Relaxed),
            authorize: c.authorize.load(Ordering::Relaxed),
            token: c.token.load(Ordering::Relaxed),
            keys: c.keys.load(Ordering::Relaxed),
            logout: c.logout.load(Ordering::Relaxed),
            graph: c.graph.load(Ordering::Relaxed),
            refresh: c.refresh.load(Ordering::Relaxed),
            claim_source: c.claim_source.load(Ordering::Relaxed),
        }
    }

    /// The provider's origin (and path prefix), without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    /// The issuer discovery publishes for `tenant`: `<base>/<tenant>/v2.0`,
    /// or `<base>/{tenantid}/v2.0` for `common` and `organizations`.
    pub fn issuer_for(&self, tenant: &str) -> String {
        let segment = if is_multi_tenant(tenant) {
            "{tenantid}"
        } else {
            tenant
        };
        format!("{}/{segment}/v2.0", self.inner.base)
    }

    fn endpoint(&self, tenant: &str, path: &str) -> String {
        format!("{}/{tenant}/{path}", self.inner.base)
    }

    /// Revokes every refresh token of the person `sub` (as disabling the
    /// account or resetting its password does): refreshes get
    /// `invalid_grant`.
    pub fn revoke(&self, sub: &str) {
        lock(&self.inner.directory)
            .entry(sub.to_owned())
            .or_default()
            .revoked = true;
    }

    /// Makes `groups` the groups of the person `sub` from now on (their ID
    /// tokens at refresh, and Graph).
    pub fn set_groups(&self, sub: &str, groups: &[&str]) {
        lock(&self.inner.directory)
            .entry(sub.to_owned())
            .or_default()
            .groups = Some(groups.iter().map(|g| g.to_string()).collect());
    }

    /// Every refresh token issued so far.
    pub fn refresh_tokens_issued(&self) -> Vec<String> {
        lock(&self.inner.refresh_tokens).keys().cloned().collect()
    }

    /// From now on the token endpoint answers refreshes with `fault`
    /// (`None`: as it should).
    pub fn refresh_fault(&self, fault: Option<RefreshFault>) {
        *lock(&self.inner.refresh_fault) = fault;
    }

    fn current_refresh_fault(&self) -> Option<RefreshFault> {
        *lock(&self.inner.refresh_fault)
    }

    /// A new refresh token for `grant`'s person.
    fn issue_refresh(&self, grant: &codes::Grant) -> String {
        let token = random_token(32);
        let mut issued = lock(&self.inner.refresh_tokens);
        if issued.len() >= MAX_CODES {
            issued.clear();
        }
        let refreshable = Refreshable {
            tenant: grant.tenant.clone(),
            client_id: grant.client_id.clone(),
            user: grant.user.clone(),
        };
        issued.insert(token.clone(), refreshable);
        token
    }

    /// What the refresh token `token` stands for now, with the changes made
    /// to its person since; `None` when unknown or revoked.
    fn refreshed(&self, token: &str) -> Option<Refreshable> {
        let mut found = lock(&self.inner.refresh_tokens).get(token).cloned()?;
        let change = lock(&self.inner.directory)
            .get(&found.user.sub)
            .cloned()
            .unwrap_or_default();
        if change.revoked {
            return None;
        }
        if let Some(groups) = change.groups {
            found.user.groups = groups;
        }
        Some(found)
    }

    /// Remembers what Graph says for `access_token`.
    fn issued(&self, access_token: &str, user: graph::GraphUser) {
        let mut graph = self
            .inner
            .graph
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if graph.len() >= MAX_CODES {
            graph.clear();
        }
        graph.insert(access_token.to_owned(), user);
    }

    fn graph_user(&self, access_token: &str) -> Option<graph::GraphUser> {
        let graph = self
            .inner
            .graph
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        graph.get(access_token).cloned()
    }

    fn client(&self, client_id: &str) -> Option<Client> {
        read(&self.inner.clients).get(client_id).cloned()
    }

    fn current_key(&self) -> Arc<SigningKey> {
        read(&self.inner.keys).current()
    }

    /// The never-published key of the `unknown_kid` fault; generated on first
    /// use, so call it off the async worker threads.
    fn unpublished_key(&self) -> Arc<SigningKey> {
        Arc::clone(
            self.inner
                .unpublished
                .get_or_init(|| Arc::new(SigningKey::generate())),
        )
    }

    fn codes(&self) -> MutexGuard<'_, CodeStore> {
        self.inner
            .codes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Binds `127.0.0.1:port` (0 picks a free port), serves a new provider on it
/// in the background of the current tokio runtime, and returns the provider,
/// its base URL set to `http://127.0.0.1:<port>`, with the bound address.
/// For demos and tests only, never production.
pub async fn spawn_local(port: u16) -> std::io::Result<(Provider, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
    let addr = listener.local_addr()?;
    let base = Url::parse(&format!("http://{addr}")).map_err(std::io::Error::other)?;
    Ok((serve(listener, base).await?, addr))
}

/// Serves a new provider on `listener` in the background of the current
/// tokio runtime; `base` is the origin browsers and relying parties use.
/// For demos and tests only, never production.
pub async fn serve(listener: tokio::net::TcpListener, base: Url) -> std::io::Result<Provider> {
    let provider = tokio::task::spawn_blocking(move || Provider::new(base))
        .await
        .map_err(std::io::Error::other)?;
    let app = provider.router();
    tokio::spawn(async move {
        // Serving ends only with the runtime; accept errors are retried inside.
        axum::serve(listener, app).await
    });
    Ok(provider)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

/// `common` and `organizations`: tenants whose issuer holds `{tenantid}`.
fn is_multi_tenant(tenant: &str) -> bool {
    tenant.eq_ignore_ascii_case("common") || tenant.eq_ignore_ascii_case("organizations")
}

/// A tenant segment or tid that is safe to put into URLs unescaped.
fn is_valid_tenant(tenant: &str) -> bool {
    !tenant.is_empty()
        && tenant.len() <= 128
        && tenant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

/// `bytes` random bytes from the OS, base64url without padding.
fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    OsRng.fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// Form-urlencoded parameters of a query string or request body, in order.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(input: &[u8]) -> Params {
        Params(url::form_urlencoded::parse(input).into_owned().collect())
    }

    /// The first parameter name given more than once (RFC 6749 §3.1 forbids it).
    fn repeated(&self) -> Option<&str> {
        let mut seen = HashSet::new();
        self.0
            .iter()
            .map(|(name, _)| name.as_str())
            .find(|name| !seen.insert(*name))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

/// A rendered page, not to be cached; a failed rendering is a bare 500.
fn html(status: StatusCode, rendered: askama::Result<String>) -> Response {
    match rendered {
        Ok(body) => (status, [(CACHE_CONTROL, "no-store")], Html(body)).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// An OAuth-style JSON error: `{"error": …, "error_description": …}`.
fn json_error(status: StatusCode, error: &str, description: &str) -> Response {
    let body = serde_json::json!({ "error": error, "error_description": description });
    (status, Json(body)).into_response()
}

/// The `_claim_sources` endpoint of a groups-overage token: counted, and
/// refused, as no relying party should call it.
async fn claim_source(State(provider): State<Provider>) -> Response {
    provider
        .inner
        .counters
        .claim_source
        .fetch_add(1, Ordering::Relaxed);
    json_error(
        StatusCode::FORBIDDEN,
        "trap",
        "never call the endpoint named in a token",
    )
}

async fn counters(State(provider): State<Provider>) -> Json<Counters> {
    Json(provider.counters())
}

/// `POST /_revoke?sub=<sub>`: revokes the person's refresh tokens.
async fn revoke(State(provider): State<Provider>, RawQuery(query): RawQuery) -> Response {
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    match params.get("sub").filter(|s| !s.is_empty()) {
        Some(sub) => {
            provider.revoke(sub);
            StatusCode::NO_CONTENT.into_response()
        }
        None => json_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "name the person: ?sub=<sub>",
        ),
    }
}

#[derive(Serialize)]
struct Rotated {
    current_kid: String,
    published_kids: Vec<String>,
}

/// `POST /_rotate[?drop_old=true]`: key rollover over HTTP.
async fn rotate(State(provider): State<Provider>, RawQuery(query): RawQuery) -> Response {
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    let keep_previous = match params.get("drop_old") {
        None | Some("false") => true,
        Some("true") => false,
        Some(_) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "drop_old must be true or false",
            )
        }
    };
    let rotating = provider.clone();
    if tokio::task::spawn_blocking(move || rotating.rotate(keep_previous))
        .await
        .is_err()
    {
        return json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "key generation failed",
        );
    }
    let keys = read(&provider.inner.keys);
    Json(Rotated {
        current_kid: keys.current().kid.clone(),
        published_kids: keys.kids(),
    })
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters_are_found() {
        assert_eq!(Params::parse(b"a=1&b=2").repeated(), None);
        assert_eq!(Params::parse(b"a=1&b=2&a=3").repeated(), Some("a"));
    }

    #[test]
    fn tenant_segments_are_restricted_to_url_safe_characters() {
        assert!(is_valid_tenant("contoso.onmicrosoft.com"));
        assert!(is_valid_tenant(DEFAULT_TID));
        assert!(!is_valid_tenant(""));
        assert!(!is_valid_tenant("a/b"));
        assert!(!is_valid_tenant("<x>"));
    }

    #[test]
    fn client_debug_hides_the_secret() {
        let client = Client {
            client_id: "app".into(),
            client_secret: "hunter2".into(),
            redirect_uris: vec![],
        };
        assert!(!format!("{client:?}").contains("hunter2"));
    }
}
