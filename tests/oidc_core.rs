//! The OpenID Connect core against the local Entra-shaped provider over
//! loopback HTTP: real authorization code flows with PKCE yield real RS256
//! ID tokens, and each defect the provider can build in is refused with its
//! own reason. Also the caches: discovery and keys fetched once, a new kid
//! refetched once however many logins ask, rate limits, a provider that is
//! down or slow, and the token endpoint's OAuth errors.

use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use idgate::demo::provider::{spawn_local, Client, Counters, Provider, DEFAULT_TID};
use idgate::oidc::{verify, CacheConfig, Expectations, IdClaims, Metadata, OidcCache, OidcError};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::header::LOCATION;
use reqwest::StatusCode;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const CLIENT_ID: &str = "idgate-test";
/// Holds characters that HTTP Basic client authentication must form-encode.
const SECRET: &str = "s3cr:t &+%~";
const REDIRECT_URI: &str = "http://127.0.0.1:9/oauth2/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const STATE: &str = "st-1";
const NONCE: &str = "n-0S6_WzA2Mj";
const TENANT: &str = "contoso";
const OTHER_TID: &str = "0b5e7f8a-1c2d-4e3f-9a8b-7c6d5e4f3a2b";

/// No waiting between refetches: every unknown kid may refetch.
fn eager() -> CacheConfig {
    CacheConfig {
        min_refetch_interval: Duration::ZERO,
        ..CacheConfig::default()
    }
}

struct Fixture {
    provider: Provider,
    base: String,
    browser: reqwest::Client,
    cache: OidcCache,
}

impl Fixture {
    async fn start() -> Fixture {
        Fixture::start_with(CacheConfig::default()).await
    }

    async fn start_with(config: CacheConfig) -> Fixture {
        let (provider, _) = spawn_local(0).await.expect("provider starts");
        Fixture::new(provider, config)
    }

    fn new(provider: Provider, config: CacheConfig) -> Fixture {
        provider.register_client(Client {
            client_id: CLIENT_ID.into(),
            client_secret: SECRET.into(),
            redirect_uris: vec![REDIRECT_URI.into()],
        });
        Fixture {
            base: provider.base_url().to_owned(),
            provider,
            browser: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cache: OidcCache::new(config).unwrap(),
        }
    }

    fn provider_url(&self, tenant: &str) -> String {
        format!("{}/{tenant}/v2.0", self.base)
    }

    fn counters(&self) -> Counters {
        self.provider.counters()
    }

    /// A non-interactive (`auto=1`) sign-in; returns the authorization code.
    async fn code(&self, tenant: &str, extra: &[(&str, &str)]) -> String {
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(VERIFIER.as_bytes()));
        let mut params = vec![
            ("client_id", CLIENT_ID),
            ("redirect_uri", REDIRECT_URI),
            ("response_type", "code"),
            ("scope", "openid profile email"),
            ("state", STATE),
            ("nonce", NONCE),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("auto", "1"),
        ];
        params.extend_from_slice(extra);
        let response = self
            .browser
            .get(format!("{}/{tenant}/oauth2/v2.0/authorize", self.base))
            .query(&params)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FOUND);
        let location = url::Url::parse(response.headers()[LOCATION].to_str().unwrap()).unwrap();
        let pairs: Vec<(String, String)> = location.query_pairs().into_owned().collect();
        let value = |name: &str| {
            pairs
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(value("state").as_deref(), Some(STATE));
        value("code").unwrap_or_else(|| panic!("no code in {location}"))
    }

    /// Redeems `code` at the token endpoint with HTTP Basic authentication.
    async fn redeem(&self, tenant: &str, code: &str, secret: &str) -> Result<Value, OidcError> {
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", VERIFIER),
        ];
        let url = format!("{}/{tenant}/oauth2/v2.0/token", self.base);
        self.cache
            .post_form(&url, &form, Some((CLIENT_ID, secret)))
            .await
    }

    /// The ID token of a full code flow with `extra` authorization parameters.
    async fn token(&self, tenant: &str, extra: &[(&str, &str)]) -> String {
        let code = self.code(tenant, extra).await;
        let body = self.redeem(tenant, &code, SECRET).await.unwrap();
        body["id_token"].as_str().unwrap().to_owned()
    }

    async fn metadata(&self, tenant: &str) -> Arc<Metadata> {
        self.cache
            .metadata(&self.provider_url(tenant))
            .await
            .unwrap()
    }

    async fn verify(&self, tenant: &str, token: &str) -> Result<IdClaims, OidcError> {
        let metadata = self.metadata(tenant).await;
        verify(
            &self.cache,
            token,
            &Expectations::new(&metadata, CLIENT_ID, NONCE),
        )
        .await
    }

    async fn rotate(&self) {
        let provider = self.provider.clone();
        tokio::task::spawn_blocking(move || provider.rotate_keys())
            .await
            .unwrap();
    }
}

