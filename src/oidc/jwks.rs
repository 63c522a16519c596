//! The provider cache: one shared HTTP client for every call to an identity
//! provider, discovery metadata cached per provider URL, and signing keys
//! cached per `jwks_uri` with a rate-limited, single-flight refetch when a
//! token names a key id the cache does not know. Also the error type of the
//! whole OpenID Connect core, and the token-endpoint form POST.

use std::collections::HashMap;
use std::error::Error as _;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;
use moka::future::Cache;
use reqwest::header::ACCEPT;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;

use super::discovery::{self, Metadata};

/// Default limit on one whole call to a provider, body included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Default least time between two refetches of one JWKS for unknown kids.
pub const DEFAULT_MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(30);

/// How long discovery metadata is reused before it is fetched again.
const METADATA_TTL: Duration = Duration::from_secs(60 * 60);

/// How long a key set is trusted before it is fetched again, so keys a
/// provider withdrew stop working even if no token names a new kid.
const JWKS_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Most providers (and key sets) cached at once.
const MAX_ENTRIES: u64 = 1024;

/// Largest answer read from a provider.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Longest provider- or token-supplied text kept in an error.
const MAX_ERROR_TEXT: usize = 256;

/// Token request fields whose values never appear in an error, even if the
/// provider echoes them back.
const SECRET_FIELDS: [&str; 6] = [
    "code",
    "code_verifier",
    "client_secret",
    "client_assertion",
    "refresh_token",
    "password",
];

/// What went wrong talking to a provider or checking an ID token.
///
/// [`OidcError::is_provider_failure`] tells the two apart: a provider that
/// is unreachable, slow, misconfigured or answers nonsense (show 502), or a
/// request or token that is wrong (show 400). [`OidcError::reason`] is a
/// stable label for logs and metrics. No message holds a token, an
/// authorization code or a secret.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OidcError {
    #[error("cannot reach the identity provider at {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("the identity provider at {url} did not answer in time")]
    Timeout { url: String },
    #[error("unusable answer from the identity provider at {url}: {detail}")]
    BadResponse { url: String, detail: String },
    #[error("discovery for {provider_url} names another issuer, {issuer:?}")]
    IssuerMismatch {
        provider_url: String,
        issuer: String,
    },
    #[error(
        "endpoint {url:?} is not an https:// URL (http:// only on loopback or with allow_insecure_http)"
    )]
    InsecureEndpoint { url: String },
    /// The token endpoint refused, with an OAuth error (RFC 6749 §5.2).
    #[error(
        "the token endpoint answered HTTP {status}, {error:?}: {:?}",
        .description.as_deref().unwrap_or_default()
    )]
    Provider {
        status: u16,
        error: String,
        description: Option<String>,
    },
    #[error("malformed ID token: {0}")]
    Malformed(&'static str),
    #[error("ID token signing algorithm {alg:?} is not allowed")]
    DisallowedAlg { alg: String },
    #[error("ID token header names no key id (kid)")]
    MissingKid,
    #[error("no signing key {kid:?} at {jwks_uri}")]
    UnknownKid { jwks_uri: String, kid: String },
    #[error("signing key {kid:?} does not fit the ID token: {detail}")]
    KeyMismatch { kid: String, detail: &'static str },
    #[error("ID token signature is invalid")]
    BadSignature,
    #[error("ID token from a multi-tenant issuer has no tid claim")]
    MissingTid,
    #[error(
        "ID token issuer {:?} is not the expected {expected:?}",
        .actual.as_deref().unwrap_or_default()
    )]
    WrongIssuer {
        expected: String,
        actual: Option<String>,
    },
    #[error("ID token issuer is not the issuer of signing key {kid:?}")]
    KeyIssuerMismatch { kid: String },
    #[error("ID token audience does not include the client id")]
    WrongAudience,
    #[error("ID token authorized party (azp) is missing or not the client id")]
    WrongAzp,
    #[error("ID token has no expiry (exp)")]
    MissingExp,
    #[error("ID token has expired")]
    Expired,
    #[error("ID token is not valid yet (nbf)")]
    NotYetValid,
    #[error("ID token has no issue time (iat)")]
    MissingIat,
    #[error("ID token was issued in the future (iat)")]
    IssuedInFuture,
    #[error("ID token nonce does not match the login's")]
    NonceMismatch,
    #[error("ID token has no subject (sub)")]
    MissingSub,
}

