//! End-to-end tests of the demo OpenID Provider over loopback HTTP: the code
//! flow with PKCE, client authentication, token verification against the
//! JWKS, every fault, key rollover, counters and the sign-in form.

use std::collections::HashMap;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use idgate::demo::provider::{spawn_local, Client, Counters, Provider, DEFAULT_TID};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::header::{AUTHORIZATION, LOCATION, WWW_AUTHENTICATE};
use reqwest::StatusCode;
use rsa::pkcs8::{EncodePublicKey, LineEnding};
use rsa::{BigUint, RsaPublicKey};
use serde_json::Value;
use sha2::{Digest, Sha256};

const CLIENT_ID: &str = "idgate-test";
/// Holds characters that form-urlencoding changes, to test Basic auth.
const SECRET: &str = "s3cr:t &+%~";
const REDIRECT_URI: &str = "http://127.0.0.1:9/oauth2/callback";
/// A second registered URI, one that URL parsing would normalise.
const BARE_REDIRECT_URI: &str = "http://localhost:9";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const STATE: &str = "st-\"<&>";
const NONCE: &str = "n-0S6_WzA2Mj";

struct Fixture {
    provider: Provider,
    base: String,
    http: reqwest::Client,
}

enum Auth {
    Basic,
    Post,
}

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn form_encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

async fn start() -> Fixture {
    let (provider, addr) = spawn_local(0).await.expect("provider starts");
    provider.register_client(Client {
        client_id: CLIENT_ID.into(),
        client_secret: SECRET.into(),
        redirect_uris: vec![REDIRECT_URI.into(), BARE_REDIRECT_URI.into()],
    });
    assert_eq!(provider.base_url(), format!("http://{addr}"));
    Fixture {
        base: provider.base_url().to_owned(),
        provider,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    }
}

impl Fixture {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The authorization request with `overrides` replacing or adding
    /// parameters; an empty value removes the parameter.
    fn request(&self, overrides: &[(&str, &str)]) -> Vec<(String, String)> {
        let challenge = challenge(VERIFIER);
        let mut params: Vec<(String, String)> = [
            ("client_id", CLIENT_ID),
            ("redirect_uri", REDIRECT_URI),
            ("response_type", "code"),
            ("scope", "openid profile email"),
            ("state", STATE),
            ("nonce", NONCE),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("auto", "1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (name, value) in overrides {
            params.retain(|(k, _)| k != name);
            if !value.is_empty() || *name == "email" {
                params.push((name.to_string(), value.to_string()));
            }
        }
        params
    }

    async fn authorize(&self, tenant: &str, overrides: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .get(self.url(&format!("/{tenant}/oauth2/v2.0/authorize")))
            .query(&self.request(overrides))
            .send()
            .await
            .unwrap()
    }

    async fn redeem(
        &self,
        tenant: &str,
        code: &str,
        verifier: &str,
        auth: Auth,
    ) -> reqwest::Response {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", verifier),
        ];
        let request = self
            .http
            .post(self.url(&format!("/{tenant}/oauth2/v2.0/token")));
        let request = match auth {
            Auth::Basic => {
                let credentials = format!("{}:{}", form_encode(CLIENT_ID), form_encode(SECRET));
                request.header(
                    AUTHORIZATION,
                    format!("Basic {}", STANDARD.encode(credentials)),
                )
            }
            Auth::Post => {
                form.extend([("client_id", CLIENT_ID), ("client_secret", SECRET)]);
                request
            }
        };
        request.form(&form).send().await.unwrap()
    }

    /// Signs in with `auto=1` and returns the ID token.
    async fn id_token(&self, tenant: &str, overrides: &[(&str, &str)]) -> String {
        let response = self.authorize(tenant, overrides).await;
        let (code, state) = code_from_redirect(&response);
        assert_eq!(state, STATE);
        let response = self.redeem(tenant, &code, VERIFIER, Auth::Basic).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        body["id_token"].as_str().unwrap().to_owned()
    }

