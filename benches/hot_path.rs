//! Criterion micro-benchmarks of the per-request work on the hot path:
//! header hygiene, the session lookup every proxied request makes, the
//! identity headers it carries upstream, the metrics it records, and, for
//! scale, the ID token verification a login makes once.

use std::borrow::Cow;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use http::HeaderValue;
use http::{HeaderMap, HeaderName};
use idgate::config::HeadersConfig;
use idgate::demo::provider::{spawn_local, Client};
use idgate::identity::assertion::{Signer, SigningKey};
use idgate::identity::email::Vouching;
use idgate::identity::Identity;
use idgate::metrics::Metrics;
use idgate::oidc::{verify, CacheConfig, Expectations, OidcCache};
use idgate::policy::fields::DEFAULT_IDENTITY_HEADERS;
use idgate::policy::Policy;
use idgate::provider_registry::Registry;
use idgate::providers::validate::Rules;
use idgate::providers::ProviderChange;
use idgate::proxy::fast::request::{parse, write_head, Intake, Limits, Rewrite};
use idgate::proxy::headers::{self, Peer};
use idgate::proxy::identity_headers::IdentityHeaders;
use idgate::proxy::upstream_head::{self, Toward};
use idgate::session::cookies::CookieCodec;
use idgate::session::sealed::Sealer;
use idgate::session::{Lifetimes, Sessions, SignIn};
use idgate::store::Store;
use sha2::{Digest, Sha256};
use tokio::runtime::Runtime;

fn browser_request() -> HeaderMap {
    let mut req = HeaderMap::new();
    for (k, v) in [
        ("host", "console.example.com"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0",
        ),
        (
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        ("accept-language", "en-US,en;q=0.9"),
        ("accept-encoding", "gzip, deflate, br"),
        (
            "cookie",
            "idgate_session=0123456789abcdef0123456789abcdef0123456789abcdef",
        ),
        ("referer", "https://console.example.com/console"),
        ("sec-fetch-mode", "navigate"),
    ] {
        req.append(HeaderName::from_static(k), HeaderValue::from_static(v));
    }
    req
}

fn bench_headers(c: &mut Criterion) {
    let reserved: Vec<String> = DEFAULT_IDENTITY_HEADERS
        .iter()
        .map(|s| s.to_string())
        .collect();
    let peer = Peer::new(Some("203.0.113.9".parse().unwrap()), false, "https");
    let clean = browser_request();
    c.bench_function("strip identity headers (none present)", |b| {
        b.iter_batched_ref(
            || clean.clone(),
            |req| headers::strip_client_reserved(black_box(req), &reserved),
            criterion::BatchSize::SmallInput,
        )
    });
    let mut spoofed = browser_request();
    for name in [
        "X-Forwarded-User",
        "x_forwarded_email",
        "X-Idgate-Assertion",
    ] {
        spoofed.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_static("mallory"),
        );
    }
    c.bench_function("strip identity headers (three spoofed)", |b| {
        b.iter_batched_ref(
            || spoofed.clone(),
            |req| headers::strip_client_reserved(black_box(req), &reserved),
            criterion::BatchSize::SmallInput,
        )
    });
    c.bench_function("X-Forwarded-*", |b| {
        b.iter_batched_ref(
            || clean.clone(),
            |req| headers::forwarded(black_box(req), None, &peer),
            criterion::BatchSize::SmallInput,
        )
    });
}

/// The same browser request as raw bytes, as the fast path reads it.
fn browser_request_bytes() -> Vec<u8> {
    let mut raw = b"GET /console/applications?page=2 HTTP/1.1\r\n".to_vec();
    for (name, value) in browser_request().iter() {
        raw.extend_from_slice(name.as_str().as_bytes());
        raw.extend_from_slice(b": ");
        raw.extend_from_slice(value.as_bytes());
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"\r\n");
    raw
}

