//! The HTTP/1 fast path. On an HTTP/1.1 connection, a signed-in person's
//! ordinary requests are forwarded by the gateway itself: heads parsed with
//! httparse and written anew as bytes for the upstream and for the client,
//! with no header maps built on either side. The first request it does not
//! take (the gateway's own routes, no session, chunked or large uploads,
//! upgrades, `Expect`, HTTP/1.0, anything malformed) hands the connection,
//! with the bytes read so far, to hyper for the rest of its life. Its
//! upstream side (`send`, `round_trip`) also carries the bodyless GETs and
//! HEADs that hyper serves, HTTP/2's above all (`direct`).

pub mod chunked;
pub mod deadline;
pub mod direct;
pub mod hold;
pub mod request;
pub mod response;
pub mod rewind;

use std::io::Write as _;
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_io_timeout::TimeoutWriter;

use super::exchange::{self, Exchange};
use super::respond::{Answer, ErrorAnswer, BODY_TIMEOUT};
use super::stop::Stop;
use super::upstream::{may_send_again, Reached, Upstream, UpstreamError, Wire, HOLD_UPSTREAM};
use super::{Conn, Gateway};
use crate::metrics::RouteClass;
use crate::policy::fields;
use crate::tts::owners::Standing;
use deadline::Deadline;
use hold::Hold;
use request::{Intake, Limits, Rewrite};
use response::{Final, Framing, Progress, UpstreamHead};

/// Largest response head taken from the upstream.
const MAX_RESPONSE_HEAD: usize = 256 * 1024;
/// Read sizes: the client's buffer (a burst's first read takes the smaller
/// one, as nginx's `client_header_buffer_size`), the upstream's (its answer
/// head is read 8 KiB at a time, as nginx's `proxy_buffer_size`, a body 32
/// KiB at a time). Measured, idle connections left by a crowd cost
/// 1.13–1.26 KiB each with the head's reads at 8 KiB, 0.97–1.87 KiB at 32
/// KiB (six rounds each): every connection of the crowd holds its upstream
/// connection, and its buffer, through the hold, and most answers are
/// read whole with their head.
const IDLE_READ: usize = 1024;
const CLIENT_READ: usize = 8 * 1024;
const UPSTREAM_HEAD_READ: usize = 8 * 1024;
const UPSTREAM_READ: usize = 32 * 1024;

/// How the fast path left a connection.
pub enum Served<C> {
    /// Done: the client or the gateway closed it.
    Closed,
    /// Idle since the instant given, for `HOLD_UPSTREAM` at least, holding
    /// nothing: to wait for its next request.
    Idle(C, Instant),
    /// For hyper to serve on, the bytes read but not used first.
    HandOff(C, Bytes),
}

/// What serving one request left the connection to do.
enum Step {
    /// Serve its next request; the last ended at the instant given.
    Again(Instant),
    /// Close it.
    Close,
    /// Wait for its next request with nothing held: it has been idle for
    /// `HOLD_UPSTREAM`.
    Idle,
    /// Hand it to hyper.
    HandOff,
}

/// How a burst of requests ended.
enum Burst {
    /// Idle since the instant given, for `HOLD_UPSTREAM` at least.
    Idle(Instant),
    Closed,
    HandOff(Bytes),
}

/// What one burst of a connection's requests reuses from request to
/// request: its buffers and the deadlines of its reads on either side.
struct Buffers {
    client: BytesMut,
    upstream_head: Vec<u8>,
    client_head: Vec<u8>,
    fields: Vec<request::Field>,
    client_wait: Deadline,
    upstream_wait: Deadline,
}

/// Why an exchange with the upstream failed, and whether it may be tried
/// again on a new connection.
enum Trip {
    /// Not all of the request went out: the upstream cannot have acted.
    Unsent(UpstreamError),
    /// Sent, and the connection closed before any answer.
    Unanswered(UpstreamError),
    Failed(UpstreamError),
}

