//! Signed identity assertions for the upstream (`X-Idgate-Assertion`).
//!
//! For every proxied request idgate can forward an ES256 JWT that tells the
//! upstream who the user is, so the upstream can trust the identity without
//! trusting the network path. The token's header carries the `kid` of the
//! signing key; its claims are:
//!
//! | claim      | value                                                    |
//! | ---------- | -------------------------------------------------------- |
//! | `iss`      | the gateway's public URL                                 |
//! | `aud`      | configurable, by default the upstream URL                |
//! | `sub`      | the username                                             |
//! | `email`    | the user's email address                                 |
//! | `provider` | the ID of the identity provider the user logged in with  |
//! | `iat`      | when the token was issued (Unix seconds)                 |
//! | `exp`      | `iat` + the lifetime, at most [`MAX_LIFETIME`]           |
//!
//! The public keys are published at `/.idgate/jwks.json` ([`Signer::jwks`]),
//! so a relying party can verify assertions from that document alone. Each
//! key's `kid` is its RFC 7638 JWK thumbprint.
//!
//! A [`SigningKey`] is generated on first start and persisted by the caller as
//! PKCS#8 DER ([`SigningKey::pkcs8_der`], [`SigningKey::from_pkcs8_der`]), or
//! read from a configured PEM file ([`SigningKey::from_pem`]). On rotation
//! ([`Signer::rotate`]) the new key signs from then on while the previous key
//! stays in the JWKS until the last assertion it signed has expired.

use std::fmt;
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The longest lifetime an assertion can have; longer requests are capped.
pub const MAX_LIFETIME: Duration = Duration::from_secs(600);

/// DER of the PKCS#8 `AlgorithmIdentifier` for an EC key on P-256
/// (id-ecPublicKey, prime256v1), used to wrap SEC1 keys.
const P256_ALGORITHM_IDENTIFIER: [u8; 21] = [
    0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
    0xce, 0x3d, 0x03, 0x01, 0x07,
];

/// Why a key could not be loaded or generated, or an assertion not signed.
#[derive(Debug, thiserror::Error)]
pub enum AssertionError {
    /// The bytes are not a P-256 private key that ring accepts.
    #[error("not an ES256 (P-256) private key: {0}")]
    InvalidKey(#[source] ring::error::KeyRejected),
    /// The PEM text holds no usable private key block.
    #[error("invalid PEM private key: {0}")]
    Pem(&'static str),
    /// The system random number generator failed.
    #[error("could not generate an ES256 key: the system random number generator failed")]
    KeyGeneration,
    /// jsonwebtoken could not sign the assertion.
    #[error("could not sign the identity assertion: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// One ES256 (ECDSA P-256 with SHA-256) signing key.
#[derive(Clone)]
pub struct SigningKey {
    kid: String,
    pkcs8: Vec<u8>,
    encoding: EncodingKey,
    x: String,
    y: String,
}

impl SigningKey {
    /// Generates a fresh key from the system random number generator.
    pub fn generate() -> Result<SigningKey, AssertionError> {
        let document =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| AssertionError::KeyGeneration)?;
        SigningKey::from_pkcs8_der(document.as_ref())
    }

    /// Loads a key from PKCS#8 DER (as returned by [`SigningKey::pkcs8_der`]).
    ///
    /// ring requires the embedded public key, which every common tool
    /// (ring, OpenSSL) writes.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<SigningKey, AssertionError> {
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &SystemRandom::new())
                .map_err(AssertionError::InvalidKey)?;
        // An uncompressed P-256 point: 0x04 || X (32 bytes) || Y (32 bytes).
        let point = pair.public_key().as_ref();
        let x = URL_SAFE_NO_PAD.encode(&point[1..33]);
        let y = URL_SAFE_NO_PAD.encode(&point[33..65]);
        Ok(SigningKey {
            kid: thumbprint(&x, &y),
            pkcs8: der.to_vec(),
            encoding: EncodingKey::from_ec_der(der),
            x,
            y,
        })
    }