/// The reason `verify` gives for a token with `fault` built in.
async fn rejection(fault: &str) -> &'static str {
    let f = Fixture::start().await;
    let token = f.token(TENANT, &[("fault", fault)]).await;
    let err = f.verify(TENANT, &token).await.expect_err(fault);
    assert!(!err.is_provider_failure(), "{err}");
    assert!(!err.to_string().contains(&token));
    err.reason()
}

#[tokio::test]
async fn a_real_id_token_verifies_and_yields_its_claims() {
    let f = Fixture::start().await;
    let token = f
        .token(
            TENANT,
            &[
                ("email", "grace@example.com"),
                ("name", "Grace Hopper"),
                ("xms_edov", "true"),
            ],
        )
        .await;
    let claims = f.verify(TENANT, &token).await.unwrap();
    assert!(!claims.sub.is_empty());
    assert_eq!(claims.email.as_deref(), Some("grace@example.com"));
    assert_eq!(claims.name.as_deref(), Some("Grace Hopper"));
    assert_eq!(claims.xms_edov, Some(true));
    assert_eq!(claims.tid.as_deref(), Some(TENANT));
    assert!(claims.oid.is_some());
    assert!(claims.groups.is_empty() && claims.roles.is_empty());

    let metadata = f.metadata(TENANT).await;
    assert!(!metadata.is_multi_tenant());
    assert!(metadata.supports_form_post());
    assert_eq!(metadata.issuer, f.provider.issuer_for(TENANT));
    let other_nonce = Expectations::new(&metadata, CLIENT_ID, "another-login");
    let err = verify(&f.cache, &token, &other_nonce).await.unwrap_err();
    assert_eq!(err.reason(), "nonce_mismatch");
    let other_client = Expectations::new(&metadata, "other-app", NONCE);
    let err = verify(&f.cache, &token, &other_client).await.unwrap_err();
    assert_eq!(err.reason(), "wrong_audience");
}

#[tokio::test]
async fn a_bad_signature_is_rejected() {
    assert_eq!(rejection("bad_signature").await, "bad_signature");
}

#[tokio::test]
async fn alg_none_is_rejected() {
    assert_eq!(rejection("alg_none").await, "disallowed_alg");
}

#[tokio::test]
async fn hmac_keyed_with_the_public_key_is_rejected() {
    assert_eq!(rejection("hmac_public_key").await, "disallowed_alg");
}

#[tokio::test]
async fn an_unknown_kid_is_rejected_after_one_refetch() {
    let f = Fixture::start().await;
    let token = f.token(TENANT, &[("fault", "unknown_kid")]).await;
    let err = f.verify(TENANT, &token).await.unwrap_err();
    assert_eq!(err.reason(), "unknown_kid");
    assert!(!err.is_provider_failure());
    assert_eq!(f.counters().keys, 2, "first fetch and one refetch");
}

#[tokio::test]
async fn a_wrong_issuer_is_rejected() {
    assert_eq!(rejection("wrong_iss").await, "wrong_issuer");
}

#[tokio::test]
async fn a_wrong_audience_is_rejected() {
    assert_eq!(rejection("wrong_aud").await, "wrong_audience");
}

#[tokio::test]
async fn an_extra_audience_without_azp_is_rejected() {
    assert_eq!(rejection("extra_aud_no_azp").await, "wrong_azp");
}

#[tokio::test]
async fn an_extra_audience_with_azp_is_accepted() {
    let f = Fixture::start().await;
    let token = f.token(TENANT, &[("fault", "extra_aud_with_azp")]).await;
    f.verify(TENANT, &token).await.unwrap();
}

#[tokio::test]
async fn an_expired_token_is_rejected() {
    assert_eq!(rejection("expired").await, "expired");
}

#[tokio::test]
async fn a_token_not_valid_yet_is_rejected() {
    assert_eq!(rejection("future_nbf").await, "not_yet_valid");
}

#[tokio::test]
async fn a_nonce_mismatch_is_rejected() {
    assert_eq!(rejection("wrong_nonce").await, "nonce_mismatch");
}

#[tokio::test]
async fn a_token_without_sub_is_rejected() {
    assert_eq!(rejection("no_sub").await, "missing_sub");
}

