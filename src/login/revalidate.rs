//! Sessions that follow the directory: after `session.revalidate_every`, a
//! session's next request asks the provider again with the sign-in's
//! refresh token. A refusal (`invalid_grant`: the account is disabled, its
//! password reset, its sessions revoked), an answer without an ID token or
//! for another `sub`, or claims the rules no longer admit end the session;
//! fresh claims (name, email, groups, roles) replace the old ones. When the
//! provider cannot be asked (unreachable, slow, 5xx), the session goes on
//! until `session.revalidate_grace` has passed too, and the check is tried
//! again after a back-off, not at every request. One check per session at
//! a time, on this replica and across replicas (`Sessions::claim_revalidation`);
//! the other requests meanwhile go on with the session as it is.

use std::sync::Arc;

use crate::identity::email;
use crate::identity::Identity;
use crate::oidc::id_token::{self, Expectations};
use crate::oidc::{OidcCache, OidcError};
use crate::provider_registry::Registry;
use crate::session::{Claim, Live, Sessions};
use crate::time::unix_now;

use super::flow::{evidence, non_empty, token_call, AccessSettings};

/// How long after a check that reached no verdict the next is tried (at
/// the latest when the grace ends).
const RETRY_AFTER: i64 = 60;

/// What a check with the provider came to, short of fresh claims.
enum Verdict {
    /// The session ends, for this reason.
    Ended(&'static str),
    /// The provider (or Graph) could not be asked.
    Unanswered(String),
}

pub struct Revalidator {
    cache: OidcCache,
    providers: Arc<Registry>,
    sessions: Arc<Sessions>,
    access: AccessSettings,
}

impl Revalidator {
    pub fn new(
        cache: OidcCache,
        providers: Arc<Registry>,
        sessions: Arc<Sessions>,
        access: AccessSettings,
    ) -> Self {
        Self {
            cache,
            providers,
            sessions,
            access,
        }
    }

    /// `live` as the provider sees it now: renewed, the same (someone else
    /// is asking, or the provider cannot be asked and the grace holds), or
    /// `None` when it ended. The check runs on a task of its own, so a
    /// client that goes away meanwhile cannot leave it half done.
    pub async fn check(self: &Arc<Self>, live: Arc<Live>) -> Option<Arc<Live>> {
        let this = self.clone();
        let checked = tokio::spawn(async move { this.check_now(live).await });
        checked.await.unwrap_or_default()
    }

    async fn check_now(&self, live: Arc<Live>) -> Option<Arc<Live>> {
        let now = unix_now();
        let (refresh_token, claim) = match self.sessions.claim_revalidation(&live, now).await {
            Claim::Held {
                refresh_token,
                claim,
            } => (refresh_token, claim),
            // Someone else is asking (here or on another replica): it goes
            // on meanwhile, unless its grace is over.
            Claim::Busy if self.sessions.past_grace(&live, now) => return None,
            Claim::Busy => return Some(live),
            Claim::Unusable => return self.end(&live, "refresh_token_unusable").await,
        };
        let username = live.identity.username.clone();
        let ended = match self.ask(&live, &refresh_token).await {
            Ok((identity, rotated)) => {
                let kept = rotated.as_deref().unwrap_or(&refresh_token);
                return match self
                    .sessions
                    .renew(&live, &claim, identity, kept, now)
                    .await
                {
                    Ok(Some(renewed)) => {
                        tracing::debug!(username = %username, "session revalidated at the provider");
                        Some(renewed)
                    }
                    Ok(None) => None,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot store a revalidated session");
                        self.sessions
                            .postpone(&live, &claim, now + RETRY_AFTER)
                            .await;
                        Some(live)
                    }
                };
            }
            Err(Verdict::Ended(reason)) => reason,
            Err(Verdict::Unanswered(e)) if now < self.sessions.grace_end(&live) => {
                tracing::warn!(username = %username, error = %e, "cannot revalidate a session at its provider; it goes on within its grace");
                // Asked again after a back-off, and no later than the end
                // of the grace.
                let retry_at = (now + RETRY_AFTER).min(self.sessions.grace_end(&live));
                self.sessions.postpone(&live, &claim, retry_at).await;
                return Some(live);
            }
            Err(Verdict::Unanswered(e)) => {
                tracing::warn!(username = %username, error = %e, "cannot revalidate a session at its provider past its grace");
                "provider_unanswered_past_grace"
            }
        };
        self.end(&live, ended).await
    }

    /// Ends `live` for `reason`; refused here even when the store cannot
    /// delete it.
    async fn end(&self, live: &Live, reason: &'static str) -> Option<Arc<Live>> {
        tracing::info!(target: "idgate::login", username = %live.identity.username, reason, "session ended at revalidation");
        if let Err(e) = self.sessions.end(live).await {
            tracing::error!(error = %e, "cannot end a session refused at revalidation; refused here all the same");
            self.sessions.refuse_here(live).await;
        }
        None
    }

    /// Trades the refresh token for fresh tokens and applies every rule to
    /// their claims: the identity to keep, and the new refresh token when
    /// the provider rotated it.
    async fn ask(
        &self,
        live: &Live,
        refresh_token: &str,
    ) -> Result<(Identity, Option<String>), Verdict> {
        let id = &live.identity;
        let provider = self
            .providers
            .get(&id.provider_id)
            .ok_or(Verdict::Ended("provider_gone"))?;
        let oidc = &provider.configuration.oidc;
        let metadata = self
            .cache
            .metadata(&oidc.provider_url)
            .await
            .map_err(|e| Verdict::Unanswered(e.to_string()))?;
        let scope = self.access.scope();
        let form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("scope", scope.as_str()),
        ];
        let tokens = token_call(&self.cache, &provider, &metadata, form)
            .await
            .map_err(|e| match e {
                // The grant refused: the account disabled, its password
                // reset, its sessions revoked. Any other answer (a
                // throttle, the client's own credentials) is no verdict on
                // the person.
                OidcError::Provider { ref error, .. } if error == "invalid_grant" => {
                    Verdict::Ended("refused_by_provider")
                }
                e => Verdict::Unanswered(e.to_string()),
            })?;
        let id_token = tokens
            .id_token
            .as_deref()
            .ok_or(Verdict::Ended("refresh_without_id_token"))?;
        let expect = Expectations::for_refresh(&metadata, &oidc.client_id);
        let mut claims = id_token::verify(&self.cache, id_token, &expect)
            .await
            .map(non_empty)
            .map_err(|e| match e {
                e if e.is_provider_failure() => Verdict::Unanswered(e.to_string()),
                _ => Verdict::Ended("refreshed_id_token_invalid"),
            })?;
        if claims.sub != id.sub {
            return Err(Verdict::Ended("refreshed_for_another_sub"));
        }
        let evidence = evidence(&claims);
        let email = email::check(&provider, metadata.is_multi_tenant(), &evidence)
            .map_err(|r| Verdict::Ended(r.reason()))?;
        // Graph failing is no verdict on the person: the grace applies.
        self.access
            .complete_groups(&self.cache, &mut claims, tokens.access_token.as_deref())
            .await
            .map_err(|e| Verdict::Unanswered(e.to_string()))?;
        self.access
            .admits(&claims)
            .map_err(|r| Verdict::Ended(r.reason()))?;
        let identity = Identity::from_claims(&id.provider_id, id.username.clone(), email, claims);
        Ok((identity, tokens.refresh_token))
    }
}
