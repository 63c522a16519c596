//! ID tokens of the demo provider: Entra's v2.0 claim set, RS256 signing, and
//! the deliberate defects ("faults") tests ask for to prove a relying party
//! refuses bad tokens.
//!
//! Demo and test use only: a token with a fault is built to be rejected.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use super::codes::Grant;
use super::keys::SigningKey;

/// Lifetime of an ID token, as Entra issues them.
const TOKEN_LIFETIME_SECS: u64 = 3600;

const HOUR: u64 = 3600;

/// The audience the `wrong_aud` fault puts in place of the client id, and the
/// extra audience of the `extra_aud_*` faults.
const OTHER_AUDIENCE: &str = "other";

/// A defect to build into the ID token, chosen with `fault=` on an
/// authorization request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Fault {
    /// Valid token whose signature bytes are then altered.
    BadSignature,
    /// Header `alg` is `none` and the signature is empty.
    AlgNone,
    /// HS256, keyed with the PEM of the current public key (key confusion).
    HmacPublicKey,
    /// Signed by a key the JWKS does not publish, under a kid it lacks.
    UnknownKid,
    /// `iss` names another host, with the right tid.
    WrongIss,
    /// `aud` is another client.
    WrongAud,
    /// `aud` is `[client_id, "other"]` and there is no `azp`.
    ExtraAudNoAzp,
    /// `aud` is `[client_id, "other"]` and `azp` is the client: a valid token.
    ExtraAudWithAzp,
    /// `exp` two hours ago (`iat` and `nbf` three hours ago).
    Expired,
    /// `nbf` an hour ahead (`exp` two hours ahead).
    FutureNbf,
    /// `nonce` is not the one from the authorization request.
    WrongNonce,
    /// No `sub` claim.
    NoSub,
}

impl Fault {
    /// The fault named by a `fault=` parameter value.
    pub(super) fn parse(name: &str) -> Option<Fault> {
        Some(match name {
            "bad_signature" => Fault::BadSignature,
            "alg_none" => Fault::AlgNone,
            "hmac_public_key" => Fault::HmacPublicKey,
            "unknown_kid" => Fault::UnknownKid,
            "wrong_iss" => Fault::WrongIss,
            "wrong_aud" => Fault::WrongAud,
            "extra_aud_no_azp" => Fault::ExtraAudNoAzp,
            "extra_aud_with_azp" => Fault::ExtraAudWithAzp,
            "expired" => Fault::Expired,
            "future_nbf" => Fault::FutureNbf,
            "wrong_nonce" => Fault::WrongNonce,
            "no_sub" => Fault::NoSub,
            _ => return None,
        })
    }
}

/// How a token leaves out groups that do not fit (Entra's "groups
/// overage"): the way of its implicit flow (`hasgroups: true`), or of the
/// code flow (`_claim_names` pointing at `_claim_sources`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Overage {
    HasGroups,
    ClaimNames,
}