impl Trip {
    /// How far the request got, when it may be worth sending again.
    fn reached(&self) -> Option<Reached> {
        match self {
            Trip::Unsent(_) => Some(Reached::NotSent),
            Trip::Unanswered(_) => Some(Reached::Unanswered),
            Trip::Failed(_) => None,
        }
    }

    fn error(&self) -> &UpstreamError {
        match self {
            Trip::Unsent(e) | Trip::Unanswered(e) | Trip::Failed(e) => e,
        }
    }

    fn into_error(self) -> UpstreamError {
        match self {
            Trip::Unsent(e) | Trip::Unanswered(e) | Trip::Failed(e) => e,
        }
    }
}

/// Why relaying a response body stopped short.
enum Broken {
    Upstream(UpstreamError),
    Client,
}

impl Gateway {
    /// Serves `io`'s requests, the first awaited since `idle_since`, for as
    /// long as they are the fast path's and keep coming. Once it has been
    /// idle for `HOLD_UPSTREAM` its buffers and upstream connection go, and
    /// it is handed back to wait for its next request holding nothing but
    /// its socket (as nginx's keep-alive wait does). At `stop` it closes,
    /// after the answer in progress.
    pub async fn serve_fast<C>(
        &self,
        conn: &Conn,
        mut io: C,
        stop: &Stop,
        idle_since: Instant,
    ) -> Served<C>
    where
        C: AsyncRead + AsyncWrite + Unpin,
    {
        if !self.settings.fast_path {
            return Served::HandOff(io, Bytes::new());
        }
        // Boxed, as the serving task's other large parts: measured, idle
        // connections left by a crowd cost 0.2 KiB less each that way (the
        // memory the crowd's bursts held is left less scattered).
        match Box::pin(self.burst(conn, &mut io, stop, idle_since)).await {
            Burst::Idle(since) => {
                conn.session.forget();
                Served::Idle(io, since)
            }
            Burst::HandOff(read) => Served::HandOff(io, read),
            Burst::Closed => Served::Closed,
        }
    }

    /// Serves requests one after the other, the first awaited since
    /// `idle_since`, until the connection is to close, goes to hyper, or
    /// has been idle for `HOLD_UPSTREAM`; the upstream connection goes back
    /// to the pool then.
    async fn burst<C>(&self, conn: &Conn, io: &mut C, stop: &Stop, mut idle_since: Instant) -> Burst
    where
        C: AsyncRead + AsyncWrite + Unpin,
    {
        let mut bufs = Buffers {
            client: BytesMut::new(),
            upstream_head: Vec::new(),
            client_head: Vec::new(),
            fields: Vec::new(),
            client_wait: Deadline::default(),
            upstream_wait: Deadline::default(),
        };
        let mut wire: Option<Wire> = None;
        // Writes wait at most the client timeout for the client to take
        // bytes; the timer is the burst's, not held by an idle connection.
        let mut io = std::pin::pin!(TimeoutWriter::new(io));
        io.as_mut()
            .set_timeout_pinned(Some(self.settings.client_timeout));
        let end = loop {
            match self
                .next(conn, &mut io, &mut bufs, &mut wire, stop, idle_since)
                .await
            {
                Step::Again(ended) => idle_since = ended,
                Step::Idle => break Burst::Idle(idle_since),
                Step::Close => break Burst::Closed,
                Step::HandOff => break Burst::HandOff(bufs.client.split().freeze()),
            }
        };
        if let Some(wire) = wire {
            self.upstream.pool().park(wire);
        }
        end
    }

