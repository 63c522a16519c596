//! The gateway's own routes on the public listener, answered from their own
//! state ([`Auth`]: providers, sessions, the sign-in service, the assertion
//! keys): the login page, the login flow, logout, `/.idgate/me`,
//! `/.idgate/auth` and the assertion keys; and what a request without a
//! session is told. The data paths only hand requests over.

use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;
use http::{HeaderMap, HeaderValue};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::respond::{self, Answer, ErrorAnswer, BODY_TIMEOUT};
use crate::identity::keys::AssertionKeys;
use crate::login::revalidate::Revalidator;
use crate::login::sign_out::{FrontChannel, SignOut};
use crate::login::{return_target, CallbackParams, LoginFlow, Redirect, Refusal};
use crate::pages::{LoginButton, LoginPage, NoticePage};
use crate::policy::own as routes;
use crate::policy::Route;
use crate::provider_registry::Registry;
use crate::session::{Live, Sessions};
use crate::tts::owners::{session_cookie, Carried};

use super::identity_headers::IdentityHeaders;

/// Largest `form_post` callback body read.
const MAX_CALLBACK_BODY: usize = 64 * 1024;

/// Everything the gateway needs to sign people in and vouch for them.
pub struct Auth {
    pub providers: Arc<Registry>,
    pub sessions: Arc<Sessions>,
    pub login: Arc<LoginFlow>,
    pub sign_out: SignOut,
    pub revalidator: Arc<Revalidator>,
    pub keys: Arc<AssertionKeys>,
    pub headers: IdentityHeaders,
    /// `scheme://host[:port]` of `public_url`, for the logout origin check.
    pub public_origin: String,
}

fn cookie_headers(headers: &HeaderMap) -> http::header::GetAll<'_, HeaderValue> {
    headers.get_all(http::header::COOKIE)
}

impl Auth {
    /// The session the request's cookie names, if it is valid.
    pub(super) async fn session_of(&self, headers: &HeaderMap) -> Option<Arc<Live>> {
        let live = self.sessions.find(cookie_headers(headers).iter()).await?;
        self.vetted(live).await
    }

    /// `live`, checked again with its provider first when that is due:
    /// the one place both data paths (and forward-auth) go through.
    pub(super) async fn vetted(&self, live: Arc<Live>) -> Option<Arc<Live>> {
        let now = crate::time::unix_now();
        if !self.must_vet(&live, now) {
            return Some(live);
        }
        if live.due(now) {
            return self.revalidator.check(live).await;
        }
        // Past its grace while a check is under way: not used until that
        // check gives its verdict.
        None
    }

    /// Whether `live` needs `vetted` before it is used: due to be checked
    /// with its provider, or past its grace. The fast path hands such a
    /// request over.
    pub(super) fn must_vet(&self, live: &Live, now: i64) -> bool {
        live.due(now) || self.sessions.past_grace(live, now)
    }

    /// Answers one of the gateway's own routes (not the callback, which
    /// reads a body, nor a proxied one).
    pub(super) async fn answer(&self, route: Route, parts: &Parts) -> Answer {
        let headers = &parts.headers;
        match route {
            Route::LoginPage => {
                let rd = routes::query_param(parts.uri.query(), "rd");
                Answer::html(200, self.login_page(rd.as_deref()))
            }
            Route::LoginStart(id) => {
                let rd = routes::query_param(parts.uri.query(), "rd");
                let result = self
                    .login
                    .start(&id, rd.as_deref(), cookie_headers(headers).iter())
                    .await;
                self.login_answer(headers, &id, result)
            }
            Route::Logout => self.logout(headers).await,
            Route::SignedOut => {
                let page = NoticePage {
                    title: "Signed out",
                    message: "You are signed out.",
                    href: "/oauth/login",
                    label: "Sign in again",
                };
                Answer::html(200, page.html())
            }
            Route::FrontChannelLogout(id) => {
                let query = parts.uri.query();
                let sid = routes::query_param(query, "sid");
                let iss = routes::query_param(query, "iss");
                self.front_channel_logout(&id, sid.as_deref(), iss.as_deref())
                    .await
            }
            Route::Me => match self.session_of(headers).await {
                Some(live) => Answer::json(
                    200,
                    &serde_json::to_value(&live.identity).unwrap_or_default(),
                ),
                None => not_signed_in_json(),
            },
            Route::ForwardAuth => match self.session_of(headers).await {
                Some(live) => {
                    let mut a = Answer::json(
                        200,
                        &serde_json::json!({ "username": live.identity.username }),
                    );
                    let mut identity = Vec::new();
                    self.headers.for_each(&live, &self.keys.signer(), |n, v| {
                        identity.push((n.clone(), v))
                    });
                    for (n, v) in identity {
                        a = a.header(n, v);
                    }
                    a
                }
                None => not_signed_in_json(),
            },
            Route::Jwks => {
                let jwks = self.keys.signer().jwks(crate::time::unix_now());
                Answer::json(200, &jwks).header(
                    http::header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=300"),
                )
            }
            Route::NotFound | Route::Proxy | Route::Callback(_) => {
                let e = ErrorAnswer {
                    status: 404,
                    code: "not_found",
                    title: "Not found",
                    message: "There is nothing at this address of the gateway.",
                };
                Answer::error(headers, &e, Some("/oauth/login"))
            }
        }
    }