#[tokio::test]
async fn multi_tenant_issuer_takes_the_tokens_tid() {
    let f = Fixture::start().await;
    let metadata = f.metadata("common").await;
    assert!(metadata.is_multi_tenant());
    assert_eq!(metadata.issuer, f.provider.issuer_for("common"));
    assert_eq!(metadata.expected_issuer(None), None);

    for tid in [OTHER_TID, DEFAULT_TID] {
        let token = f.token("common", &[("tid", tid)]).await;
        let claims = f.verify("common", &token).await.unwrap();
        assert_eq!(claims.tid.as_deref(), Some(tid));
    }
    // A named tenant's token, from the same keys, fits the template too.
    let token = f.token(TENANT, &[]).await;
    let claims = f.verify("common", &token).await.unwrap();
    assert_eq!(claims.tid.as_deref(), Some(TENANT));
    // Its own tenant's issuer does not accept another tenant's token.
    let token = f.token("common", &[("tid", OTHER_TID)]).await;
    let err = f.verify(TENANT, &token).await.unwrap_err();
    assert_eq!(err.reason(), "wrong_issuer");
}

/// A minimal multi-tenant provider whose signing key the test holds, to mint
/// tokens the demo provider never would.
struct MintingProvider {
    provider_url: String,
    issuer_base: String,
    key: EncodingKey,
    kid: String,
}

impl MintingProvider {
    async fn start() -> MintingProvider {
        let private = tokio::task::spawn_blocking(|| {
            rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap()
        })
        .await
        .unwrap();
        let kid = "minted-1".to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let issuer = format!("{base}/{{tenantid}}/v2.0");
        let discovery = json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{base}/common/oauth2/v2.0/authorize"),
            "token_endpoint": format!("{base}/common/oauth2/v2.0/token"),
            "jwks_uri": format!("{base}/common/discovery/v2.0/keys"),
            "id_token_signing_alg_values_supported": ["RS256"],
        });
        let jwks = json!({ "keys": [{
            "kty": "RSA",
            "use": "sig",
            "kid": kid,
            "n": URL_SAFE_NO_PAD.encode(private.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(private.e().to_bytes_be()),
            "issuer": issuer,
        }]});
        let app = Router::new()
            .route(
                "/common/v2.0/.well-known/openid-configuration",
                get(move || async move { Json(discovery) }),
            )
            .route(
                "/common/discovery/v2.0/keys",
                get(move || async move { Json(jwks) }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await });
        let der = private.to_pkcs1_der().unwrap();
        MintingProvider {
            provider_url: format!("{base}/common/v2.0"),
            issuer_base: base,
            key: EncodingKey::from_rsa_der(der.as_bytes()),
            kid,
        }
    }

    /// An RS256 token issued by tenant `iss_tid` that claims `tid`.
    fn mint(&self, iss_tid: &str, tid: &str, extra: Value) -> String {
        self.sign(Some(&self.kid), iss_tid, tid, extra)
    }

    fn sign(&self, kid: Option<&str>, iss_tid: &str, tid: &str, extra: Value) -> String {
        let now = jsonwebtoken::get_current_timestamp();
        let mut claims = json!({
            "iss": format!("{}/{iss_tid}/v2.0", self.issuer_base),
            "tid": tid,
            "aud": CLIENT_ID,
            "sub": "subject-1",
            "iat": now,
            "nbf": now,
            "exp": now + 600,
            "nonce": NONCE,
        });
        claims
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let mut header = Header::new(Algorithm::RS256);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, &claims, &self.key).unwrap()
    }
}

#[tokio::test]
async fn multi_tenant_rejects_an_issuer_of_another_tenant_than_the_tid_claim() {
    let minting = MintingProvider::start().await;
    let cache = OidcCache::new(CacheConfig::default()).unwrap();
    let metadata = cache.metadata(&minting.provider_url).await.unwrap();
    let exp = Expectations::new(&metadata, CLIENT_ID, NONCE);

    let extra = json!({ "xms_edov": "true", "groups": ["g1"], "roles": ["admin"] });
    let token = minting.mint(OTHER_TID, OTHER_TID, extra);
    let claims = verify(&cache, &token, &exp).await.unwrap();
    assert_eq!(claims.tid.as_deref(), Some(OTHER_TID));
    assert_eq!(claims.xms_edov, Some(true));
    assert_eq!(claims.groups, ["g1"]);
    assert_eq!(claims.roles, ["admin"]);

    let token = minting.mint(DEFAULT_TID, OTHER_TID, json!({}));
    let err = verify(&cache, &token, &exp).await.unwrap_err();
    assert_eq!(err.reason(), "wrong_issuer");
}

