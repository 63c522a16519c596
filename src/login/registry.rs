//! The user registry: finds the person behind (provider, `sub`) or registers
//! them under a new username. The database's uniqueness decides every race:
//! two people wanting one username get two, one person logging in twice at
//! once gets one record. With the console sign-in on, a username is only
//! free when The Things Stack has it free too: each candidate is held in
//! the database first, then claimed at the stack, and let go when the stack
//! has it.

use crate::identity::username::{self, NameClaims};
use crate::oidc::id_token::IdClaims;
use crate::providers::Provider;
use crate::store::users::{NewUserError, UserRecord};
use crate::store::{Store, StoreError};
use crate::tts::bridge::{Bridge, BridgeError, Claim};

/// Why a person was not let in.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error("registrations are closed for this provider")]
    RegistrationsClosed,
    #[error("no valid username could be derived from the claims")]
    NoUsername,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Stack(#[from] BridgeError),
}

/// The Things Stack, when usernames must be free there too.
pub struct StackGate<'a> {
    pub bridge: &'a Bridge,
    /// Whether the gateway vouches for the email.
    pub vouched: bool,
}

/// The record for a person whose verified claims are `p` and whose email
/// passed the email rules.
fn record(provider_id: &str, p: &IdClaims, email: &str, username: String, now: &str) -> UserRecord {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    UserRecord {
        provider_id: provider_id.to_string(),
        sub: p.sub.clone(),
        username,
        email: email.to_string(),
        name: text(&p.name),
        given_name: text(&p.given_name),
        family_name: text(&p.family_name),
        preferred_username: text(&p.preferred_username),
        oid: text(&p.oid),
        tid: text(&p.tid),
        created_at: now.to_string(),
        last_login: now.to_string(),
    }
}

/// The registered user for this sign-in, created when new.
pub async fn sign_in(
    store: &Store,
    provider: &Provider,
    claims: &IdClaims,
    email: &str,
    stack: Option<StackGate<'_>>,
) -> Result<UserRecord, SignInError> {
    let now = crate::time::timestamp_now();
    let build = |username: String| record(provider.id(), claims, email, username, &now);
    if let Some(known) = store.find_user(provider.id(), &claims.sub).await? {
        return refresh(store, known, build).await;
    }
    if !provider.allow_registrations {
        return Err(SignInError::RegistrationsClosed);
    }
    let names = NameClaims {
        preferred_username: claims.preferred_username.as_deref(),
        email: Some(email),
        given_name: claims.given_name.as_deref(),
        family_name: claims.family_name.as_deref(),
    };
    let attempts = username::attempts(&names, provider.id(), &mut rand::thread_rng());
    let mut unexplained = false;
    for name in attempts {
        let new = build(name);
        match store.insert_user(&new).await {
            Ok(()) => {
                let Some(gate) = &stack else {
                    return Ok(new);
                };
                let claim = gate.bridge.claim(&new, gate.vouched).await;
                if !matches!(claim, Ok(Claim::Created)) {
                    store.delete_user(&new.username).await?;
                }
                match claim? {
                    Claim::Created => return Ok(new),
                    Claim::Taken => continue,
                    // The stack refuses a second free-looking ID as held:
                    // it is the email that it holds for another user.
                    Claim::Unexplained if unexplained => return Err(BridgeError::EmailTaken.into()),
                    Claim::Unexplained => unexplained = true,
                }
            }
            Err(NewUserError::UsernameTaken) => continue,
            Err(NewUserError::AlreadyRegistered) => {
                let known = store
                    .find_user(provider.id(), &claims.sub)
                    .await?
                    .ok_or(SignInError::NoUsername)?;
                return refresh(store, known, build).await;
            }
            Err(NewUserError::Store(e)) => return Err(e.into()),
        }
    }
    Err(SignInError::NoUsername)
}

/// A known person's record with the provider's latest claims (made by
/// `build`); the username and creation time stay.
async fn refresh(
    store: &Store,
    known: UserRecord,
    build: impl FnOnce(String) -> UserRecord,
) -> Result<UserRecord, SignInError> {
    let mut updated = build(known.username);
    updated.created_at = known.created_at;
    store.update_user_claims(&updated).await?;
    Ok(updated)
}
