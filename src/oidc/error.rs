//! The error type of the whole OpenID Connect core: what went wrong
//! talking to a provider or checking an ID token, with a stable reason for
//! logs and metrics and the line between a provider's fault (502) and a
//! wrong request or token (400). No message holds a token, a code or a
//! secret.

/// Longest provider- or token-supplied text kept in an error.
const MAX_ERROR_TEXT: usize = 256;

/// What went wrong talking to a provider or checking an ID token.
///
/// [`OidcError::is_provider_failure`] tells the two apart: a provider that
/// is unreachable, slow, misconfigured or answers nonsense (show 502), or a
/// request or token that is wrong (show 400). [`OidcError::reason`] is a
/// stable label for logs and metrics. No message holds a token, an
/// authorization code or a secret.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OidcError {
    #[error("cannot reach the identity provider at {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("the identity provider at {url} did not answer in time")]
    Timeout { url: String },
    #[error("unusable answer from the identity provider at {url}: {detail}")]
    BadResponse { url: String, detail: String },
    #[error("discovery for {provider_url} names another issuer, {issuer:?}")]
    IssuerMismatch {
        provider_url: String,
        issuer: String,
    },
    #[error(
        "endpoint {url:?} is not an https:// URL (http:// only on loopback or with allow_insecure_http)"
    )]
    InsecureEndpoint { url: String },
    /// The token endpoint refused, with an OAuth error (RFC 6749 §5.2).
    #[error(
        "the token endpoint answered HTTP {status}, {error:?}: {:?}",
        .description.as_deref().unwrap_or_default()
    )]
    Provider {
        status: u16,
        error: String,
        description: Option<String>,
    },
    #[error("malformed ID token: {0}")]
    Malformed(&'static str),
    #[error("ID token signing algorithm {alg:?} is not allowed")]
    DisallowedAlg { alg: String },
    #[error("ID token header names no key id (kid)")]
    MissingKid,
    #[error("no signing key {kid:?} at {jwks_uri}")]
    UnknownKid { jwks_uri: String, kid: String },
    #[error("signing key {kid:?} does not fit the ID token: {detail}")]
    KeyMismatch { kid: String, detail: &'static str },
    #[error("ID token signature is invalid")]
    BadSignature,
    #[error("ID token from a multi-tenant issuer has no tid claim")]
    MissingTid,
    #[error(
        "ID token issuer {:?} is not the expected {expected:?}",
        .actual.as_deref().unwrap_or_default()
    )]
    WrongIssuer {
        expected: String,
        actual: Option<String>,
    },
    #[error("ID token issuer is not the issuer of signing key {kid:?}")]
    KeyIssuerMismatch { kid: String },
    #[error("ID token audience does not include the client id")]
    WrongAudience,
    #[error("ID token authorized party (azp) is missing or not the client id")]
    WrongAzp,
    #[error("ID token has no expiry (exp)")]
    MissingExp,
    #[error("ID token has expired")]
    Expired,
    #[error("ID token is not valid yet (nbf)")]
    NotYetValid,
    #[error("ID token has no issue time (iat)")]
    MissingIat,
    #[error("ID token was issued in the future (iat)")]
    IssuedInFuture,
    #[error("ID token nonce does not match the login's")]
    NonceMismatch,
    #[error("ID token has no subject (sub)")]
    MissingSub,
}

