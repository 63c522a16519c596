//! The gateway's own answers on the public listener: the login page, the
//! login flow, logout, `/.idgate/me`, `/.idgate/auth` and the assertion
//! keys; and what a request without a session is told.

use std::sync::Arc;

use http::HeaderValue;
use pingora::proxy::Session;

use super::respond::{self, Answer, ErrorAnswer};
use super::return_target;
use super::routes::{self, Route};
use super::Gateway;
use crate::identity::keys::AssertionKeys;
use crate::oidc::login::{CallbackParams, LoginFlow, Redirect, Refusal};
use crate::pages::{LoginButton, LoginPage};
use crate::providers::registry::Registry;
use crate::session::{Live, Sessions};

use super::identity_headers::IdentityHeaders;

/// Largest `form_post` callback body read.
const MAX_CALLBACK_BODY: usize = 64 * 1024;

/// Everything the gateway needs to sign people in and vouch for them.
pub struct Auth {
    pub providers: Arc<Registry>,
    pub sessions: Arc<Sessions>,
    pub login: Arc<LoginFlow>,
    pub keys: Arc<AssertionKeys>,
    pub headers: IdentityHeaders,
    /// `scheme://host[:port]` of `public_url`, for the logout origin check.
    pub public_origin: String,
}

fn cookie_headers(session: &Session) -> http::header::GetAll<'_, HeaderValue> {
    session.req_header().headers.get_all(http::header::COOKIE)
}

impl Auth {
    /// The session the request's cookie names, if it is valid.
    async fn session_of(&self, session: &Session) -> Option<Arc<Live>> {
        self.sessions.find(cookie_headers(session).iter()).await
    }
}

impl Gateway {
    /// Answers a gateway route. `Ok(Some(session))` means the request is
    /// proxied for that session; `Ok(None)` that it was answered here.
    pub(super) async fn answer(
        &self,
        route: Route,
        session: &mut Session,
    ) -> pingora::Result<Option<Arc<Live>>> {
        let auth = &self.auth;
        let answer = match route {
            Route::Proxy => return self.require_session(session).await,
            Route::LoginPage => {
                let rd = routes::query_param(session.req_header().uri.query(), "rd");
                Answer::html(200, self.login_page(rd.as_deref()))
            }
            Route::LoginStart(id) => {
                let rd = routes::query_param(session.req_header().uri.query(), "rd");
                let result = auth
                    .login
                    .start(&id, rd.as_deref(), cookie_headers(session).iter())
                    .await;
                self.login_answer(session, &id, result)
            }
            Route::Callback(id) => {
                let Some(params) = read_callback_params(session).await else {
                    let e = ErrorAnswer {
                        status: 413,
                        code: "callback_too_large",
                        title: "Sign-in answer too large",
                        message: "The sign-in answer was larger than this gateway accepts.",
                    };
                    Answer::error(session, &e, Some("/oauth/login"))
                        .send(session)
                        .await?;
                    return Ok(None);
                };
                let result = auth
                    .login
                    .callback(&id, &params, cookie_headers(session).iter())
                    .await;
                self.login_answer(session, &id, result)
            }
            Route::Logout => self.logout(session).await,
            Route::Me => match auth.session_of(session).await {
                Some(live) => Answer::json(
                    200,
                    &serde_json::to_value(&live.identity).unwrap_or_default(),
                ),
                None => not_signed_in_json(),
            },
            Route::ForwardAuth => match auth.session_of(session).await {
                Some(live) => {
                    let mut a = Answer::json(
                        200,
                        &serde_json::json!({ "username": live.identity.username }),
                    );
                    let mut headers = Vec::new();
                    auth.headers.for_each(&live, &auth.keys.signer(), |n, v| {
                        headers.push((n.clone(), v))
                    });
                    for (n, v) in headers {
                        a = a.header(n, v);
                    }
                    a
                }
                None => not_signed_in_json(),
            },
            Route::Jwks => {
                let jwks = auth.keys.signer().jwks(crate::time::unix_now());
                Answer::json(200, &jwks).header(
                    http::header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=300"),
                )
            }
            Route::NotFound => {
                let e = ErrorAnswer {
                    status: 404,
                    code: "not_found",
                    title: "Not found",
                    message: "There is nothing at this address of the gateway.",
                };
                Answer::error(session, &e, Some("/oauth/login"))
            }
        };
        answer.send(session).await?;
        Ok(None)
    }

