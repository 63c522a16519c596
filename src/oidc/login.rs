//! The authorization-code flow with PKCE: starting a login (302 to the
//! provider, the in-flight state in an encrypted cookie) and finishing it at
//! the callback (state, code exchange, ID token, email rules, user registry,
//! new session). Every refusal carries its status, a page for the person
//! and a stable reason for the operator's log.

use crate::time::unix_now;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::HeaderValue;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::discovery::Metadata;
use super::id_token::{self, Expectations, IdClaims};
use super::jwks::{OidcCache, OidcError};
use crate::identity::email::{self, Evidence};
use crate::identity::registry::{self, SignInError, StackGate};
use crate::identity::Identity;
use crate::providers::registry::Registry;
use crate::providers::Provider;
use crate::proxy::return_target;
use crate::session::cookies::PendingLogin;
use crate::session::{Sessions, SignIn};
use crate::store::users::UserRecord;
use crate::store::Store;
use crate::tts::bridge::{BridgeError, Console};
use crate::tts::client::StackError;

/// A login that cannot go on: what the person sees and what the log says.
#[derive(Debug)]
pub struct Refusal {
    pub status: u16,
    pub code: &'static str,
    pub title: &'static str,
    pub message: String,
    /// Stable, for logs and metrics.
    pub reason: &'static str,
    /// `Set-Cookie` values to send with the refusal (clearing a used login).
    pub cookies: Vec<String>,
}

impl Refusal {
    fn new(
        status: u16,
        code: &'static str,
        title: &'static str,
        message: impl Into<String>,
        reason: &'static str,
    ) -> Self {
        Self {
            status,
            code,
            title,
            message: message.into(),
            reason,
            cookies: Vec::new(),
        }
    }

    fn broken(reason: &'static str, message: &str) -> Self {
        Self::new(
            400,
            "login_failed",
            "Sign-in could not be completed",
            message,
            reason,
        )
    }

    /// The stack could not say whose session a browser holds.
    pub fn stack_unreachable() -> Self {
        Self::new(
            502,
            "stack_failed",
            "The Things Stack is not answering",
            "The gateway could not check your console session with The Things Stack. Try again in a moment.",
            "stack_unreachable",
        )
    }

    /// The session could not be ended.
    pub fn logout_failed() -> Self {
        Self::new(
            500,
            "logout_failed",
            "Sign-out failed",
            "The gateway could not end your session. Try again in a moment.",
            "logout_failed",
        )
    }

    pub fn unknown_provider() -> Self {
        Self::new(
            404,
            "unknown_provider",
            "Unknown sign-in provider",
            "This sign-in provider does not exist (any more). Choose one on the sign-in page.",
            "unknown_provider",
        )
    }

    fn from_oidc(e: &OidcError) -> Self {
        if e.is_provider_failure() {
            Self::new(
                502,
                "provider_failed",
                "The sign-in provider is not answering",
                "The sign-in provider could not be reached or gave an unusable answer. Try again in a moment.",
                e.reason(),
            )
        } else {
            Self::broken(
                e.reason(),
                "The answer from the sign-in provider could not be verified. Start the sign-in again.",
            )
        }
    }
}

/// Where the browser goes next, and the cookies it is given.
#[derive(Debug)]
pub struct Redirect {
    pub location: String,
    pub cookies: Vec<String>,
    /// Instead of going on at once: a page to show, with a link to
    /// `location`.
    pub notice: Option<Notice>,
}

/// A page shown after a sign-in that did not do all it could.
#[derive(Debug)]
pub struct Notice {
    pub title: &'static str,
    pub message: &'static str,
    pub label: &'static str,
}

