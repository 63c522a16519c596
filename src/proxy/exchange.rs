//! One request from head to the end of its response: the response body the
//! client receives is wrapped so that the access log line and the metrics
//! are written when the last byte has gone (or the client went away), the
//! request counts as in flight until then, and a proxied body that stays
//! silent longer than the upstream read timeout is cut off.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method, Uri};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

use super::fast::direct::Direct;
use super::silence::Silence;
use crate::logging::access;
use crate::metrics::{InFlight, Metrics, RouteClass};
use crate::session::Live;

/// A proxied body (read by hyper's client or the gateway's own) or one of
/// the gateway's own answers.
pub type Inner = Either<Either<Incoming, Direct>, Full<Bytes>>;

/// What the access log says of a request, filled in as it goes.
pub struct Exchange {
    started: Instant,
    metrics: Arc<Metrics>,
    in_flight: Option<InFlight>,
    /// Method, path and the client's address (as the connection wrote it
    /// once), kept only when the access log is written.
    line: Option<(Method, Path, HeaderValue)>,
    pub route: RouteClass,
    pub live: Option<Arc<Live>>,
    pub upstream_time: Option<Duration>,
    pub error: Option<&'static str>,
    status: u16,
    finished: bool,
}

/// The request's path for the access log, held without a copy: hyper's
/// `Uri`, or the fast path's request head and where the path is in it.
pub enum Path {
    Uri(Uri),
    Head(Bytes, std::ops::Range<usize>),
}

impl Path {
    fn text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Path::Uri(uri) => uri.path().into(),
            Path::Head(head, at) => String::from_utf8_lossy(&head[at.clone()]),
        }
    }
}

impl Exchange {
    /// Starts the exchange of a request from the client at `client` (its
    /// address as text, empty when unknown); `path` is asked for only when
    /// the access log is written.
    pub fn start(
        metrics: &Arc<Metrics>,
        method: &Method,
        path: impl FnOnce() -> Path,
        client: &HeaderValue,
    ) -> Self {
        let line = access::enabled().then(|| (method.clone(), path(), client.clone()));
        Self {
            started: Instant::now(),
            in_flight: Some(InFlight::start(&metrics.active_requests)),
            metrics: metrics.clone(),
            line,
            route: RouteClass::Proxy,
            live: None,
            upstream_time: None,
            error: None,
            status: 0,
            finished: false,
        }
    }

    /// Hands the in-flight count to whatever outlives the response (an
    /// upgraded connection).
    pub fn take_in_flight(&mut self) -> Option<InFlight> {
        self.in_flight.take()
    }

    /// Wraps the response body; `silence` limits the wait for each chunk.
    pub fn body(mut self, status: u16, inner: Inner, silence: Option<Duration>) -> Tracked {
        self.status = status;
        Tracked {
            inner,
            silence: silence.map(Silence::new),
            polled: false,
            exchange: self,
        }
    }

    /// Ends an exchange whose response went out without a `Tracked` body.
    pub fn ended(mut self, status: u16, error: Option<&'static str>) {
        self.status = status;
        self.finish(error);
    }

    /// `ended`, at `now` (a reading the caller shares).
    pub fn ended_at(mut self, status: u16, error: Option<&'static str>, now: Instant) {
        self.status = status;
        self.finish_at(error, now);
    }

    /// Writes the log line and the metrics, once.
    fn finish(&mut self, error: Option<&'static str>) {
        if !self.finished {
            self.finish_at(error, Instant::now());
        }
    }

    /// `finish`, at `now`.
    fn finish_at(&mut self, error: Option<&'static str>, now: Instant) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let total = now.saturating_duration_since(self.started);
        let route = self.route.label();
        self.metrics
            .finished(self.route, self.status, total.as_secs_f64());
        if let Some((method, path, client)) = &self.line {
            access::Line {
                method: method.as_str(),
                path: &path.text(),
                status: self.status,
                route,
                client: client.to_str().ok().filter(|c| !c.is_empty()),
                user: self.live.as_ref().map(|l| l.identity.username.as_str()),
                upstream: self.upstream_time,
                total,
                error: error.or(self.error),
            }
            .write();
        }
    }
}

/// A request dropped before its response existed: the client went away
/// (or reset its HTTP/2 stream) while the gateway or the upstream worked.
impl Drop for Exchange {
    fn drop(&mut self) {
        self.finish(Some("client_gone"));
    }
}

/// The response body as the client receives it.
pub struct Tracked {
    inner: Inner,
    silence: Option<Silence>,
    /// hyper asked for the body (it does not for HEAD, 204 or 304).
    polled: bool,
    exchange: Exchange,
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        this.polled = true;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(silence) = &mut this.silence {
                    silence.heard();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.exchange.finish(Some("upstream_body"));
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.exchange.finish(None);
                Poll::Ready(None)
            }
            Poll::Pending => {
                let Some(silence) = &mut this.silence else {
                    return Poll::Pending;
                };
                if silence.poll_quiet(cx).is_ready() {
                    tracing::warn!("the upstream went silent in the middle of an answer; cut off");
                    this.exchange.finish(Some("upstream_timeout"));
                    return Poll::Ready(Some(Err("the upstream went silent".into())));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let error = (self.polled && !self.inner.is_end_stream()).then_some("client_gone");
        self.exchange.finish(error);
    }
}
