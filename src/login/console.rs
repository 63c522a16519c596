//! The console sign-in step of a login, when `[tts]` is on: the person's
//! stack user and console session through the bridge (one sign-in per
//! person at a time on this replica; requests that find the browser with
//! another user's stack session share the one signed in again), and what a
//! person is told when it fails.

use std::sync::Arc;
use std::time::Duration;

use super::flow::Notice;
use super::refusal::{internal, Refusal};
use crate::identity::Identity;
use crate::store::users::UserRecord;
use crate::store::Store;
use crate::tts::bridge::{Bridge, BridgeError, Console};
use crate::tts::client::StackError;

/// The console sign-in of a login, when `[tts]` is on.
pub struct ConsoleSignIn {
    pub bridge: Bridge,
    pub owners: crate::tts::owners::Owners,
    pub account_mount: String,
    pub console_mount: String,
    /// Whether the browser's cookies need `Secure`.
    pub secure: bool,
    /// One console sign-in per person at a time, on this replica.
    people: moka::sync::Cache<(String, String), Arc<tokio::sync::Mutex<()>>>,
    /// A person's console session signed in again just now: the browser's
    /// parallel requests share it instead of each minting a token.
    recent: moka::sync::Cache<(String, String), Arc<Vec<String>>>,
}

/// How long a console session signed in again is handed to further
/// requests of the same person.
const RECENT: Duration = Duration::from_secs(10);

impl ConsoleSignIn {
    pub fn new(bridge: Bridge, account_mount: &str, console_mount: &str, secure: bool) -> Self {
        Self {
            bridge,
            owners: crate::tts::owners::Owners::default(),
            account_mount: account_mount.to_string(),
            console_mount: console_mount.to_string(),
            secure,
            people: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(300))
                .build(),
            recent: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(RECENT)
                .build(),
        }
    }

    /// Holds the person's console sign-in until the guard drops.
    pub(super) async fn hold(
        &self,
        provider_id: &str,
        sub: &str,
    ) -> tokio::sync::OwnedMutexGuard<()> {
        let key = (provider_id.to_string(), sub.to_string());
        let lock = self.people.get_with(key, Default::default);
        lock.lock_owned().await
    }

    /// Fails unless the stack takes the API key as an administrator's:
    /// before anything is created or minted.
    pub(super) async fn check_key(&self) -> Result<(), Refusal> {
        self.bridge
            .check_key()
            .await
            .map_err(|e| bridge_refusal(&BridgeError::Stack(e)))
    }

    /// Signs `user` in to the console: the cookies that hand the browser
    /// its stack session, or a notice for an administrator. `vouched` (at a
    /// sign-in) brings name and email up to date; `None` leaves them.
    pub async fn sign_in(
        &self,
        user: &UserRecord,
        vouched: Option<bool>,
    ) -> Result<(Vec<String>, Option<Notice>), Refusal> {
        match self.bridge.console(user, vouched).await {
            Ok(Console::Session(session)) => {
                self.owners.remember(&session, &user.username);
                let cookies = crate::tts::hand_over(&session, &self.console_mount, self.secure);
                Ok((cookies, None))
            }
            Ok(Console::Administrator) => {
                tracing::info!(target: "idgate::tts", username = %user.username, "an administrator of the stack: no console session");
                Ok((Vec::new(), Some(administrator())))
            }
            Err(e) => Err(bridge_refusal(&e)),
        }
    }

    /// Signs a signed-in person in to the console again. One at a time per
    /// person; requests that come while one is done share its session.
    pub(super) async fn again(
        &self,
        store: &Store,
        identity: &Identity,
    ) -> Result<(Vec<String>, Option<Notice>), Refusal> {
        let _held = self.hold(&identity.provider_id, &identity.sub).await;
        let key = (identity.provider_id.clone(), identity.sub.clone());
        if let Some(cookies) = self.recent.get(&key) {
            return Ok((cookies.to_vec(), None));
        }
        let user = store
            .find_user(&identity.provider_id, &identity.sub)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "user registry failed");
                internal()
            })?
            .ok_or_else(|| {
                Refusal::new(
                    403,
                    "user_removed",
                    "Your account was removed",
                    "This gateway no longer has your account. Sign in again.",
                    "user_removed",
                )
            })?;
        self.check_key().await?;
        let (cookies, notice) = self.sign_in(&user, None).await?;
        if notice.is_none() {
            self.recent.insert(key, Arc::new(cookies.clone()));
        }
        Ok((cookies, notice))
    }

    /// Where an administrator signs in with their password.
    pub fn stack_login(&self) -> String {
        format!("{}/login", self.account_mount)
    }
}