    /// Serves one request, awaited since `idle_since`, or gives up waiting
    /// for it once the connection has been idle for `HOLD_UPSTREAM`.
    async fn next<C>(
        &self,
        conn: &Conn,
        io: &mut C,
        bufs: &mut Buffers,
        wire: &mut Option<Wire>,
        stop: &Stop,
        idle_since: Instant,
    ) -> Step
    where
        C: AsyncRead + AsyncWrite + Unpin,
    {
        let limits = Limits {
            max_uri_bytes: self.settings.max_uri_bytes,
            max_header_bytes: self.settings.max_header_bytes,
            identity_headers: &self.settings.identity_headers,
            policy: &self.settings.policy,
            trusted: conn.peer.trusted,
        };
        // An idle connection waits the client timeout for a request (here
        // for `HOLD_UPSTREAM` of it, see `hold`: then the burst ends, the
        // upstream connection of its last request goes back to the pool so
        // idle clients do not each hold one, and the connection waits on in
        // a task of its own, see `keepalive`); once its first bytes came,
        // the whole head must arrive within as long again, and then its
        // body.
        let patience = self.settings.client_timeout;
        let holding = patience > HOLD_UPSTREAM;
        bufs.client_wait.set(idle_since + patience);
        let head = loop {
            if !bufs.client.is_empty() {
                match request::parse(&bufs.client, &limits, &mut bufs.fields) {
                    Intake::Forward(head) => break head,
                    Intake::HandOff => return Step::HandOff,
                    Intake::Malformed => {
                        self.refuse_malformed(io, &bufs.client).await;
                        return Step::Close;
                    }
                    Intake::Partial => {}
                }
            }
            let idle = bufs.client.is_empty();
            // The read first: the waits for shutdown and for the hold's end
            // register only when polled, and then only if the read is
            // pending.
            let got = tokio::select! {
                biased;
                got = read_client(io, &mut bufs.client, &mut bufs.client_wait) => got,
                _ = stop.wait() => Got::Closed,
                _ = Hold::new(idle_since), if idle && holding => return Step::Idle,
            };
            if got != Got::More {
                return Step::Close;
            }
            if idle {
                bufs.client_wait.set_after(patience);
            }
        };
        let cookie = &bufs.client[head.cookie.clone()];
        let Some(live) = self
            .auth
            .sessions
            .find_by_cookie(&conn.session, cookie)
            .await
        else {
            return Step::HandOff;
        };
        // Due to be checked again with its provider (or past its grace):
        // the general path does that, one request per session per interval.
        if self.auth.must_vet(&live, crate::time::unix_now()) {
            return Step::HandOff;
        }
        // A stack session not known to be this person's: the general path
        // finds out.
        if self.stack_standing([cookie], &live) != Standing::Fine {
            return Step::HandOff;
        }
        // The head, split off the read buffer without a copy: the access
        // log holds on to its path while the body is read after it.
        let raw = bufs.client.split_to(head.len).freeze();
        let path = || exchange::Path::Head(raw.clone(), head.path.clone());
        let mut ex = Exchange::start(&self.metrics, &head.method, path, &conn.peer.client_value);
        ex.route = RouteClass::Proxy;
        ex.live = Some(live.clone());

        let body = usize::try_from(head.content_length.unwrap_or(0)).unwrap_or(usize::MAX);
        bufs.client_wait.set_after(patience);
        while bufs.client.len() < body {
            match read_client(io, &mut bufs.client, &mut bufs.client_wait).await {
                Got::More => {}
                Got::Closed => {
                    ex.error = Some("client_gone");
                    return Step::Close;
                }
                Got::Late => {
                    let answer = Answer::error_page(head.html, &BODY_TIMEOUT, None);
                    let status = self
                        .write_answer(io, answer, head.method == http::Method::HEAD)
                        .await;
                    ex.ended(status, Some("client_timeout"));
                    return Step::Close;
                }
            }
        }
        bufs.upstream_head.clear();
        let rewrite = Rewrite {
            host: (!self.upstream.pass_host_header()).then(|| self.upstream.authority().as_bytes()),
            client: conn.peer.client_value.as_bytes(),
            proto: self.settings.proto.as_bytes(),
        };
        let signer = self.auth.keys.signer();
        request::write_head(
            &mut bufs.upstream_head,
            &raw,
            &head,
            &bufs.fields,
            &rewrite,
            |out| {
                self.auth.headers.for_each(&live, &signer, |name, value| {
                    request::line(out, name.as_str().as_bytes(), value.as_bytes())
                })
            },
        );
        bufs.upstream_head.extend_from_slice(&bufs.client[..body]);
        bufs.client.advance(body);

        let close = head.close || stop.is_set();
        // One reading of the clock: when the request goes, how long the
        // kept upstream connection has been idle, and the start of the
        // upstream's time in the log.
        let started = Instant::now();
        bufs.client_head.clear();
        let out = Outbound {
            request: &bufs.upstream_head,
            method: &head.method,
            bodyless: head.content_length.is_none_or(|n| n == 0),
            close,
        };
        let kept = wire.take();
        let wait = &mut bufs.upstream_wait;
        let sent = send(
            &self.upstream,
            started,
            kept,
            out,
            wait,
            &mut bufs.client_head,
        )
        .await;
        ex.upstream_time = Some(started.elapsed());
        let (mut link, reply) = match sent {
            Ok(sent) => sent,
            Err(e) => {
                let answer = self.failure_answer(e, head.html, &mut ex);
                let status = self
                    .write_answer(io, answer, head.method == http::Method::HEAD)
                    .await;
                ex.ended(status, None);
                return Step::Close;
            }
        };
        let wait = Wait {
            deadline: &mut bufs.upstream_wait,
            patience: self.upstream.read_timeout(),
        };
        match relay(io, &mut link, wait, &reply, &mut bufs.client_head).await {
            Ok(clean) => {
                let ended = Instant::now();
                ex.ended_at(reply.status, None, ended);
                if reply.reusable && clean {
                    link.rest(ended);
                    *wire = Some(link);
                }
                if reply.close {
                    let _ = io.shutdown().await;
                    Step::Close
                } else {
                    Step::Again(ended)
                }
            }
            Err(Broken::Client) => {
                ex.ended(reply.status, Some("client_gone"));
                Step::Close
            }
            Err(Broken::Upstream(e)) => {
                tracing::warn!(error = %e, "the upstream's answer broke off; the client's connection is closed");
                let error = if e.timed_out() {
                    "upstream_timeout"
                } else {
                    "upstream_body"
                };
                ex.ended(reply.status, Some(error));
                Step::Close
            }
        }
    }

