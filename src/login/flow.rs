//! The authorization-code flow with PKCE: starting a login (302 to the
//! provider, the in-flight state in an encrypted cookie) and finishing it at
//! the callback (state, code exchange, ID token, email rules, user registry,
//! new session). Every refusal carries its status, a page for the person
//! and a stable reason for the operator's log.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use constant_time_eq::constant_time_eq;
use http::HeaderValue;
use sha2::{Digest, Sha256};

use super::console::ConsoleSignIn;
use super::graph;
use super::refusal::{internal, Refusal};
use super::registry::{self, SignInError, StackGate};
use super::return_target;
use crate::identity::email::{self, Evidence};
use crate::identity::Identity;
use crate::oidc::id_token::{self, Expectations, IdClaims};
use crate::oidc::{Metadata, OidcCache, OidcError};
use crate::policy::access::{Held, Refused, Requirement};
use crate::provider_registry::Registry;
use crate::providers::Provider;
use crate::session::cookies::PendingLogin;
use crate::session::{random_token, Sessions, SignIn};
use crate::store::Store;
use crate::time::unix_now;

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
    console: Option<Arc<ConsoleSignIn>>,
    access: AccessSettings,
}

/// What the sign-in needs to know about groups and roles.
#[derive(Debug, Clone, Default)]
pub struct AccessSettings {
    /// `[access]`: the groups and roles a person needs to sign in.
    pub rule: Requirement,
    /// Whether any rule (`[access]` or a route) asks for groups: then the
    /// sign-in asks for the Graph scope, and a person in too many groups
    /// for the token has them looked up at Graph.
    pub groups_needed: bool,
    /// `oidc.graph_url`.
    pub graph_url: String,
}

impl AccessSettings {
    /// The scopes a sign-in (and a refresh) asks for: `offline_access` for
    /// a refresh token to revalidate with; the Graph one only when a rule
    /// needs groups.
    pub fn scope(&self) -> String {
        let mut scope = String::from("openid profile email offline_access");
        if self.groups_needed {
            scope.push(' ');
            scope.push_str(&graph::scope(&self.graph_url));
        }
        scope
    }

    /// Looks the groups up at Microsoft Graph when the token left them out
    /// (overage) and a rule needs them; when Graph fails they stay unknown
    /// and every group rule refuses: never admitted on a partial list.
    pub(crate) async fn complete_groups(
        &self,
        cache: &OidcCache,
        claims: &mut IdClaims,
        access_token: Option<&str>,
    ) -> Result<(), graph::GraphError> {
        if !(claims.groups_overage && self.groups_needed) {
            return Ok(());
        }
        match graph::transitive_groups(cache, &self.graph_url, access_token).await {
            Ok(groups) => {
                claims.groups = groups;
                claims.groups_overage = false;
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot look the groups up at Microsoft Graph");
                Err(e)
            }
        }
    }

    /// Whether `[access]` admits what `claims` hold.
    pub(crate) fn admits(&self, claims: &IdClaims) -> Result<(), Refused> {
        self.rule.admits(&Held {
            groups: &claims.groups,
            roles: &claims.roles,
            groups_unknown: claims.groups_overage,
        })
    }
}

/// The tokens of a code exchange or a refresh that idgate uses.
pub(crate) struct Tokens {
    /// Absent from a broken answer: each caller says what that means.
    pub id_token: Option<String>,
    pub access_token: Option<String>,
    pub refresh_token: Option<String>,
}

/// POSTs `form` to `provider`'s token endpoint with the client's
/// credentials, as the provider takes them (HTTP Basic unless discovery
/// names only `client_secret_post`), and reads the tokens of its answer.
pub(crate) async fn token_call(
    cache: &OidcCache,
    provider: &Provider,
    metadata: &Metadata,
    mut form: Vec<(&str, &str)>,
) -> Result<Tokens, OidcError> {
    let oidc = &provider.configuration.oidc;
    let secret = oidc.client_secret.as_deref().unwrap_or_default();
    let methods = &metadata.token_endpoint_auth_methods_supported;
    let basic = methods.is_empty() || methods.iter().any(|m| m == "client_secret_basic");
    form.push(("client_id", oidc.client_id.as_str()));
    if !basic {
        form.push(("client_secret", secret));
    }
    let auth = basic.then_some((oidc.client_id.as_str(), secret));
    let answer = cache
        .post_form(&metadata.token_endpoint, &form, auth)
        .await?;
    let text = |name: &str| answer[name].as_str().map(str::to_string);
    Ok(Tokens {
        id_token: text("id_token"),
        access_token: text("access_token"),
        refresh_token: text("refresh_token"),
    })
}

/// Unfinished logins a browser may hold (tabs) before they are cleared.
pub const MAX_PENDING: usize = 3;

