//! The Things Stack's side of proxying, when the console sign-in is on: a
//! signed-in person's request goes on with the browser's `_session` only
//! when that stack session is theirs (else the browser is signed in to the
//! stack again first), the console's own sign-out ends the idgate session
//! too, and the stack's login page heals a lost stack session.

use std::sync::Arc;

use http::request::Parts;
use http::{HeaderMap, HeaderValue, Response};
use hyper::body::Incoming;

use super::exchange::{Exchange, Tracked};
use super::respond::{Answer, ErrorAnswer};
use super::{answered, return_target, Conn, Gateway};
use crate::oidc::login::Refusal;
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

    /// Forwards a signed-in person's request once its `_session` is theirs.
    pub(super) async fn forward_checked(
        &self,
        conn: &Conn,
        parts: Parts,
        body: Incoming,
        live: Arc<Live>,
        ex: Exchange,
    ) -> Response<Tracked> {
        let cookies = || {
            parts
                .headers
                .get_all(http::header::COOKIE)
                .iter()
                .map(HeaderValue::as_bytes)
        };
        let mut standing = self.stack_standing(cookies(), &live);
        if standing == Standing::Unknown {
            let console = self.auth.login.console().expect("unknown only when on");
            let session = session_cookie(cookies());
            standing = match console
                .owners
                .check(console.bridge.client(), session, &live.identity.username)
                .await
            {
                Ok(standing) => standing,
                Err(e) => {
                    tracing::warn!(target: "idgate::tts", error = %e, "cannot tell whose stack session this is");
                    let refusal = Refusal::stack_unreachable();
                    return self.refused(&parts, ex, &refusal);
                }
            };
        }
        if standing == Standing::Fine {
            return self.forward(conn, parts, body, Some(live), ex).await;
        }
        tracing::info!(target: "idgate::tts", username = %live.identity.username, "the browser holds another user's stack session; signing it in again");
        let again = self.auth.login.console_again(&live.identity).await;
        let answer = match again {
            Ok((cookies, None)) => Answer::redirect(307, &same_target(&parts)).cookies(&cookies),
            Ok((_, Some(_))) => {
                Answer::redirect(307, &same_target(&parts)).cookies(&self.stack_cleared())
            }
            Err(refusal) => return self.refused(&parts, ex, &refusal),
        };
        answered(ex, answer, parts.version < http::Version::HTTP_2)
    }

    fn refused(&self, parts: &Parts, ex: Exchange, refusal: &Refusal) -> Response<Tracked> {
        let e = ErrorAnswer {
            status: refusal.status,
            code: refusal.code,
            title: refusal.title,
            message: &refusal.message,
        };
        let answer =
            Answer::error(&parts.headers, &e, Some("/oauth/login")).cookies(&self.stack_cleared());
        answered(ex, answer, parts.version < http::Version::HTTP_2)
    }

    /// `Set-Cookie` values removing the stack session and the console's
    /// cookies (none when the console sign-in is off).
    pub(super) fn stack_cleared(&self) -> Vec<String> {
        match self.auth.login.console() {
            Some(c) => crate::tts::clear_all(&c.console_mount, c.secure),
            None => Vec::new(),
        }
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
                // it, is not left behind.
                self.end_stack_session(&parts.headers).await;
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

    /// `<account_mount>/logout`, the console's own sign-out: it goes on to
    /// the stack, and the idgate session ends with it.
    pub(super) async fn stack_logout(
        &self,
        conn: &Conn,
        parts: Parts,
        body: Incoming,
        ex: Exchange,
    ) -> Response<Tracked> {
        let live = self.session(conn, &parts.headers).await;
        if let Some(live) = &live {
            if let Err(e) = self.auth.sessions.end(live).await {
                tracing::error!(error = %e, "cannot end the session in the database");
                let refusal = Refusal::logout_failed();
                return self.refused(&parts, ex, &refusal);
            }
            tracing::info!(target: "idgate::login", username = %live.identity.username, "signed out through the console");
        }
        let mut response = self.forward(conn, parts, body, live, ex).await;
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