impl OidcError {
    /// A short, stable snake_case label for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            OidcError::Unreachable { .. } => "provider_unreachable",
            OidcError::Timeout { .. } => "provider_timeout",
            OidcError::BadResponse { .. } => "provider_bad_response",
            OidcError::IssuerMismatch { .. } => "discovery_issuer_mismatch",
            OidcError::InsecureEndpoint { .. } => "insecure_endpoint",
            OidcError::Provider { .. } => "provider_error",
            OidcError::Malformed(_) => "malformed_token",
            OidcError::DisallowedAlg { .. } => "disallowed_alg",
            OidcError::MissingKid => "missing_kid",
            OidcError::UnknownKid { .. } => "unknown_kid",
            OidcError::KeyMismatch { .. } => "key_mismatch",
            OidcError::BadSignature => "bad_signature",
            OidcError::MissingTid => "missing_tid",
            OidcError::WrongIssuer { .. } => "wrong_issuer",
            OidcError::KeyIssuerMismatch { .. } => "wrong_key_issuer",
            OidcError::WrongAudience => "wrong_audience",
            OidcError::WrongAzp => "wrong_azp",
            OidcError::MissingExp => "missing_exp",
            OidcError::Expired => "expired",
            OidcError::NotYetValid => "not_yet_valid",
            OidcError::MissingIat => "missing_iat",
            OidcError::IssuedInFuture => "issued_in_future",
            OidcError::NonceMismatch => "nonce_mismatch",
            OidcError::MissingSub => "missing_sub",
        }
    }

    /// True when the provider is at fault (unreachable, timed out, bad or
    /// misconfigured answer, or a token-endpoint refusal other than
    /// `invalid_grant`): show 502. False when the request or the token is
    /// wrong, an `invalid_grant` code included: show 400.
    pub fn is_provider_failure(&self) -> bool {
        match self {
            OidcError::Unreachable { .. }
            | OidcError::Timeout { .. }
            | OidcError::BadResponse { .. }
            | OidcError::IssuerMismatch { .. }
            | OidcError::InsecureEndpoint { .. } => true,
            OidcError::Provider { error, .. } => error != "invalid_grant",
            _ => false,
        }
    }
}

/// At most [`MAX_ERROR_TEXT`] characters of text from outside, for errors.
pub(crate) fn clip(text: &str) -> String {
    text.chars().take(MAX_ERROR_TEXT).collect()
}

/// An unusable answer from `url`.
pub(crate) fn bad_response(url: &str, detail: &str) -> OidcError {
    OidcError::BadResponse {
        url: url.to_owned(),
        detail: detail.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_distinct_snake_case_labels() {
        let errors = [
            OidcError::Unreachable {
                url: String::new(),
                detail: String::new(),
            },
            OidcError::Timeout { url: String::new() },
            bad_response("", ""),
            OidcError::IssuerMismatch {
                provider_url: String::new(),
                issuer: String::new(),
            },
            OidcError::InsecureEndpoint { url: String::new() },
            OidcError::Provider {
                status: 400,
                error: "invalid_client".into(),
                description: None,
            },
            OidcError::Malformed(""),
            OidcError::DisallowedAlg { alg: String::new() },
            OidcError::MissingKid,
            OidcError::UnknownKid {
                jwks_uri: String::new(),
                kid: String::new(),
            },
            OidcError::KeyMismatch {
                kid: String::new(),
                detail: "",
            },
            OidcError::BadSignature,
            OidcError::MissingTid,
            OidcError::WrongIssuer {
                expected: String::new(),
                actual: None,
            },
            OidcError::KeyIssuerMismatch { kid: String::new() },
            OidcError::WrongAudience,
            OidcError::WrongAzp,
            OidcError::MissingExp,
            OidcError::Expired,
            OidcError::NotYetValid,
            OidcError::MissingIat,
            OidcError::IssuedInFuture,
            OidcError::NonceMismatch,
            OidcError::MissingSub,
        ];
        let mut reasons: Vec<&str> = errors.iter().map(OidcError::reason).collect();
        assert!(reasons
            .iter()
            .all(|r| r.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')));
        reasons.sort_unstable();
        reasons.dedup();
        assert_eq!(reasons.len(), errors.len());
        let provider_side = errors.iter().filter(|e| e.is_provider_failure()).count();
        assert_eq!(provider_side, 6);
    }

    #[test]
    fn invalid_grant_is_the_clients_fault() {
        let refusal = |error: &str| OidcError::Provider {
            status: 400,
            error: error.into(),
            description: None,
        };
        assert!(!refusal("invalid_grant").is_provider_failure());
        assert!(refusal("invalid_client").is_provider_failure());
    }

    #[test]
    fn clip_keeps_char_boundaries() {
        let long = "é".repeat(1000);
        assert_eq!(clip(&long).chars().count(), MAX_ERROR_TEXT);
        assert_eq!(clip("short"), "short");
    }
}