impl OidcError {
    /// A short, stable snake_case label for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            OidcError::Unreachable { .. } => "provider_unreachable",
            OidcError::Timeout { .. } => "provider_timeout",
            OidcError::BadResponse { .. } => "provider_bad_response",
            OidcError::IssuerMismatch { .. } => "discovery_issuer_mismatch",
            OidcError::InsecureEndpoint { .. } => "insecure_endpoint",
            OidcError::Provider { .. } => "provider_error",
            OidcError::Malformed(_) => "malformed_token",
            OidcError::DisallowedAlg { .. } => "disallowed_alg",
            OidcError::MissingKid => "missing_kid",
            OidcError::UnknownKid { .. } => "unknown_kid",
            OidcError::KeyMismatch { .. } => "key_mismatch",
            OidcError::BadSignature => "bad_signature",
            OidcError::MissingTid => "missing_tid",
            OidcError::WrongIssuer { .. } => "wrong_issuer",
            OidcError::KeyIssuerMismatch { .. } => "wrong_key_issuer",
            OidcError::WrongAudience => "wrong_audience",
            OidcError::WrongAzp => "wrong_azp",
            OidcError::MissingExp => "missing_exp",
            OidcError::Expired => "expired",
            OidcError::NotYetValid => "not_yet_valid",
            OidcError::MissingIat => "missing_iat",
            OidcError::IssuedInFuture => "issued_in_future",
            OidcError::NonceMismatch => "nonce_mismatch",
            OidcError::MissingSub => "missing_sub",
        }
    }

    /// True when the provider is at fault (unreachable, timed out, bad or
    /// misconfigured answer, or a token-endpoint refusal other than
    /// `invalid_grant`): show 502. False when the request or the token is
    /// wrong, an `invalid_grant` code included: show 400.
    pub fn is_provider_failure(&self) -> bool {
        match self {
            OidcError::Unreachable { .. }
            | OidcError::Timeout { .. }
            | OidcError::BadResponse { .. }
            | OidcError::IssuerMismatch { .. }
            | OidcError::InsecureEndpoint { .. } => true,
            OidcError::Provider { error, .. } => error != "invalid_grant",
            _ => false,
        }
    }
}

/// At most [`MAX_ERROR_TEXT`] characters of text from outside, for errors.
pub(crate) fn clip(text: &str) -> String {
    text.chars().take(MAX_ERROR_TEXT).collect()
}

/// Settings of an [`OidcCache`].
#[derive(Debug, Clone, Copy)]
pub struct CacheConfig {
    /// Limit on one whole call to a provider, body included.
    pub timeout: Duration,
    /// Least time between two refetches of one JWKS for unknown kids.
    pub min_refetch_interval: Duration,
    /// Accept `http://` endpoints beyond loopback.
    pub allow_insecure_http: bool,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            timeout: DEFAULT_TIMEOUT,
            min_refetch_interval: DEFAULT_MIN_REFETCH_INTERVAL,
            allow_insecure_http: false,
        }
    }
}

/// One public signing key from a provider's JWKS. Only RSA and EC keys with
/// a `kid` are kept; symmetric keys are never taken from a JWKS.
pub struct Jwk {
    pub kid: String,
    /// `RSA` or `EC`.
    pub kty: String,
    pub alg: Option<String>,
    /// The `use` member: `sig` for signing keys.
    pub key_use: Option<String>,
    /// The curve of an EC key.
    pub crv: Option<String>,
    /// Entra's per-key issuer, possibly holding `{tenantid}`.
    pub issuer: Option<String>,
    decoding_key: DecodingKey,
}

impl Jwk {
    /// The key, ready for signature checks.
    pub fn decoding_key(&self) -> &DecodingKey {
        &self.decoding_key
    }

    /// The key a JWKS entry describes, or `None` for an entry that is not a
    /// usable RSA or EC public key with a `kid`.
    pub(crate) fn parse(entry: Value) -> Option<Jwk> {
        #[derive(Deserialize)]
        struct Raw {
            kid: String,
            kty: String,
            alg: Option<String>,
            #[serde(rename = "use")]
            key_use: Option<String>,
            crv: Option<String>,
            issuer: Option<String>,
            n: Option<String>,
            e: Option<String>,
            x: Option<String>,
            y: Option<String>,
        }
        let raw: Raw = serde_json::from_value(entry).ok()?;
        let decoding_key = match raw.kty.as_str() {
            "RSA" => DecodingKey::from_rsa_components(raw.n.as_deref()?, raw.e.as_deref()?).ok()?,
            "EC" => DecodingKey::from_ec_components(raw.x.as_deref()?, raw.y.as_deref()?).ok()?,
            _ => return None,
        };
        Some(Jwk {
            kid: raw.kid,
            kty: raw.kty,
            alg: raw.alg,
            key_use: raw.key_use,
            crv: raw.crv,
            issuer: raw.issuer,
            decoding_key,
        })
    }
}