    /// Answers a request head that does not parse with the gateway's own
    /// 400 (a page when the bytes ask for one), counted, and closes.
    async fn refuse_malformed<C>(&self, io: &mut C, raw: &[u8])
    where
        C: AsyncWrite + Unpin,
    {
        self.metrics
            .refused_connections
            .with_label_values(&["malformed"])
            .inc();
        tracing::debug!("request head does not parse; refused with 400");
        let answer = ErrorAnswer {
            status: 400,
            code: "bad_request",
            title: "Bad request",
            message: "This request is not valid HTTP/1.1 and went no further than the gateway.",
        };
        let html = fields::accepts_html(raw);
        let answer = Answer::error_page(html, &answer, None).close();
        self.write_answer(io, answer, false).await;
    }

    /// Writes one of the gateway's own answers and returns its status.
    async fn write_answer<C>(&self, io: &mut C, answer: Answer, head_request: bool) -> u16
    where
        C: AsyncWrite + Unpin,
    {
        let (response, body) = answer.into_parts(true);
        let status = response.status();
        let mut out = Vec::with_capacity(512 + body.len());
        let _ = write!(
            out,
            "HTTP/1.1 {} {}\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        );
        for (name, value) in response.headers() {
            request::line(&mut out, name.as_str().as_bytes(), value.as_bytes());
        }
        let _ = write!(out, "content-length: {}\r\n\r\n", body.len());
        if !head_request {
            out.extend_from_slice(&body);
        }
        if write_flushed(io, &out).await.is_ok() {
            let _ = io.shutdown().await;
        }
        status.as_u16()
    }
}

/// What reading more of the client's bytes gave.
#[derive(PartialEq)]
enum Got {
    More,
    /// The client closed or failed.
    Closed,
    /// Nothing came by the deadline.
    Late,
}

async fn read_client<C: AsyncRead + Unpin>(
    io: &mut C,
    buf: &mut BytesMut,
    deadline: &mut Deadline,
) -> Got {
    buf.reserve(if buf.capacity() == 0 {
        IDLE_READ
    } else {
        CLIENT_READ
    });
    match deadline.run(io.read_buf(buf)).await {
        Some(Ok(n)) if n > 0 => Got::More,
        Some(_) => Got::Closed,
        None => Got::Late,
    }
}

/// How long each read of the upstream's bytes may wait.
struct Wait<'a> {
    deadline: &'a mut Deadline,
    patience: std::time::Duration,
}

