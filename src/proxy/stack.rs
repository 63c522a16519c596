//! The Things Stack's side of proxying, when the console sign-in is on: a
//! signed-in person's request goes on with the browser's `_session` only
//! when that stack session is theirs (else the browser is signed in to the
//! stack again first), the console's own sign-out ends the idgate session
//! too, and the stack's login page heals a lost stack session.

use http::request::Parts;
use http::{HeaderMap, HeaderValue, Response};
use hyper::body::Incoming;

use super::exchange::{Exchange, Tracked};
use super::respond::{Answer, ErrorAnswer};
use super::{answered, Conn, Gateway};
use crate::login::return_target;
use crate::login::Refusal;
use crate::policy::own::query_param;
use crate::session::Live;
use crate::tts::owners::{session_cookie, Standing};

/// The 403 for the login-token routes only the gateway itself may call.
pub(super) fn closed(headers: &HeaderMap) -> Answer {
    let e = ErrorAnswer {
        status: 403,
        code: "forbidden",
        title: "This address is closed",
        message: "Only the gateway itself may call this address of The Things Stack.",
    };
    Answer::error(headers, &e, None)
}

/// The 400 for a path that matched a route but cannot be sent on as one.
pub(super) fn unroutable(headers: &HeaderMap) -> Answer {
    let e = ErrorAnswer {
        status: 400,
        code: "bad_request",
        title: "Bad request",
        message: "The address of this request cannot be passed on.",
    };
    Answer::error(headers, &e, None)
}

impl Gateway {
    /// The standing of the request's `_session` for `live`, from the cache
    /// alone: `Fine` when the console sign-in is off.
    pub(super) fn stack_standing<'a>(
        &self,
        cookie_headers: impl IntoIterator<Item = &'a [u8]>,
        live: &Live,
    ) -> Standing {
        match self.auth.login.console() {
            Some(console) => console
                .owners
                .standing(session_cookie(cookie_headers), &live.identity.username),
            None => Standing::Fine,
        }
    }

    /// The standing of the request's `_session` for `live`, asking the
    /// stack when the cache does not know; a refusal when it cannot say.
    async fn standing(&self, parts: &Parts, live: &Live) -> Result<Standing, Refusal> {
        let cookies = || {
            parts
                .headers
                .get_all(http::header::COOKIE)
                .iter()
                .map(HeaderValue::as_bytes)
        };
        let standing = self.stack_standing(cookies(), live);
        let (Standing::Unknown, Some(console)) = (standing, self.auth.login.console()) else {
            return Ok(standing);
        };
        let client = console.bridge.client();
        let username = &live.identity.username;
        console
            .owners
            .check(client, session_cookie(cookies()), username)
            .await
            .map_err(|e| {
                tracing::warn!(target: "idgate::tts", error = %e, "cannot tell whose stack session this is");
                Refusal::stack_unreachable()
            })
    }

    /// Nothing when a signed-in person's request may go on with the
    /// browser's `_session`; else the answer: the browser signed in to the
    /// stack as its person and sent to the same address again, or refused.
    pub(super) async fn stack_check(&self, parts: &Parts, live: &Live) -> Option<Answer> {
        match self.standing(parts, live).await {
            Ok(Standing::Fine) => None,
            Ok(_) => Some(self.sign_in_again(parts, live).await),
            Err(refusal) => Some(self.refusal(parts, &refusal)),
        }
    }

    async fn sign_in_again(&self, parts: &Parts, live: &Live) -> Answer {
        tracing::info!(target: "idgate::tts", username = %live.identity.username, "the browser holds another user's stack session; signing it in again");
        match self.auth.login.console_again(&live.identity).await {
            Ok((cookies, None)) => Answer::redirect(307, &same_target(parts)).cookies(&cookies),
            Ok((_, Some(_))) => {
                Answer::redirect(307, &same_target(parts)).cookies(&self.auth.stack_cleared())
            }
            Err(refusal) => self.refusal(parts, &refusal),
        }
    }

    fn refusal(&self, parts: &Parts, refusal: &Refusal) -> Answer {
        let e = ErrorAnswer::from(refusal);
        Answer::error(&parts.headers, &e, Some("/oauth/login")).cookies(&self.auth.stack_cleared())
    }

    /// The stack's login page, `n` naming where to go on: for a signed-in
    /// person who can be signed in to the stack, they are, and go on to `n`
    /// (when it is a same-origin path). `None`: the request goes on as usual.
    pub(super) async fn heal(&self, conn: &Conn, parts: &Parts) -> Option<Answer> {
        self.auth.login.console()?;
        let next = query_param(parts.uri.query(), "n")?;
        let live = self.session(conn, &parts.headers).await?;
        match self.auth.login.console_again(&live.identity).await {
            Ok((cookies, None)) => {
                tracing::info!(target: "idgate::tts", username = %live.identity.username, "stack session restored");
                // The browser's old stack session, if the stack still has
                // it, is not left behind (unless it is the one handed over
                // again, to a request that came at the same time).
                let handed = |old: &str| {
                    let set = format!("{}={old};", crate::tts::SESSION_COOKIE);
                    cookies.iter().any(|c| c.starts_with(&set))
                };
                self.auth.end_stack_session(&parts.headers, handed).await;
                let to = return_target::sanitize(Some(&next));
                Some(Answer::redirect(302, &to).cookies(&cookies))
            }
            Ok((_, Some(_))) => None,
            Err(refusal) => {
                tracing::info!(target: "idgate::tts", reason = refusal.reason, "stack session not restored");
                None
            }
        }
    }

    /// `<account_mount>/logout`, the console's own sign-out: for a signed-in
    /// person whose stack session it is, it goes on to the stack and the
    /// idgate session ends with it. Without a session it is refused like
    /// any other request.
    pub(super) async fn stack_logout(
        &self,
        conn: &Conn,
        parts: Parts,
        body: Incoming,
        ex: Exchange,
    ) -> Response<Tracked> {
        let Some(live) = self.session(conn, &parts.headers).await else {
            return self.not_signed_in(&parts, ex);
        };
        let http1 = parts.version < http::Version::HTTP_2;
        if let Some(answer) = self.stack_check(&parts, &live).await {
            return answered(ex, answer, http1);
        }
        if let Err(e) = self.auth.sessions.end(&live).await {
            tracing::error!(error = %e, "cannot end the session in the database");
            let answer = self.refusal(&parts, &Refusal::logout_failed());
            return answered(ex, answer, http1);
        }
        tracing::info!(target: "idgate::login", username = %live.identity.username, "signed out through the console");
        let mut response = self.forward(conn, parts, body, Some(live), ex).await;
        let clear = self.auth.sessions.cookies().clear_session();
        if let Ok(v) = HeaderValue::from_str(&clear) {
            response.headers_mut().append(http::header::SET_COOKIE, v);
        }
        response
    }
}

/// The request's own path and query, to send the browser back to (`/`
/// when a browser could read it as another host).
fn same_target(parts: &Parts) -> String {
    let target = parts.uri.path_and_query().map(|pq| pq.as_str());
    return_target::sanitize(target)
}
