//! OpenID provider metadata: the discovery document's shape, and the checks
//! that make a fetched document trustworthy before any login relies on it —
//! its `issuer` must be the configured provider URL (with Entra's
//! `{tenantid}` template for the multi-tenant endpoints), and every endpoint
//! must be `https://` unless it is on loopback or insecure http is allowed.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use url::{Host, Url};

use super::error::OidcError;

/// The placeholder Entra's multi-tenant endpoints publish in `issuer`.
const TENANT_TEMPLATE: &str = "{tenantid}";

/// Entra tenant segments that stand for many tenants.
const MULTI_TENANT_SEGMENTS: [&str; 3] = ["common", "organizations", "consumers"];

/// Where discovery lives below a provider URL.
const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";

/// The parts of an OpenID Provider's discovery document that idgate uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    /// Absent means `["query", "fragment"]` (OpenID Connect Discovery §3).
    #[serde(default = "default_response_modes")]
    pub response_modes_supported: Vec<String>,
    /// Empty means the provider named none: only RS256 is then accepted.
    #[serde(default)]
    pub id_token_signing_alg_values_supported: Vec<String>,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// Where a browser signs out at the provider (RP-Initiated Logout);
    /// absent: sign-out is local only.
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
}

fn default_response_modes() -> Vec<String> {
    vec!["query".to_owned(), "fragment".to_owned()]
}

impl Metadata {
    /// Checks a document fetched for `provider_url`: the issuer rule and the
    /// scheme of every endpoint. Fails closed on any mismatch.
    pub fn validate(
        mut self,
        provider_url: &str,
        allow_insecure_http: bool,
    ) -> Result<Self, OidcError> {
        let provider_url = trim_slash(provider_url);
        let issuer = trim_slash(&self.issuer);
        let expected = if self.is_multi_tenant() {
            templated(provider_url)
        } else {
            Some(provider_url.to_owned())
        };
        if expected.as_deref() != Some(issuer) {
            return Err(OidcError::IssuerMismatch {
                provider_url: provider_url.to_owned(),
                issuer: self.issuer,
            });
        }
        for endpoint in [
            &self.issuer,
            &self.authorization_endpoint,
            &self.token_endpoint,
            &self.jwks_uri,
        ] {
            check_endpoint(endpoint, allow_insecure_http)?;
        }
        // Sign-out at the provider is a courtesy: one the gateway would not
        // send a browser to leaves sign-out local, and sign-in working.
        if let Some(endpoint) = &self.end_session_endpoint {
            if let Err(e) = check_endpoint(endpoint, allow_insecure_http) {
                tracing::warn!(error = %e, "the provider's end_session_endpoint is not used; sign-out stays local");
                self.end_session_endpoint = None;
            }
        }
        Ok(self)
    }

    /// Whether the issuer is Entra's `{tenantid}` template (`common`,
    /// `organizations`): each token then names its own tenant.
    pub fn is_multi_tenant(&self) -> bool {
        self.issuer.contains(TENANT_TEMPLATE)
    }

    /// Whether the authorization endpoint can answer with `form_post`.
    pub fn supports_form_post(&self) -> bool {
        self.response_modes_supported
            .iter()
            .any(|mode| mode == "form_post")
    }

    /// The `iss` a token must carry: the issuer itself, or for a multi-tenant
    /// issuer the template with `tid` substituted. `None` when the issuer is
    /// multi-tenant and `tid` is missing or not a plain tenant id.
    pub fn expected_issuer(&self, tid: Option<&str>) -> Option<String> {
        issuer_for_tenant(&self.issuer, tid)
    }
}

/// The discovery document's URL for `provider_url`.
pub fn discovery_url(provider_url: &str) -> String {
    format!("{}{DISCOVERY_PATH}", trim_slash(provider_url))
}

/// `issuer` as a token of tenant `tid` carries it: unchanged, or with
/// `{tenantid}` replaced by `tid`. `None` when `issuer` holds the template
/// and `tid` is missing or not a plain tenant id (a GUID or a domain name:
/// letters, digits, `-`, `.`, `_`).
pub(crate) fn issuer_for_tenant(issuer: &str, tid: Option<&str>) -> Option<String> {
    if !issuer.contains(TENANT_TEMPLATE) {
        return Some(issuer.to_owned());
    }
    let tid = tid?;
    let plain = !tid.is_empty()
        && tid.len() <= 128
        && tid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    plain.then(|| issuer.replace(TENANT_TEMPLATE, tid))
}

/// An endpoint the gateway may call: an absolute `https://` URL, or
/// `http://` on loopback (or anywhere when `allow_insecure_http`).
pub(crate) fn check_endpoint(endpoint: &str, allow_insecure_http: bool) -> Result<(), OidcError> {
    let insecure = || OidcError::InsecureEndpoint {
        url: endpoint.to_owned(),
    };
    let url = Url::parse(endpoint).map_err(|_| insecure())?;
    match url.scheme() {
        "https" => Ok(()),
        "http" if allow_insecure_http || url.host().is_some_and(|host| is_loopback(&host)) => {
            Ok(())
        }
        _ => Err(insecure()),
    }
}

/// localhost, 127.0.0.0/8 and [::1].
fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => IpAddr::V4(*ip).is_loopback(),
        Host::Ipv6(ip) => IpAddr::V6(*ip).is_loopback(),
    }
}