impl Wait<'_> {
    /// Reads more of the upstream's bytes into the link's buffer, with room
    /// for `size` more at least; a read that waits longer than the upstream
    /// read timeout fails as `TimedOut`.
    async fn read(&mut self, link: &mut Wire, size: usize) -> std::io::Result<usize> {
        self.deadline.set_after(self.patience);
        self.fill(link, size).await
    }

    /// `read`, within the deadline as it stands.
    async fn fill(&mut self, link: &mut Wire, size: usize) -> std::io::Result<usize> {
        link.buf.reserve(size);
        match self.deadline.run(link.io.read_buf(&mut link.buf)).await {
            Some(read) => read,
            None => Err(std::io::ErrorKind::TimedOut.into()),
        }
    }
}

/// Writes all of `bytes` and flushes them (TLS holds them otherwise).
async fn write_flushed<W: AsyncWrite + Unpin>(w: &mut W, bytes: &[u8]) -> std::io::Result<()> {
    w.write_all(bytes).await?;
    w.flush().await
}

/// A request as it goes to the upstream.
struct Outbound<'a> {
    /// Its head and body, written for the upstream.
    request: &'a [u8],
    method: &'a http::Method,
    bodyless: bool,
    /// The client's connection closes after the answer.
    close: bool,
}

/// Sends `out` on `kept` (when still usable at `now`, when it goes) or a
/// pooled or new connection, and reads the final response head into
/// `relay`. A request a reused connection did not take, or an idempotent
/// one it closed on before answering, goes once more on a new connection.
async fn send(
    upstream: &Upstream,
    now: Instant,
    kept: Option<Wire>,
    out: Outbound<'_>,
    deadline: &mut Deadline,
    relay: &mut impl response::Relay,
) -> Result<(Wire, Final), UpstreamError> {
    let kept = kept.and_then(|mut w| w.usable(upstream.idle_timeout(), now).then_some(w));
    let (mut link, mut again) = match kept {
        Some(link) => (link, true),
        None => upstream.connection().await?,
    };
    let head_request = out.method == http::Method::HEAD;
    loop {
        let idle_for = link.idle_for(now);
        let wait = Wait {
            deadline: &mut *deadline,
            patience: upstream.read_timeout(),
        };
        match round_trip(&mut link, wait, out.request, head_request, out.close, relay).await {
            Ok(reply) => return Ok((link, reply)),
            Err(trip)
                if again
                    && trip.reached().is_some_and(|reached| {
                        may_send_again(reached, out.method.is_idempotent(), out.bodyless, idle_for)
                    }) =>
            {
                tracing::debug!(error = %trip.error(), "reused upstream connection failed; sending again on a new one");
                again = false;
                link = upstream.dial().await?;
            }
            Err(trip) => return Err(trip.into_error()),
        }
    }
}