impl fmt::Debug for Jwk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwk")
            .field("kid", &self.kid)
            .field("kty", &self.kty)
            .field("alg", &self.alg)
            .field("key_use", &self.key_use)
            .field("crv", &self.crv)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// The usable keys of one fetched JWKS, by kid (the first of duplicates).
struct KeySet(HashMap<String, Arc<Jwk>>);

impl KeySet {
    fn parse(entries: Vec<Value>) -> KeySet {
        let mut keys = HashMap::new();
        for jwk in entries.into_iter().filter_map(Jwk::parse) {
            keys.entry(jwk.kid.clone()).or_insert_with(|| Arc::new(jwk));
        }
        KeySet(keys)
    }

    fn get(&self, kid: &str) -> Option<Arc<Jwk>> {
        self.0.get(kid).cloned()
    }
}

/// The cached key set of one `jwks_uri` and its refetch state.
struct KeyStore {
    current: RwLock<Arc<KeySet>>,
    /// When an unknown kid last triggered a refetch; held while refetching,
    /// so concurrent callers share one request.
    last_refetch: Mutex<Option<Instant>>,
}

impl KeyStore {
    fn current(&self) -> Arc<KeySet> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn replace(&self, keys: Arc<KeySet>) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = keys;
    }
}

#[derive(Deserialize)]
struct JwksDocument {
    keys: Vec<Value>,
}

/// An OAuth error body (RFC 6749 §5.2).
#[derive(Deserialize)]
struct OAuthError {
    error: String,
    error_description: Option<String>,
}

/// Provider metadata and signing keys, fetched once and shared by every
/// login; cheap to clone, clones share the caches.
#[derive(Clone)]
pub struct OidcCache {
    http: reqwest::Client,
    config: CacheConfig,
    metadata: Cache<String, Arc<Metadata>>,
    jwks: Cache<String, Arc<KeyStore>>,
}