    async fn get_json(&self, path: &str) -> Value {
        let response = self.http.get(self.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        response.json().await.unwrap()
    }

    async fn jwks(&self, tenant: &str) -> Value {
        self.get_json(&format!("/{tenant}/discovery/v2.0/keys"))
            .await
    }

    async fn kids(&self, tenant: &str) -> Vec<String> {
        self.jwks(tenant).await["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|key| key["kid"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Verifies `token` as a relying party would, with the key the JWKS
    /// (fetched over HTTP) publishes under the token's kid.
    async fn verify(
        &self,
        tenant: &str,
        token: &str,
        issuer: &str,
    ) -> jsonwebtoken::errors::Result<Value> {
        let header = jsonwebtoken::decode_header(token)?;
        let jwks = self.jwks(tenant).await;
        let jwk = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|key| Some(key["kid"].as_str().unwrap()) == header.kid.as_deref())
            .unwrap_or_else(|| panic!("kid {:?} is not in the JWKS", header.kid));
        let key = DecodingKey::from_rsa_components(
            jwk["n"].as_str().unwrap(),
            jwk["e"].as_str().unwrap(),
        )?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[CLIENT_ID]);
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        jsonwebtoken::decode::<Value>(token, &key, &validation).map(|data| data.claims)
    }
}

fn location(response: &reqwest::Response) -> url::Url {
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = response.headers()[LOCATION].to_str().unwrap();
    url::Url::parse(location).unwrap()
}

fn query_of(url: &url::Url) -> HashMap<String, String> {
    url.query_pairs().into_owned().collect()
}

fn code_from_redirect(response: &reqwest::Response) -> (String, String) {
    let url = location(response);
    assert!(url.as_str().starts_with(REDIRECT_URI), "{url}");
    let query = query_of(&url);
    (query["code"].clone(), query["state"].clone())
}

/// The JSON of one part of a compact JWS, without verifying anything.
fn part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn now() -> i64 {
    jsonwebtoken::get_current_timestamp() as i64
}

/// `(name, value)` of each hidden input of an askama-rendered page.
fn hidden_inputs(html: &str) -> Vec<(String, String)> {
    html.split(r#"<input type="hidden" name=""#)
        .skip(1)
        .map(|rest| {
            let (name, rest) = rest.split_once(r#"" value=""#).unwrap();
            let (value, _) = rest.split_once('"').unwrap();
            (unescape(name), unescape(value))
        })
        .collect()
}

fn unescape(text: &str) -> String {
    text.replace("&#60;", "<")
        .replace("&#62;", ">")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&#38;", "&")
}

#[tokio::test]
async fn discovery_and_jwks_describe_a_named_tenant_like_entra() {
    let f = start().await;
    let doc = f
        .get_json("/contoso/v2.0/.well-known/openid-configuration")
        .await;
    let base = &f.base;
    assert_eq!(doc["issuer"], format!("{base}/contoso/v2.0"));
    assert_eq!(doc["issuer"], f.provider.issuer_for("contoso"));
    assert_eq!(
        doc["authorization_endpoint"],
        format!("{base}/contoso/oauth2/v2.0/authorize")
    );
    assert_eq!(
        doc["token_endpoint"],
        format!("{base}/contoso/oauth2/v2.0/token")
    );
    assert_eq!(
        doc["jwks_uri"],
        format!("{base}/contoso/discovery/v2.0/keys")
    );
    assert_eq!(
        doc["response_modes_supported"],
        serde_json::json!(["query", "fragment", "form_post"])
    );
    assert_eq!(
        doc["subject_types_supported"],
        serde_json::json!(["pairwise"])
    );
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        serde_json::json!(["RS256"])
    );
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_post", "client_secret_basic"])
    );
    assert!(doc["claims_supported"]
        .as_array()
        .unwrap()
        .contains(&"xms_edov".into()));

    let jwks = f.jwks("contoso").await;
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let key = &keys[0];
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["use"], "sig");
    assert_eq!(key["alg"], "RS256");
    assert_eq!(key["e"], "AQAB");
    assert_eq!(key["kid"], f.provider.current_kid());
    assert_eq!(key["issuer"], format!("{base}/contoso/v2.0"));
    assert_eq!(
        URL_SAFE_NO_PAD
            .decode(key["n"].as_str().unwrap())
            .unwrap()
            .len(),
        256
    );
}

