//! Signing keys from a provider's JWKS: which entries are usable public
//! keys, and the key set of one `jwks_uri` as the client caches it.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use jsonwebtoken::DecodingKey;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;

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
pub(super) struct KeySet(HashMap<String, Arc<Jwk>>);

impl KeySet {
    pub(super) fn parse(entries: Vec<Value>) -> KeySet {
        let mut keys = HashMap::new();
        for jwk in entries.into_iter().filter_map(Jwk::parse) {
            keys.entry(jwk.kid.clone()).or_insert_with(|| Arc::new(jwk));
        }
        KeySet(keys)
    }

    pub(super) fn get(&self, kid: &str) -> Option<Arc<Jwk>> {
        self.0.get(kid).cloned()
    }
}

/// The cached key set of one `jwks_uri` and its refetch state.
pub(super) struct KeyStore {
    pub(super) current: RwLock<Arc<KeySet>>,
    /// When an unknown kid last triggered a refetch; held while refetching,
    /// so concurrent callers share one request.
    pub(super) last_refetch: Mutex<Option<Instant>>,
}

impl KeyStore {
    pub(super) fn current(&self) -> Arc<KeySet> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    pub(super) fn replace(&self, keys: Arc<KeySet>) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = keys;
    }
}

#[derive(Deserialize)]
pub(super) struct JwksDocument {
    pub(super) keys: Vec<Value>,
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
}
