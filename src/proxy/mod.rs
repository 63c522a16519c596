//! The data plane. On HTTP/1.1 connections, `fast` forwards a signed-in
//! person's ordinary requests itself; everything else (and HTTP/2) hyper
//! serves through `Gateway::handle`, which applies the size limits and
//! header hygiene, answers the gateway's own routes, and hands signed-in
//! requests to `forward` (whose bodyless GETs and HEADs go by the fast
//! path's own client, `fast::direct`). `listener` accepts the connections;
//! `exchange` writes the access log and metrics when a response has ended.

pub mod exchange;
pub mod fast;
mod forward;
pub mod headers;
pub mod identity_headers;
mod keepalive;
pub mod listener;
pub mod own_routes;
pub mod rate_limit;
pub mod respond;
mod silence;
mod stack;
pub mod stop;
pub mod upstream;
pub mod upstream_head;

use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Request, Response, Version};
use http_body_util::Either;
use hyper::body::Incoming;

use crate::metrics::{Metrics, RouteClass};
use crate::policy::fields::{self, Coding};
use crate::policy::Policy;
use crate::policy::{Allow, Decision, Route};
use crate::session::{Live, Remembered};
use exchange::{Exchange, Tracked};
use headers::Peer;
pub use own_routes::Auth;
use respond::{Answer, ErrorAnswer};
use upstream::{Pinned, Upstream};

/// Settings of the data plane, fixed at startup.
pub struct ProxySettings {
    pub max_header_bytes: usize,
    pub max_uri_bytes: usize,
    /// Longest wait for a client's next request, the rest of its head or
    /// body, or its next piece of body.
    pub client_timeout: std::time::Duration,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub identity_headers: Vec<String>,
    /// `https` when the public listener terminates TLS.
    pub proto: &'static str,
    /// Whether HTTP/1.1 connections start on the fast path.
    pub fast_path: bool,
    /// Login starts and callbacks a client may make per minute (0: no limit).
    pub login_attempts_per_minute: u32,
    /// Who may pass: the one place both data paths ask.
    pub policy: Policy,
}

/// The gateway's proxy logic.
pub struct Gateway {
    settings: ProxySettings,
    login_limit: rate_limit::LoginLimiter,
    upstream: Arc<Upstream>,
    metrics: Arc<Metrics>,
    auth: Auth,
    /// Set at shutdown: listeners stop accepting, connections close after
    /// their answer (idle ones at once), WebSocket tunnels close.
    stop: stop::Stop,
}

/// How a request the gateway does not answer itself goes on to the
/// upstream.
enum Onward {
    /// With a session, checked against the stack's; anyone else is sent
    /// to sign in.
    SignedIn,
    /// With this person's session, checked against the stack's.
    Checked(Arc<Live>),
    /// Without a session (a public or bearer route).
    Open,
}

/// One client connection: who is on the other end, and the upstream
/// connection its requests reuse.
pub struct Conn {
    peer: Peer,
    pinned: Pinned,
    session: Remembered,
}

impl Gateway {
    pub fn new(
        settings: ProxySettings,
        upstream: Arc<Upstream>,
        metrics: Metrics,
        auth: Auth,
    ) -> Self {
        Self {
            login_limit: rate_limit::LoginLimiter::new(settings.login_attempts_per_minute),
            settings,
            upstream,
            metrics: Arc::new(metrics),
            auth,
            stop: stop::Stop::default(),
        }
    }

    /// What is set at shutdown.
    pub fn stopping(&self) -> &stop::Stop {
        &self.stop
    }

    /// Starts the shutdown of every connection.
    pub fn stop(&self) {
        self.stop.set();
    }

    /// The state of a newly accepted connection from `client`.
    pub fn connection(&self, client: Option<IpAddr>) -> Conn {
        Conn {
            peer: Peer::new(client, self.is_trusted(client), self.settings.proto),
            pinned: Pinned::default(),
            session: Remembered::default(),
        }
    }