/// One request head, turned into the upstream's by each data path (the
/// identity lines left out: both write the same ones).
fn bench_request_head(c: &mut Criterion) {
    let identity: Vec<String> = DEFAULT_IDENTITY_HEADERS
        .iter()
        .map(|s| s.to_string())
        .collect();
    let policy = Policy::new(Vec::new(), Some("/oauth"));
    let limits = Limits {
        max_uri_bytes: 8192,
        max_header_bytes: 32768,
        identity_headers: &identity,
        policy: &policy,
        trusted: false,
    };
    let raw = browser_request_bytes();
    let rewrite = Rewrite {
        host: None,
        client: b"203.0.113.9",
        proto: b"https",
    };
    let mut g = c.benchmark_group("request head");
    let (mut kept, mut out) = (Vec::new(), Vec::with_capacity(4096));
    g.bench_function("fast path: parse and write the upstream's head", |b| {
        b.iter(|| {
            out.clear();
            let Intake::Forward(head) = parse(black_box(&raw), &limits, &mut kept) else {
                panic!("the fast path takes this request");
            };
            write_head(&mut out, &raw, &head, &kept, &rewrite, |_| {});
            black_box(out.len())
        })
    });
    let peer = Peer::new(Some("203.0.113.9".parse().unwrap()), false, "https");
    let clean = browser_request();
    g.bench_function("hyper path: policy on the parsed HeaderMap", |b| {
        b.iter_batched_ref(
            || clean.clone(),
            |req| {
                headers::strip_client_reserved(req, &identity);
                headers::strip_request_hop_by_hop(req, false, &identity);
                let forwarded = headers::forwarded(req, None, &peer);
                for (name, value) in forwarded.into_iter().flatten() {
                    req.append(name, value);
                }
                headers::strip_own_cookies(req);
                black_box(req.len())
            },
            criterion::BatchSize::SmallInput,
        )
    });
    let mut request = http::Request::builder()
        .uri("https://console.example.com/console/applications?page=2")
        .version(http::Version::HTTP_2)
        .body(())
        .unwrap();
    *request.headers_mut() = browser_request();
    let (parts, ()) = request.into_parts();
    let to = Toward {
        peer: &peer,
        identity: &identity,
        host: None,
    };
    g.bench_function("hyper path: written in one pass from the HeaderMap", |b| {
        b.iter(|| {
            out.clear();
            upstream_head::write(&mut out, black_box(&parts), &to, |_| {});
            black_box(out.len())
        })
    });
    g.finish();
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn identity() -> Identity {
    Identity {
        provider_id: "entra".into(),
        sub: "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ".into(),
        username: "ada-lovelace".into(),
        email: "ada.lovelace@example.com".into(),
        preferred_username: Some("ada.lovelace@example.com".into()),
        name: Some("Ada Lovelace".into()),
        oid: Some("00000000-0000-0000-66f3-3332eca7ea81".into()),
        tid: Some("11111111-2222-3333-4444-555555555555".into()),
        groups: vec![],
        roles: vec![],
        groups_unknown: false,
    }
}

/// The `Cookie` header a browser sends: the session among other cookies.
fn cookie_header(set_cookie: &str) -> HeaderValue {
    let pair = set_cookie.split(';').next().unwrap();
    HeaderValue::from_str(&format!(
        "_ga=GA1.1.123456789.1700000000; {pair}; theme=dark"
    ))
    .unwrap()
}

/// The session lookup of every proxied request (`Sessions::find`), against
/// a SQLite store on a temporary file with one session in it.
fn bench_sessions(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}/bench.db", dir.path().display());
    let master = [7u8; 64];
    let codec = CookieCodec::new(&master, false);
    let (sessions, set_cookie) = rt.block_on(async {
        let store = Store::open(&url, 2).await.expect("store opens");
        // The session's provider, so that a session read again from the
        // database once its cached copy expires is still admitted.
        let entra = ProviderChange {
            allowed_email_domains: Some(vec!["example.com".into()]),
            ..Default::default()
        }
        .into_new("entra", "");
        let sign_in = SignIn::at(&entra, Vouching::default());
        let providers = Registry::load(store.clone(), vec![entra], Rules::default())
            .await
            .expect("providers load");
        let sessions = Sessions::new(
            store,
            providers,
            codec.clone(),
            Lifetimes {
                absolute: 12 * 3600,
                idle: 3600,
                revalidate_every: 3600,
                revalidate_grace: 3600,
            },
            Default::default(),
            Sealer::new(&master),
        );
        let set_cookie = sessions
            .create(identity(), sign_in)
            .await
            .expect("session created");
        (sessions, set_cookie)
    });
    let valid = cookie_header(&set_cookie);

    // The same session ID under a MAC that is not ours: one character of the
    // signed value changed.
    let mut forged_cookie = set_cookie.split(';').next().unwrap().to_string();
    let at = "idgate_session=".len() + 5;
    let swapped = if forged_cookie.as_bytes()[at] == b'A' {
        "B"
    } else {
        "A"
    };
    forged_cookie.replace_range(at..at + 1, swapped);
    let forged = cookie_header(&forged_cookie);
    // A correctly signed ID that names no session (a logged-out or purged
    // cookie): the MAC passes, so the cache and then the database are asked.
    let unknown = cookie_header(&codec.session_cookie(&URL_SAFE_NO_PAD.encode([9u8; 32]), 60));

    rt.block_on(async {
        assert!(sessions.find([&valid].into_iter()).await.is_some());
        assert!(sessions.find([&forged].into_iter()).await.is_none());
        assert!(sessions.find([&unknown].into_iter()).await.is_none());
    });
    assert!(
        codec.session_id([&forged].into_iter()).is_none(),
        "forged MAC refused"
    );

    let mut g = c.benchmark_group("session");
    g.bench_function("cookie MAC check only (CookieCodec::session_id)", |b| {
        b.iter(|| codec.session_id([black_box(&valid)].into_iter()))
    });
    g.bench_function("find, warm cache", |b| {
        b.to_async(&rt)
            .iter(|| sessions.find([black_box(&valid)].into_iter()))
    });
    g.bench_function("find, forged cookie (refused before any lookup)", |b| {
        b.to_async(&rt)
            .iter(|| sessions.find([black_box(&forged)].into_iter()))
    });
    g.bench_function("find, signed but unknown ID (database miss)", |b| {
        b.to_async(&rt)
            .iter(|| sessions.find([black_box(&unknown)].into_iter()))
    });
    g.finish();

    // The identity headers that go upstream with every signed-in request
    // (`IdentityHeaders::for_each`: default names, cached ES256 assertion).
    let signer = Signer::new(
        SigningKey::generate().expect("ES256 key"),
        "https://gw.example.com".into(),
        "http://upstream.internal:8080".into(),
        Duration::from_secs(300),
    );
    let live = rt
        .block_on(sessions.find([&valid].into_iter()))
        .expect("live session");
    let ih = IdentityHeaders::new(&HeadersConfig::default(), 32 * 1024, Vec::new());
    let _ = live.assertion(&signer, |id| Cow::Borrowed(&id.groups)); // signed once, then cached
    let mut g = c.benchmark_group("identity headers");
    g.bench_function("for_each (5 headers, cached assertion)", |b| {
        b.iter(|| {
            let mut n = 0usize;
            ih.for_each(black_box(&live), &signer, |name, value| {
                n += name.as_str().len() + value.len();
            });
            n
        })
    });
    let base = browser_request();
    g.bench_function("for_each + append to the upstream request", |b| {
        b.iter_batched_ref(
            || base.clone(),
            |req| {
                ih.for_each(&live, &signer, |name, value| {
                    req.append(name.clone(), value);
                })
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("assertion: cached per session", |b| {
        b.iter(|| {
            live.assertion(black_box(&signer), |id| Cow::Borrowed(&id.groups))
                .unwrap()
        })
    });
    g.finish();
    drop(rt);
}

/// What `ProxyHttp::logging` records in Prometheus for every request.
fn bench_metrics(c: &mut Criterion) {
    let metrics = Metrics::new();
    let mut g = c.benchmark_group("metrics");
    g.bench_function("per request: with_label_values x2, inc, observe", |b| {
        b.iter(|| {
            metrics
                .requests
                .with_label_values(&[black_box("proxy"), black_box("200")])
                .inc();
            metrics
                .duration
                .with_label_values(&[black_box("proxy")])
                .observe(black_box(0.0007));
        })
    });
    // For comparison: children resolved once (what a per-route cache does).
    let requests = metrics.requests.with_label_values(&["proxy", "200"]);
    let duration = metrics.duration.with_label_values(&["proxy"]);
    g.bench_function("per request: pre-resolved children, inc, observe", |b| {
        b.iter(|| {
            requests.inc();
            duration.observe(black_box(0.0007));
        })
    });
    g.finish();
}

const CLIENT_ID: &str = "idgate-bench";
const SECRET: &str = "bench-secret";
const REDIRECT_URI: &str = "http://127.0.0.1:9/oauth/login/bench/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const NONCE: &str = "bench-nonce-0S6_WzA2Mj";
const TENANT: &str = "11111111-2222-3333-4444-555555555555";

/// An ID token from one authorization-code flow over HTTP at `base`.
async fn code_flow(base: &str) -> String {
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(VERIFIER.as_bytes()));
    let r = http
        .get(format!("{base}/{TENANT}/oauth2/v2.0/authorize"))
        .query(&[
            ("client_id", CLIENT_ID),
            ("redirect_uri", REDIRECT_URI),
            ("response_type", "code"),
            ("response_mode", "query"),
            ("scope", "openid profile email"),
            ("state", "bench-state"),
            ("nonce", NONCE),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("auto", "1"),
            ("email", "bench@example.com"),
        ])
        .send()
        .await
        .expect("authorize");
    assert_eq!(r.status(), 302, "authorize answers with a redirect");
    let location = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code in the redirect");
    let body: serde_json::Value = http
        .post(format!("{base}/{TENANT}/oauth2/v2.0/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", VERIFIER),
            ("client_id", CLIENT_ID),
            ("client_secret", SECRET),
        ])
        .send()
        .await
        .expect("token request")
        .json()
        .await
        .expect("token response");
    body["id_token"].as_str().expect("an id_token").to_owned()
}

/// ID token verification as the login callback does it, keys warm.
fn bench_id_token(c: &mut Criterion) {
    let rt = runtime();
    let (provider, cache, metadata, token) = rt.block_on(async {
        let (provider, _) = spawn_local(0).await.expect("provider starts");
        provider.register_client(Client {
            client_id: CLIENT_ID.into(),
            client_secret: SECRET.into(),
            redirect_uris: vec![REDIRECT_URI.into()],
        });
        let token = code_flow(provider.base_url()).await;
        let cache = OidcCache::new(CacheConfig::default()).unwrap();
        let metadata = cache
            .metadata(&format!("{}/{TENANT}/v2.0", provider.base_url()))
            .await
            .expect("discovery");
        let exp = Expectations::new(&metadata, CLIENT_ID, NONCE);
        let claims = verify(&cache, &token, &exp).await.expect("token verifies");
        assert_eq!(claims.email.as_deref(), Some("bench@example.com"));
        (provider, cache, metadata, token)
    });
    let exp = Expectations::new(&metadata, CLIENT_ID, NONCE);
    // The same token with its last signature character changed.
    let mut bad = token.clone();
    let last = bad.pop().unwrap();
    bad.push(if last == 'A' { 'B' } else { 'A' });
    rt.block_on(async {
        assert_eq!(
            verify(&cache, &bad, &exp).await.unwrap_err().reason(),
            "bad_signature"
        );
    });
    let fetches = provider.counters().keys;

    let mut g = c.benchmark_group("id token");
    g.bench_function("verify RS256, keys cached", |b| {
        b.to_async(&rt)
            .iter(|| async { verify(&cache, black_box(&token), &exp).await.is_ok() })
    });
    g.bench_function("verify RS256, bad signature", |b| {
        b.to_async(&rt)
            .iter(|| async { verify(&cache, black_box(&bad), &exp).await.is_err() })
    });
    g.finish();
    assert_eq!(
        provider.counters().keys,
        fetches,
        "verification with warm keys fetched the JWKS again"
    );
    drop(provider);
}

criterion_group!(
    benches,
    bench_headers,
    bench_request_head,
    bench_sessions,
    bench_metrics,
    bench_id_token
);
criterion_main!(benches);