/// The console sign-in of a login, when `[tts]` is on.
pub struct ConsoleSignIn {
    pub bridge: crate::tts::bridge::Bridge,
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
    pub fn new(
        bridge: crate::tts::bridge::Bridge,
        account_mount: &str,
        console_mount: &str,
        secure: bool,
    ) -> Self {
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
    async fn hold(&self, provider_id: &str, sub: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let key = (provider_id.to_string(), sub.to_string());
        let lock = self.people.get_with(key, Default::default);
        lock.lock_owned().await
    }

    /// Fails unless the stack takes the API key as an administrator's:
    /// before anything is created or minted.
    async fn check_key(&self) -> Result<(), Refusal> {
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

/// The parameters a callback carries (query or `form_post` body).
#[derive(Debug, Default)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
}

impl CallbackParams {
    pub fn parse(form: &[u8]) -> Self {
        let mut p = Self::default();
        for (k, v) in form_urlencoded::parse(form) {
            let slot = match k.as_ref() {
                "code" => &mut p.code,
                "state" => &mut p.state,
                "error" => &mut p.error,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(v.into_owned());
            }
        }
        p
    }
}

pub struct LoginFlow {
    cache: OidcCache,
    providers: Arc<Registry>,
    store: Store,
    sessions: Arc<Sessions>,
    public_url: String,
    login_timeout: Duration,
    consumed: moka::sync::Cache<String, ()>,
    console: Option<Arc<ConsoleSignIn>>,
}

/// Unfinished logins a browser may hold (tabs) before they are cleared.
pub const MAX_PENDING: usize = 3;

fn random_token() -> String {
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    URL_SAFE_NO_PAD.encode(raw)
}

impl LoginFlow {
    pub fn new(
        cache: OidcCache,
        providers: Arc<Registry>,
        store: Store,
        sessions: Arc<Sessions>,
        public_url: &url::Url,
        login_timeout: Duration,
        console: Option<Arc<ConsoleSignIn>>,
    ) -> Self {
        let consumed = moka::sync::Cache::builder()
            .max_capacity(1_000_000)
            .time_to_live(login_timeout)
            .build();
        Self {
            cache,
            providers,
            store,
            sessions,
            public_url: public_url.as_str().trim_end_matches('/').to_string(),
            login_timeout,
            consumed,
            console,
        }
    }

    /// The console sign-in, when `[tts]` is on.
    pub fn console(&self) -> Option<&ConsoleSignIn> {
        self.console.as_deref()
    }

    /// Signs a signed-in person in to the console again (their stack
    /// session was lost, or the browser holds someone else's): the cookies
    /// to set, or a notice for an administrator. One at a time per person;
    /// requests that come while one is done share its session.
    pub async fn console_again(
        &self,
        identity: &Identity,
    ) -> Result<(Vec<String>, Option<Notice>), Refusal> {
        let Some(console) = self.console.as_deref() else {
            return Ok((Vec::new(), None));
        };
        let _held = console.hold(&identity.provider_id, &identity.sub).await;
        let key = (identity.provider_id.clone(), identity.sub.clone());
        if let Some(cookies) = console.recent.get(&key) {
            return Ok((cookies.to_vec(), None));
        }
        let user = self
            .store
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
        console.check_key().await?;
        let (cookies, notice) = console.sign_in(&user, None).await?;
        if notice.is_none() {
            console.recent.insert(key, Arc::new(cookies.clone()));
        }
        Ok((cookies, notice))
    }

    /// The redirect URI registered at the provider.
    pub fn redirect_uri(&self, provider_id: &str) -> String {
        format!("{}/oauth/login/{provider_id}/callback", self.public_url)
    }

    async fn metadata(&self, provider: &Provider) -> Result<Arc<Metadata>, Refusal> {
        self.cache
            .metadata(&provider.configuration.oidc.provider_url)
            .await
            .map_err(|e| Refusal::from_oidc(&e))
    }

    /// `GET /oauth/login/<id>`: 302 to the provider's authorization endpoint.
    /// When the browser already holds [`MAX_PENDING`] unfinished logins,
    /// they are cleared: only the newest sign-in is kept going.
    pub async fn start<'a>(
        &self,
        provider_id: &str,
        rd: Option<&str>,
        cookie_headers: impl Iterator<Item = &'a HeaderValue>,
    ) -> Result<Redirect, Refusal> {
        let provider = self
            .providers
            .get(provider_id)
            .ok_or_else(Refusal::unknown_provider)?;
        let metadata = self.metadata(&provider).await?;
        let login = PendingLogin {
            provider: provider_id.to_string(),
            state: random_token(),
            nonce: random_token(),
            verifier: random_token(),
            rd: return_target::sanitize(rd),
            expires: unix_now() + self.login_timeout.as_secs() as i64,
        };
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(login.verifier.as_bytes()));
        let mode = if metadata.supports_form_post() {
            "form_post"
        } else {
            "query"
        };
        let mut url = url::Url::parse(&metadata.authorization_endpoint).map_err(|_| {
            Refusal::from_oidc(&OidcError::BadResponse {
                url: metadata.authorization_endpoint.clone(),
                detail: "authorization_endpoint is not a URL".into(),
            })
        })?;
        url.query_pairs_mut()
            .append_pair("client_id", &provider.configuration.oidc.client_id)
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", &self.redirect_uri(provider_id))
            .append_pair("scope", "openid profile email")
            .append_pair("response_mode", mode)
            .append_pair("state", &login.state)
            .append_pair("nonce", &login.nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        let codec = self.sessions.cookies();
        let mut cookies = codec.clear_all_logins(cookie_headers);
        if cookies.len() < MAX_PENDING {
            cookies.clear();
        }
        cookies.push(codec.login_cookie(&login, self.login_timeout.as_secs() as i64));
        Ok(Redirect {
            location: url.to_string(),
            cookies,
            notice: None,
        })
    }

    /// `GET`/`POST /oauth/login/<id>/callback`: finishes the login.
    pub async fn callback<'a>(
        &self,
        provider_id: &str,
        params: &CallbackParams,
        cookie_headers: impl Iterator<Item = &'a HeaderValue>,
    ) -> Result<Redirect, Refusal> {
        let state = params
            .state
            .as_deref()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                Refusal::broken(
                    "state_missing",
                    "The sign-in answer carried no state. Start the sign-in again.",
                )
            })?;
        let clear = self.sessions.cookies().clear_login(state);
        let with_clear = |mut r: Refusal| {
            r.cookies.push(clear.clone());
            r
        };
        let pending = self
            .sessions
            .cookies()
            .pending_login(cookie_headers, state)
            .ok_or_else(|| {
                Refusal::broken(
                    "state_unknown",
                    "This sign-in was not started in this browser, or it took too long. Start the sign-in again.",
                )
            })?;
        if !bool::from(pending.state.as_bytes().ct_eq(state.as_bytes()))
            || pending.provider != provider_id
        {
            // Not this browser's login: leave its own pending login alone.
            return Err(Refusal::broken(
                "state_mismatch",
                "The sign-in answer does not belong to the sign-in this browser started. Start the sign-in again.",
            ));
        }
        let pending = self.check_fresh(pending, state).map_err(with_clear)?;
        let mut done = self
            .finish(provider_id, params, &pending)
            .await
            .map_err(with_clear)?;
        done.cookies.push(clear.clone());
        Ok(done)
    }

    /// A matching pending login must be unexpired and unused; it is used now.
    fn check_fresh(&self, pending: PendingLogin, state: &str) -> Result<PendingLogin, Refusal> {
        if pending.expires <= unix_now() {
            return Err(Refusal::broken(
                "login_expired",
                "This sign-in took too long and has expired. Start the sign-in again.",
            ));
        }
        // One atomic step, so two racing callbacks cannot both pass.
        if !self
            .consumed
            .entry(state.to_string())
            .or_insert(())
            .is_fresh()
        {
            return Err(Refusal::broken(
                "state_replayed",
                "This sign-in answer was already used. Start the sign-in again.",
            ));
        }
        Ok(pending)
    }

    async fn finish(
        &self,
        provider_id: &str,
        params: &CallbackParams,
        pending: &PendingLogin,
    ) -> Result<Redirect, Refusal> {
        if let Some(error) = params.error.as_deref() {
            return Err(provider_said(error));
        }
        let code = params
            .code
            .as_deref()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| {
                Refusal::broken(
                    "code_missing",
                    "The sign-in answer carried no code. Start the sign-in again.",
                )
            })?;
        let provider = self
            .providers
            .get(provider_id)
            .ok_or_else(Refusal::unknown_provider)?;
        let metadata = self.metadata(&provider).await?;
        let id_token = self
            .exchange(&provider, &metadata, code, &pending.verifier)
            .await?;
        let expectations = Expectations::new(
            &metadata,
            &provider.configuration.oidc.client_id,
            &pending.nonce,
        );
        let claims = non_empty(
            id_token::verify(&self.cache, &id_token, &expectations)
                .await
                .map_err(|e| Refusal::from_oidc(&e))?,
        );
        let evidence = evidence(&claims);
        let multi_tenant = metadata.is_multi_tenant();
        let vouching = email::Vouching::of(multi_tenant, &evidence);
        let email = email::check(&provider, multi_tenant, &evidence).map_err(|r| {
            Refusal::new(
                403,
                "email_refused",
                "You cannot sign in here",
                r.message(),
                r.reason(),
            )
        })?;
        let vouched = email::vouched_for(&provider, &vouching);
        let console = self.console.as_deref();
        let _held = match console {
            Some(c) => {
                let held = c.hold(provider_id, &claims.sub).await;
                c.check_key().await?;
                Some(held)
            }
            None => None,
        };
        let gate = console.map(|c| StackGate {
            bridge: &c.bridge,
            vouched,
        });
        let user = registry::sign_in(&self.store, &provider, &claims, &email, gate)
            .await
            .map_err(sign_in_refusal)?;
        let (mut cookies, notice) = match console {
            Some(c) => c.sign_in(&user, Some(vouched)).await?,
            None => (Vec::new(), None),
        };
        let sign_in = SignIn::at(&provider, vouching);
        let identity = Identity {
            provider_id: provider_id.to_string(),
            sub: claims.sub,
            username: user.username,
            email,
            preferred_username: claims.preferred_username,
            name: claims.name,
            oid: claims.oid,
            tid: claims.tid,
            groups: claims.groups,
            roles: claims.roles,
        };
        tracing::info!(target: "idgate::login", provider = provider_id, username = %identity.username, "signed in");
        let session_cookie = self.sessions.create(identity, sign_in).await.map_err(|e| {
            tracing::error!(error = %e, "cannot store the session");
            internal()
        })?;
        cookies.insert(0, session_cookie);
        let location = match (&notice, console) {
            (Some(_), Some(c)) => c.stack_login(),
            _ => return_target::sanitize(Some(&pending.rd)),
        };
        Ok(Redirect {
            location,
            cookies,
            notice,
        })
    }

    /// Trades the code for tokens; returns the ID token.
    async fn exchange(
        &self,
        provider: &Provider,
        metadata: &Metadata,
        code: &str,
        verifier: &str,
    ) -> Result<String, Refusal> {
        let oidc = &provider.configuration.oidc;
        let secret = oidc.client_secret.as_deref().unwrap_or_default();
        let redirect_uri = self.redirect_uri(provider.id());
        let methods = &metadata.token_endpoint_auth_methods_supported;
        let basic = methods.is_empty() || methods.iter().any(|m| m == "client_secret_basic");
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri.as_str()),
            ("code_verifier", verifier),
            ("client_id", oidc.client_id.as_str()),
        ];
        if !basic {
            form.push(("client_secret", secret));
        }
        let auth = basic.then_some((oidc.client_id.as_str(), secret));
        let answer = self
            .cache
            .post_form(&metadata.token_endpoint, &form, auth)
            .await
            .map_err(|e| Refusal::from_oidc(&e))?;
        answer["id_token"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| {
                Refusal::from_oidc(&OidcError::BadResponse {
                    url: metadata.token_endpoint.clone(),
                    detail: "the token answer has no id_token".into(),
                })
            })
    }
}

