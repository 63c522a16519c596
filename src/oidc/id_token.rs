//! ID token verification (OpenID Connect Core §3.1.3.7), failing closed:
//! header algorithm and key id, the signing key from the provider's JWKS,
//! the signature, then issuer, audience, lifetime, nonce and subject, each
//! failure with its own [`OidcError`] and reason.

use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use constant_time_eq::constant_time_eq;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::client::OidcCache;
use super::discovery::{issuer_for_tenant, Metadata};
use super::error::{clip, OidcError};
use super::jwks::Jwk;

/// Default allowance for clock skew on `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(120);

/// The signing algorithms idgate accepts at all; the provider's own list
/// narrows them further.
const ASYMMETRIC_ALGS: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// What a login expects of its ID token.
#[derive(Debug, Clone, Copy)]
pub struct Expectations<'a> {
    pub metadata: &'a Metadata,
    pub client_id: &'a str,
    /// The nonce sent with the authorization request; `None` for the ID
    /// token of a refresh, which answers no authorization request (its
    /// token comes straight from the token endpoint).
    pub nonce: Option<&'a str>,
    /// Allowance for clock skew; [`DEFAULT_LEEWAY`] unless set.
    pub leeway: Duration,
}

impl<'a> Expectations<'a> {
    /// Expectations with the default leeway.
    pub fn new(metadata: &'a Metadata, client_id: &'a str, nonce: &'a str) -> Self {
        Expectations {
            metadata,
            client_id,
            nonce: Some(nonce),
            leeway: DEFAULT_LEEWAY,
        }
    }

    /// Expectations for the ID token of a refresh: no nonce to compare.
    pub fn for_refresh(metadata: &'a Metadata, client_id: &'a str) -> Self {
        Expectations {
            metadata,
            client_id,
            nonce: None,
            leeway: DEFAULT_LEEWAY,
        }
    }
}

/// The verified identity from an ID token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdClaims {
    pub sub: String,
    pub email: Option<String>,
    pub email_verified: Option<bool>,
    /// Entra: the email domain is verified by the tenant.
    pub xms_edov: Option<bool>,
    pub name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub preferred_username: Option<String>,
    /// Entra object id of the user.
    pub oid: Option<String>,
    /// Entra tenant id.
    pub tid: Option<String>,
    pub groups: Vec<String>,
    pub roles: Vec<String>,
    /// The provider's session: what a front-channel logout names.
    pub sid: Option<Sid>,
    /// Entra: an opaque hint naming the account, for `logout_hint`.
    pub login_hint: Option<String>,
    /// Entra left `groups` out for overage (`_claim_names` naming it, or
    /// `hasgroups: true`): `groups` is not the whole list.
    pub groups_overage: bool,
}

/// A provider session ID (`sid`): a bearer secret (whoever holds it can
/// end the sessions signed in during it), never printed.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Sid(String);

impl Sid {
    pub fn new(sid: impl Into<String>) -> Self {
        Self(sid.into())
    }

    /// The ID itself, to hash.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Sid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sid(…)")
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    crit: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// The claims as the token carries them, before any check.
#[derive(Deserialize)]
struct RawClaims {
    iss: Option<String>,
    aud: Option<Audience>,
    azp: Option<String>,
    #[serde(default, deserialize_with = "numeric_date")]
    exp: Option<i64>,
    #[serde(default, deserialize_with = "numeric_date")]
    nbf: Option<i64>,
    #[serde(default, deserialize_with = "numeric_date")]
    iat: Option<i64>,
    nonce: Option<String>,
    sub: Option<String>,
    email: Option<String>,
    #[serde(default, deserialize_with = "lenient_bool")]
    email_verified: Option<bool>,
    #[serde(default, deserialize_with = "lenient_bool")]
    xms_edov: Option<bool>,
    name: Option<String>,
    given_name: Option<String>,
    family_name: Option<String>,
    preferred_username: Option<String>,
    oid: Option<String>,
    tid: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    roles: Vec<String>,
    sid: Option<Sid>,
    login_hint: Option<String>,
    /// Distributed claims (OpenID Connect Core §5.6.2); only whether it
    /// names `groups` is read: the endpoint it points to is never called.
    #[serde(rename = "_claim_names", default)]
    claim_names: Option<Value>,
    #[serde(default, deserialize_with = "lenient_bool")]
    hasgroups: Option<bool>,
}

/// A JSON number of seconds (fractions dropped); anything else is an error.
fn numeric_date<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_i64()
            // Saturating float-to-int: out-of-range times stay out of range.
            .or_else(|| n.as_f64().map(|f| f as i64))
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom("not a NumericDate")),
        _ => Err(serde::de::Error::custom("not a NumericDate")),
    }
}

