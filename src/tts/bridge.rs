//! The console sign-in step of a login: the person's user in The Things
//! Stack (claimed under a free ID at the first sign-in, kept up to date
//! after), then a login token minted and traded server-side for the stack's
//! `_session`. The stack treats a refused API key as no key on create and
//! mint, so every sign-in checks the key first and looks the user up before
//! creating or minting anything.

use rand::seq::SliceRandom;
use rand::Rng;
use serde_json::json;

use super::client::{Created, NewUser, StackClient, StackError, StackUser};
use crate::store::users::UserRecord;
use crate::store::{Store, StoreError};

/// Why the console sign-in did not happen.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error(transparent)]
    Stack(#[from] StackError),
    #[error("The Things Stack already holds this email address for another user")]
    EmailTaken,
    #[error("The Things Stack has a user {0:?} that idgate did not create for this person")]
    IdHeldByOther(String),
    #[error("The Things Stack no longer has user {0:?} and keeps the ID reserved")]
    Removed(String),
    #[error("the user {0:?} is not approved in The Things Stack ({1})")]
    NotApproved(String, String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How a candidate username fared at the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The stack now holds a user under it, created for this person.
    Created,
    /// A user or organization holds it, or the stack reserves it.
    Taken,
    /// The stack refused it as held without holding a user or an
    /// organization under it: a deleted user's reserved ID, or the email.
    Unexplained,
}

/// The result of a console sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Console {
    /// The `_session` cookie value that signs the browser in.
    Session(String),
    /// The person is an administrator of the stack: no token is ever given
    /// for one; they use the stack's own password sign-in.
    Administrator,
}

/// The stack side of a sign-in.
pub struct Bridge {
    client: StackClient,
    store: Store,
}

impl Bridge {
    pub fn new(client: StackClient, store: Store) -> Self {
        Self { client, store }
    }

    pub fn client(&self) -> &StackClient {
        &self.client
    }

    /// Fails unless the API key is valid and an administrator's: before
    /// anything is created or minted.
    pub async fn check_key(&self) -> Result<(), StackError> {
        self.client.check_key().await.map(drop)
    }

    /// Tries to create the user for a new person under `user.username`.
    pub async fn claim(&self, user: &UserRecord, vouched: bool) -> Result<Claim, BridgeError> {
        let id = user.username.as_str();
        if self.client.user(id).await?.is_some() || self.client.organization_exists(id).await? {
            return Ok(Claim::Taken);
        }
        // A user made while login tokens are off could not be signed in:
        // nothing is created then (the free ID makes the probe harmless).
        self.client.tokens_enabled(id).await?;
        match self.create(user, vouched).await? {
            Created::Yes => {
                self.store
                    .mark_in_stack(&user.provider_id, &user.sub)
                    .await?;
                Ok(Claim::Created)
            }
            Created::AlreadyExists => Ok(Claim::Unexplained),
            Created::IdRefused(why) => {
                tracing::info!(target: "idgate::tts", username = id, reason = %why, "the stack refuses this username; trying the next");
                Ok(Claim::Taken)
            }
        }
    }

    async fn create(&self, user: &UserRecord, vouched: bool) -> Result<Created, StackError> {
        let now = crate::time::timestamp_now();
        let password = password(&user.username);
        let new = NewUser {
            id: &user.username,
            name: &display_name(user),
            email: &user.email,
            validated_at: vouched.then_some(now.as_str()),
            password: &password,
        };
        self.client.create_user(&new).await
    }

    /// Signs `user` in to the console: their stack user made sure of, then
    /// a token minted and traded. At a sign-in (`vouched` given: whether the
    /// gateway vouches for the email) the user's name and email are brought
    /// up to date; signing in again (`None`) leaves them.
    pub async fn console(
        &self,
        user: &UserRecord,
        vouched: Option<bool>,
    ) -> Result<Console, BridgeError> {
        let id = user.username.as_str();
        let ours = self.store.in_stack(&user.provider_id, &user.sub).await?;
        match (self.client.user(id).await?, ours) {
            (None, ours) => {
                if self.create(user, vouched == Some(true)).await? != Created::Yes {
                    return Err(if ours {
                        BridgeError::Removed(id.into())
                    } else if self.client.organization_exists(id).await? {
                        BridgeError::IdHeldByOther(id.into())
                    } else {
                        BridgeError::EmailTaken
                    });
                }
                if !ours {
                    self.store
                        .mark_in_stack(&user.provider_id, &user.sub)
                        .await?;
                }
            }
            (Some(_), false) => return Err(BridgeError::IdHeldByOther(id.into())),
            (Some(held), true) => {
                if held.admin {
                    return Ok(Console::Administrator);
                }
                if !held.approved() {
                    let state = held
                        .state
                        .clone()
                        .unwrap_or_else(|| "STATE_REQUESTED".into());
                    return Err(BridgeError::NotApproved(id.into(), state));
                }
                if let Some(vouched) = vouched {
                    self.bring_up_to_date(user, &held, vouched).await;
                }
            }
        }
        // The user is no administrator: a token is owed. None means the
        // stack no longer takes the key as an administrator's (and may
        // have emailed the token instead): fail closed.
        match self.client.mint_token(id).await? {
            Some(token) => Ok(Console::Session(self.client.token_login(&token).await?)),
            None => Err(StackError::NoToken.into()),
        }
    }