/// One request out and its final response head in, to `relay`: the
/// head, and any interim answers before it, within the upstream read
/// timeout from when the first of its reads has to wait (about when the
/// request went) and within `MAX_RESPONSE_HEAD` together.
async fn round_trip(
    link: &mut Wire,
    mut wait: Wait<'_>,
    request: &[u8],
    head_request: bool,
    close: bool,
    relay: &mut impl response::Relay,
) -> Result<Final, Trip> {
    link.buf.clear();
    // Only a request of which no byte went out counts as unsent: the
    // upstream may act on part of one.
    let mut written = 0;
    while written < request.len() {
        match link.io.write(&request[written..]).await {
            Ok(n) if n > 0 => written += n,
            Ok(_) => {
                let e = std::io::Error::from(std::io::ErrorKind::WriteZero);
                return Err(Trip::Unanswered(UpstreamError::Wire(e)));
            }
            Err(e) if written == 0 => return Err(Trip::Unsent(UpstreamError::Wire(e))),
            Err(e) => return Err(Trip::Unanswered(UpstreamError::Wire(e))),
        }
    }
    link.io
        .flush()
        .await
        .map_err(|e| Trip::Unanswered(UpstreamError::Wire(e)))?;
    // Interim answers count towards the head's size: no stream of them
    // holds the request forever.
    let mut interim = 0;
    wait.deadline.set_after(wait.patience);
    loop {
        let room = MAX_RESPONSE_HEAD - interim;
        match response::parse(&link.buf, room, head_request, close, relay) {
            UpstreamHead::Final(reply) => {
                link.buf.advance(reply.len);
                return Ok(reply);
            }
            UpstreamHead::Interim(len) if len < room => {
                link.buf.advance(len);
                interim += len;
                continue;
            }
            UpstreamHead::Interim(_) => {
                return Err(Trip::Failed(UpstreamError::Malformed(
                    "response head too large",
                )))
            }
            UpstreamHead::Switch => return Err(Trip::Failed(UpstreamError::UnaskedSwitch)),
            UpstreamHead::Malformed(why) => {
                return Err(Trip::Failed(UpstreamError::Malformed(why)))
            }
            UpstreamHead::Partial => {}
        }
        let nothing_yet = link.buf.is_empty() && interim == 0;
        match wait.fill(link, UPSTREAM_HEAD_READ).await {
            Ok(0) => {
                let e = UpstreamError::Wire(std::io::ErrorKind::UnexpectedEof.into());
                return Err(if nothing_yet {
                    Trip::Unanswered(e)
                } else {
                    Trip::Failed(e)
                });
            }
            Ok(_) => {}
            Err(e) if nothing_yet && e.kind() != std::io::ErrorKind::TimedOut => {
                return Err(Trip::Unanswered(UpstreamError::Wire(e)))
            }
            Err(e) => return Err(Trip::Failed(UpstreamError::Wire(e))),
        }
    }
}

/// Sends the response head in `out` and the body after it as the upstream
/// delivers it. Returns whether the upstream sent nothing beyond the body
/// (so its connection can carry another request).
async fn relay<C>(
    io: &mut C,
    link: &mut Wire,
    mut wait: Wait<'_>,
    reply: &Final,
    out: &mut Vec<u8>,
) -> Result<bool, Broken>
where
    C: AsyncWrite + Unpin,
{
    let mut body = Progress::new(reply.framing);
    loop {
        match reply.framing {
            Framing::Empty => {}
            Framing::Length(_) => {
                let take = body.take_sized(link.buf.len());
                out.extend_from_slice(&link.buf[..take]);
                link.buf.advance(take);
            }
            Framing::Chunked => {
                let used = body.chunks.relay(&link.buf, out).map_err(|_| {
                    Broken::Upstream(UpstreamError::Malformed("chunked body does not parse"))
                })?;
                link.buf.advance(used);
            }
            Framing::UntilClose => {
                if !link.buf.is_empty() {
                    let _ = write!(out, "{:x}\r\n", link.buf.len());
                    out.extend_from_slice(&link.buf);
                    out.extend_from_slice(b"\r\n");
                    link.buf.clear();
                }
            }
        }
        let finished = body.ended();
        if !out.is_empty() {
            write_flushed(io, out).await.map_err(|_| Broken::Client)?;
            out.clear();
        }
        if finished {
            return Ok(link.buf.is_empty());
        }
        match wait.read(link, UPSTREAM_READ).await {
            Ok(0) if reply.framing == Framing::UntilClose => {
                write_flushed(io, b"0\r\n\r\n")
                    .await
                    .map_err(|_| Broken::Client)?;
                return Ok(false);
            }
            Ok(0) => {
                let e = std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the upstream closed before the end of its answer",
                );
                return Err(Broken::Upstream(UpstreamError::Wire(e)));
            }
            Ok(_) => {}
            Err(e) => return Err(Broken::Upstream(UpstreamError::Wire(e))),
        }
    }
}