/// The made-up user a code was issued for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct UserClaims {
    pub(super) sub: String,
    pub(super) sid: String,
    pub(super) login_hint: String,
    pub(super) groups: Vec<String>,
    pub(super) roles: Vec<String>,
    pub(super) overage: Option<Overage>,
    /// Objects a page of the small Graph's answers.
    pub(super) graph_page: usize,
    /// An error status the small Graph answers with instead.
    pub(super) graph_status: Option<u16>,
    pub(super) oid: String,
    pub(super) tid: String,
    pub(super) name: String,
    pub(super) given_name: String,
    pub(super) family_name: String,
    pub(super) preferred_username: String,
    pub(super) email: Option<String>,
    pub(super) xms_edov: Option<bool>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Audience<'a> {
    One(&'a str),
    Many([&'a str; 2]),
}

/// Entra v2.0 ID token claims.
#[derive(Serialize)]
struct IdClaims<'a> {
    aud: Audience<'a>,
    iss: String,
    iat: u64,
    nbf: u64,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    azp: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    name: &'a str,
    given_name: &'a str,
    family_name: &'a str,
    /// Absent from the ID token of a refresh.
    #[serde(skip_serializing_if = "str::is_empty")]
    nonce: &'a str,
    oid: &'a str,
    preferred_username: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<&'a str>,
    sid: &'a str,
    login_hint: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    groups: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    roles: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    hasgroups: Option<bool>,
    #[serde(rename = "_claim_names", skip_serializing_if = "Option::is_none")]
    claim_names: Option<serde_json::Value>,
    #[serde(rename = "_claim_sources", skip_serializing_if = "Option::is_none")]
    claim_sources: Option<serde_json::Value>,
    tid: &'a str,
    ver: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    xms_edov: Option<bool>,
}

/// Mints the ID token for `grant`, signed by `key` (for `unknown_kid`, the
/// caller passes an unpublished key), with the grant's fault built in.
/// `base` is the provider's origin; `now` is Unix seconds; `other_nonce` is
/// the nonce the `wrong_nonce` fault uses.
pub(super) fn mint(
    base: &str,
    grant: &Grant,
    key: &SigningKey,
    now: u64,
    other_nonce: &str,
) -> jsonwebtoken::errors::Result<String> {
    let user = &grant.user;
    let fault = grant.fault;
    let client_id = grant.client_id.as_str();
    let (iat, nbf, exp) = match fault {
        Some(Fault::Expired) => (now - 3 * HOUR, now - 3 * HOUR, now - 2 * HOUR),
        Some(Fault::FutureNbf) => (now, now + HOUR, now + 2 * HOUR),
        _ => (now, now, now + TOKEN_LIFETIME_SECS),
    };
    let claims = IdClaims {
        aud: match fault {
            Some(Fault::WrongAud) => Audience::One(OTHER_AUDIENCE),
            Some(Fault::ExtraAudNoAzp | Fault::ExtraAudWithAzp) => {
                Audience::Many([client_id, OTHER_AUDIENCE])
            }
            _ => Audience::One(client_id),
        },
        iss: match fault {
            Some(Fault::WrongIss) => format!("https://issuer.invalid/{}/v2.0", user.tid),
            _ => format!("{base}/{}/v2.0", user.tid),
        },
        iat,
        nbf,
        exp,
        azp: (fault == Some(Fault::ExtraAudWithAzp)).then_some(client_id),
        email: user.email.as_deref(),
        name: &user.name,
        given_name: &user.given_name,
        family_name: &user.family_name,
        nonce: match fault {
            Some(Fault::WrongNonce) => other_nonce,
            _ => &grant.nonce,
        },
        oid: &user.oid,
        preferred_username: &user.preferred_username,
        sub: (fault != Some(Fault::NoSub)).then_some(user.sub.as_str()),
        sid: &user.sid,
        login_hint: &user.login_hint,
        groups: if user.overage.is_some() { &[] } else { &user.groups },
        roles: &user.roles,
        hasgroups: (user.overage == Some(Overage::HasGroups)).then_some(true),
        claim_names: (user.overage == Some(Overage::ClaimNames))
            .then(|| serde_json::json!({ "groups": "src1" })),
        // As Entra's: a Graph address that must never be called (the
        // gateway asks Graph itself, at its own configured address).
        claim_sources: (user.overage == Some(Overage::ClaimNames)).then(|| {
            serde_json::json!({ "src1": { "endpoint": format!("{base}/_claim_source_trap/{}/getMemberObjects", user.oid) } })
        }),
        tid: &user.tid,
        ver: "2.0",
        xms_edov: user.xms_edov,
    };

    match fault {
        Some(Fault::AlgNone) => {
            let header = serde_json::json!({ "typ": "JWT", "alg": "none", "kid": key.kid });
            Ok(format!(
                "{}.{}.",
                URL_SAFE_NO_PAD.encode(header.to_string()),
                URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims)?)
            ))
        }
        Some(Fault::HmacPublicKey) => {
            let mut header = Header::new(Algorithm::HS256);
            header.kid = Some(key.kid.clone());
            let secret = EncodingKey::from_secret(key.public_pem.as_bytes());
            jsonwebtoken::encode(&header, &claims, &secret)
        }
        Some(Fault::BadSignature) => Ok(alter_signature(&rs256(key, &claims)?)),
        _ => rs256(key, &claims),
    }
}

fn rs256(key: &SigningKey, claims: &IdClaims<'_>) -> jsonwebtoken::errors::Result<String> {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.encoding)
}

/// Flips every bit of the first signature byte, keeping the length.
fn alter_signature(token: &str) -> String {
    let (signed, signature) = token
        .rsplit_once('.')
        .expect("a compact JWS has three parts");
    let mut bytes = URL_SAFE_NO_PAD
        .decode(signature)
        .expect("jsonwebtoken encodes signatures as base64url");
    bytes[0] ^= 0xff;
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_fault_name_parses() {
        for name in [
            "bad_signature",
            "alg_none",
            "hmac_public_key",
            "unknown_kid",
            "wrong_iss",
            "wrong_aud",
            "extra_aud_no_azp",
            "extra_aud_with_azp",
            "expired",
            "future_nbf",
            "wrong_nonce",
            "no_sub",
        ] {
            assert!(Fault::parse(name).is_some(), "{name}");
        }
        assert_eq!(Fault::parse("None"), None);
    }
}