    fn login_answer(
        &self,
        session: &Session,
        provider_id: &str,
        result: Result<Redirect, Refusal>,
    ) -> Answer {
        match result {
            Ok(r) => Answer::redirect(302, &r.location).cookies(&r.cookies),
            Err(refusal) => {
                tracing::warn!(
                    target: "idgate::login",
                    provider = provider_id,
                    reason = refusal.reason,
                    status = refusal.status,
                    "login refused"
                );
                let e = ErrorAnswer {
                    status: refusal.status,
                    code: refusal.code,
                    title: refusal.title,
                    message: &refusal.message,
                };
                Answer::error(session, &e, Some("/oauth/login")).cookies(&refusal.cookies)
            }
        }
    }

    /// The session of a proxied request; without one, the request is
    /// answered here (302 to the login page for browsers, 401 otherwise).
    async fn require_session(&self, session: &mut Session) -> pingora::Result<Option<Arc<Live>>> {
        if let Some(live) = self.auth.session_of(session).await {
            return Ok(Some(live));
        }
        let answer = if respond::wants_html(session) {
            let target = session
                .req_header()
                .uri
                .path_and_query()
                .map(|pq| pq.as_str())
                .unwrap_or("/");
            let rd = return_target::sanitize(Some(target));
            Answer::redirect(302, &format!("/oauth/login?{}", return_target::query(&rd)))
        } else {
            not_signed_in_json()
        };
        answer.send(session).await?;
        Ok(None)
    }

    async fn logout(&self, session: &Session) -> Answer {
        if !self.same_origin(session) {
            let e = ErrorAnswer {
                status: 403,
                code: "cross_origin",
                title: "Sign-out refused",
                message: "This sign-out request came from another site.",
            };
            return Answer::error(session, &e, Some("/oauth/login"));
        }
        if let Some(live) = self.auth.session_of(session).await {
            if let Err(e) = self.auth.sessions.end(&live).await {
                // Fail closed: do not tell the person they are signed out
                // while the session still works.
                tracing::error!(error = %e, "cannot end the session in the database");
                let e = ErrorAnswer {
                    status: 500,
                    code: "logout_failed",
                    title: "Sign-out failed",
                    message: "The gateway could not end your session. Try again in a moment.",
                };
                return Answer::error(session, &e, None);
            }
            tracing::info!(target: "idgate::login", username = %live.identity.username, "signed out");
        }
        Answer::redirect(303, "/oauth/login").cookie(&self.auth.sessions.cookies().clear_session())
    }

    /// A request's `Origin` (or else `Referer`) is the gateway's own, or absent.
    fn same_origin(&self, session: &Session) -> bool {
        let headers = &session.req_header().headers;
        let claimed = headers
            .get(http::header::ORIGIN)
            .or_else(|| headers.get(http::header::REFERER))
            .map(|v| v.to_str().unwrap_or("invalid"));
        match claimed {
            None => true,
            Some(value) => url::Url::parse(value)
                .map(|u| u.origin().ascii_serialization() == self.auth.public_origin)
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

/// The callback's parameters from the query or a `form_post` body; `None`
/// when the body is larger than a callback ever is.
async fn read_callback_params(session: &mut Session) -> Option<CallbackParams> {
    if session.req_header().method != http::Method::POST {
        let query = session.req_header().uri.query().unwrap_or("");
        return Some(CallbackParams::parse(query.as_bytes()));
    }
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = session.read_request_body().await {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_CALLBACK_BODY {
            return None;
        }
    }
    Some(CallbackParams::parse(&body))
}

impl Gateway {
    /// The login page, with every provider's button carrying `rd`.
    pub(super) fn login_page(&self, rd: Option<&str>) -> String {
        let query = return_target::query(&return_target::sanitize(rd));
        let buttons = self
            .auth
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