impl OidcCache {
    /// A cache with its own HTTP client: no proxy from the environment, no
    /// redirects, `config.timeout` on every call.
    pub fn new(config: CacheConfig) -> reqwest::Result<OidcCache> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.timeout)
            .user_agent(concat!("idgate/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(OidcCache {
            http,
            config,
            metadata: Cache::builder()
                .max_capacity(MAX_ENTRIES)
                .time_to_live(METADATA_TTL)
                .build(),
            jwks: Cache::builder()
                .max_capacity(MAX_ENTRIES)
                .time_to_live(JWKS_TTL)
                .build(),
        })
    }

    /// The validated discovery metadata of `provider_url`, fetched at most
    /// once an hour; concurrent callers share one fetch.
    pub async fn metadata(&self, provider_url: &str) -> Result<Arc<Metadata>, OidcError> {
        self.metadata
            .try_get_with_by_ref(provider_url, async {
                tracing::debug!(provider_url, "fetching OpenID discovery");
                let document: Metadata = self.get(&discovery::discovery_url(provider_url)).await?;
                let metadata = document.validate(provider_url, self.config.allow_insecure_http)?;
                Ok::<_, OidcError>(Arc::new(metadata))
            })
            .await
            .map_err(Arc::unwrap_or_clone)
    }

    /// The signing key `kid` of `jwks_uri`. The key set is fetched once and
    /// reused; a kid it lacks triggers one refetch shared by all concurrent
    /// callers, at most once per `min_refetch_interval`, which replaces the
    /// set. Past that, [`OidcError::UnknownKid`].
    pub async fn key(&self, jwks_uri: &str, kid: &str) -> Result<Arc<Jwk>, OidcError> {
        let store = self
            .jwks
            .try_get_with_by_ref(jwks_uri, async {
                let keys = self.fetch_keys(jwks_uri).await?;
                Ok::<_, OidcError>(Arc::new(KeyStore {
                    current: RwLock::new(Arc::new(keys)),
                    last_refetch: Mutex::new(None),
                }))
            })
            .await
            .map_err(Arc::unwrap_or_clone)?;
        let seen = store.current();
        if let Some(key) = seen.get(kid) {
            return Ok(key);
        }

        // The kid comes from an unverified token: keep what is shown short.
        let shown_kid = clip(kid);
        let unknown = || OidcError::UnknownKid {
            jwks_uri: jwks_uri.to_owned(),
            kid: shown_kid.clone(),
        };
        let mut last_refetch = store.last_refetch.lock().await;
        let current = store.current();
        if let Some(key) = current.get(kid) {
            return Ok(key);
        }
        if !Arc::ptr_eq(&seen, &current) {
            // A refetch finished while this caller waited, without the kid.
            return Err(unknown());
        }
        if last_refetch.is_some_and(|at| at.elapsed() < self.config.min_refetch_interval) {
            tracing::debug!(jwks_uri, kid = %shown_kid, "unknown key id; JWKS refetch rate-limited");
            return Err(unknown());
        }
        *last_refetch = Some(Instant::now());
        tracing::info!(jwks_uri, kid = %shown_kid, "unknown key id; refetching JWKS");
        let fresh = Arc::new(self.fetch_keys(jwks_uri).await?);
        store.replace(Arc::clone(&fresh));
        fresh.get(kid).ok_or_else(unknown)
    }

    /// POSTs `form` to `url` (the token endpoint), with HTTP Basic client
    /// authentication when given (id and secret form-urlencoded first, as
    /// RFC 6749 §2.3.1 asks), and returns the JSON answer. A non-2xx answer
    /// with an OAuth error body becomes [`OidcError::Provider`].
    pub async fn post_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
        basic_auth: Option<(&str, &str)>,
    ) -> Result<Value, OidcError> {
        discovery::check_endpoint(url, self.config.allow_insecure_http)?;
        let mut request = self
            .http
            .post(url)
            .header(ACCEPT, "application/json")
            .form(form);
        if let Some((id, secret)) = basic_auth {
            request = request.basic_auth(form_encode(id), Some(form_encode(secret)));
        }
        let response = request.send().await.map_err(|e| transport(url, e))?;
        let status = response.status();
        let body = read_body(url, response).await?;
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|_| bad_response(url, "not JSON"));
        }
        let secrets: Vec<&str> = form
            .iter()
            .filter(|(name, _)| SECRET_FIELDS.contains(name))
            .map(|(_, value)| *value)
            .chain(basic_auth.map(|(_, secret)| secret))
            .collect();
        match serde_json::from_slice::<OAuthError>(&body) {
            Ok(refusal) => Err(OidcError::Provider {
                status: status.as_u16(),
                error: redact(&refusal.error, &secrets),
                description: refusal
                    .error_description
                    .map(|text| redact(&text, &secrets)),
            }),
            Err(_) => Err(OidcError::BadResponse {
                url: url.to_owned(),
                detail: format!("HTTP {} without an OAuth error", status.as_u16()),
            }),
        }
    }

    async fn fetch_keys(&self, jwks_uri: &str) -> Result<KeySet, OidcError> {
        tracing::debug!(jwks_uri, "fetching JWKS");
        let document: JwksDocument = self.get(jwks_uri).await?;
        Ok(KeySet::parse(document.keys))
    }

    /// GETs `url` and parses its 2xx JSON answer.
    async fn get<T: DeserializeOwned>(&self, url: &str) -> Result<T, OidcError> {
        discovery::check_endpoint(url, self.config.allow_insecure_http)?;
        let response = self
            .http
            .get(url)
            .header(ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| transport(url, e))?;
        let status = response.status();
        let body = read_body(url, response).await?;
        if !status.is_success() {
            return Err(OidcError::BadResponse {
                url: url.to_owned(),
                detail: format!("HTTP {}", status.as_u16()),
            });
        }
        serde_json::from_slice(&body).map_err(|e| OidcError::BadResponse {
            url: url.to_owned(),
            detail: clip(&e.to_string()),
        })
    }
}