    /// Loads a key from PEM text: the first `PRIVATE KEY` (unencrypted
    /// PKCS#8) or `EC PRIVATE KEY` (SEC1, as written by
    /// `openssl ecparam -genkey`) block. Other blocks such as
    /// `EC PARAMETERS` are skipped; encrypted keys are rejected.
    pub fn from_pem(pem: &str) -> Result<SigningKey, AssertionError> {
        match pem_private_key(pem)? {
            PemKey::Pkcs8(der) => SigningKey::from_pkcs8_der(&der),
            PemKey::Sec1(der) => SigningKey::from_pkcs8_der(&sec1_to_pkcs8(&der)?),
        }
    }

    /// The key as PKCS#8 DER, for persisting it.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The key ID: the RFC 7638 thumbprint of the public JWK.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK, as published in the JWKS.
    pub fn public_jwk(&self) -> Value {
        json!({
            "kty": "EC",
            "crv": "P-256",
            "x": self.x,
            "y": self.y,
            "kid": self.kid,
            "use": "sig",
            "alg": "ES256",
        })
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The identity an assertion is about.
#[derive(Debug, Clone, Copy)]
pub struct AssertedIdentity<'a> {
    /// The username, sent as `sub`.
    pub username: &'a str,
    /// The email address, sent as `email`.
    pub email: &'a str,
    /// The ID of the provider the user logged in with, sent as `provider`.
    pub provider: &'a str,
    /// Entra group object IDs, sent as `groups` when there are any.
    pub groups: &'a [String],
    /// App roles, sent as `roles` when there are any.
    pub roles: &'a [String],
}

/// Signs assertions with the current key and publishes it together with the
/// previous keys whose assertions may still be valid.
#[derive(Debug)]
pub struct Signer {
    current: SigningKey,
    /// Previous keys and the last Unix second they are still published.
    previous: Vec<(SigningKey, i64)>,
    issuer: String,
    audience: String,
    lifetime_secs: i64,
}

impl Signer {
    /// A signer for tokens with issuer `issuer` and audience `audience`.
    /// `lifetime` is capped at [`MAX_LIFETIME`], rounded down to whole
    /// seconds, and at least one second.
    pub fn new(
        current: SigningKey,
        issuer: String,
        audience: String,
        lifetime: Duration,
    ) -> Signer {
        // At most 600, so the conversion cannot wrap.
        let lifetime_secs = lifetime.min(MAX_LIFETIME).as_secs().max(1) as i64;
        Signer {
            current,
            previous: Vec::new(),
            issuer,
            audience,
            lifetime_secs,
        }
    }

    /// The key that signs new assertions.
    pub fn current(&self) -> &SigningKey {
        &self.current
    }

    /// Signs an assertion about `id` issued at `now_unix`, as a compact JWT.
    pub fn sign(&self, id: &AssertedIdentity<'_>, now_unix: i64) -> Result<String, AssertionError> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.current.kid.clone());
        let claims = Claims {
            iss: &self.issuer,
            aud: &self.audience,
            sub: id.username,
            email: id.email,
            provider: id.provider,
            groups: id.groups,
            roles: id.roles,
            iat: now_unix,
            exp: self.expires_at(now_unix),
        };
        Ok(jsonwebtoken::encode(
            &header,
            &claims,
            &self.current.encoding,
        )?)
    }

    /// The `exp` of an assertion issued at `now_unix`.
    pub fn expires_at(&self, now_unix: i64) -> i64 {
        now_unix.saturating_add(self.lifetime_secs)
    }

    /// Makes `next` the signing key. The previous current key stays published
    /// until every assertion it signed has expired, that is through
    /// `now_unix` + lifetime; keys already past that are dropped.
    pub fn rotate(&mut self, next: SigningKey, now_unix: i64) {
        let retire_after = self.expires_at(now_unix);
        let old = std::mem::replace(&mut self.current, next);
        let kid = &self.current.kid;
        self.previous
            .retain(|(key, until)| *until >= now_unix && key.kid != *kid);
        if old.kid != *kid {
            self.previous.push((old, retire_after));
        }
    }