#[tokio::test]
async fn query_flow_with_basic_auth_yields_a_verifiable_entra_id_token() {
    let f = start().await;
    let response = f
        .authorize(
            "contoso",
            &[
                ("email", "grace@example.com"),
                ("name", "Grace Hopper"),
                ("xms_edov", "true"),
            ],
        )
        .await;
    let (code, state) = code_from_redirect(&response);
    assert_eq!(state, STATE);
    let response = f.redeem("contoso", &code, VERIFIER, Auth::Basic).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "openid profile email");
    assert_eq!(body["expires_in"], 3600);
    assert!(body["access_token"].as_str().unwrap().len() >= 32);

    let token = body["id_token"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, Algorithm::RS256);
    assert_eq!(
        header.kid.as_deref(),
        Some(f.provider.current_kid().as_str())
    );
    let claims = f
        .verify("contoso", token, &f.provider.issuer_for("contoso"))
        .await
        .unwrap();
    assert_eq!(claims["aud"], CLIENT_ID);
    assert_eq!(claims["tid"], "contoso");
    assert_eq!(claims["nonce"], NONCE);
    assert_eq!(claims["ver"], "2.0");
    assert_eq!(claims["email"], "grace@example.com");
    assert_eq!(claims["name"], "Grace Hopper");
    assert_eq!(claims["given_name"], "Ada");
    assert_eq!(claims["family_name"], "Lovelace");
    assert_eq!(claims["preferred_username"], "ada@example.com");
    assert_eq!(claims["xms_edov"], true);
    assert_eq!(claims["sub"].as_str().unwrap().len(), 43);
    assert_eq!(claims["oid"].as_str().unwrap().len(), 36);
    let (iat, nbf, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["nbf"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert!((iat - now()).abs() < 60);
    assert_eq!(nbf, iat);
    assert_eq!(exp - iat, 3600);
    assert!(claims.get("azp").is_none());
}

#[tokio::test]
async fn form_post_flow_with_client_secret_post() {
    let f = start().await;
    let response = f
        .authorize("contoso", &[("response_mode", "form_post")])
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.unwrap();
    assert!(
        html.contains(&format!(r#"<form method="post" action="{REDIRECT_URI}">"#)),
        "{html}"
    );
    assert!(html.contains(r#"<button type="submit">"#));
    assert!(html.contains("document.forms[0].submit()"));
    let fields: HashMap<String, String> = hidden_inputs(&html).into_iter().collect();
    assert_eq!(fields["state"], STATE);
    let response = f
        .redeem("contoso", &fields["code"], VERIFIER, Auth::Post)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let token = body["id_token"].as_str().unwrap();
    let claims = f
        .verify("contoso", token, &f.provider.issuer_for("contoso"))
        .await
        .unwrap();
    assert_eq!(claims["nonce"], NONCE);
    assert!(
        claims.get("email").is_none(),
        "no email parameter, no email claim"
    );
    assert!(claims.get("xms_edov").is_none());
}

#[tokio::test]
async fn fragment_mode_returns_the_code_in_the_fragment() {
    let f = start().await;
    let url = location(
        &f.authorize("contoso", &[("response_mode", "fragment")])
            .await,
    );
    assert_eq!(url.query(), None);
    let fragment: HashMap<String, String> =
        url::form_urlencoded::parse(url.fragment().unwrap().as_bytes())
            .into_owned()
            .collect();
    assert_eq!(fragment["state"], STATE);
    let response = f
        .redeem("contoso", &fragment["code"], VERIFIER, Auth::Basic)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn pkce_mismatch_and_code_reuse_are_invalid_grant() {
    let f = start().await;
    let (code, _) = code_from_redirect(&f.authorize("contoso", &[]).await);
    let response = f
        .redeem(
            "contoso",
            &code,
            "another-verifier-another-verifier-1234567890",
            Auth::Basic,
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");

    let (code, _) = code_from_redirect(&f.authorize("contoso", &[]).await);
    let first = f.redeem("contoso", &code, VERIFIER, Auth::Basic).await;
    assert_eq!(first.status(), StatusCode::OK);
    let second = f.redeem("contoso", &code, VERIFIER, Auth::Post).await;
    assert_eq!(second.status(), StatusCode::BAD_REQUEST);
    let body: Value = second.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(
        body["error_description"],
        "authorization code already redeemed"
    );

    let response = f
        .redeem("contoso", "made-up-code", VERIFIER, Auth::Basic)
        .await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn client_authentication_failures() {
    let f = start().await;
    let token_url = f.url("/contoso/oauth2/v2.0/token");
    let (code, _) = code_from_redirect(&f.authorize("contoso", &[]).await);
    let base_form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", VERIFIER),
    ];

    let mut wrong_secret = base_form.to_vec();
    wrong_secret.extend([("client_id", CLIENT_ID), ("client_secret", "guess")]);
    let response = f
        .http
        .post(&token_url)
        .form(&wrong_secret)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().contains_key(WWW_AUTHENTICATE));
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );

    // The secret unencoded in Basic: '%' and '+' decode differently.
    let raw = format!("Basic {}", STANDARD.encode(format!("{CLIENT_ID}:{SECRET}")));
    let response = f
        .http
        .post(&token_url)
        .header(AUTHORIZATION, raw)
        .form(&base_form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let response = f
        .http
        .post(&token_url)
        .form(&base_form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let mut unknown = base_form.to_vec();
    unknown.extend([("client_id", "nobody"), ("client_secret", SECRET)]);
    let response = f.http.post(&token_url).form(&unknown).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let mut both = base_form.to_vec();
    both.extend([("client_id", CLIENT_ID), ("client_secret", SECRET)]);
    let basic = format!(
        "Basic {}",
        STANDARD.encode(format!(
            "{}:{}",
            form_encode(CLIENT_ID),
            form_encode(SECRET)
        ))
    );
    let response = f
        .http
        .post(&token_url)
        .header(AUTHORIZATION, basic)
        .form(&both)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "invalid_request"
    );

    // None of these consumed the code.
    let response = f.redeem("contoso", &code, VERIFIER, Auth::Post).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn redirect_uri_must_match_at_the_token_endpoint() {
    let f = start().await;
    let (code, _) = code_from_redirect(&f.authorize("contoso", &[]).await);
    let response = f
        .http
        .post(f.url("/contoso/oauth2/v2.0/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", "http://127.0.0.1:9/other"),
            ("code_verifier", VERIFIER),
            ("client_id", CLIENT_ID),
            ("client_secret", SECRET),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
}

#[tokio::test]
async fn redirect_uri_is_compared_as_registered_not_normalised() {
    let f = start().await;
    let token_url = f.url("/contoso/oauth2/v2.0/token");
    // URL parsing would turn the registered URI into "http://localhost:9/".
    for (redirect_uri, status) in [
        ("http://localhost:9/", StatusCode::BAD_REQUEST),
        (BARE_REDIRECT_URI, StatusCode::OK),
    ] {
        let url = location(
            &f.authorize("contoso", &[("redirect_uri", BARE_REDIRECT_URI)])
                .await,
        );
        assert_eq!(url.host_str(), Some("localhost"));
        let code = query_of(&url)["code"].clone();
        let form = [
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", VERIFIER),
            ("client_id", CLIENT_ID),
            ("client_secret", SECRET),
        ];
        let response = f.http.post(&token_url).form(&form).send().await.unwrap();
        assert_eq!(response.status(), status, "{redirect_uri}");
    }
}

#[tokio::test]
async fn unregistered_redirect_uri_or_client_gets_an_error_page_and_no_redirect() {
    let f = start().await;
    for overrides in [
        [("redirect_uri", "http://127.0.0.1:9/evil")],
        [("redirect_uri", "http://127.0.0.1:9/oauth2/callback/")],
        [("client_id", "unknown-app")],
    ] {
        let response = f.authorize("contoso", &overrides).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(!response.headers().contains_key(LOCATION));
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        let html = response.text().await.unwrap();
        assert!(!html.contains("evil"));
    }
}

#[tokio::test]
async fn client_errors_after_redirect_validation_go_back_to_the_client() {
    let f = start().await;
    let cases: [(&[(&str, &str)], &str); 8] = [
        (&[("response_mode", "web_message")], "invalid_request"),
        (&[("response_type", "token")], "unsupported_response_type"),
        (&[("code_challenge_method", "plain")], "invalid_request"),
        (&[("code_challenge_method", "")], "invalid_request"),
        (&[("code_challenge", "")], "invalid_request"),
        (&[("nonce", "")], "invalid_request"),
        (&[("scope", "profile email")], "invalid_scope"),
        (&[("fault", "not_a_fault")], "invalid_request"),
    ];
    for (overrides, error) in cases {
        let query = query_of(&location(&f.authorize("contoso", overrides).await));
        assert_eq!(query["error"], error, "{overrides:?}");
        assert!(!query["error_description"].is_empty());
        assert_eq!(query["state"], STATE);
        assert!(!query.contains_key("code"));
    }
    let response = f
        .authorize(
            "contoso",
            &[("response_mode", "form_post"), ("response_type", "token")],
        )
        .await;
    let fields: HashMap<String, String> = hidden_inputs(&response.text().await.unwrap())
        .into_iter()
        .collect();
    assert_eq!(fields["error"], "unsupported_response_type");
}

#[tokio::test]
async fn signature_faults_break_the_signature() {
    let f = start().await;
    let issuer = f.provider.issuer_for("contoso");

    let token = f.id_token("contoso", &[("fault", "bad_signature")]).await;
    let error = f.verify("contoso", &token, &issuer).await.unwrap_err();
    assert_eq!(error.kind(), &ErrorKind::InvalidSignature);

    let token = f.id_token("contoso", &[("fault", "alg_none")]).await;
    assert_eq!(part(&token, 0)["alg"], "none");
    assert!(token.ends_with('.'), "empty signature");
    assert!(jsonwebtoken::decode_header(&token).is_err());
    assert_eq!(part(&token, 1)["nonce"], NONCE);

    let token = f.id_token("contoso", &[("fault", "hmac_public_key")]).await;
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.alg, Algorithm::HS256);
    assert_eq!(
        header.kid.as_deref(),
        Some(f.provider.current_kid().as_str())
    );
    assert_eq!(
        f.verify("contoso", &token, &issuer)
            .await
            .unwrap_err()
            .kind(),
        &ErrorKind::InvalidAlgorithm
    );
    // The key-confusion attack: the HMAC secret is the published key's PEM.
    let jwks = f.jwks("contoso").await;
    let n = URL_SAFE_NO_PAD
        .decode(jwks["keys"][0]["n"].as_str().unwrap())
        .unwrap();
    let e = URL_SAFE_NO_PAD
        .decode(jwks["keys"][0]["e"].as_str().unwrap())
        .unwrap();
    let public = RsaPublicKey::new(BigUint::from_bytes_be(&n), BigUint::from_bytes_be(&e)).unwrap();
    let pem = public.to_public_key_pem(LineEnding::LF).unwrap();
    let mut hs256 = Validation::new(Algorithm::HS256);
    hs256.set_audience(&[CLIENT_ID]);
    jsonwebtoken::decode::<Value>(&token, &DecodingKey::from_secret(pem.as_bytes()), &hs256)
        .expect("HS256 keyed with the public key PEM");

    let token = f.id_token("contoso", &[("fault", "unknown_kid")]).await;
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.alg, Algorithm::RS256);
    let kid = header.kid.unwrap();
    assert!(!f.kids("contoso").await.contains(&kid));
    let jwk = &jwks["keys"][0];
    let published =
        DecodingKey::from_rsa_components(jwk["n"].as_str().unwrap(), jwk["e"].as_str().unwrap())
            .unwrap();
    let mut rs256 = Validation::new(Algorithm::RS256);
    rs256.set_audience(&[CLIENT_ID]);
    let error = jsonwebtoken::decode::<Value>(&token, &published, &rs256).unwrap_err();
    assert_eq!(error.kind(), &ErrorKind::InvalidSignature);
}

#[tokio::test]
async fn claim_faults_produce_their_defect() {
    let f = start().await;
    let issuer = f.provider.issuer_for("contoso");
    let kind = |result: jsonwebtoken::errors::Result<Value>| result.unwrap_err().kind().clone();

    let token = f.id_token("contoso", &[("fault", "wrong_iss")]).await;
    assert_eq!(
        kind(f.verify("contoso", &token, &issuer).await),
        ErrorKind::InvalidIssuer
    );
    assert_ne!(part(&token, 1)["iss"], issuer.as_str());

    let token = f.id_token("contoso", &[("fault", "wrong_aud")]).await;
    assert_eq!(
        kind(f.verify("contoso", &token, &issuer).await),
        ErrorKind::InvalidAudience
    );

    let token = f.id_token("contoso", &[("fault", "expired")]).await;
    assert_eq!(
        kind(f.verify("contoso", &token, &issuer).await),
        ErrorKind::ExpiredSignature
    );
    let claims = part(&token, 1);
    assert!(claims["exp"].as_i64().unwrap() <= now() - 7200);
    assert!(claims["iat"].as_i64().unwrap() <= now() - 7200);

    let token = f.id_token("contoso", &[("fault", "future_nbf")]).await;
    assert_eq!(
        kind(f.verify("contoso", &token, &issuer).await),
        ErrorKind::ImmatureSignature
    );
    assert!(part(&token, 1)["nbf"].as_i64().unwrap() >= now() + 3500);

    let token = f.id_token("contoso", &[("fault", "no_sub")]).await;
    assert_eq!(
        kind(f.verify("contoso", &token, &issuer).await),
        ErrorKind::MissingRequiredClaim("sub".into())
    );

    // These verify cryptographically; the relying party must catch the rest.
    let token = f.id_token("contoso", &[("fault", "wrong_nonce")]).await;
    let claims = f.verify("contoso", &token, &issuer).await.unwrap();
    assert_ne!(claims["nonce"], NONCE);

    let token = f
        .id_token("contoso", &[("fault", "extra_aud_no_azp")])
        .await;
    let claims = f.verify("contoso", &token, &issuer).await.unwrap();
    assert_eq!(claims["aud"], serde_json::json!([CLIENT_ID, "other"]));
    assert!(claims.get("azp").is_none());

    let token = f
        .id_token("contoso", &[("fault", "extra_aud_with_azp")])
        .await;
    let claims = f.verify("contoso", &token, &issuer).await.unwrap();
    assert_eq!(claims["aud"], serde_json::json!([CLIENT_ID, "other"]));
    assert_eq!(claims["azp"], CLIENT_ID);
}

#[tokio::test]
async fn rotation_publishes_old_and_new_keys_and_signs_with_the_new_one() {
    let f = start().await;
    let old = f.provider.current_kid();
    assert_eq!(f.kids("contoso").await, vec![old.clone()]);

    f.provider.rotate_keys();
    let new = f.provider.current_kid();
    assert_ne!(new, old);
    assert_eq!(f.kids("contoso").await, vec![new.clone(), old.clone()]);
    let token = f.id_token("contoso", &[]).await;
    assert_eq!(
        jsonwebtoken::decode_header(&token).unwrap().kid,
        Some(new.clone())
    );
    f.verify("contoso", &token, &f.provider.issuer_for("contoso"))
        .await
        .unwrap();

    f.provider.rotate_keys_dropping_old();
    let newest = f.provider.current_kid();
    assert_eq!(f.kids("contoso").await, vec![newest.clone()]);

    // Over HTTP, as another process would.
    let rotated: Value = f
        .http
        .post(f.url("/_rotate"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        rotated["published_kids"],
        serde_json::json!([rotated["current_kid"], newest])
    );
    let rotated: Value = f
        .http
        .post(f.url("/_rotate?drop_old=true"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        rotated["published_kids"],
        serde_json::json!([rotated["current_kid"]])
    );
    assert_eq!(f.kids("common").await, vec![f.provider.current_kid()]);
}

#[tokio::test]
async fn counters_count_each_endpoint() {
    let f = start().await;
    assert_eq!(f.provider.counters(), Counters::default());
    f.get_json("/contoso/v2.0/.well-known/openid-configuration")
        .await;
    f.get_json("/common/v2.0/.well-known/openid-configuration")
        .await;
    let token = f.id_token("contoso", &[]).await;
    f.verify("contoso", &token, &f.provider.issuer_for("contoso"))
        .await
        .unwrap();
    let expected = Counters {
        discovery: 2,
        authorize: 1,
        token: 1,
        keys: 1,
        logout: 0,
        graph: 0,
        refresh: 0,
        claim_source: 0,
    };
    assert_eq!(f.provider.counters(), expected);
    let over_http: Counters = f
        .http
        .get(f.url("/_counters"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(over_http, expected);
}

#[tokio::test]
async fn interactive_sign_in_form_escapes_and_completes() {
    let f = start().await;
    let response = f
        .authorize(
            "contoso",
            &[
                ("auto", ""),
                ("name", "<script>alert(1)</script>"),
                ("fault", "wrong_nonce"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.unwrap();
    assert!(!html.contains("<script>"), "{html}");
    assert!(
        html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "{html}"
    );
    assert!(html.contains(r#"name="xms_edov" value="true" checked"#));
    for field in [r#"name="groups""#, r#"name="roles""#, r#"name="overage""#] {
        assert!(html.contains(field), "{field} on the form");
    }
    assert!(html.contains("ada@example.com"));
    assert!(
        !html.contains(r#"name="tid""#),
        "a named tenant's tid is fixed"
    );
    let hidden = hidden_inputs(&html);
    let names: Vec<&str> = hidden.iter().map(|(name, _)| name.as_str()).collect();
    assert!(names.contains(&"signin"));
    assert!(!names.contains(&"name"));
    assert!(
        hidden.contains(&("state".to_owned(), STATE.to_owned())),
        "state escaped and carried"
    );

    // Submit the form as a browser would, with the box unticked.
    let mut form = hidden;
    form.extend(
        [
            ("name", "Émilie du Châtelet"),
            ("given_name", "Émilie"),
            ("family_name", "du Châtelet"),
            ("email", "emilie@example.com"),
            ("preferred_username", "emilie@example.com"),
            ("groups", "g-physics, g-letters"),
            ("roles", "Console.User"),
            ("overage", ""),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let response = f
        .http
        .post(f.url("/contoso/oauth2/v2.0/authorize"))
        .form(&form)
        .send()
        .await
        .unwrap();
    let (code, state) = code_from_redirect(&response);
    assert_eq!(state, STATE);
    let body: Value = f
        .redeem("contoso", &code, VERIFIER, Auth::Basic)
        .await
        .json()
        .await
        .unwrap();
    let token = body["id_token"].as_str().unwrap();
    let claims = f
        .verify("contoso", token, &f.provider.issuer_for("contoso"))
        .await
        .unwrap();
    assert_eq!(claims["name"], "Émilie du Châtelet");
    assert_eq!(claims["email"], "emilie@example.com");
    assert_eq!(claims["xms_edov"], false);
    assert_eq!(
        claims["groups"],
        serde_json::json!(["g-physics", "g-letters"])
    );
    assert_eq!(claims["roles"], serde_json::json!(["Console.User"]));
    assert_ne!(
        claims["nonce"], NONCE,
        "the fault was carried through the form"
    );
}

#[tokio::test]
async fn common_tenant_publishes_tenantid_and_issues_the_real_tid() {
    let f = start().await;
    let base = &f.base;
    for tenant in ["common", "organizations"] {
        let doc = f
            .get_json(&format!("/{tenant}/v2.0/.well-known/openid-configuration"))
            .await;
        assert_eq!(doc["issuer"], format!("{base}/{{tenantid}}/v2.0"));
        assert_eq!(doc["issuer"], f.provider.issuer_for(tenant));
        assert_eq!(
            doc["token_endpoint"],
            format!("{base}/{tenant}/oauth2/v2.0/token")
        );
        assert_eq!(
            f.jwks(tenant).await["keys"][0]["issuer"],
            format!("{base}/{{tenantid}}/v2.0")
        );
    }

    let token = f.id_token("common", &[]).await;
    let claims = f
        .verify("common", &token, &format!("{base}/{DEFAULT_TID}/v2.0"))
        .await
        .unwrap();
    assert_eq!(claims["tid"], DEFAULT_TID);

    let tid = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    let token = f
        .id_token(
            "organizations",
            &[("tid", tid), ("sub", "fixed-sub"), ("oid", "fixed-oid")],
        )
        .await;
    let claims = f
        .verify("organizations", &token, &format!("{base}/{tid}/v2.0"))
        .await
        .unwrap();
    assert_eq!(claims["tid"], tid);
    assert_eq!(claims["sub"], "fixed-sub");
    assert_eq!(claims["oid"], "fixed-oid");

    // The form lets the user pick the tid for multi-tenant sign-in.
    let html = f
        .authorize("common", &[("auto", "")])
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains(&format!(r#"name="tid" value="{DEFAULT_TID}""#)));
}

#[tokio::test]
async fn email_and_xms_edov_parameters_shape_the_claims() {
    let f = start().await;
    let issuer = f.provider.issuer_for("contoso");
    let token = f
        .id_token("contoso", &[("email", ""), ("xms_edov", "false")])
        .await;
    let claims = f.verify("contoso", &token, &issuer).await.unwrap();
    assert!(claims.get("email").is_none());
    assert_eq!(claims["xms_edov"], false);

    let a = f.id_token("contoso", &[("email", "ada@example.com")]).await;
    let b = f.id_token("contoso", &[("email", "ada@example.com")]).await;
    assert_eq!(
        part(&a, 1)["sub"],
        part(&b, 1)["sub"],
        "default sub is derived from email"
    );
    let c = f.id_token("contoso", &[("email", "bob@example.com")]).await;
    assert_ne!(part(&a, 1)["sub"], part(&c, 1)["sub"]);

    let query = query_of(&location(
        &f.authorize("contoso", &[("xms_edov", "yes")]).await,
    ));
    assert_eq!(query["error"], "invalid_request");
}