    /// Name and email as the provider says now. A failure is logged and
    /// the sign-in goes on: the stack keeps what it had.
    async fn bring_up_to_date(&self, user: &UserRecord, held: &StackUser, vouched: bool) {
        let name = display_name(user);
        let id = user.username.as_str();
        let mut paths = Vec::new();
        let mut fields = json!({});
        if held.name != name {
            paths.push("name");
            fields["name"] = json!(name);
        }
        let email_changed = !held.primary_email_address.eq_ignore_ascii_case(&user.email);
        if email_changed {
            paths.push("primary_email_address");
            fields["primary_email_address"] = json!(user.email);
            if vouched {
                paths.push("primary_email_address_validated_at");
                fields["primary_email_address_validated_at"] = json!(crate::time::timestamp_now());
            }
        }
        if !paths.is_empty() {
            if let Err(e) = self.client.update_user(id, fields, &paths).await {
                tracing::warn!(target: "idgate::tts", username = id, error = %e, "cannot bring the stack's user up to date");
                return;
            }
        }
        // An administrator changing the email keeps the old validation
        // time: clearing it takes a call of its own.
        if email_changed && !vouched && held.primary_email_address_validated_at.is_some() {
            let clear = json!({ "primary_email_address_validated_at": null });
            if let Err(e) = self
                .client
                .update_user(id, clear, &["primary_email_address_validated_at"])
                .await
            {
                tracing::warn!(target: "idgate::tts", username = id, error = %e, "cannot clear the stack's email validation");
            }
        }
    }
}

/// The name the stack shows: the provider's `name`, else given + family
/// name, else the username; at most 50 characters (the stack's limit).
fn display_name(user: &UserRecord) -> String {
    let joined = format!("{} {}", user.given_name, user.family_name);
    let name = [user.name.trim(), joined.trim(), user.username.as_str()]
        .into_iter()
        .find(|n| !n.is_empty())
        .unwrap_or_default();
    name.chars().take(50).collect()
}

/// A fresh random password that meets the stack's rules (upper and lower
/// case, digits, a special character, not containing the user ID); it is
/// kept nowhere: the person never uses it.
fn password(user_id: &str) -> String {
    const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
    const DIGIT: &[u8] = b"23456789";
    const SPECIAL: &[u8] = b"!#%+-.:=?@^_~";
    let mut rng = rand::rngs::OsRng;
    loop {
        let mut chars: Vec<u8> = [UPPER, LOWER, DIGIT, SPECIAL]
            .iter()
            .map(|set| set[rng.gen_range(0..set.len())])
            .collect();
        let all: Vec<u8> = [UPPER, LOWER, DIGIT, SPECIAL].concat();
        chars.extend((0..44).map(|_| all[rng.gen_range(0..all.len())]));
        chars.shuffle(&mut rng);
        let password = String::from_utf8(chars).expect("ASCII");
        if !password
            .to_ascii_lowercase()
            .contains(&user_id.to_ascii_lowercase())
        {
            return password;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_meet_the_stack_rules_and_differ() {
        let a = password("ada");
        let b = password("ada");
        assert_ne!(a, b);
        for p in [&a, &b] {
            assert_eq!(p.len(), 48);
            assert!(p.chars().any(|c| c.is_ascii_uppercase()));
            assert!(p.chars().any(|c| c.is_ascii_lowercase()));
            assert!(p.chars().any(|c| c.is_ascii_digit()));
            assert!(p.chars().any(|c| !c.is_ascii_alphanumeric()));
        }
        // An ID of a single common letter cannot be avoided by chance
        // alone: the loop draws again until it is absent.
        assert!(!password("a").to_ascii_lowercase().contains('a'));
    }
}