/// `true`/`false`, the strings `"true"`/`"false"`, or `1`/`0`; anything else
/// is `None`.
fn lenient_bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::Bool(b) => Some(b),
        Value::String(s) if s == "true" => Some(true),
        Value::String(s) if s == "false" => Some(false),
        Value::Number(n) if n.as_u64() == Some(1) => Some(true),
        Value::Number(n) if n.as_u64() == Some(0) => Some(false),
        _ => None,
    })
}

/// Verifies the compact JWS `token` as the ID token `exp` describes, and
/// returns its claims. Any doubt is an error.
pub async fn verify(
    cache: &OidcCache,
    token: &str,
    exp: &Expectations<'_>,
) -> Result<IdClaims, OidcError> {
    // 1. Header: an allowed asymmetric algorithm and a key id.
    let header = parse_header(token)?;
    if header.crit.is_some() {
        return Err(OidcError::Malformed("critical header extensions"));
    }
    let alg = allowed_alg(&header.alg, exp.metadata)?;
    let kid = header
        .kid
        .filter(|kid| !kid.is_empty())
        .ok_or(OidcError::MissingKid)?;

    // 2. The key, which must be made for that algorithm.
    let jwk = cache.key(&exp.metadata.jwks_uri, &kid).await?;
    check_key_fits(&jwk, alg, &header.alg)?;

    // 3. The signature, with exactly that algorithm; claims checks below.
    let mut validation = Validation::new(alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<RawClaims>(token, jwk.decoding_key(), &validation)
        .map_err(|e| signature_error(e.kind(), &jwk))?
        .claims;

    // 4. Issuer, per tenant for multi-tenant metadata, and the key's issuer.
    check_issuer(&claims, exp.metadata, &jwk)?;

    // 5. Audience and authorized party.
    check_audience(&claims, exp.client_id)?;

    // 6. Lifetime.
    check_times(&claims, exp.leeway)?;

    // 7. Nonce, compared in constant time.
    if let Some(expected) = exp.nonce {
        let nonce_matches = !expected.is_empty()
            && claims
                .nonce
                .as_deref()
                .is_some_and(|nonce| constant_time_eq(nonce.as_bytes(), expected.as_bytes()));
        if !nonce_matches {
            return Err(OidcError::NonceMismatch);
        }
    }

    // 8. Subject.
    let sub = claims
        .sub
        .filter(|sub| !sub.is_empty())
        .ok_or(OidcError::MissingSub)?;

    Ok(IdClaims {
        sub,
        email: claims.email,
        email_verified: claims.email_verified,
        xms_edov: claims.xms_edov,
        name: claims.name,
        given_name: claims.given_name,
        family_name: claims.family_name,
        preferred_username: claims.preferred_username,
        oid: claims.oid,
        tid: claims.tid,
        groups: claims.groups,
        roles: claims.roles,
        sid: claims.sid,
        login_hint: claims.login_hint,
        groups_overage: claims.hasgroups == Some(true)
            || claims
                .claim_names
                .as_ref()
                .is_some_and(|names| names.get("groups").is_some()),
    })
}

/// The JOSE header of a three-part compact JWS.
fn parse_header(token: &str) -> Result<Header, OidcError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(OidcError::Malformed("not a compact JWS"));
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| OidcError::Malformed("header is not base64url"))?;
    serde_json::from_slice(&bytes).map_err(|_| OidcError::Malformed("header is not a JOSE header"))
}

/// `alg` if it is asymmetric and the provider signs with it (RS256 when the
/// provider names no algorithm).
fn allowed_alg(alg: &str, metadata: &Metadata) -> Result<Algorithm, OidcError> {
    let offered = &metadata.id_token_signing_alg_values_supported;
    let provider_uses = if offered.is_empty() {
        alg == "RS256"
    } else {
        offered.iter().any(|a| a == alg)
    };
    Algorithm::from_str(alg)
        .ok()
        .filter(|a| provider_uses && ASYMMETRIC_ALGS.contains(a))
        .ok_or_else(|| OidcError::DisallowedAlg { alg: clip(alg) })
}