#[tokio::test]
async fn tokens_without_tid_iat_or_kid_are_rejected() {
    let minting = MintingProvider::start().await;
    let cache = OidcCache::new(CacheConfig::default()).unwrap();
    let metadata = cache.metadata(&minting.provider_url).await.unwrap();
    let exp = Expectations::new(&metadata, CLIENT_ID, NONCE);
    for (token, reason) in [
        (
            minting.mint(OTHER_TID, OTHER_TID, json!({ "tid": null })),
            "missing_tid",
        ),
        (
            minting.mint(OTHER_TID, OTHER_TID, json!({ "iat": null })),
            "missing_iat",
        ),
        (
            minting.sign(None, OTHER_TID, OTHER_TID, json!({})),
            "missing_kid",
        ),
    ] {
        let err = verify(&cache, &token, &exp).await.unwrap_err();
        assert_eq!(err.reason(), reason);
    }
}

#[tokio::test]
async fn a_discovery_issuer_other_than_the_provider_url_is_rejected() {
    let f = Fixture::start().await;
    // The provider names its issuer by 127.0.0.1, not localhost.
    let port = f.base.rsplit(':').next().unwrap();
    let provider_url = format!("http://localhost:{port}/{TENANT}/v2.0");
    let err = f.cache.metadata(&provider_url).await.unwrap_err();
    assert_eq!(err.reason(), "discovery_issuer_mismatch");
    assert!(err.is_provider_failure());
    // Failures are not cached: the next login asks again.
    f.cache.metadata(&provider_url).await.unwrap_err();
    assert_eq!(f.counters().discovery, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_logins_fetch_discovery_once() {
    let f = Fixture::start().await;
    let url = f.provider_url(TENANT);
    let mut logins = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let cache = f.cache.clone();
        let url = url.clone();
        logins.spawn(async move { cache.metadata(&url).await });
    }
    while let Some(joined) = logins.join_next().await {
        joined.unwrap().unwrap();
    }
    assert_eq!(f.counters().discovery, 1);
}

#[tokio::test]
async fn key_rotation_refetches_the_keys_once() {
    let f = Fixture::start().await;
    let mut known = Vec::new();
    for _ in 0..11 {
        known.push(f.token(TENANT, &[]).await);
    }
    f.verify(TENANT, &known[0]).await.unwrap();
    assert_eq!(f.counters().keys, 1);
    for token in &known[1..] {
        f.verify(TENANT, token).await.unwrap();
    }
    assert_eq!(f.counters().keys, 1, "known kids fetch nothing");

    f.rotate().await;
    let fresh = f.token(TENANT, &[]).await;
    f.verify(TENANT, &fresh).await.unwrap();
    assert_eq!(f.counters().keys, 2, "exactly one more keys fetch");
    // The previous key is still published, so its tokens still verify.
    f.verify(TENANT, &known[0]).await.unwrap();
    f.verify(TENANT, &fresh).await.unwrap();
    assert_eq!(f.counters().keys, 2);
    assert_eq!(f.counters().discovery, 1);
}

/// Verifies `token` from 20 logins started at once; returns their results.
async fn twenty_logins(f: &Arc<Fixture>, token: &str) -> Vec<Result<IdClaims, OidcError>> {
    let start = Arc::new(tokio::sync::Barrier::new(20));
    let mut logins = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let f = Arc::clone(f);
        let start = Arc::clone(&start);
        let token = token.to_owned();
        logins.spawn(async move {
            start.wait().await;
            f.verify(TENANT, &token).await
        });
    }
    logins.join_all().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_logins_with_a_new_kid_share_one_refetch() {
    // No rate limit: only single flight keeps the fetches down.
    let f = Arc::new(Fixture::start_with(eager()).await);
    let first = f.token(TENANT, &[]).await;
    f.verify(TENANT, &first).await.unwrap();
    f.rotate().await;
    let fresh = f.token(TENANT, &[]).await;
    assert_eq!(f.counters().keys, 1);

    for result in twenty_logins(&f, &fresh).await {
        result.unwrap();
    }
    assert_eq!(f.counters().keys, 2, "one refetch for 20 logins");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kids_refetch_once_then_fail_closed_within_the_rate_limit() {
    let f = Arc::new(Fixture::start().await);
    let first = f.token(TENANT, &[]).await;
    f.verify(TENANT, &first).await.unwrap();
    assert_eq!(f.counters().keys, 1);

    let unknown = f.token(TENANT, &[("fault", "unknown_kid")]).await;
    for result in twenty_logins(&f, &unknown).await {
        assert_eq!(result.unwrap_err().reason(), "unknown_kid");
    }
    assert_eq!(f.counters().keys, 2, "one refetch for 20 unknown kids");

    // Another unknown kid within the window, even a real new one: no fetch.
    f.rotate().await;
    let fresh = f.token(TENANT, &[]).await;
    let err = f.verify(TENANT, &fresh).await.unwrap_err();
    assert_eq!(err.reason(), "unknown_kid");
    assert!(!err.is_provider_failure());
    assert_eq!(f.counters().keys, 2, "no fetch within the window");
    // Known keys keep working meanwhile.
    f.verify(TENANT, &first).await.unwrap();
    assert_eq!(f.counters().keys, 2);
}

#[tokio::test]
async fn a_refetch_drops_keys_the_provider_withdrew() {
    let f = Fixture::start_with(eager()).await;
    let old = f.token(TENANT, &[]).await;
    f.verify(TENANT, &old).await.unwrap();
    let provider = f.provider.clone();
    tokio::task::spawn_blocking(move || provider.rotate_keys_dropping_old())
        .await
        .unwrap();
    let fresh = f.token(TENANT, &[]).await;
    f.verify(TENANT, &fresh).await.unwrap();
    let err = f.verify(TENANT, &old).await.unwrap_err();
    assert_eq!(err.reason(), "unknown_kid");
    assert_eq!(f.counters().keys, 3);
}

/// A provider on a runtime of its own, so that stopping it closes its port
/// and every connection to it.
struct Detached {
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Detached {
    async fn spawn() -> (Provider, Detached) {
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let (provider, _) = spawn_local(0).await.unwrap();
                started_tx.send(provider).ok().unwrap();
                stop_rx.await.ok();
            });
        });
        (started_rx.await.unwrap(), Detached { stop, thread })
    }

    async fn stop(self) {
        self.stop.send(()).unwrap();
        let thread = self.thread;
        tokio::task::spawn_blocking(move || thread.join().unwrap())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_provider_that_is_down_fails_fetches_but_cached_keys_still_verify() {
    let (provider, detached) = Detached::spawn().await;
    let f = Fixture::new(provider, eager());
    let token = f.token(TENANT, &[]).await;
    let unknown = f.token(TENANT, &[("fault", "unknown_kid")]).await;
    f.verify(TENANT, &token).await.unwrap();
    let metadata = f.metadata(TENANT).await;
    detached.stop().await;

    f.verify(TENANT, &token).await.unwrap();

    let err = f.verify(TENANT, &unknown).await.unwrap_err();
    assert_eq!(err.reason(), "provider_unreachable");
    assert!(err.is_provider_failure());

    let cold = OidcCache::new(CacheConfig::default()).unwrap();
    let err = cold.metadata(&f.provider_url(TENANT)).await.unwrap_err();
    assert_eq!(err.reason(), "provider_unreachable");
    assert!(err.is_provider_failure());
    let err = cold
        .key(&metadata.jwks_uri, &f.provider.current_kid())
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "provider_unreachable");
    assert!(err.is_provider_failure());
}

#[tokio::test]
async fn a_provider_that_never_answers_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let cache = OidcCache::new(CacheConfig {
        timeout: Duration::from_millis(300),
        ..CacheConfig::default()
    })
    .unwrap();
    let err = cache
        .metadata(&format!("http://{addr}/{TENANT}/v2.0"))
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "provider_timeout");
    assert!(err.is_provider_failure());
    silent.abort();
}

#[tokio::test]
async fn the_token_endpoint_reports_oauth_errors() {
    let f = Fixture::start().await;
    let code = f.code(TENANT, &[]).await;
    let err = f.redeem(TENANT, &code, "wrong secret").await.unwrap_err();
    assert!(matches!(
        &err,
        OidcError::Provider { status: 401, error, .. } if error == "invalid_client"
    ));
    assert!(err.is_provider_failure());

    f.redeem(TENANT, &code, SECRET).await.unwrap();
    let err = f.redeem(TENANT, &code, SECRET).await.unwrap_err();
    let OidcError::Provider {
        status,
        error,
        description,
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!((*status, error.as_str()), (400, "invalid_grant"));
    assert!(description.is_some());
    assert_eq!(err.reason(), "provider_error");
    assert!(!err.is_provider_failure());
    assert!(!err.to_string().contains(&code));
}