    /// `GET`/`POST /oauth/login/<id>/callback`: finishes a login. A
    /// `form_post` body must arrive within `patience` (the client timeout).
    pub(super) async fn callback(
        &self,
        id: &str,
        parts: &Parts,
        body: Incoming,
        patience: Duration,
    ) -> Answer {
        let params = match read_callback_params(parts, body, patience).await {
            CallbackBody::Params(params) => params,
            CallbackBody::TooLarge => {
                let e = ErrorAnswer {
                    status: 413,
                    code: "callback_too_large",
                    title: "Sign-in answer too large",
                    message: "The sign-in answer was larger than this gateway accepts.",
                };
                return Answer::error(&parts.headers, &e, Some("/oauth/login"));
            }
            CallbackBody::Late => {
                return Answer::error(&parts.headers, &BODY_TIMEOUT, Some("/oauth/login")).close()
            }
        };
        let result = self
            .login
            .callback(id, &params, cookie_headers(&parts.headers).iter())
            .await;
        self.login_answer(&parts.headers, id, result)
    }

    fn login_answer(
        &self,
        headers: &HeaderMap,
        provider_id: &str,
        result: Result<Redirect, Refusal>,
    ) -> Answer {
        match result {
            Ok(Redirect {
                location,
                cookies,
                notice: Some(notice),
            }) => {
                let page = NoticePage {
                    title: notice.title,
                    message: notice.message,
                    href: &location,
                    label: notice.label,
                };
                Answer::html(200, page.html()).cookies(&cookies)
            }
            Ok(r) => Answer::redirect(302, &r.location).cookies(&r.cookies),
            Err(refusal) => {
                tracing::warn!(
                    target: "idgate::login",
                    provider = provider_id,
                    reason = refusal.reason,
                    status = refusal.status,
                    "login refused"
                );
                let e = ErrorAnswer::from(&refusal);
                Answer::error(headers, &e, Some("/oauth/login")).cookies(&refusal.cookies)
            }
        }
    }

    /// What a request for a proxied route without a session is told: 302
    /// to the login page for browsers, 401 otherwise.
    pub(super) fn unauthenticated(&self, parts: &Parts) -> Answer {
        if respond::wants_html(&parts.headers) {
            let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
            let rd = return_target::sanitize(Some(target));
            Answer::redirect(302, &format!("/oauth/login?{}", return_target::query(&rd)))
        } else {
            not_signed_in_json()
        }
    }

    async fn logout(&self, headers: &HeaderMap) -> Answer {
        if !self.same_origin(headers) {
            let e = ErrorAnswer {
                status: 403,
                code: "cross_origin",
                title: "Sign-out refused",
                message: "This sign-out request came from another site.",
            };
            return Answer::error(headers, &e, Some("/oauth/login"));
        }
        // Not checked with the provider first: it ends either way, and
        // the person is sent on to sign out there.
        let live = self.sessions.find(cookie_headers(headers).iter()).await;
        if let Some(live) = &live {
            if let Err(e) = self.sessions.end(live).await {
                // Fail closed: do not tell the person they are signed out
                // while the session still works.
                tracing::error!(error = %e, "cannot end the session in the database");
                let refusal = Refusal::logout_failed();
                let e = ErrorAnswer::from(&refusal);
                return Answer::error(headers, &e, None);
            }
            tracing::info!(target: "idgate::login", username = %live.identity.username, "signed out");
        }
        self.end_stack_session(headers, |_| false).await;
        let at_provider = match &live {
            Some(l) => {
                let hint = l.login_hint();
                self.sign_out
                    .at_provider(&l.identity.provider_id, hint)
                    .await
            }
            None => None,
        };
        Answer::redirect(303, at_provider.as_deref().unwrap_or("/oauth/login"))
            .cookie(&self.sessions.cookies().clear_session())
            .cookies(&self.stack_cleared())
    }