impl LoginFlow {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cache: OidcCache,
        providers: Arc<Registry>,
        store: Store,
        sessions: Arc<Sessions>,
        public_url: &url::Url,
        login_timeout: Duration,
        console: Option<Arc<ConsoleSignIn>>,
        access: AccessSettings,
    ) -> Self {
        Self {
            access,
            cache,
            providers,
            store,
            sessions,
            public_url: public_url.as_str().trim_end_matches('/').to_string(),
            login_timeout,
            console,
        }
    }

    /// The console sign-in, when `[tts]` is on.
    pub fn console(&self) -> Option<&ConsoleSignIn> {
        self.console.as_deref()
    }

    /// Signs a signed-in person in to the console again (their stack
    /// session was lost, or the browser holds someone else's): the cookies
    /// to set, or a notice for an administrator.
    pub async fn console_again(
        &self,
        identity: &Identity,
    ) -> Result<(Vec<String>, Option<Notice>), Refusal> {
        match self.console.as_deref() {
            Some(console) => console.again(&self.store, identity).await,
            None => Ok((Vec::new(), None)),
        }
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
            .append_pair("scope", &self.access.scope())
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
        if self.providers.get(provider_id).is_none() {
            return Err(Refusal::unknown_provider());
        }
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
        if !constant_time_eq(pending.state.as_bytes(), state.as_bytes())
            || pending.provider != provider_id
        {
            // Not this browser's login: leave its own pending login alone.
            return Err(Refusal::broken(
                "state_mismatch",
                "The sign-in answer does not belong to the sign-in this browser started. Start the sign-in again.",
            ));
        }
        let pending = self.check_fresh(pending, state).await.map_err(with_clear)?;
        let mut done = self
            .finish(provider_id, params, &pending)
            .await
            .map_err(with_clear)?;
        done.cookies.push(clear.clone());
        Ok(done)
    }

    /// A matching pending login must be unexpired and unused; it is used
    /// now, in the database, so a replay is refused on every replica (one
    /// atomic insert: two racing callbacks cannot both pass).
    async fn check_fresh(
        &self,
        pending: PendingLogin,
        state: &str,
    ) -> Result<PendingLogin, Refusal> {
        if pending.expires <= unix_now() {
            return Err(Refusal::broken(
                "login_expired",
                "This sign-in took too long and has expired. Start the sign-in again.",
            ));
        }
        let state_hash = URL_SAFE_NO_PAD.encode(Sha256::digest(state.as_bytes()));
        let fresh = self
            .store
            .use_state(&state_hash, pending.expires)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "cannot record the used login state");
                internal()
            })?;
        if !fresh {
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
        let tokens = self
            .exchange(&provider, &metadata, code, &pending.verifier)
            .await?;
        let id_token = tokens.id_token.as_deref().ok_or_else(|| {
            Refusal::from_oidc(&OidcError::BadResponse {
                url: metadata.token_endpoint.clone(),
                detail: "the token answer has no id_token".into(),
            })
        })?;
        let expectations = Expectations::new(
            &metadata,
            &provider.configuration.oidc.client_id,
            &pending.nonce,
        );
        let mut claims = non_empty(
            id_token::verify(&self.cache, id_token, &expectations)
                .await
                .map_err(|e| Refusal::from_oidc(&e))?,
        );
        // Graph failing leaves the groups unknown: the rules refuse below.
        let _ = self
            .access
            .complete_groups(&self.cache, &mut claims, tokens.access_token.as_deref())
            .await;
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
        self.access.admits(&claims).map_err(|r| {
            Refusal::new(
                403,
                "access_refused",
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
        let mut sign_in = SignIn::at(&provider, vouching);
        sign_in.sid = claims.sid.take();
        sign_in.login_hint = claims.login_hint.take();
        if tokens.refresh_token.is_none() {
            tracing::warn!(provider = provider_id, "the provider gave no refresh token (offline_access not granted?): this session is not checked with it again before it ends");
        }
        sign_in.refresh_token = tokens.refresh_token;
        let identity = Identity::from_claims(provider_id, user.username, email, claims);
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

    /// Trades the code for tokens.
    async fn exchange(
        &self,
        provider: &Provider,
        metadata: &Metadata,
        code: &str,
        verifier: &str,
    ) -> Result<Tokens, Refusal> {
        let redirect_uri = self.redirect_uri(provider.id());
        let form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri.as_str()),
            ("code_verifier", verifier),
        ];
        token_call(&self.cache, provider, metadata, form)
            .await
            .map_err(|e| Refusal::from_oidc(&e))
    }
}

/// Claims with empty optional values treated as absent.
pub(crate) fn non_empty(mut c: IdClaims) -> IdClaims {
    for field in [
        &mut c.email,
        &mut c.name,
        &mut c.given_name,
        &mut c.family_name,
        &mut c.preferred_username,
        &mut c.oid,
        &mut c.tid,
        &mut c.login_hint,
    ] {
        if field.as_deref().is_some_and(|v| v.trim().is_empty()) {
            *field = None;
        }
    }
    if c.sid.as_ref().is_some_and(|s| s.expose().trim().is_empty()) {
        c.sid = None;
    }
    c
}

pub(crate) fn evidence(c: &IdClaims) -> Evidence<'_> {
    Evidence {
        email: c.email.as_deref(),
        email_verified: c.email_verified,
        xms_edov: c.xms_edov,
        tid: c.tid.as_deref(),
    }
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
        SignInError::Stack(e) => super::console::bridge_refusal(&e),
        SignInError::Store(err) => {
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