/// `provider_url` with its first multi-tenant path segment (`common`,
/// `organizations` or `consumers`) replaced by `{tenantid}`.
fn templated(provider_url: &str) -> Option<String> {
    let (scheme, rest) = provider_url.split_once("://")?;
    let (authority, path) = rest.split_once('/')?;
    let mut replaced = false;
    let segments: Vec<&str> = path
        .split('/')
        .map(|segment| {
            let multi = MULTI_TENANT_SEGMENTS
                .iter()
                .any(|m| segment.eq_ignore_ascii_case(m));
            if multi && !replaced {
                replaced = true;
                TENANT_TEMPLATE
            } else {
                segment
            }
        })
        .collect();
    replaced.then(|| format!("{scheme}://{authority}/{}", segments.join("/")))
}

fn trim_slash(url: &str) -> &str {
    url.strip_suffix('/').unwrap_or(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(issuer: &str) -> Metadata {
        let base = "https://login.example.com/t";
        Metadata {
            issuer: issuer.to_owned(),
            authorization_endpoint: format!("{base}/authorize"),
            token_endpoint: format!("{base}/token"),
            jwks_uri: format!("{base}/keys"),
            response_modes_supported: default_response_modes(),
            id_token_signing_alg_values_supported: vec![],
            token_endpoint_auth_methods_supported: vec![],
            end_session_endpoint: None,
        }
    }

    #[test]
    fn an_end_session_endpoint_the_browser_may_not_be_sent_to_is_dropped() {
        let issuer = "https://login.example.com/t";
        let mut m = metadata(issuer);
        m.end_session_endpoint = Some("https://login.example.com/t/logout".into());
        let kept = m.clone().validate(issuer, false).unwrap();
        assert_eq!(kept.end_session_endpoint, m.end_session_endpoint);
        for bad in [
            "http://login.example.com/t/logout",
            "javascript:alert(1)",
            "/logout",
        ] {
            m.end_session_endpoint = Some(bad.into());
            let validated = m.clone().validate(issuer, false).unwrap();
            assert_eq!(validated.end_session_endpoint, None, "{bad}");
        }
    }

    #[test]
    fn missing_lists_take_their_defaults() {
        let doc = serde_json::json!({
            "issuer": "https://a/t/v2.0",
            "authorization_endpoint": "https://a/authorize",
            "token_endpoint": "https://a/token",
            "jwks_uri": "https://a/keys",
        });
        let metadata: Metadata = serde_json::from_value(doc).unwrap();
        assert_eq!(metadata.response_modes_supported, ["query", "fragment"]);
        assert!(metadata.id_token_signing_alg_values_supported.is_empty());
        assert!(metadata.token_endpoint_auth_methods_supported.is_empty());
        assert!(!metadata.supports_form_post());
    }

    #[test]
    fn issuer_must_be_the_provider_url() {
        let url = "https://login.example.com/contoso/v2.0";
        assert!(metadata(url).validate(url, false).is_ok());
        assert!(metadata(url).validate(&format!("{url}/"), false).is_ok());
        let err = metadata(url)
            .validate("https://login.example.com/fabrikam/v2.0", false)
            .unwrap_err();
        assert_eq!(err.reason(), "discovery_issuer_mismatch");
    }

    #[test]
    fn multi_tenant_issuer_must_template_the_tenant_segment() {
        let issuer = "https://login.example.com/{tenantid}/v2.0";
        for url in [
            "https://login.example.com/common/v2.0",
            "https://login.example.com/organizations/v2.0",
            "https://login.example.com/Consumers/v2.0",
        ] {
            assert!(metadata(issuer).validate(url, false).is_ok(), "{url}");
        }
        for url in [
            "https://login.example.com/contoso/v2.0",
            "https://other.example.com/common/v2.0",
            "https://login.example.com/common/v1.0",
        ] {
            assert!(metadata(issuer).validate(url, false).is_err(), "{url}");
        }
    }

    #[test]
    fn expected_issuer_substitutes_only_plain_tenant_ids() {
        let multi = metadata("https://a/{tenantid}/v2.0");
        assert!(multi.is_multi_tenant());
        assert_eq!(
            multi.expected_issuer(Some("72f988bf-86f1-41af-91ab-2d7cd011db47")),
            Some("https://a/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0".to_owned())
        );
        assert_eq!(multi.expected_issuer(None), None);
        assert_eq!(multi.expected_issuer(Some("")), None);
        assert_eq!(multi.expected_issuer(Some("a/b")), None);
        let single = metadata("https://a/contoso/v2.0");
        assert_eq!(
            single.expected_issuer(None),
            Some("https://a/contoso/v2.0".to_owned())
        );
        assert_eq!(
            single.expected_issuer(Some("other")),
            Some("https://a/contoso/v2.0".to_owned())
        );
    }

    #[test]
    fn endpoints_must_be_https_unless_loopback_or_allowed() {
        for ok in [
            "https://login.example.com/x",
            "http://localhost:8080/x",
            "http://127.0.0.2/x",
            "http://[::1]:9/x",
        ] {
            assert!(check_endpoint(ok, false).is_ok(), "{ok}");
        }
        for bad in [
            "http://login.example.com/x",
            "http://10.0.0.1/x",
            "ftp://localhost/x",
            "not a url",
        ] {
            let err = check_endpoint(bad, false).unwrap_err();
            assert_eq!(err.reason(), "insecure_endpoint", "{bad}");
        }
        assert!(check_endpoint("http://login.example.com/x", true).is_ok());
        assert!(check_endpoint("ftp://login.example.com/x", true).is_err());
    }

    #[test]
    fn every_endpoint_is_checked() {
        let url = "https://login.example.com/contoso/v2.0";
        let mut doc = metadata(url);
        doc.jwks_uri = "http://keys.example.com/keys".to_owned();
        assert_eq!(
            doc.validate(url, false).unwrap_err().reason(),
            "insecure_endpoint"
        );
    }
}
