//! The data plane: one pingora `ProxyHttp` implementation. Each filter does
//! one job — limits, header hygiene, upstream choice, forwarding headers,
//! error answers, the access log — and the per-request context carries the
//! timings and route class the log and metrics need.

pub mod gateway_routes;
pub mod headers;
pub mod identity_headers;
pub mod rate_limit;
pub mod respond;
pub mod return_target;
pub mod routes;
pub mod upstream;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::ErrorSource;

use crate::metrics::{InFlight, Metrics};
use crate::session::Live;
pub use gateway_routes::Auth;
use headers::Peer;
use respond::ErrorAnswer;
use routes::Route;
use upstream::Upstream;

/// Settings of the data plane, fixed at startup.
pub struct ProxySettings {
    pub max_header_bytes: usize,
    pub max_uri_bytes: usize,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub identity_headers: Vec<String>,
    /// `https` when the public listener terminates TLS.
    pub proto: &'static str,
    /// Login starts and callbacks a client may make per minute (0: no limit).
    pub login_attempts_per_minute: u32,
}

/// The gateway's proxy logic.
pub struct Gateway {
    settings: ProxySettings,
    login_limit: rate_limit::LoginLimiter,
    upstream: Arc<Upstream>,
    metrics: Metrics,
    auth: Auth,
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
            metrics,
            auth,
        }
    }

    /// The address of the person: the connection's peer, or, behind trusted
    /// proxies, the right-most address in X-Forwarded-For they did not add.
    fn client_ip(&self, session: &Session) -> Option<std::net::IpAddr> {
        let peer = peer_ip(session);
        if !self.is_trusted(peer) {
            return peer;
        }
        let forwarded: Vec<std::net::IpAddr> = session
            .req_header()
            .headers
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

    fn is_trusted(&self, ip: Option<std::net::IpAddr>) -> bool {
        ip.is_some_and(|ip| {
            self.settings
                .trusted_proxies
                .iter()
                .any(|n| n.contains(&ip))
        })
    }
}

/// Which kind of route answered a request, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteClass {
    /// Forwarded to the upstream.
    Proxy,
    /// Refused by the gateway before routing (size limits).
    Rejected,
    /// The login page and the login flow.
    Login,
    /// The gateway's own `/.idgate/*` endpoints.
    Internal,
    /// Proxied routes refused for want of a session.
    Unauthenticated,
}

impl RouteClass {
    fn label(self) -> &'static str {
        match self {
            RouteClass::Proxy => "proxy",
            RouteClass::Rejected => "rejected",
            RouteClass::Login => "login",
            RouteClass::Internal => "internal",
            RouteClass::Unauthenticated => "unauthenticated",
        }
    }
}

/// Per-request state shared across the filters.
pub struct RequestCtx {
    started: Instant,
    route: RouteClass,
    upstream_started: Option<Instant>,
    upstream_time: Option<Duration>,
    /// The session of a proxied request.
    live: Option<Arc<Live>>,
    _in_flight: InFlight,
}

/// The address of the connection's other end.
fn peer_ip(session: &Session) -> Option<std::net::IpAddr> {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
}