    /// Keeps publishing `key` (a former current key) through `until`.
    pub fn keep_published(&mut self, key: SigningKey, until: i64) {
        if key.kid != self.current.kid && self.previous.iter().all(|(k, _)| k.kid != key.kid) {
            self.previous.push((key, until));
        }
    }

    /// The JWKS to serve at `/.idgate/jwks.json` at `now_unix`: the current
    /// key first, then the previous keys that are still published.
    pub fn jwks(&self, now_unix: i64) -> Value {
        let previous = self
            .previous
            .iter()
            .filter(|(_, until)| *until >= now_unix)
            .map(|(key, _)| key.public_jwk());
        let keys: Vec<Value> = std::iter::once(self.current.public_jwk())
            .chain(previous)
            .collect();
        json!({ "keys": keys })
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    email: &'a str,
    provider: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    groups: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    roles: &'a [String],
    iat: i64,
    exp: i64,
}

/// The RFC 7638 thumbprint of a P-256 public JWK, base64url without padding.
fn thumbprint(x: &str, y: &str) -> String {
    // Required members only, in lexicographic order, without whitespace; x
    // and y are base64url, so they need no JSON escaping.
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

enum PemKey {
    Pkcs8(Vec<u8>),
    Sec1(Vec<u8>),
}

/// Finds the first private key block in PEM text and decodes it.
fn pem_private_key(pem: &str) -> Result<PemKey, AssertionError> {
    let mut lines = pem.lines().map(str::trim);
    while let Some(line) = lines.next() {
        let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|rest| rest.strip_suffix("-----"))
        else {
            continue;
        };
        let end = format!("-----END {label}-----");
        let mut body = String::new();
        let mut terminated = false;
        for line in lines.by_ref() {
            if line == end {
                terminated = true;
                break;
            }
            if line.contains(':') {
                return Err(AssertionError::Pem("encrypted keys are not supported"));
            }
            body.push_str(line);
        }
        if !terminated {
            return Err(AssertionError::Pem("a PEM block has no END line"));
        }
        let wrap: fn(Vec<u8>) -> PemKey = match label {
            "PRIVATE KEY" => PemKey::Pkcs8,
            "EC PRIVATE KEY" => PemKey::Sec1,
            "ENCRYPTED PRIVATE KEY" => {
                return Err(AssertionError::Pem("encrypted keys are not supported"));
            }
            _ => continue,
        };
        let der = STANDARD
            .decode(body)
            .map_err(|_| AssertionError::Pem("the key block is not valid base64"))?;
        return Ok(wrap(der));
    }
    Err(AssertionError::Pem(
        "no PRIVATE KEY or EC PRIVATE KEY block found",
    ))
}

/// Wraps a SEC1 `ECPrivateKey` in a PKCS#8 `PrivateKeyInfo` for P-256. ring
/// then checks the inner key, including that any curve it names is P-256.
fn sec1_to_pkcs8(sec1: &[u8]) -> Result<Vec<u8>, AssertionError> {
    let mut key = vec![0x04];
    push_der_len(&mut key, sec1.len())?;
    key.extend_from_slice(sec1);
    let content_len = 3 + P256_ALGORITHM_IDENTIFIER.len() + key.len();
    let mut out = vec![0x30];
    push_der_len(&mut out, content_len)?;
    out.extend_from_slice(&[0x02, 0x01, 0x00]);
    out.extend_from_slice(&P256_ALGORITHM_IDENTIFIER);
    out.extend_from_slice(&key);
    Ok(out)
}

/// Appends a DER definite length (up to 0xffff, far more than a P-256 key).
fn push_der_len(out: &mut Vec<u8>, len: usize) -> Result<(), AssertionError> {
    match u8::try_from(len) {
        Ok(short) if short < 0x80 => out.push(short),
        Ok(byte) => out.extend_from_slice(&[0x81, byte]),
        Err(_) => {
            let [hi, lo] = u16::try_from(len)
                .map_err(|_| AssertionError::Pem("the EC PRIVATE KEY block is too large"))?
                .to_be_bytes();
            out.extend_from_slice(&[0x82, hi, lo]);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::errors::ErrorKind;
    use jsonwebtoken::jwk::JwkSet;
    use jsonwebtoken::{DecodingKey, TokenData, Validation};

    const ISSUER: &str = "https://gateway.example.com";
    const AUDIENCE: &str = "http://upstream.internal:1885";
    const LIFETIME: Duration = Duration::from_secs(300);

    /// One P-256 key written by OpenSSL in its three usual PEM forms.
    const OPENSSL_SEC1_WITH_PARAMS: &str = "-----BEGIN EC PARAMETERS-----
BggqhkjOPQMBBw==
-----END EC PARAMETERS-----
-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIJSLa9b3FbhyXTf0T0nM/Mx1xomy2gyIzs0pics5KjGloAoGCCqGSM49
AwEHoUQDQgAEQY8HeYgkJZx2fnJf3a9Nj1pTpeSDQj9bYWTTajB3oXTZqVneMGyQ
Q/fbHOIRi5cKPe6AyJgglAloEVlSteLi4A==
-----END EC PRIVATE KEY-----
";
    const OPENSSL_PKCS8: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQglItr1vcVuHJdN/RP
Scz8zHXGibLaDIjOzSmJyzkqMaWhRANCAARBjwd5iCQlnHZ+cl/dr02PWlOl5INC
P1thZNNqMHehdNmpWd4wbJBD99sc4hGLlwo97oDImCCUCWgRWVK14uLg
-----END PRIVATE KEY-----
";
    /// The public point and RFC 7638 thumbprint of that key, computed with
    /// `openssl ec -pubout` and Python's hashlib.
    const OPENSSL_X: &str = "QY8HeYgkJZx2fnJf3a9Nj1pTpeSDQj9bYWTTajB3oXQ";
    const OPENSSL_Y: &str = "2alZ3jBskEP32xziEYuXCj3ugMiYIJQJaBFZUrXi4uA";
    const OPENSSL_KID: &str = "bkXqGNDIXpYJIkFezeL6J1Hn9_SHLvEjDg8XFhBf9B8";

    /// A P-384 key: valid PKCS#8, wrong curve.
    const OPENSSL_P384_PKCS8: &str = "-----BEGIN PRIVATE KEY-----
MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDC0sG6By01f1FJFLBYH
DcH0gkjJEwb3CCnpwkQ3dCYbDdrAOqJRanqkiUJzaF8aN+uhZANiAASebjm/e1DS
n82Xz80irzXeiy+T9SbHf38ELXV/07WWSgdP9X72rbsLAOWmCBJ44NmjAvv+HyHV
NsT/PWNyIGU9BxNjnNO9fLDYi8te4rN74/zMoTZAsBawr05PX33DMXs=
-----END PRIVATE KEY-----
";

    fn alice() -> AssertedIdentity<'static> {
        AssertedIdentity {
            username: "alice",
            email: "alice@example.com",
            provider: "entra",
            groups: &[],
            roles: &[],
        }
    }

    fn now() -> i64 {
        i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap()
    }

    fn signer(lifetime: Duration) -> Signer {
        Signer::new(
            SigningKey::generate().unwrap(),
            ISSUER.to_owned(),
            AUDIENCE.to_owned(),
            lifetime,
        )
    }

    /// Verifies like a relying party holding only the JWKS document: pick
    /// the key by the token's `kid` and build it from the JWK's `x` and `y`.
    fn verify(token: &str, jwks: &Value) -> jsonwebtoken::errors::Result<TokenData<Value>> {
        let kid = jsonwebtoken::decode_header(token)?.kid.unwrap();
        let jwk = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == kid.as_str())
            .ok_or(ErrorKind::InvalidKeyFormat)?;
        let key = DecodingKey::from_ec_components(
            jwk["x"].as_str().unwrap(),
            jwk["y"].as_str().unwrap(),
        )?;
        jsonwebtoken::decode(token, &key, &validation())
    }

    fn validation() -> Validation {
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_audience(&[AUDIENCE]);
        validation.set_issuer(&[ISSUER]);
        validation
    }

    #[test]
    fn round_trip_verifies_from_jwks_alone() {
        let signer = signer(LIFETIME);
        let now = now();
        let token = signer.sign(&alice(), now).unwrap();
        // Serialise the JWKS as it goes over the wire, then parse it back.
        let served = serde_json::to_string(&signer.jwks(now)).unwrap();
        let jwks: Value = serde_json::from_str(&served).unwrap();

        let data = verify(&token, &jwks).unwrap();

        assert_eq!(data.header.alg, Algorithm::ES256);
        assert_eq!(data.header.kid.as_deref(), Some(signer.current().kid()));
        assert_eq!(
            data.claims,
            json!({
                "iss": ISSUER,
                "aud": AUDIENCE,
                "sub": "alice",
                "email": "alice@example.com",
                "provider": "entra",
                "iat": now,
                "exp": now + 300,
            })
        );
        assert_eq!(signer.expires_at(now), now + 300);
    }

    #[test]
    fn jwks_matches_jwk_schema() {
        let signer = signer(LIFETIME);
        let jwks = signer.jwks(0);
        assert_eq!(
            jwks,
            json!({ "keys": [signer.current().public_jwk()] }),
            "one key before any rotation"
        );
        let jwk = &jwks["keys"][0];
        assert_eq!(jwk["kty"], "EC");
        assert_eq!(jwk["crv"], "P-256");
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["alg"], "ES256");
        assert_eq!(jwk["kid"], signer.current().kid());
        for coordinate in ["x", "y"] {
            let bytes = URL_SAFE_NO_PAD
                .decode(jwk[coordinate].as_str().unwrap())
                .unwrap();
            assert_eq!(bytes.len(), 32, "{coordinate} is a 32-byte coordinate");
        }

        // jsonwebtoken's own JWK types accept the document and can verify.
        let set: JwkSet = serde_json::from_value(jwks).unwrap();
        let now = now();
        let token = signer.sign(&alice(), now).unwrap();
        let key = DecodingKey::from_jwk(set.find(signer.current().kid()).unwrap()).unwrap();
        jsonwebtoken::decode::<Value>(&token, &key, &validation()).unwrap();
    }

