//! The hyper path's bodyless GET and HEAD requests (an HTTP/2 client's
//! above all) sent to the upstream by the fast path's own HTTP/1.1 client,
//! in the request's own task: no hyper client connection task beside it,
//! no channels between the two. The request head comes written
//! (`upstream_head::write`); the answer's head is read by the fast path's rules
//! (`response::parse`) into a header map, and its body is read off the
//! connection as the client's side asks for it (`Direct`). A connection
//! left clean by its answer goes back to the ones the client connection
//! keeps, as hyper's do (`Home`).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::{Buf, Bytes};
use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH};
use http::request::Parts;
use http::{Method, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};

use super::deadline::Deadline;
use super::response::{Framing, Progress, Relay};
use super::{send, Outbound, UPSTREAM_READ};
use crate::proxy::upstream::{Home, Pinned, Upstream, UpstreamError, Wire};

/// Whether a request goes by the gateway's own client: a GET or HEAD whose
/// body has ended before it began, on a connection that will not switch
/// protocols.
pub fn takes(parts: &Parts, body_ended: bool, upgrade: bool) -> bool {
    body_ended && !upgrade && (parts.method == Method::GET || parts.method == Method::HEAD)
}

/// Sends a bodyless request (its `method`, and its `head` as the upstream
/// gets it) on a connection `pinned` keeps, or a pooled or new one, from
/// `now`, and returns the upstream's answer once its head has come.
pub async fn exchange(
    upstream: &Upstream,
    pinned: &Pinned,
    (method, head): (&Method, &[u8]),
    now: Instant,
) -> Result<Response<Direct>, UpstreamError> {
    let out = Outbound {
        request: head,
        method,
        bodyless: true,
        close: false,
    };
    let mut answer = ResponseHead::default();
    let (kept, mut wait) = match pinned.take_wire() {
        Some((wire, wait)) => (Some(wire), wait),
        None => (None, Deadline::default()),
    };
    let (wire, reply) = send(upstream, now, kept, out, &mut wait, &mut answer).await?;
    if answer.invalid {
        return Err(UpstreamError::Malformed(
            "response header not valid in HTTP",
        ));
    }
    let mut body = Direct {
        wire: Some(wire),
        progress: Progress::new(reply.framing),
        reusable: reply.reusable,
        home: Some(pinned.home(upstream)),
        wait,
    };
    if body.progress.ended() {
        body.end();
    }
    Ok(answer.response.map(|()| body))
}

/// A final response head read into a header map.
#[derive(Default)]
struct ResponseHead {
    response: Response<()>,
    /// A field's name or value is not one HTTP allows.
    invalid: bool,
}

impl Relay for ResponseHead {
    fn status(&mut self, status: u16, reason: &str) {
        let Ok(code) = StatusCode::from_u16(status) else {
            self.invalid = true;
            return;
        };
        let response = &mut self.response;
        *response.status_mut() = code;
        // An HTTP/1.1 client gets the upstream's own words, as on the fast
        // path.
        if code.canonical_reason() != Some(reason) {
            if let Ok(reason) = hyper::ext::ReasonPhrase::try_from(reason.as_bytes().to_vec()) {
                response.extensions_mut().insert(reason);
            }
        }
    }

    fn field(&mut self, name: &[u8], value: &[u8]) {
        match (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            (Ok(name), Ok(value)) => {
                self.response.headers_mut().append(name, value);
            }
            _ => self.invalid = true,
        }
    }

    fn length(&mut self, n: u64) {
        self.response
            .headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(n));
    }

    fn chunked(&mut self) {}

    fn close(&mut self) {}

    fn end(&mut self) {}
}

/// An answer's body, read off its upstream connection as it is asked for.
/// Its silences are timed by the `Tracked` body around it.
pub struct Direct {
    /// `None` once the body has ended.
    wire: Option<Wire>,
    /// Where the body stands, by its framing.
    progress: Progress,
    /// The connection may carry another request once the body has ended.
    reusable: bool,
    home: Option<Home>,
    /// The deadline the head was read within, kept with the connection.
    wait: Deadline,
}

impl Direct {
    /// The body has ended: the connection goes home when it is clean.
    fn end(&mut self) {
        let (Some(mut wire), Some(home)) = (self.wire.take(), self.home.take()) else {
            return;
        };
        if self.reusable && wire.buf.is_empty() {
            wire.rest(Instant::now());
            home.keep(wire, std::mem::take(&mut self.wait));
        }
    }

    /// The body failed: its connection goes.
    fn fail(&mut self, e: UpstreamError) -> Poll<Option<Result<Frame<Bytes>, UpstreamError>>> {
        self.wire = None;
        Poll::Ready(Some(Err(e)))
    }

    /// What of the body the connection's buffer holds, if any; ends the
    /// body when that was the last of it.
    fn take(&mut self) -> Result<Option<Bytes>, UpstreamError> {
        let Some(wire) = &mut self.wire else {
            return Ok(None);
        };
        let data = match self.progress.framing() {
            Framing::Empty => None,
            Framing::Length(_) => {
                let n = self.progress.take_sized(wire.buf.len());
                (n > 0).then(|| wire.buf.split_to(n).freeze())
            }
            Framing::Chunked => {
                let mut out = Vec::new();
                let used = self
                    .progress
                    .chunks
                    .decode(&wire.buf, &mut out)
                    .map_err(|_| UpstreamError::Malformed("chunked body does not parse"))?;
                wire.buf.advance(used);
                (!out.is_empty()).then(|| Bytes::from(out))
            }
            Framing::UntilClose => (!wire.buf.is_empty()).then(|| wire.buf.split().freeze()),
        };
        if self.progress.ended() {
            self.end();
        }
        Ok(data)
    }
}

impl Body for Direct {
    type Data = Bytes;
    type Error = UpstreamError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, UpstreamError>>> {
        let this = self.get_mut();
        loop {
            match this.take() {
                Ok(Some(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                Ok(None) => {}
                Err(e) => return this.fail(e),
            }
            let Some(wire) = &mut this.wire else {
                return Poll::Ready(None);
            };
            wire.buf.reserve(UPSTREAM_READ);
            match tokio_util::io::poll_read_buf(wire.io.as_mut(), cx, &mut wire.buf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) if this.progress.framing() == Framing::UntilClose => {
                    this.wire = None;
                    return Poll::Ready(None);
                }
                Poll::Ready(Ok(0)) => {
                    let e = std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the upstream closed before the end of its answer",
                    );
                    return this.fail(UpstreamError::Wire(e));
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return this.fail(UpstreamError::Wire(e)),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.wire.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.wire, self.progress.framing()) {
            (None, _) => SizeHint::with_exact(0),
            (Some(_), Framing::Length(_)) => SizeHint::with_exact(self.progress.left()),
            _ => SizeHint::default(),
        }
    }
}