/// Claims with empty optional values treated as absent.
fn non_empty(mut c: IdClaims) -> IdClaims {
    for field in [
        &mut c.email,
        &mut c.name,
        &mut c.given_name,
        &mut c.family_name,
        &mut c.preferred_username,
        &mut c.oid,
        &mut c.tid,
    ] {
        if field.as_deref().is_some_and(|v| v.trim().is_empty()) {
            *field = None;
        }
    }
    c
}

fn evidence(c: &IdClaims) -> Evidence<'_> {
    Evidence {
        email: c.email.as_deref(),
        email_verified: c.email_verified,
        xms_edov: c.xms_edov,
        tid: c.tid.as_deref(),
    }
}

fn internal() -> Refusal {
    Refusal::new(
        500,
        "internal",
        "Something went wrong",
        "The gateway could not complete the sign-in. Try again; if it keeps failing, tell the operator.",
        "internal",
    )
}

fn sign_in_refusal(e: SignInError) -> Refusal {
    match e {
        SignInError::RegistrationsClosed => Refusal::new(
            403,
            "registrations_closed",
            "Registrations are closed",
            "This site does not accept new accounts through this provider. Ask an administrator to register you.",
            "registrations_closed",
        ),
        SignInError::NoUsername => Refusal::new(
            403,
            "no_username",
            "No username could be made for you",
            "None of the names your account shares can be turned into a username here. Ask an administrator.",
            "no_username",
        ),
        SignInError::Stack(e) => bridge_refusal(&e),
        SignInError::Store(err) => {
            tracing::error!(error = %err, "user registry failed");
            internal()
        }
    }
}

/// What a person is told when the console sign-in failed; the log names
/// the stack's own error.
fn bridge_refusal(e: &BridgeError) -> Refusal {
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

/// An `error` the provider sent back instead of a code.
fn provider_said(error: &str) -> Refusal {
    match error {
        "access_denied" | "consent_required" | "interaction_required" | "login_required" => {
            Refusal::new(
                403,
                "provider_refused",
                "Sign-in was refused",
                "The sign-in provider did not let you in, or the sign-in was cancelled.",
                "provider_access_denied",
            )
        }
        "server_error" | "temporarily_unavailable" => Refusal::new(
            502,
            "provider_failed",
            "The sign-in provider failed",
            "The sign-in provider reported a failure. Try again in a moment.",
            "provider_error",
        ),
        _ => Refusal::broken(
            "provider_rejected_request",
            "The sign-in provider refused the sign-in request. Tell the operator.",
        ),
    }
}