    /// Answers one request: refused, answered by the gateway, or forwarded.
    pub async fn handle(&self, conn: &Conn, req: Request<Incoming>) -> Response<Tracked> {
        let (mut parts, body) = req.into_parts();
        let http1 = parts.version < Version::HTTP_2;
        let mut ex = Exchange::start(
            &self.metrics,
            &parts.method,
            || exchange::Path::Uri(parts.uri.clone()),
            &conn.peer.client_value,
        );
        if let Some(refused) = self
            .refuse_oversized(&parts)
            .or_else(|| refuse_malformed(&parts))
        {
            ex.route = RouteClass::Rejected;
            return answered(ex, refused, http1);
        }
        headers::strip_client_reserved(&mut parts.headers, &self.settings.identity_headers);
        let decision = self.settings.policy.decide(&parts.method, parts.uri.path());
        ex.route = match &decision {
            Decision::Own(Route::LoginPage | Route::LoginStart(_) | Route::Callback(_)) => {
                RouteClass::Login
            }
            Decision::Own(_) | Decision::Closed => RouteClass::Internal,
            _ => RouteClass::Proxy,
        };
        let login_client = match decision {
            Decision::Own(Route::LoginStart(_) | Route::Callback(_)) => {
                self.client_ip(conn, &parts.headers)
            }
            _ => None,
        };
        if login_client.is_some_and(|ip| !self.login_allowed(ip, &decision, &parts.headers)) {
            let answer = ErrorAnswer {
                status: 429,
                code: "too_many_logins",
                title: "Too many sign-in attempts",
                message: "This address started too many sign-ins in the last minute. Wait a minute, then try again.",
            };
            let answer = Answer::error(&parts.headers, &answer, Some("/oauth/login")).header(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_static("60"),
            );
            return answered(ex, answer, http1);
        }
        // The request is answered here, or goes on (`Onward`) below.
        let onward = 'answer: {
            let answer = match decision {
                Decision::Own(Route::Callback(id)) => {
                    let patience = self.settings.client_timeout;
                    // Boxed: once per sign-in, and the largest of the futures
                    // awaited here, so of every request's.
                    let callback = self.auth.callback(&id, &parts, body, patience);
                    let answer = Box::pin(callback).await;
                    if answer.status() == respond::BODY_TIMEOUT.status {
                        ex.error = Some("client_timeout");
                    }
                    // Charged before it ran; the client's own failures keep it.
                    let clients_fault = (400..500).contains(&answer.status());
                    if let Some(ip) = login_client.filter(|_| !clients_fault) {
                        self.login_limit.refund(ip);
                    }
                    answer
                }
                Decision::Own(Route::LoginPage) => match self.heal(conn, &parts).await {
                    Some(answer) => answer,
                    None => self.auth.answer(Route::LoginPage, &parts).await,
                },
                Decision::Own(route) => self.auth.answer(route, &parts).await,
                Decision::Closed => stack::closed(&parts.headers),
                Decision::StackLogin => match self.heal(conn, &parts).await {
                    Some(answer) => answer,
                    None => break 'answer Onward::SignedIn,
                },
                Decision::StackLogout => return self.stack_logout(conn, parts, body, ex).await,
                Decision::Pass { allow, path } => {
                    let live = self.session(conn, &parts.headers).await;
                    let passes = match allow {
                        Allow::Public => true,
                        Allow::Bearer => parts
                            .headers
                            .get(http::header::AUTHORIZATION)
                            .is_some_and(|v| crate::policy::carries_bearer(v.as_bytes())),
                    };
                    if live.is_none() && !passes {
                        ex.route = RouteClass::Unauthenticated;
                        self.auth.unauthenticated(&parts)
                    } else if !set_path(&mut parts.uri, &path) {
                        stack::unroutable(&parts.headers)
                    } else {
                        break 'answer match live {
                            Some(live) => Onward::Checked(live),
                            None => Onward::Open,
                        };
                    }
                }
                Decision::Require(needs) => match self.session(conn, &parts.headers).await {
                    None => return self.not_signed_in(&parts, ex),
                    Some(live) => match needs.admits(&live.identity.held()) {
                        Ok(()) => break 'answer Onward::Checked(live),
                        Err(refused) => {
                            tracing::info!(username = %live.identity.username, path = parts.uri.path(), reason = refused.reason(), "refused by the route's groups or roles");
                            respond::access_refused(&parts.headers, refused)
                        }
                    },
                },
                Decision::Session => break 'answer Onward::SignedIn,
            };
            return answered(ex, answer, http1);
        };
        let live = match onward {
            Onward::SignedIn => match self.session(conn, &parts.headers).await {
                Some(live) => Some(live),
                None => return self.not_signed_in(&parts, ex),
            },
            Onward::Checked(live) => Some(live),
            Onward::Open => None,
        };
        if let Some(live) = &live {
            if let Some(answer) = self.stack_check(&parts, live).await {
                return answered(ex, answer, http1);
            }
        }
        self.forward(conn, parts, body, live, ex).await
    }

    /// What a request that needs a session is told without one, counted.
    fn not_signed_in(&self, parts: &http::request::Parts, mut ex: Exchange) -> Response<Tracked> {
        ex.route = RouteClass::Unauthenticated;
        let answer = self.auth.unauthenticated(parts);
        answered(ex, answer, parts.version < Version::HTTP_2)
    }

    /// The valid session the request's cookie names, if any.
    async fn session(&self, conn: &Conn, headers: &HeaderMap) -> Option<std::sync::Arc<Live>> {
        let live = self
            .auth
            .sessions
            .find_remembered(&conn.session, headers.get_all(http::header::COOKIE))
            .await?;
        self.auth.vetted(live).await
    }

    /// The 414 or 431 answer for a request over the configured limits.
    fn refuse_oversized(&self, parts: &http::request::Parts) -> Option<Answer> {
        let uri_len = parts.uri.path_and_query().map_or(0, |pq| pq.as_str().len());
        if uri_len > self.settings.max_uri_bytes {
            let answer = ErrorAnswer {
                status: 414,
                code: "uri_too_long",
                title: "Address too long",
                message: "The address of this request is longer than this gateway accepts.",
            };
            return Some(Answer::error(&parts.headers, &answer, None).close());
        }
        if request_head_bytes(parts) > self.settings.max_header_bytes {
            let answer = ErrorAnswer {
                status: 431,
                code: "headers_too_large",
                title: "Request headers too large",
                message: "This request carries more header data than this gateway accepts. Clearing this site's cookies usually helps.",
            };
            // Abandoned logins are the gateway's own cookies that can pile
            // up: clear them so the next request gets through.
            let clear = self
                .auth
                .sessions
                .cookies()
                .clear_all_logins(parts.headers.get_all(http::header::COOKIE).iter());
            return Some(
                Answer::error(&parts.headers, &answer, None)
                    .close()
                    .cookies(&clear),
            );
        }
        None
    }

    /// Whether `client` may start or finish a login (each is counted).
    fn login_allowed(&self, client: IpAddr, decision: &Decision, headers: &HeaderMap) -> bool {
        match decision {
            Decision::Own(Route::LoginStart(_)) => {
                let cookies = headers.get_all(http::header::COOKIE).iter();
                let restart = self.auth.sessions.cookies().holds_login(cookies);
                self.login_limit.start(client, restart)
            }
            _ => self.login_limit.callback(client),
        }
    }

    /// The address of the person: the connection's peer, or, behind trusted
    /// proxies, the right-most address in X-Forwarded-For they did not add.
    fn client_ip(&self, conn: &Conn, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = conn.peer.client_ip;
        if !conn.peer.trusted {
            return peer;
        }
        let forwarded: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|ip| ip.trim().parse().ok())
            .collect();
        forwarded
            .into_iter()
            .rev()
            .find(|ip| !self.is_trusted(Some(*ip)))
            .or(peer)
    }

    fn is_trusted(&self, ip: Option<IpAddr>) -> bool {
        ip.is_some_and(|ip| {
            self.settings
                .trusted_proxies
                .iter()
                .any(|n| n.contains(&ip))
        })
    }
}

