//! Forwarding a request to the upstream (a signed-in person's, or anyone's
//! on a public or bearer route): the upstream request is the client's,
//! minus hop-by-hop headers, plus X-Forwarded-* and the identity headers,
//! in HTTP/1.1 origin form; the answer streams back as it comes,
//! and a protocol switch (WebSocket) is spliced through both ways.

use std::sync::Arc;
use std::time::Instant;

use http::request::Parts;
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body::Body as _;
use http_body_util::Either;
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use super::exchange::{Exchange, Tracked};
use super::fast::direct;
use super::fast::request::line;
use super::headers;
use super::respond::{self, Answer, ErrorAnswer};
use super::upstream::{Outgoing, UpstreamError};
use super::upstream_head::{self, Toward};
use super::{answered, Conn, Gateway};
use crate::metrics::InFlight;
use crate::policy::fields::{self, Coding};
use crate::session::Live;

impl Gateway {
    pub(super) async fn forward(
        &self,
        conn: &Conn,
        mut parts: Parts,
        body: Incoming,
        live: Option<Arc<Live>>,
        mut ex: Exchange,
    ) -> Response<Tracked> {
        let http1 = parts.version < Version::HTTP_2;
        let html = respond::wants_html(&parts.headers);
        let upgrade = headers::is_websocket(parts.version, &parts.method, &parts.headers);
        ex.live = live;
        if direct::takes(&parts, body.is_end_stream(), upgrade) {
            let head = self.direct_head(conn, &parts, ex.live.as_deref());
            let out = (&parts.method, &head[..]);
            return self.forward_direct(conn, out, (html, http1), ex).await;
        }
        let forwarded = upstream_head::rewrite(&mut parts, upgrade, &self.toward(conn));
        // Client copies were stripped before routing: append, no search.
        for (name, value) in forwarded.into_iter().flatten() {
            parts.headers.append(name, value);
        }
        self.identity_fields(ex.live.as_deref(), |name, value| {
            parts.headers.append(name.clone(), value);
        });

        let (body, upload) = Outgoing::new(body, self.settings.client_timeout);
        let mut req = Request::from_parts(parts, body);
        let client_side = upgrade.then(|| hyper::upgrade::on(&mut req));
        let started = Instant::now();
        let send = conn.pinned.send(&self.upstream, req, upgrade);
        tokio::pin!(send);
        // The answer is awaited for at most read_timeout once the upload
        // (if any) has all been taken.
        let early = match &upload {
            None => None,
            Some(upload) => tokio::select! {
                result = &mut send => Some(result),
                () = upload.sent() => None,
            },
        };
        let result = match early {
            Some(result) => result,
            None => tokio::time::timeout(self.upstream.read_timeout(), send)
                .await
                .unwrap_or(Err(UpstreamError::Timeout)),
        };
        if let Some(upload) = &upload {
            upload.answered();
        }
        ex.upstream_time = Some(started.elapsed());

        let mut response = match result {
            Ok(response) => response,
            Err(e) if e.client_stalled() => {
                tracing::debug!(error = %e, "client stalled during its upload");
                ex.error = Some("client_timeout");
                let answer = Answer::error_page(html, &respond::BODY_TIMEOUT, None).close();
                return answered(ex, answer, http1);
            }
            Err(e) if e.client_aborted() => {
                // The client stopped sending its body: nothing the
                // upstream did wrong, and nobody left to read an answer.
                tracing::debug!(error = %e, "client went away during its upload");
                ex.error = Some("client_gone");
                let answer = ErrorAnswer {
                    status: 400,
                    code: "request_incomplete",
                    title: "Request incomplete",
                    message: "The request ended before all of it had arrived.",
                };
                return answered(ex, Answer::error_page(html, &answer, None).close(), http1);
            }
            Err(e) => return self.upstream_failed(e, html, http1, ex),
        };
        let status = response.status();
        let switched = status == StatusCode::SWITCHING_PROTOCOLS;
        if switched {
            let agreed = response
                .headers()
                .get(http::header::UPGRADE)
                .is_some_and(headers::is_websocket_protocol);
            match client_side {
                Some(client_side) if agreed => splice(
                    client_side,
                    hyper::upgrade::on(&mut response),
                    ex.take_in_flight(),
                    self.stopping().waiter(),
                ),
                // A switch the client did not ask for, or to another
                // protocol: never tunnelled.
                _ => {
                    let e = UpstreamError::UnaskedSwitch;
                    return self.upstream_failed(e, html, http1, ex);
                }
            }
        }
        // A chunked answer's Content-Length is no measure of it: drop it
        // before forwarding (RFC 9112 §6.3). Another coding could not be
        // relayed as it is: refused, as on the fast path.
        let codings = response.headers().get_all(http::header::TRANSFER_ENCODING);
        match fields::transfer_coding(codings.iter().map(HeaderValue::as_bytes)) {
            None => {}
            Some(Coding::Chunked) => {
                response.headers_mut().remove(http::header::CONTENT_LENGTH);
            }
            Some(_) => {
                let e = UpstreamError::Malformed("transfer coding other than chunked");
                return self.upstream_failed(e, html, http1, ex);
            }
        }
        headers::strip_response_hop_by_hop(response.headers_mut(), switched);
        let silence = Some(self.upstream.read_timeout());
        response.map(|body| ex.body(status.as_u16(), Either::Left(Either::Left(body)), silence))
    }

