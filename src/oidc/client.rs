//! The provider client: one shared HTTP client for every call to an
//! identity provider, discovery metadata cached per provider URL, signing
//! keys cached per `jwks_uri` with a rate-limited, single-flight refetch when
//! a token names a key id the cache does not know, and the token-endpoint
//! form POST.

use std::error::Error as _;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use moka::future::Cache;
use reqwest::header::ACCEPT;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;

use super::discovery::{self, Metadata};
use super::error::{bad_response, clip, OidcError};
use super::jwks::{Jwk, JwksDocument, KeySet, KeyStore};

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
        self.get_as(url, None).await
    }

    /// GETs `url` with `Authorization: Bearer <token>` (an API of the
    /// provider, such as Microsoft Graph) and parses its 2xx JSON answer.
    pub async fn get_with_bearer<T: DeserializeOwned>(
        &self,
        url: &str,
        token: &str,
    ) -> Result<T, OidcError> {
        self.get_as(url, Some(token)).await
    }

    async fn get_as<T: DeserializeOwned>(
        &self,
        url: &str,
        bearer: Option<&str>,
    ) -> Result<T, OidcError> {
        discovery::check_endpoint(url, self.config.allow_insecure_http)?;
        let mut request = self.http.get(url).header(ACCEPT, "application/json");
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| transport(url, e))?;
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

    #[test]
    fn echoed_secrets_are_redacted() {
        let text = "code abc123 was already redeemed for s3cret";
        assert_eq!(
            redact(text, &["abc123", "", "s3cret"]),
            "code [redacted] was already redeemed for [redacted]"
        );
    }
}
