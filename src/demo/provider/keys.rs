//! RSA signing keys of the demo provider: generation, key ids, the published
//! JWKS, and rollover that keeps the previous key published like Entra does.
//!
//! Demo and test use only: keys live in memory and are never persisted.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::EncodingKey;
use rand::rngs::OsRng;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::RsaPrivateKey;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Size of every generated key, as Entra uses.
const KEY_BITS: usize = 2048;

/// One RSA key pair, ready to sign RS256 tokens and to be published.
pub(super) struct SigningKey {
    /// RFC 7638 JWK thumbprint (SHA-256, base64url).
    pub(super) kid: String,
    pub(super) encoding: EncodingKey,
    /// Modulus, base64url without padding.
    n: String,
    /// Public exponent, base64url without padding.
    e: String,
    /// The public key as SPKI PEM: the HMAC secret of the key-confusion fault.
    pub(super) public_pem: String,
}

impl SigningKey {
    /// Generates a fresh RSA-2048 key. Slow in unoptimised builds: call it off
    /// the async worker threads.
    pub(super) fn generate() -> SigningKey {
        let private = RsaPrivateKey::new(&mut OsRng, KEY_BITS)
            .expect("generating an RSA-2048 key with the OS random source");
        let public = private.to_public_key();
        let der = private
            .to_pkcs1_der()
            .expect("a freshly generated RSA key encodes as PKCS#1 DER");
        let public_pem = public
            .to_public_key_pem(LineEnding::LF)
            .expect("a freshly generated RSA public key encodes as PEM");
        let n = URL_SAFE_NO_PAD.encode(public.n().to_bytes_be());
        let e = URL_SAFE_NO_PAD.encode(public.e().to_bytes_be());
        SigningKey {
            kid: thumbprint(&n, &e),
            encoding: EncodingKey::from_rsa_der(der.as_bytes()),
            n,
            e,
            public_pem,
        }
    }

    /// The key as a JWKS entry, with the per-key `issuer` Entra publishes.
    fn jwk(&self, issuer: &str) -> Jwk {
        Jwk {
            kty: "RSA",
            key_use: "sig",
            kid: self.kid.clone(),
            n: self.n.clone(),
            e: self.e.clone(),
            alg: "RS256",
            issuer: issuer.to_owned(),
        }
    }
}

/// The RFC 7638 SHA-256 thumbprint of an RSA public key, base64url.
fn thumbprint(n: &str, e: &str) -> String {
    // Required members in lexicographic order, no whitespace (RFC 7638 §3).
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// One key of the published JWKS.
#[derive(Serialize)]
struct Jwk {
    kty: &'static str,
    #[serde(rename = "use")]
    key_use: &'static str,
    kid: String,
    n: String,
    e: String,
    alg: &'static str,
    issuer: String,
}

/// The JWKS document served at `/<tenant>/discovery/v2.0/keys`.
#[derive(Serialize)]
pub(super) struct Jwks {
    keys: Vec<Jwk>,
}

/// The current signing key and, during rollover, the one before it.
pub(super) struct KeySet {
    current: Arc<SigningKey>,
    previous: Option<Arc<SigningKey>>,
}

impl KeySet {
    pub(super) fn new(first: SigningKey) -> KeySet {
        KeySet {
            current: Arc::new(first),
            previous: None,
        }
    }

    pub(super) fn current(&self) -> Arc<SigningKey> {
        Arc::clone(&self.current)
    }

    /// Makes `next` current; keeps the old current key published unless
    /// `keep_previous` is false. A key older than that is dropped.
    pub(super) fn rotate(&mut self, next: SigningKey, keep_previous: bool) {
        let old = std::mem::replace(&mut self.current, Arc::new(next));
        self.previous = keep_previous.then_some(old);
    }

    /// Key ids in publication order: the current key first.
    pub(super) fn kids(&self) -> Vec<String> {
        self.published().map(|key| key.kid.clone()).collect()
    }

    pub(super) fn jwks(&self, issuer: &str) -> Jwks {
        Jwks {
            keys: self.published().map(|key| key.jwk(issuer)).collect(),
        }
    }

    fn published(&self) -> impl Iterator<Item = &Arc<SigningKey>> {
        std::iter::once(&self.current).chain(self.previous.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_one_previous_key_and_can_drop_it() {
        let first = SigningKey::generate();
        let first_kid = first.kid.clone();
        let mut set = KeySet::new(first);
        assert_eq!(set.kids(), vec![first_kid.clone()]);

        set.rotate(SigningKey::generate(), true);
        let second_kid = set.current().kid.clone();
        assert_eq!(set.kids(), vec![second_kid.clone(), first_kid]);

        set.rotate(SigningKey::generate(), true);
        let third_kid = set.current().kid.clone();
        assert_eq!(set.kids(), vec![third_kid.clone(), second_kid]);

        set.rotate(SigningKey::generate(), false);
        assert_eq!(set.kids().len(), 1);
        assert_ne!(set.kids()[0], third_kid);
    }

    #[test]
    fn thumbprint_matches_the_rfc7638_example() {
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        assert_eq!(
            thumbprint(n, "AQAB"),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn generated_key_is_published_with_its_thumbprint() {
        let key = SigningKey::generate();
        assert_eq!(key.kid, thumbprint(&key.n, &key.e));
        assert_eq!(key.e, "AQAB");
        assert!(key.public_pem.starts_with("-----BEGIN PUBLIC KEY-----"));
    }
}