/// The key's type (and curve) must fit `alg`; its own `alg` and `use`, if
/// given, must be `alg_name` and `sig`.
fn check_key_fits(jwk: &Jwk, alg: Algorithm, alg_name: &str) -> Result<(), OidcError> {
    let mismatch = |detail| OidcError::KeyMismatch {
        kid: clip(&jwk.kid),
        detail,
    };
    let curve = jwk.crv.as_deref();
    let fits = match alg {
        Algorithm::ES256 => jwk.kty == "EC" && curve == Some("P-256"),
        Algorithm::ES384 => jwk.kty == "EC" && curve == Some("P-384"),
        _ => jwk.kty == "RSA",
    };
    if !fits {
        return Err(mismatch("its key type does not fit the token's algorithm"));
    }
    if jwk.alg.as_deref().is_some_and(|a| a != alg_name) {
        return Err(mismatch("it is published for another algorithm"));
    }
    if jwk.key_use.as_deref().is_some_and(|u| u != "sig") {
        return Err(mismatch("it is not a signing key"));
    }
    Ok(())
}

fn signature_error(kind: &ErrorKind, jwk: &Jwk) -> OidcError {
    match kind {
        ErrorKind::InvalidSignature => OidcError::BadSignature,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidKeyFormat => OidcError::KeyMismatch {
            kid: clip(&jwk.kid),
            detail: "it cannot check this signature",
        },
        ErrorKind::Base64(_) | ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
            OidcError::Malformed("payload or signature does not decode")
        }
        _ => OidcError::BadSignature,
    }
}

fn check_issuer(claims: &RawClaims, metadata: &Metadata, jwk: &Jwk) -> Result<(), OidcError> {
    let tid = claims.tid.as_deref();
    let Some(expected) = metadata.expected_issuer(tid) else {
        return Err(match tid {
            None => OidcError::MissingTid,
            Some(_) => OidcError::WrongIssuer {
                expected: metadata.issuer.clone(),
                actual: claims.iss.as_deref().map(clip),
            },
        });
    };
    let iss = claims.iss.as_deref();
    if iss != Some(expected.as_str()) {
        return Err(OidcError::WrongIssuer {
            expected,
            actual: iss.map(clip),
        });
    }
    if let Some(key_issuer) = &jwk.issuer {
        if issuer_for_tenant(key_issuer, tid).as_deref() != iss {
            return Err(OidcError::KeyIssuerMismatch {
                kid: clip(&jwk.kid),
            });
        }
    }
    Ok(())
}

fn check_audience(claims: &RawClaims, client_id: &str) -> Result<(), OidcError> {
    let audiences: &[String] = match &claims.aud {
        None => &[],
        Some(Audience::One(aud)) => std::slice::from_ref(aud),
        Some(Audience::Many(auds)) => auds,
    };
    if !audiences.iter().any(|aud| aud == client_id) {
        return Err(OidcError::WrongAudience);
    }
    let others = audiences.iter().any(|aud| aud != client_id);
    let azp_ok = match claims.azp.as_deref() {
        Some(azp) => azp == client_id,
        None => !others,
    };
    if !azp_ok {
        return Err(OidcError::WrongAzp);
    }
    Ok(())
}