/// The answer for a request no upstream should see: `CONNECT` (the gateway
/// is no forward proxy), a missing, repeated or invalid `Host` (RFC 9112
/// §3.2), or a transfer coding other than one `chunked` (RFC 9112 §6.1),
/// each answered as nginx answers it.
fn refuse_malformed(parts: &http::request::Parts) -> Option<Answer> {
    let bad = |message| ErrorAnswer {
        status: 400,
        code: "bad_request",
        title: "Bad request",
        message,
    };
    let answer = if parts.method == http::Method::CONNECT {
        ErrorAnswer {
            status: 405,
            code: "method_not_allowed",
            title: "Method not allowed",
            message: "This gateway does not open tunnels.",
        }
    } else if let Some(problem) = host_problem(parts) {
        bad(problem)
    } else {
        let codings = parts.headers.get_all(http::header::TRANSFER_ENCODING);
        match fields::transfer_coding(codings.iter().map(HeaderValue::as_bytes)) {
            None | Some(Coding::Chunked) => return None,
            Some(Coding::Repeated) => bad("This request names its transfer coding more than once."),
            Some(Coding::Unsupported) => ErrorAnswer {
                status: 501,
                code: "transfer_coding_unsupported",
                title: "Transfer coding not supported",
                message:
                    "This gateway takes request bodies as they are or chunked, in no other coding.",
            },
        }
    };
    tracing::debug!(
        status = answer.status,
        reason = answer.message,
        "malformed request refused"
    );
    Some(Answer::error(&parts.headers, &answer, None).close())
}