fn request_head_bytes(req: &RequestHeader) -> usize {
    let line = req.method.as_str().len() + req.raw_path().len() + 12;
    req.headers
        .iter()
        .fold(line, |acc, (k, v)| acc + k.as_str().len() + v.len() + 4)
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            route: RouteClass::Proxy,
            upstream_started: None,
            upstream_time: None,
            live: None,
            _in_flight: InFlight::start(&self.metrics.active_requests),
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let uri_len = session.req_header().raw_path().len();
        if uri_len > self.settings.max_uri_bytes {
            ctx.route = RouteClass::Rejected;
            let answer = ErrorAnswer {
                status: 414,
                code: "uri_too_long",
                title: "Address too long",
                message: "The address of this request is longer than this gateway accepts.",
            };
            respond::error(session, &answer).await?;
            return Ok(true);
        }
        if request_head_bytes(session.req_header()) > self.settings.max_header_bytes {
            ctx.route = RouteClass::Rejected;
            let answer = ErrorAnswer {
                status: 431,
                code: "headers_too_large",
                title: "Request headers too large",
                message: "This request carries more header data than this gateway accepts. Clearing this site's cookies usually helps.",
            };
            // Abandoned logins are the gateway's own cookies that can pile
            // up: clear them so the next request gets through.
            let clear = self.auth.sessions.cookies().clear_all_logins(
                session
                    .req_header()
                    .headers
                    .get_all(http::header::COOKIE)
                    .iter(),
            );
            respond::Answer::error(session, &answer, None)
                .close()
                .cookies(&clear)
                .send(session)
                .await?;
            return Ok(true);
        }
        let reserved = &self.settings.identity_headers;
        headers::strip_identity_headers(session.req_header_mut(), reserved);
        let req = session.req_header();
        let route = routes::classify(&req.method, req.uri.path());
        ctx.route = match route {
            Route::Proxy => RouteClass::Proxy,
            Route::LoginPage | Route::LoginStart(_) | Route::Callback(_) => RouteClass::Login,
            _ => RouteClass::Internal,
        };
        if matches!(route, Route::LoginStart(_) | Route::Callback(_)) {
            let allowed = self
                .client_ip(session)
                .is_none_or(|ip| self.login_limit.allow(ip));
            if !allowed {
                let answer = ErrorAnswer {
                    status: 429,
                    code: "too_many_logins",
                    title: "Too many sign-in attempts",
                    message: "This address started too many sign-ins in the last minute. Wait a minute, then try again.",
                };
                respond::Answer::error(session, &answer, Some("/oauth/login"))
                    .header(
                        http::header::RETRY_AFTER,
                        http::HeaderValue::from_static("60"),
                    )
                    .send(session)
                    .await?;
                return Ok(true);
            }
        }
        ctx.live = self.answer(route, session).await?;
        if ctx.route == RouteClass::Proxy && ctx.live.is_none() {
            ctx.route = RouteClass::Unauthenticated;
        }
        Ok(ctx.live.is_none())
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        ctx.upstream_started = Some(Instant::now());
        match self.upstream.peer() {
            Some(peer) => Ok(Box::new(peer)),
            None => Error::e_explain(ConnectNoRoute, "upstream host has not resolved yet"),
        }
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let client_ip = peer_ip(session);
        let peer = Peer {
            client_ip,
            trusted: self.is_trusted(client_ip),
            proto: self.settings.proto,
        };
        headers::set_forwarded(upstream_request, peer);
        if let Some(live) = &ctx.live {
            // Client copies were stripped in request_filter: append, no search.
            self.auth
                .headers
                .for_each(live, &self.auth.keys.signer(), |name, value| {
                    let _ = upstream_request.append_header(name.clone(), value);
                });
        }
        if !self.upstream.pass_host_header() {
            upstream_request.insert_header(http::header::HOST, self.upstream.authority())?;
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        _upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.upstream_time = ctx.upstream_started.map(|t| t.elapsed());
        Ok(())
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let answer = upstream_failure(e);
        if let Some(answer) = &answer {
            let kind = if answer.status == 504 {
                "timeout"
            } else {
                "unavailable"
            };
            self.metrics
                .upstream_errors
                .with_label_values(&[kind])
                .inc();
        }
        let code = match (&answer, session.response_written()) {
            (_, Some(written)) => written.status.as_u16(),
            (Some(answer), None) => {
                ctx.upstream_time = ctx.upstream_started.map(|t| t.elapsed());
                if let Err(write_err) = respond::error(session, answer).await {
                    tracing::debug!(error = %write_err, "client went away before the error page");
                }
                answer.status
            }
            (None, None) => client_failure_status(e),
        };
        if code >= 400 && session.response_written().is_none() {
            let _ = session.respond_error(code).await;
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    fn request_summary(&self, session: &Session, _ctx: &RequestCtx) -> String {
        // Path only: a query string may carry codes or tokens.
        let req = session.req_header();
        format!("{} {}", req.method, req.uri.path())
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .unwrap_or(0);
        let total = ctx.started.elapsed();
        let route = ctx.route.label();
        self.metrics
            .requests
            .with_label_values(&[route, status_label(status)])
            .inc();
        self.metrics
            .duration
            .with_label_values(&[route])
            .observe(total.as_secs_f64());
        let req = session.req_header();
        let upstream_ms = ctx.upstream_time.map(|d| d.as_secs_f64() * 1000.0);
        let client = peer_ip(session);
        tracing::info!(
            target: "idgate::access",
            method = %req.method,
            path = req.uri.path(),
            status,
            route,
            client = client.map(tracing::field::display),
            user = ctx.live.as_ref().map(|l| l.identity.username.as_str()),
            upstream_ms,
            total_ms = total.as_secs_f64() * 1000.0,
            error = e.map(|e| e.etype().as_str()),
            "request"
        );
    }
}

/// The answer for an error that came from talking to the upstream, or
/// `None` when the error is the client's (it went away, sent garbage).
fn upstream_failure(e: &Error) -> Option<ErrorAnswer<'static>> {
    let timed_out = matches!(e.etype(), ConnectTimedout | ReadTimedout | WriteTimedout);
    let from_upstream = e.esource() == &ErrorSource::Upstream
        || matches!(
            e.etype(),
            ConnectTimedout | ConnectRefused | ConnectNoRoute | ConnectError | TLSHandshakeFailure
        );
    match (from_upstream, timed_out) {
        (true, true) => Some(ErrorAnswer {
            status: 504,
            code: "upstream_timeout",
            title: "The application is taking too long",
            message: "The application behind this gateway did not answer in time. Try again in a moment.",
        }),
        (true, false) => Some(ErrorAnswer {
            status: 502,
            code: "upstream_unavailable",
            title: "The application is not reachable",
            message: "The application behind this gateway is down or refused the connection. Try again in a moment.",
        }),
        (false, _) => None,
    }
}

fn client_failure_status(e: &Error) -> u16 {
    match e.etype() {
        HTTPStatus(code) => *code,
        _ => match e.esource() {
            ErrorSource::Downstream => match e.etype() {
                WriteError | ReadError | ConnectionClosed => 0,
                _ => 400,
            },
            _ => 500,
        },
    }
}

/// Status labels from a fixed set, so a metric never grows without bound.
fn status_label(status: u16) -> &'static str {
    match status {
        0 => "none",
        200 => "200",
        204 => "204",
        206 => "206",
        301 => "301",
        302 => "302",
        304 => "304",
        101 => "101",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        414 => "414",
        431 => "431",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        s if s < 200 => "1xx",
        s if s < 300 => "2xx",
        s if s < 400 => "3xx",
        s if s < 500 => "4xx",
        _ => "5xx",
    }
}
