//! The identity assertion's keys: published at `/.idgate/jwks.json`, kept
//! across restarts, rotated through the admin API with the previous key
//! still published while its assertions live, or fixed by a key file.

mod common;

use common::login::{provider, provider_toml, register, Browser, TENANT};
use common::upstream::{echoed, Upstream};
use common::{client, Gateway};

const TOKEN: &str = "assertion-admin-token-0123456789";

async fn assertion(b: &Browser, gw: &Gateway) -> String {
    let echo = b.echo(gw, "/x").await;
    echoed(&echo, "x-idgate-assertion")
        .first()
        .expect("an assertion")
        .to_string()
}

fn kid(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

async fn jwks(gw: &Gateway) -> jsonwebtoken::jwk::JwkSet {
    client()
        .get(gw.url("/.idgate/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn verifies(gw: &Gateway, up: &Upstream, token: &str) -> bool {
    let set = jwks(gw).await;
    let Some(jwk) = set.find(&kid(token)) else {
        return false;
    };
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    v.set_audience(&[up.url()]);
    v.set_issuer(&[gw.url("")]);
    jsonwebtoken::decode::<serde_json::Value>(
        token,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
        &v,
    )
    .is_ok()
}

async fn sign_in(gw: &Gateway, email: &str) -> Browser {
    let b = Browser::new();
    assert_eq!(
        b.login(gw, "entra", "/", &[("email", email)])
            .await
            .status(),
        302
    );
    b
}

#[tokio::test(flavor = "multi_thread")]
async fn rotation_keeps_the_previous_key_published_and_survives_restarts() {
    let idp = provider().await;
    let up = Upstream::start().await;
    let toml = format!(
        "[admin]\ntoken = \"{TOKEN}\"\n{}",
        provider_toml(
            &idp,
            "entra",
            TENANT,
            r#"allowed_email_domains = ["example.com"]"#
        )
    );
    let gw = Gateway::start(&up.url(), &toml).await;
    register(&idp, &gw, "entra");
    let r = client()
        .get(gw.url("/.idgate/jwks.json"))
        .send()
        .await
        .unwrap();
    let cache: Vec<_> = r.headers().get_all("cache-control").iter().collect();
    assert_eq!(
        cache,
        vec!["public, max-age=300"],
        "one cache policy for the keys"
    );
    let ada = sign_in(&gw, "ada@example.com").await;
    let first = assertion(&ada, &gw).await;
    assert!(verifies(&gw, &up, &first).await);
    assert_eq!(
        assertion(&ada, &gw).await,
        first,
        "cached per session, not signed per request"
    );

    let r = client()
        .post(gw.admin_url("/api/v1/assertion-keys/rotate"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let new_kid = r.json::<serde_json::Value>().await.unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(new_kid, kid(&first));
    let published: Vec<String> = jwks(&gw)
        .await
        .keys
        .iter()
        .filter_map(|k| k.common.key_id.clone())
        .collect();
    assert_eq!(published, vec![new_kid.clone(), kid(&first)]);
    assert!(
        verifies(&gw, &up, &first).await,
        "assertions of the old key still verify"
    );

    let bob = sign_in(&gw, "bob@example.com").await;
    let second = assertion(&bob, &gw).await;
    assert_eq!(kid(&second), new_kid);

    let gw = gw.restart(&up.url(), &toml).await;
    let published: Vec<String> = jwks(&gw)
        .await
        .keys
        .iter()
        .filter_map(|k| k.common.key_id.clone())
        .collect();
    assert_eq!(
        published,
        vec![new_kid.clone(), kid(&first)],
        "both keys survive a restart"
    );
    register(&idp, &gw, "entra");
    let carol = sign_in(&gw, "carol@example.com").await;
    assert_eq!(kid(&assertion(&carol, &gw).await), new_kid);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_file_is_used_and_cannot_be_rotated_through_the_api() {
    let idp = provider().await;
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("assertion.pem");
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let toml =
        format!(
        "[admin]\ntoken = \"{TOKEN}\"\n[assertion]\nkey_file = \"{}\"\naudience = \"console\"\n{}",
        key_path.display(),
        provider_toml(&idp, "entra", TENANT, r#"allowed_email_domains = ["example.com"]"#)
    );
    let gw = Gateway::start(&up.url(), &toml).await;
    register(&idp, &gw, "entra");
    let ada = sign_in(&gw, "ada@example.com").await;
    let token = assertion(&ada, &gw).await;
    let set = jwks(&gw).await;
    assert_eq!(set.keys.len(), 1);
    // The published key is the configured one…
    let jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(ec) = &set.keys[0].algorithm else {
        panic!("an EC key expected");
    };
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut point = vec![4u8];
    point.extend(b64.decode(&ec.x).unwrap());
    point.extend(b64.decode(&ec.y).unwrap());
    assert_eq!(point, key.public_key_raw());
    // …and the assertion verifies with it, for the configured audience.
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    v.set_audience(&["console"]);
    let verified = jsonwebtoken::decode::<serde_json::Value>(
        &token,
        &jsonwebtoken::DecodingKey::from_jwk(&set.keys[0]).unwrap(),
        &v,
    );
    assert!(verified.is_ok(), "{verified:?}");
    let r = client()
        .post(gw.admin_url("/api/v1/assertion-keys/rotate"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
}