/// What is wrong with the host a request names, if anything. An HTTP/1.1
/// request must carry Host even with an absolute target (RFC 9112 §3.2), an
/// HTTP/2 one Host or `:authority`; an HTTP/1.0 one may name none.
fn host_problem(parts: &http::request::Parts) -> Option<&'static str> {
    let mut hosts = parts.headers.get_all(http::header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => Some("This request names more than one host."),
        (Some(host), None) if !fields::valid_host(host.as_bytes()) => {
            Some("This request's Host header does not hold a valid host name.")
        }
        (None, _)
            if parts.version == Version::HTTP_11
                || (parts.version >= Version::HTTP_2 && parts.uri.authority().is_none()) =>
        {
            Some("This request names no host.")
        }
        _ => None,
    }
}

/// The response for one of the gateway's own answers.
fn answered(ex: Exchange, answer: Answer, http1: bool) -> Response<Tracked> {
    let response = answer.into_response(http1);
    let status = response.status().as_u16();
    response.map(|body| ex.body(status, Either::Right(body), None))
}

fn request_head_bytes(parts: &http::request::Parts) -> usize {
    let target = parts.uri.path_and_query().map_or(1, |pq| pq.as_str().len());
    let line = parts.method.as_str().len() + target + 12;
    parts
        .headers
        .iter()
        .fold(line, |acc, (k, v)| acc + k.as_str().len() + v.len() + 4)
}

/// Points `uri` at `path`, keeping its scheme, authority and query; false
/// (and `uri` untouched) when that makes no URI.
fn set_path(uri: &mut http::Uri, path: &str) -> bool {
    if uri.path() == path {
        return true;
    }
    let target = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    let Ok(target) = target.parse() else {
        return false;
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(target);
    match http::Uri::from_parts(parts) {
        Ok(new) => {
            *uri = new;
            true
        }
        Err(_) => false,
    }
}