    #[test]
    fn lifetime_is_capped_at_ten_minutes() {
        let signer = signer(Duration::from_secs(3600));
        let now = now();
        let claims = verify(&signer.sign(&alice(), now).unwrap(), &signer.jwks(now))
            .unwrap()
            .claims;
        let iat = claims["iat"].as_i64().unwrap();
        let exp = claims["exp"].as_i64().unwrap();
        assert_eq!(iat, now);
        assert_eq!(exp - iat, 600);
        assert_eq!(signer.expires_at(now), now + 600);
    }

    #[test]
    fn lifetime_is_at_least_one_second() {
        assert_eq!(signer(Duration::ZERO).expires_at(1000), 1001);
        assert_eq!(signer(Duration::from_millis(1500)).expires_at(1000), 1001);
    }

    #[test]
    fn pkcs8_round_trip_keeps_kid_and_key() {
        let key = SigningKey::generate().unwrap();
        let again = SigningKey::from_pkcs8_der(key.pkcs8_der()).unwrap();
        assert_eq!(again.kid(), key.kid());
        assert_eq!(again.public_jwk(), key.public_jwk());
        assert_eq!(again.pkcs8_der(), key.pkcs8_der());

        // A token signed with the reloaded key verifies against the original's
        // JWKS entry.
        let original = Signer::new(key, ISSUER.into(), AUDIENCE.into(), LIFETIME);
        let reloaded = Signer::new(again, ISSUER.into(), AUDIENCE.into(), LIFETIME);
        let now = now();
        let token = reloaded.sign(&alice(), now).unwrap();
        verify(&token, &original.jwks(now)).unwrap();
    }