/// The body of `response`, refusing more than [`MAX_BODY_BYTES`].
async fn read_body(url: &str, mut response: reqwest::Response) -> Result<Vec<u8>, OidcError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| transport(url, e))? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(bad_response(url, "answer larger than 1 MiB"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `text` from a provider, clipped, with every non-empty secret removed.
fn redact(text: &str, secrets: &[&str]) -> String {
    let scrubbed = secrets
        .iter()
        .filter(|secret| !secret.is_empty())
        .fold(text.to_owned(), |text, secret| {
            text.replace(secret, "[redacted]")
        });
    clip(&scrubbed)
}

fn bad_response(url: &str, detail: &str) -> OidcError {
    OidcError::BadResponse {
        url: url.to_owned(),
        detail: detail.to_owned(),
    }
}

/// A failed exchange: timed out, cut off mid-answer, or not reached.
fn transport(url: &str, error: reqwest::Error) -> OidcError {
    if error.is_timeout() {
        return OidcError::Timeout {
            url: url.to_owned(),
        };
    }
    let cut_off = error.is_body() || error.is_decode();
    let error = error.without_url();
    let mut detail = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    if cut_off {
        OidcError::BadResponse {
            url: url.to_owned(),
            detail,
        }
    } else {
        OidcError::Unreachable {
            url: url.to_owned(),
            detail,
        }
    }
}

fn form_encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: &str = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";

    #[test]
    fn only_rsa_and_ec_keys_with_a_kid_are_kept() {
        let set = KeySet::parse(vec![
            serde_json::json!({"kty": "RSA", "kid": "a", "n": N, "e": "AQAB", "use": "sig",
                               "issuer": "https://login.example.com/{tenantid}/v2.0", "x5t": "ignored"}),
            serde_json::json!({"kty": "RSA", "n": N, "e": "AQAB"}),
            serde_json::json!({"kty": "oct", "kid": "b", "k": "c2VjcmV0"}),
            serde_json::json!({"kty": "RSA", "kid": "c", "e": "AQAB"}),
            serde_json::json!({"kty": "OKP", "kid": "d", "crv": "Ed25519", "x": "AAAA"}),
            serde_json::json!({"kty": "EC", "kid": "e", "crv": "P-256",
                               "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
                               "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}),
            serde_json::json!("not a key"),
        ]);
        let mut kids: Vec<&str> = set.0.keys().map(String::as_str).collect();
        kids.sort_unstable();
        assert_eq!(kids, ["a", "e"]);
        let a = set.get("a").unwrap();
        assert_eq!(
            a.issuer.as_deref(),
            Some("https://login.example.com/{tenantid}/v2.0")
        );
        assert_eq!(a.key_use.as_deref(), Some("sig"));
        assert_eq!(set.get("e").unwrap().crv.as_deref(), Some("P-256"));
    }

    #[test]
    fn reasons_are_distinct_snake_case_labels() {
        let errors = [
            OidcError::Unreachable {
                url: String::new(),
                detail: String::new(),
            },
            OidcError::Timeout { url: String::new() },
            bad_response("", ""),
            OidcError::IssuerMismatch {
                provider_url: String::new(),
                issuer: String::new(),
            },
            OidcError::InsecureEndpoint { url: String::new() },
            OidcError::Provider {
                status: 400,
                error: "invalid_client".into(),
                description: None,
            },
            OidcError::Malformed(""),
            OidcError::DisallowedAlg { alg: String::new() },
            OidcError::MissingKid,
            OidcError::UnknownKid {
                jwks_uri: String::new(),
                kid: String::new(),
            },
            OidcError::KeyMismatch {
                kid: String::new(),
                detail: "",
            },
            OidcError::BadSignature,
            OidcError::MissingTid,
            OidcError::WrongIssuer {
                expected: String::new(),
                actual: None,
            },
            OidcError::KeyIssuerMismatch { kid: String::new() },
            OidcError::WrongAudience,
            OidcError::WrongAzp,
            OidcError::MissingExp,
            OidcError::Expired,
            OidcError::NotYetValid,
            OidcError::MissingIat,
            OidcError::IssuedInFuture,
            OidcError::NonceMismatch,
            OidcError::MissingSub,
        ];
        let mut reasons: Vec<&str> = errors.iter().map(OidcError::reason).collect();
        assert!(reasons
            .iter()
            .all(|r| r.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')));
        reasons.sort_unstable();
        reasons.dedup();
        assert_eq!(reasons.len(), errors.len());
        let provider_side = errors.iter().filter(|e| e.is_provider_failure()).count();
        assert_eq!(provider_side, 6);
    }

    #[test]
    fn invalid_grant_is_the_clients_fault() {
        let refusal = |error: &str| OidcError::Provider {
            status: 400,
            error: error.into(),
            description: None,
        };
        assert!(!refusal("invalid_grant").is_provider_failure());
        assert!(refusal("invalid_client").is_provider_failure());
    }

    #[test]
    fn echoed_secrets_are_redacted() {
        let text = "code abc123 was already redeemed for s3cret";
        assert_eq!(
            redact(text, &["abc123", "", "s3cret"]),
            "code [redacted] was already redeemed for [redacted]"
        );
    }

    #[test]
    fn clip_keeps_char_boundaries() {
        let long = "é".repeat(1000);
        assert_eq!(clip(&long).chars().count(), MAX_ERROR_TEXT);
        assert_eq!(clip("short"), "short");
    }
}