    /// The provider's front-channel logout: a frameable, empty page, and
    /// the caller's own cookies left alone.
    async fn front_channel_logout(&self, id: &str, sid: Option<&str>, iss: Option<&str>) -> Answer {
        let blank = |status| {
            let page = "<!doctype html><title>Signed out</title>".to_string();
            Answer::html(status, page).frameable()
        };
        match self.sign_out.front_channel(id, sid, iss).await {
            Ok(FrontChannel::Ended(_)) => blank(200),
            Ok(FrontChannel::UnknownProvider) => {
                let e = ErrorAnswer {
                    status: 404,
                    code: "not_found",
                    title: "Not found",
                    message: "There is no such provider at this gateway.",
                };
                Answer::error_page(true, &e, None).frameable()
            }
            Err(e) => {
                // Fail closed: the provider is not told the sessions ended.
                tracing::error!(provider = id, error = %e, "cannot end the sessions of a front-channel logout");
                blank(500)
            }
        }
    }

    /// Ends the browser's stack session at the stack, when it has one and
    /// `keep` does not say to keep it.
    pub(super) async fn end_stack_session(&self, headers: &HeaderMap, keep: impl Fn(&str) -> bool) {
        let Some(console) = self.login.console() else {
            return;
        };
        let cookies = headers.get_all(http::header::COOKIE);
        let carried = session_cookie(cookies.iter().map(HeaderValue::as_bytes));
        let Carried::One(session) = carried else {
            return;
        };
        let session = String::from_utf8_lossy(session);
        if keep(&session) {
            return;
        }
        if let Err(e) = console.bridge.client().end_session(&session).await {
            tracing::warn!(target: "idgate::tts", error = %e, "cannot end the stack session; its cookie is removed from the browser");
        }
    }

    /// `Set-Cookie` values removing the stack session and the console's
    /// cookies (none when the console sign-in is off).
    pub(super) fn stack_cleared(&self) -> Vec<String> {
        match self.login.console() {
            Some(c) => crate::tts::clear_all(&c.console_mount, c.secure),
            None => Vec::new(),
        }
    }

    /// A request's `Origin` (or else `Referer`) is the gateway's own, or absent.
    fn same_origin(&self, headers: &HeaderMap) -> bool {
        let claimed = headers
            .get(http::header::ORIGIN)
            .or_else(|| headers.get(http::header::REFERER))
            .map(|v| v.to_str().unwrap_or("invalid"));
        match claimed {
            None => true,
            Some(value) => url::Url::parse(value)
                .map(|u| u.origin().ascii_serialization() == self.public_origin)
                .unwrap_or(false),
        }
    }
}

fn not_signed_in_json() -> Answer {
    Answer::json(
        401,
        &serde_json::json!({
            "error": "unauthenticated",
            "message": "sign in at /oauth/login first",
            "status": 401,
        }),
    )
}

/// What a callback request carried.
enum CallbackBody {
    Params(CallbackParams),
    /// A body larger than a callback ever is.
    TooLarge,
    /// A body that did not arrive within the client timeout.
    Late,
}

/// The callback's parameters from the query or a `form_post` body.
async fn read_callback_params(parts: &Parts, body: Incoming, patience: Duration) -> CallbackBody {
    if parts.method != http::Method::POST {
        let query = parts.uri.query().unwrap_or("");
        return CallbackBody::Params(CallbackParams::parse(query.as_bytes()));
    }
    let body = http_body_util::Limited::new(body, MAX_CALLBACK_BODY).collect();
    match tokio::time::timeout(patience, body).await {
        Ok(Ok(body)) => CallbackBody::Params(CallbackParams::parse(&body.to_bytes())),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => CallbackBody::TooLarge,
        // The client went away mid-body: no parameters arrived.
        Ok(Err(_)) => CallbackBody::Params(CallbackParams::parse(b"")),
        Err(_) => CallbackBody::Late,
    }
}

impl Auth {
    /// The login page, with every provider's button carrying `rd`.
    pub(super) fn login_page(&self, rd: Option<&str>) -> String {
        let query = return_target::query(&return_target::sanitize(rd));
        let buttons = self
            .providers
            .list()
            .iter()
            .map(|p| LoginButton {
                name: p.name.clone(),
                href: format!("/oauth/login/{}?{query}", p.id()),
            })
            .collect();
        LoginPage { buttons }.html()
    }
}