    #[test]
    fn generated_keys_differ() {
        let a = SigningKey::generate().unwrap();
        let b = SigningKey::generate().unwrap();
        assert_ne!(a.kid(), b.kid());
        assert_ne!(a.pkcs8_der(), b.pkcs8_der());
    }

    #[test]
    fn kid_is_rfc7638_thumbprint() {
        let key = SigningKey::from_pem(OPENSSL_PKCS8).unwrap();
        assert_eq!(key.public_jwk()["x"], OPENSSL_X);
        assert_eq!(key.public_jwk()["y"], OPENSSL_Y);
        assert_eq!(key.kid(), OPENSSL_KID);
    }

    #[test]
    fn pem_import_pkcs8_and_sec1() {
        let pkcs8 = SigningKey::from_pem(OPENSSL_PKCS8).unwrap();
        let sec1 = SigningKey::from_pem(OPENSSL_SEC1_WITH_PARAMS).unwrap();
        assert_eq!(pkcs8.kid(), OPENSSL_KID);
        assert_eq!(sec1.kid(), OPENSSL_KID);

        // The SEC1 key was converted to PKCS#8 DER that reloads and signs.
        let reloaded = SigningKey::from_pkcs8_der(sec1.pkcs8_der()).unwrap();
        assert_eq!(reloaded.kid(), OPENSSL_KID);
        let signer = Signer::new(reloaded, ISSUER.into(), AUDIENCE.into(), LIFETIME);
        let now = now();
        let token = signer.sign(&alice(), now).unwrap();
        let jwks = Signer::new(pkcs8, ISSUER.into(), AUDIENCE.into(), LIFETIME).jwks(now);
        verify(&token, &jwks).unwrap();
    }