fn administrator() -> Notice {
    Notice {
        title: "Signed in, but not to the console",
        message: "You are an administrator of The Things Stack, and the stack never lets an administrator in without their password. Use the stack's own sign-in with your stack password for the console.",
        label: "Sign in to the stack with your password",
    }
}

/// What a person is told when the console sign-in failed; the log names
/// the stack's own error.
pub(super) fn bridge_refusal(e: &BridgeError) -> Refusal {
    tracing::warn!(target: "idgate::tts", error = %e, "console sign-in failed");
    let stack_failed = |reason: &'static str, message: &str| {
        Refusal::new(
            502,
            "stack_failed",
            "The Things Stack could not sign you in",
            message,
            reason,
        )
    };
    match e {
        BridgeError::Stack(StackError::Unreachable { .. } | StackError::TimedOut(_)) => stack_failed(
            "stack_unreachable",
            "The Things Stack is not reachable from this gateway, so the console sign-in cannot be completed. Try again in a moment; if it keeps failing, tell the operator.",
        ),
        BridgeError::Stack(
            StackError::KeyRefused { .. } | StackError::KeyNotAdmin { .. } | StackError::NoToken,
        ) => stack_failed(
            "stack_key_refused",
            "The Things Stack refused the gateway's API key (revoked, expired, or not an administrator's). Tell the operator: `idgate tts check` says what to fix.",
        ),
        BridgeError::Stack(StackError::TokensDisabled) => stack_failed(
            "stack_login_tokens_disabled",
            "Login tokens are disabled in The Things Stack, so the gateway cannot sign you in to the console. Tell the operator to set is.login-tokens.enabled: true.",
        ),
        BridgeError::Stack(StackError::Failed { .. }) => stack_failed(
            "stack_error",
            "The Things Stack answered with an error, so the console sign-in cannot be completed. Try again in a moment; if it keeps failing, tell the operator.",
        ),
        BridgeError::EmailTaken => Refusal::new(
            409,
            "email_taken",
            "Your email address is already in use in The Things Stack",
            "The Things Stack already has another account with your email address. Ask an administrator of the stack to link or remove that account; nothing was created.",
            "stack_email_taken",
        ),
        BridgeError::IdHeldByOther(_) => Refusal::new(
            409,
            "username_taken",
            "Your username belongs to another account in The Things Stack",
            "The Things Stack has an account under your username that was not made for you. Ask an administrator of the stack.",
            "stack_username_held",
        ),
        BridgeError::Removed(_) => Refusal::new(
            409,
            "account_removed",
            "Your console account was removed",
            "Your account in The Things Stack was deleted, and the stack keeps its name reserved. Ask an administrator of the stack to restore or purge it.",
            "stack_user_removed",
        ),
        BridgeError::NotApproved(..) => Refusal::new(
            403,
            "account_not_approved",
            "Your console account is not active",
            "Your account in The Things Stack is suspended, rejected or waiting for approval. Ask an administrator of the stack.",
            "stack_user_not_approved",
        ),
        BridgeError::Store(err) => {
            tracing::error!(error = %err, "user registry failed");
            internal()
        }
    }
}