    /// The upstream's head for a bodyless GET or HEAD the gateway's own
    /// client sends, written in one pass from the client's
    /// (`upstream_head::write`).
    fn direct_head(&self, conn: &Conn, parts: &Parts, live: Option<&Live>) -> Vec<u8> {
        let mut head = Vec::with_capacity(2048);
        upstream_head::write(&mut head, parts, &self.toward(conn), |out| {
            self.identity_fields(live, |name, value| {
                line(out, name.as_str().as_bytes(), value.as_bytes());
            });
        });
        head
    }

    /// Forwards a bodyless GET or HEAD (`out`: its method, and its head as
    /// the upstream gets it) by the gateway's own client (`fast::direct`);
    /// its answer needs no more checks. `(html, http1)`: whether the client
    /// takes a page, and speaks HTTP/1.
    async fn forward_direct(
        &self,
        conn: &Conn,
        out: (&Method, &[u8]),
        (html, http1): (bool, bool),
        mut ex: Exchange,
    ) -> Response<Tracked> {
        let started = Instant::now();
        let result = direct::exchange(&self.upstream, &conn.pinned, out, started).await;
        ex.upstream_time = Some(started.elapsed());
        match result {
            Ok(response) => {
                let status = response.status().as_u16();
                let silence = Some(self.upstream.read_timeout());
                response.map(|body| ex.body(status, Either::Left(Either::Right(body)), silence))
            }
            Err(e) => self.upstream_failed(e, html, http1, ex),
        }
    }

    /// Calls `add` with each identity header a signed-in person's request
    /// goes upstream with (none for anyone else).
    fn identity_fields(&self, live: Option<&Live>, add: impl FnMut(&HeaderName, HeaderValue)) {
        if let Some(live) = live {
            self.auth
                .headers
                .for_each(live, &self.auth.keys.signer(), add);
        }
    }

    /// What the upstream's head says besides the client's fields.
    fn toward<'a>(&'a self, conn: &'a Conn) -> Toward<'a> {
        Toward {
            peer: &conn.peer,
            identity: &self.settings.identity_headers,
            host: (!self.upstream.pass_host_header()).then(|| self.upstream.authority()),
        }
    }

    /// The 502 or 504 response for a failed exchange, counted and logged.
    fn upstream_failed(
        &self,
        e: UpstreamError,
        html: bool,
        http1: bool,
        mut ex: Exchange,
    ) -> Response<Tracked> {
        let answer = self.failure_answer(e, html, &mut ex);
        answered(ex, answer, http1)
    }

    /// The 502 or 504 answer for a failed exchange, counted and logged.
    pub(super) fn failure_answer(&self, e: UpstreamError, html: bool, ex: &mut Exchange) -> Answer {
        let timed_out = e.timed_out();
        let (kind, answer) = if timed_out {
            ex.error = Some("upstream_timeout");
            let answer = ErrorAnswer {
                status: 504,
                code: "upstream_timeout",
                title: "The application is taking too long",
                message: "The application behind this gateway did not answer in time. Try again in a moment.",
            };
            ("timeout", answer)
        } else {
            ex.error = Some("upstream_unavailable");
            let answer = ErrorAnswer {
                status: 502,
                code: "upstream_unavailable",
                title: "The application is not reachable",
                message: "The application behind this gateway is down or refused the connection. Try again in a moment.",
            };
            ("unavailable", answer)
        };
        tracing::warn!(error = %e, "upstream exchange failed");
        self.metrics
            .upstream_errors
            .with_label_values(&[kind])
            .inc();
        Answer::error_page(html, &answer, None).close()
    }
}

/// Copies bytes both ways between the client and the upstream once both
/// have switched protocols; the request counts as in flight until then.
/// At shutdown the tunnel is closed at once (WebSocket clients reconnect,
/// to another replica), so an open one does not hold the drain.
fn splice(
    client: OnUpgrade,
    upstream: OnUpgrade,
    in_flight: Option<InFlight>,
    stop: Option<tokio::sync::futures::OwnedNotified>,
) {
    tokio::spawn(async move {
        let _in_flight = in_flight;
        match tokio::try_join!(client, upstream) {
            Ok((client, upstream)) => {
                let mut client = TokioIo::new(client);
                let mut upstream = TokioIo::new(upstream);
                tokio::select! {
                    copied = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
                        if let Err(e) = copied {
                            tracing::debug!(error = %e, "upgraded connection ended");
                        }
                    }
                    _ = async { if let Some(stop) = stop { stop.await } } => {
                        tracing::debug!("upgraded connection closed for shutdown");
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "protocol switch did not complete"),
        }
    });
}