fn check_times(claims: &RawClaims, leeway: Duration) -> Result<(), OidcError> {
    // A clock before 1970 makes every token look expired.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(i64::MAX, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let leeway = i64::try_from(leeway.as_secs()).unwrap_or(i64::MAX);
    let exp = claims.exp.ok_or(OidcError::MissingExp)?;
    if exp.saturating_add(leeway) <= now {
        return Err(OidcError::Expired);
    }
    if claims
        .nbf
        .is_some_and(|nbf| nbf > now.saturating_add(leeway))
    {
        return Err(OidcError::NotYetValid);
    }
    let iat = claims.iat.ok_or(OidcError::MissingIat)?;
    if iat > now.saturating_add(leeway) {
        return Err(OidcError::IssuedInFuture);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(json: Value) -> RawClaims {
        serde_json::from_value(json).unwrap()
    }

    fn metadata(algs: &[&str]) -> Metadata {
        Metadata {
            issuer: "https://a/t/v2.0".into(),
            authorization_endpoint: "https://a/authorize".into(),
            token_endpoint: "https://a/token".into(),
            jwks_uri: "https://a/keys".into(),
            response_modes_supported: vec![],
            id_token_signing_alg_values_supported: algs.iter().map(|a| a.to_string()).collect(),
            token_endpoint_auth_methods_supported: vec![],
            end_session_endpoint: None,
        }
    }

    const N: &str = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";

    /// An RSA JWK with `members` added.
    fn rsa_key(members: Value) -> Jwk {
        let mut entry = serde_json::json!({ "kty": "RSA", "kid": "k", "n": N, "e": "AQAB" });
        entry
            .as_object_mut()
            .unwrap()
            .extend(members.as_object().unwrap().clone());
        Jwk::parse(entry).unwrap()
    }

    #[test]
    fn the_key_must_fit_the_algorithm() {
        let fits = |jwk: &Jwk, alg: Algorithm, name: &str| {
            check_key_fits(jwk, alg, name).map_err(|e| e.reason())
        };
        let plain = rsa_key(serde_json::json!({}));
        assert_eq!(fits(&plain, Algorithm::RS256, "RS256"), Ok(()));
        assert_eq!(fits(&plain, Algorithm::PS384, "PS384"), Ok(()));
        assert_eq!(fits(&plain, Algorithm::ES256, "ES256"), Err("key_mismatch"));
        let rs384 = rsa_key(serde_json::json!({ "alg": "RS384" }));
        assert_eq!(fits(&rs384, Algorithm::RS256, "RS256"), Err("key_mismatch"));
        let encryption = rsa_key(serde_json::json!({ "use": "enc" }));
        assert_eq!(
            fits(&encryption, Algorithm::RS256, "RS256"),
            Err("key_mismatch")
        );
        let p256 = Jwk::parse(serde_json::json!({
            "kty": "EC", "kid": "e", "crv": "P-256",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
        }))
        .unwrap();
        assert_eq!(fits(&p256, Algorithm::ES256, "ES256"), Ok(()));
        assert_eq!(fits(&p256, Algorithm::ES384, "ES384"), Err("key_mismatch"));
        assert_eq!(fits(&p256, Algorithm::RS256, "RS256"), Err("key_mismatch"));
    }

    #[test]
    fn the_keys_own_issuer_must_match_the_token() {
        let mut multi = metadata(&[]);
        multi.issuer = "https://a/{tenantid}/v2.0".into();
        let token = claims(serde_json::json!({ "iss": "https://a/t1/v2.0", "tid": "t1" }));
        let check = |metadata: &Metadata, claims: &RawClaims, key_issuer: &str| {
            let jwk = rsa_key(serde_json::json!({ "issuer": key_issuer }));
            check_issuer(claims, metadata, &jwk).map_err(|e| e.reason())
        };
        assert_eq!(check(&multi, &token, "https://a/{tenantid}/v2.0"), Ok(()));
        assert_eq!(check(&multi, &token, "https://a/t1/v2.0"), Ok(()));
        assert_eq!(
            check(&multi, &token, "https://a/t2/v2.0"),
            Err("wrong_key_issuer")
        );
        let no_tid = claims(serde_json::json!({ "iss": "https://a/t1/v2.0" }));
        assert_eq!(
            check(&multi, &no_tid, "https://a/{tenantid}/v2.0"),
            Err("missing_tid")
        );
        let bad_tid = claims(serde_json::json!({ "iss": "https://a/t1/v2.0", "tid": "t1/x" }));
        assert_eq!(
            check(&multi, &bad_tid, "https://a/{tenantid}/v2.0"),
            Err("wrong_issuer")
        );
        let single = metadata(&[]);
        let token = claims(serde_json::json!({ "iss": "https://a/t/v2.0", "tid": "t" }));
        assert_eq!(check(&single, &token, "https://a/{tenantid}/v2.0"), Ok(()));
        assert_eq!(
            check(&single, &token, "https://b/t/v2.0"),
            Err("wrong_key_issuer")
        );
        let lost = claims(serde_json::json!({ "tid": "t" }));
        assert_eq!(
            check(&single, &lost, "https://a/t/v2.0"),
            Err("wrong_issuer")
        );
    }

    #[test]
    fn xms_edov_is_read_leniently() {
        for (value, expected) in [
            (serde_json::json!(true), Some(true)),
            (serde_json::json!(false), Some(false)),
            (serde_json::json!("true"), Some(true)),
            (serde_json::json!("false"), Some(false)),
            (serde_json::json!(1), Some(true)),
            (serde_json::json!(0), Some(false)),
            (serde_json::json!("yes"), None),
            (serde_json::json!(2), None),
            (serde_json::json!(null), None),
            (serde_json::json!([true]), None),
        ] {
            let parsed = claims(serde_json::json!({ "xms_edov": value }));
            assert_eq!(parsed.xms_edov, expected, "{value}");
        }
        assert_eq!(claims(serde_json::json!({})).xms_edov, None);
    }

    #[test]
    fn numeric_dates_must_be_numbers() {
        let parsed = claims(serde_json::json!({ "exp": 1.9e9, "iat": 1_700_000_000 }));
        assert_eq!(parsed.exp, Some(1_900_000_000));
        assert_eq!(parsed.iat, Some(1_700_000_000));
        assert!(serde_json::from_value::<RawClaims>(serde_json::json!({ "exp": "soon" })).is_err());
    }

    #[test]
    fn only_asymmetric_algorithms_the_provider_offers_are_allowed() {
        let rs256_only = metadata(&[]);
        assert_eq!(allowed_alg("RS256", &rs256_only).unwrap(), Algorithm::RS256);
        for alg in ["RS384", "HS256", "none", "ES256", ""] {
            assert_eq!(
                allowed_alg(alg, &rs256_only).unwrap_err().reason(),
                "disallowed_alg"
            );
        }
        let offered = metadata(&["RS256", "ES384", "HS256", "none"]);
        assert_eq!(allowed_alg("ES384", &offered).unwrap(), Algorithm::ES384);
        for alg in ["HS256", "none", "PS256"] {
            assert!(allowed_alg(alg, &offered).is_err(), "{alg}");
        }
    }

    #[test]
    fn headers_must_be_three_part_compact_jws() {
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"k"}"#);
        assert!(parse_header(&format!("{header}.e30.sig")).is_ok());
        for token in [
            format!("{header}.e30"),
            format!("{header}.e30.sig.extra"),
            "!!.e30.sig".to_owned(),
            format!("{}.e30.sig", URL_SAFE_NO_PAD.encode("[]")),
        ] {
            let reason = parse_header(&token).err().map(|e| e.reason());
            assert_eq!(reason, Some("malformed_token"), "{token}");
        }
    }

    #[test]
    fn azp_is_required_with_other_audiences_and_checked_when_present() {
        let check = |json| check_audience(&claims(json), "app").map_err(|e| e.reason());
        assert_eq!(check(serde_json::json!({ "aud": "app" })), Ok(()));
        assert_eq!(check(serde_json::json!({ "aud": ["app"] })), Ok(()));
        assert_eq!(
            check(serde_json::json!({ "aud": ["app", "x"], "azp": "app" })),
            Ok(())
        );
        assert_eq!(
            check(serde_json::json!({ "aud": ["app", "x"] })),
            Err("wrong_azp")
        );
        assert_eq!(
            check(serde_json::json!({ "aud": "app", "azp": "x" })),
            Err("wrong_azp")
        );
        assert_eq!(
            check(serde_json::json!({ "aud": "x" })),
            Err("wrong_audience")
        );
        assert_eq!(check(serde_json::json!({})), Err("wrong_audience"));
    }

    #[test]
    fn times_honour_the_leeway() {
        let now = i64::try_from(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs(),
        )
        .unwrap();
        let leeway = Duration::from_secs(120);
        let check = |exp: Option<i64>, nbf: Option<i64>, iat: Option<i64>| {
            let raw = claims(serde_json::json!({ "exp": exp, "nbf": nbf, "iat": iat }));
            check_times(&raw, leeway).map_err(|e| e.reason())
        };
        assert_eq!(
            check(Some(now - 60), Some(now + 60), Some(now + 60)),
            Ok(())
        );
        assert_eq!(check(Some(now - 121), None, Some(now)), Err("expired"));
        assert_eq!(check(None, None, Some(now)), Err("missing_exp"));
        assert_eq!(
            check(Some(now + 600), Some(now + 180), Some(now)),
            Err("not_yet_valid")
        );
        assert_eq!(check(Some(now + 600), None, None), Err("missing_iat"));
        assert_eq!(
            check(Some(now + 600), None, Some(now + 180)),
            Err("issued_in_future")
        );
    }
}