    #[test]
    fn pem_import_of_generated_key() {
        let key = SigningKey::generate().unwrap();
        let body = STANDARD.encode(key.pkcs8_der());
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|chunk| std::str::from_utf8(chunk).unwrap())
            .collect();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\r\n{}\r\n-----END PRIVATE KEY-----\r\n",
            lines.join("\r\n")
        );
        assert_eq!(SigningKey::from_pem(&pem).unwrap().kid(), key.kid());
    }

    #[test]
    fn rejects_unusable_keys() {
        assert!(matches!(
            SigningKey::from_pem(OPENSSL_P384_PKCS8),
            Err(AssertionError::InvalidKey(_))
        ));
        assert!(matches!(
            SigningKey::from_pkcs8_der(b"not a key"),
            Err(AssertionError::InvalidKey(_))
        ));
        let encrypted =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n";
        let legacy_encrypted = "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\nMIIB\n-----END EC PRIVATE KEY-----\n";
        let truncated = &OPENSSL_PKCS8[..OPENSSL_PKCS8.len() - 30];
        let public_only = "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n";
        let bad_base64 = "-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n";
        for pem in [
            encrypted,
            legacy_encrypted,
            truncated,
            public_only,
            bad_base64,
            "",
        ] {
            assert!(
                matches!(SigningKey::from_pem(pem), Err(AssertionError::Pem(_))),
                "{pem:?}"
            );
        }
    }

    #[test]
    fn debug_does_not_print_the_private_key() {
        let key = SigningKey::from_pem(OPENSSL_PKCS8).unwrap();
        let debug = format!("{key:?}");
        assert!(debug.contains(OPENSSL_KID));
        assert!(!debug.contains("pkcs8"));
        let secret = STANDARD.encode(key.pkcs8_der());
        assert!(!debug.contains(&secret[..20]));
    }

    #[test]
    fn rotation_publishes_old_key_until_its_assertions_expire() {
        let mut signer = signer(LIFETIME);
        let t = now();
        let old_kid = signer.current().kid().to_owned();
        let old_token = signer.sign(&alice(), t).unwrap();

        let next = SigningKey::generate().unwrap();
        let new_kid = next.kid().to_owned();
        signer.rotate(next, t);

        let new_token = signer.sign(&alice(), t).unwrap();
        let header = jsonwebtoken::decode_header(&new_token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(new_kid.as_str()));

        let kids = |now: i64| -> Vec<String> {
            signer.jwks(now)["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["kid"].as_str().unwrap().to_owned())
                .collect()
        };
        let both = vec![new_kid.clone(), old_kid.clone()];
        assert_eq!(kids(t), both);
        assert_eq!(kids(t + 300), both, "published through the last exp");
        assert_eq!(kids(t + 301), vec![new_kid.clone()]);

        // During the overlap both the old and the new assertions verify.
        let jwks = signer.jwks(t);
        assert_eq!(verify(&old_token, &jwks).unwrap().header.kid, Some(old_kid));
        assert_eq!(verify(&new_token, &jwks).unwrap().header.kid, Some(new_kid));
        // Once the old key is gone, its assertions no longer verify.
        assert!(verify(&old_token, &signer.jwks(t + 301)).is_err());
    }

    #[test]
    fn repeated_rotation_drops_retired_keys() {
        let mut signer = signer(LIFETIME);
        let first = signer.current().clone();
        let second = SigningKey::generate().unwrap();
        let third = SigningKey::generate().unwrap();

        signer.rotate(second.clone(), 1000);
        signer.rotate(third.clone(), 1100);
        assert_eq!(signer.jwks(1100)["keys"].as_array().unwrap().len(), 3);
        assert_eq!(signer.jwks(1301)["keys"].as_array().unwrap().len(), 2);
        assert_eq!(signer.jwks(1401)["keys"].as_array().unwrap().len(), 1);

        // Rotating long after drops the retired entries for good.
        signer.rotate(first.clone(), 5000);
        assert_eq!(
            signer
                .previous
                .iter()
                .map(|(k, _)| k.kid())
                .collect::<Vec<_>>(),
            vec![third.kid()]
        );
        // Rotating back to a key that is still published does not list it twice.
        signer.rotate(third.clone(), 5001);
        assert_eq!(
            signer.jwks(5001),
            json!({ "keys": [third.public_jwk(), first.public_jwk()] })
        );
        // Rotating to the current key changes nothing.
        signer.rotate(third.clone(), 5002);
        assert_eq!(
            signer.jwks(5002),
            json!({ "keys": [third.public_jwk(), first.public_jwk()] })
        );
    }

    #[test]
    fn token_from_unrelated_key_is_rejected() {
        let signer = signer(LIFETIME);
        let now = now();
        let jwks = signer.jwks(now);
        let stranger = SigningKey::generate().unwrap();

        // Signed by an unrelated signer: its kid is not in the JWKS, and no
        // published key verifies its signature either.
        let foreign = Signer::new(stranger.clone(), ISSUER.into(), AUDIENCE.into(), LIFETIME)
            .sign(&alice(), now)
            .unwrap();
        assert!(verify(&foreign, &jwks).is_err());
        for jwk in jwks["keys"].as_array().unwrap() {
            let key = DecodingKey::from_ec_components(
                jwk["x"].as_str().unwrap(),
                jwk["y"].as_str().unwrap(),
            )
            .unwrap();
            let err = jsonwebtoken::decode::<Value>(&foreign, &key, &validation()).unwrap_err();
            assert_eq!(err.kind(), &ErrorKind::InvalidSignature);
        }

        // Signed by an unrelated key but claiming the published kid.
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(signer.current().kid().to_owned());
        let claims = json!({
            "iss": ISSUER, "aud": AUDIENCE, "sub": "mallory", "email": "m@example.com",
            "provider": "entra", "iat": now, "exp": now + 300,
        });
        let forged = jsonwebtoken::encode(&header, &claims, &stranger.encoding).unwrap();
        let err = verify(&forged, &jwks).unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::InvalidSignature);
    }

    #[test]
    fn tampered_payload_is_rejected() {
        let signer = signer(LIFETIME);
        let now = now();
        let token = signer.sign(&alice(), now).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);

        let mut claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        claims["sub"] = json!("admin");
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
        let tampered = format!("{}.{}.{}", parts[0], payload, parts[2]);

        let err = verify(&tampered, &signer.jwks(now)).unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::InvalidSignature);
        verify(&token, &signer.jwks(now)).unwrap();
    }
}
