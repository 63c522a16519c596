//! Signing out beyond the gateway: where a browser goes to end its session
//! at the provider (OpenID Connect RP-Initiated Logout, as Entra serves it),
//! and the provider's front-channel logout, which ends the gateway's
//! sessions of one provider session (`sid`).

use std::sync::Arc;

use crate::oidc::OidcCache;
use crate::provider_registry::Registry;
use crate::session::Sessions;

/// The gateway's page a browser comes back to from the provider.
pub const SIGNED_OUT_PATH: &str = "/.idgate/signed-out";

/// Longest `sid` looked up; Entra's are GUIDs.
const MAX_SID: usize = 256;

/// What a front-channel logout did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrontChannel {
    /// No such provider: 404.
    UnknownProvider,
    /// This many sessions ended (none for an unknown or malformed `sid`,
    /// or an `iss` that is not the provider's).
    Ended(usize),
}

pub struct SignOut {
    cache: OidcCache,
    providers: Arc<Registry>,
    sessions: Arc<Sessions>,
    /// `public_url` without a trailing slash.
    public_url: String,
}

impl SignOut {
    pub fn new(
        cache: OidcCache,
        providers: Arc<Registry>,
        sessions: Arc<Sessions>,
        public_url: &url::Url,
    ) -> Self {
        Self {
            cache,
            providers,
            sessions,
            public_url: public_url.as_str().trim_end_matches('/').to_string(),
        }
    }

    /// Where a browser whose session of `provider_id` just ended goes to
    /// sign out at the provider: its `end_session_endpoint` with
    /// `post_logout_redirect_uri` (the signed-out page), `client_id` and
    /// `logout_hint` when the sign-in had a `login_hint` — never the ID
    /// token, which would land in the browser's history and the
    /// provider's logs. `None` when the provider has no such endpoint, is
    /// gone, or cannot be asked: the sign-out is then the gateway's alone.
    pub async fn at_provider(&self, provider_id: &str, login_hint: Option<&str>) -> Option<String> {
        let provider = self.providers.get(provider_id)?;
        let oidc = &provider.configuration.oidc;
        let metadata = match self.cache.metadata(&oidc.provider_url).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(provider = provider_id, error = %e, "cannot read the provider's discovery; signed out here only");
                return None;
            }
        };
        let mut url = url::Url::parse(metadata.end_session_endpoint.as_deref()?).ok()?;
        {
            let mut query = url.query_pairs_mut();
            query.append_pair(
                "post_logout_redirect_uri",
                &format!("{}{SIGNED_OUT_PATH}", self.public_url),
            );
            query.append_pair("client_id", &oidc.client_id);
            if let Some(hint) = login_hint {
                query.append_pair("logout_hint", hint);
            }
        }
        Some(url.into())
    }

    /// `GET /oauth/login/<provider_id>/front-channel-logout?sid=…[&iss=…]`:
    /// ends the sessions of `provider_id` whose sign-in carried `sid`. An
    /// `iss` that is not the provider's issuer ends nothing (a
    /// multi-tenant provider's is checked against its template, any
    /// tenant: the `sid` is what selects the sessions).
    pub async fn front_channel(
        &self,
        provider_id: &str,
        sid: Option<&str>,
        iss: Option<&str>,
    ) -> Result<FrontChannel, crate::store::StoreError> {
        let Some(provider) = self.providers.get(provider_id) else {
            return Ok(FrontChannel::UnknownProvider);
        };
        let Some(sid) = sid.filter(|s| well_formed(s)) else {
            tracing::debug!(
                provider = provider_id,
                "front-channel logout without a usable sid"
            );
            return Ok(FrontChannel::Ended(0));
        };
        if let Some(iss) = iss {
            // `iss` may be left out, so it guards nothing: it only keeps a
            // call naming another issuer from ending sessions. When the
            // issuer cannot be read, ending the sessions is the safe side.
            match self
                .cache
                .metadata(&provider.configuration.oidc.provider_url)
                .await
            {
                Ok(m) if m.expected_issuer(tenant_of(iss)).as_deref() != Some(iss) => {
                    tracing::debug!(
                        provider = provider_id,
                        "front-channel logout names another issuer; nothing ended"
                    );
                    return Ok(FrontChannel::Ended(0));
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(provider = provider_id, error = %e, "front-channel logout: the provider's discovery cannot be read to check iss; ending the sessions of the sid anyway");
                }
            }
        }
        let ended = self.sessions.end_sid(provider_id, sid).await?;
        tracing::info!(target: "idgate::login", provider = provider_id, sid = %redacted(sid), sessions = ended, "front-channel logout");
        Ok(FrontChannel::Ended(ended))
    }
}

/// A `sid` worth looking up: printable ASCII of a sane length.
fn well_formed(sid: &str) -> bool {
    !sid.is_empty() && sid.len() <= MAX_SID && sid.bytes().all(|b| b.is_ascii_graphic())
}

/// The tenant an Entra issuer URL names (`https://login…/<tid>/v2.0`): the
/// path segment before `v2.0`, for checking a multi-tenant provider's.
fn tenant_of(iss: &str) -> Option<&str> {
    let path = iss.trim_end_matches('/');
    let rest = path.strip_suffix("/v2.0")?;
    rest.rsplit('/').next()
}

/// The first characters of a `sid`, enough to match log lines, never
/// enough to use it.
fn redacted(sid: &str) -> String {
    let head: String = sid.chars().take(4).collect();
    format!("{head}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_printable_sids_of_sane_length_are_looked_up() {
        assert!(well_formed("8b1d5c2e-0f3a-4b6c-9d8e-7f6a5b4c3d2e"));
        for bad in ["", "a b", "a\u{0}b", "ümlaut", &"x".repeat(MAX_SID + 1)] {
            assert!(!well_formed(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_tenant_of_an_entra_issuer_is_the_segment_before_the_version() {
        assert_eq!(
            tenant_of("https://login.microsoftonline.com/7d3c/v2.0"),
            Some("7d3c")
        );
        assert_eq!(tenant_of("https://issuer.example/"), None);
    }

    #[test]
    fn a_logged_sid_is_cut_to_four_characters() {
        assert_eq!(redacted("8b1d5c2e-0f3a"), "8b1d…");
    }
}
