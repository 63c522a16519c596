//! The user registry: finds the person behind (provider, `sub`) or registers
//! them under a new username. The database's uniqueness decides every race:
//! two people wanting one username get two, one person logging in twice at
//! once gets one record.

use super::username::{self, NameClaims};
use crate::providers::Provider;
use crate::store::users::{NewUserError, UserRecord};
use crate::store::{Store, StoreError};

/// What the provider said about the person, already verified.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    pub sub: String,
    pub email: String,
    pub name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub preferred_username: Option<String>,
    pub oid: Option<String>,
    pub tid: Option<String>,
}

/// Why a person was not let in.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error("registrations are closed for this provider")]
    RegistrationsClosed,
    #[error("no valid username could be derived from the claims")]
    NoUsername,
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn record(provider_id: &str, p: &Profile, username: String, now: &str) -> UserRecord {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    UserRecord {
        provider_id: provider_id.to_string(),
        sub: p.sub.clone(),
        username,
        email: p.email.clone(),
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
    profile: &Profile,
) -> Result<UserRecord, SignInError> {
    let now = crate::providers::timestamp_now();
    if let Some(known) = store.find_user(provider.id(), &profile.sub).await? {
        return refresh(store, known, profile, &now).await;
    }
    if !provider.allow_registrations {
        return Err(SignInError::RegistrationsClosed);
    }
    let claims = NameClaims {
        preferred_username: profile.preferred_username.as_deref(),
        email: Some(profile.email.as_str()),
        given_name: profile.given_name.as_deref(),
        family_name: profile.family_name.as_deref(),
    };
    let attempts = username::attempts(&claims, provider.id(), &mut rand::thread_rng());
    for name in attempts {
        let new = record(provider.id(), profile, name, &now);
        match store.insert_user(&new).await {
            Ok(()) => return Ok(new),
            Err(NewUserError::UsernameTaken) => continue,
            Err(NewUserError::AlreadyRegistered) => {
                let known = store
                    .find_user(provider.id(), &profile.sub)
                    .await?
                    .ok_or(SignInError::NoUsername)?;
                return refresh(store, known, profile, &now).await;
            }
            Err(NewUserError::Store(e)) => return Err(e.into()),
        }
    }
    Err(SignInError::NoUsername)
}

/// A known person's record with the provider's latest claims; the username
/// and creation time stay.
async fn refresh(
    store: &Store,
    known: UserRecord,
    profile: &Profile,
    now: &str,
) -> Result<UserRecord, SignInError> {
    let mut updated = record(&known.provider_id, profile, known.username, now);
    updated.created_at = known.created_at;
    store.update_user_claims(&updated).await?;
    Ok(updated)
}
