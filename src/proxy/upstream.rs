//! The upstream the gateway forwards to: its address (re-resolved in the
//! background, so a container that moves is found again) and its HTTP/1.1
//! connections. Each downstream connection keeps the upstream connection it
//! last used for its next request, so a keep-alive client costs no pool
//! lookup at all; when the downstream connection closes, its upstream
//! connection goes to a shared idle pool for the next newcomer.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http::HeaderValue;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Notify;
use tokio_io_timeout::TimeoutStream;
use tokio_rustls::TlsConnector;

use super::silence::Silence;
use crate::config::UpstreamConfig;
use crate::policy::fields;
use crate::tls;

/// How often the upstream host name is looked up again.
const RESOLVE_EVERY: Duration = Duration::from_secs(10);

/// Idle upstream connections kept for downstream connections to come.
pub const MAX_IDLE: usize = 256;

/// A connection idle at least this long may have been closed by the
/// upstream's keep-alive timeout just as a request goes out on it.
const STALE_AFTER: Duration = Duration::from_secs(1);

/// Whether the connection that carried `response` may carry another
/// request (`fields::reusable_after_answer`, the fast path's rule too).
fn reusable_after<B>(head_request: bool, response: &Response<B>) -> bool {
    let h = response.headers();
    let length = h.get(http::header::CONTENT_LENGTH);
    fields::reusable_after_answer(
        fields::bodyless_answer(head_request, response.status().as_u16()),
        h.contains_key(http::header::TRANSFER_ENCODING),
        length.is_some(),
        length.and_then(|v| fields::content_length(v.as_bytes())),
    )
}

/// How far a request got on a reused upstream connection that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reached {
    /// The connection did not take the request: the upstream cannot have
    /// acted on it.
    NotSent,
    /// The request went out and the connection closed before any answer.
    Unanswered,
}

/// The one rule both data paths follow for sending a request again, once,
/// on a new connection after a reused one failed: a request the connection
/// never took, always; one it took and closed without a byte of answer,
/// only when it is idempotent and bodyless (RFC 9110 §9.2.2; a streamed
/// body cannot be sent twice) and the connection had sat idle for
/// `STALE_AFTER` (the upstream's keep-alive timeout closing it just then,
/// not an upstream failing on the request).
pub fn may_send_again(
    reached: Reached,
    idempotent: bool,
    bodyless: bool,
    idle_for: Duration,
) -> bool {
    match reached {
        Reached::NotSent => true,
        Reached::Unanswered => idempotent && bodyless && idle_for >= STALE_AFTER,
    }
}

/// Why a request could not be exchanged with the upstream.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream host has not resolved yet")]
    NotResolved,
    #[error("connecting to the upstream timed out")]
    ConnectTimeout,
    #[error("cannot connect to the upstream: {0}")]
    Connect(std::io::Error),
    #[error("TLS handshake with the upstream failed: {0}")]
    Tls(std::io::Error),
    #[error("the upstream did not answer in time")]
    Timeout,
    #[error("exchange with the upstream failed: {0}")]
    Exchange(hyper::Error),
    #[error("the upstream switched protocols without being asked for a WebSocket")]
    UnaskedSwitch,
    #[error("exchange with the upstream failed: {0}")]
    Wire(std::io::Error),
    #[error("the upstream's answer is not valid HTTP/1.1: {0}")]
    Malformed(&'static str),
}

/// A client that sent nothing of its body for the client timeout.
#[derive(Debug, thiserror::Error)]
#[error("the client sent nothing of its body for {0:?}")]
pub struct ClientStalled(Duration);

impl UpstreamError {
    /// The client's own body failed (it went away mid-upload, or stalled).
    pub fn client_aborted(&self) -> bool {
        matches!(self, UpstreamError::Exchange(e) if e.is_user())
    }

    /// The client's body stopped coming for longer than the client timeout.
    pub fn client_stalled(&self) -> bool {
        matches!(self, UpstreamError::Exchange(e) if cause::<ClientStalled>(e).is_some())
    }

    /// The upstream was too slow (504), rather than unreachable (502).
    pub fn timed_out(&self) -> bool {
        match self {
            UpstreamError::ConnectTimeout | UpstreamError::Timeout => true,
            UpstreamError::Wire(e) => e.kind() == std::io::ErrorKind::TimedOut,
            UpstreamError::Exchange(e) => cause::<std::io::Error>(e)
                .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut),
            _ => false,
        }
    }
}

/// The first error of type `T` among the causes of `e`.
fn cause<T: std::error::Error + 'static>(e: &hyper::Error) -> Option<&T> {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(found) = s.downcast_ref::<T>() {
            return Some(found);
        }
        source = s.source();
    }
    None
}

/// One HTTP/1.1 connection to the upstream.
struct Link {
    sender: SendRequest<Outgoing>,
    idle_since: Instant,
}

impl Link {
    /// Ready for a request, and not idle so long that it is given up.
    fn ready_within(&self, idle_timeout: Duration) -> bool {
        self.sender.is_ready() && self.idle_since.elapsed() < idle_timeout
    }

    /// Open, but still carrying an answer.
    fn busy(&self) -> bool {
        !self.sender.is_ready() && !self.sender.is_closed()
    }
}

/// The upstream as configured, with its last resolved address and its idle
/// connections.
pub struct Upstream {
    host: String,
    port: u16,
    /// `host:port` as written in the config, for the Host header.
    authority: HeaderValue,
    options: UpstreamConfig,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    addr: ArcSwapOption<SocketAddr>,
    idle: Mutex<Vec<Link>>,
}

impl Upstream {
    /// The upstream of `url`; fails when an `https` upstream cannot be
    /// verified because the system has no CA certificates.
    pub fn new(url: &url::Url, options: UpstreamConfig) -> anyhow::Result<Arc<Self>> {
        let host = url
            .host_str()
            .unwrap_or_default()
            .trim_matches(['[', ']'])
            .to_string();
        let port = url.port_or_known_default().unwrap_or(80);
        let authority = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_string(),
        };
        let literal = host
            .parse()
            .ok()
            .map(|ip| Arc::new(SocketAddr::new(ip, port)));
        let tls = if url.scheme() == "https" {
            let name = ServerName::try_from(host.clone())
                .map_err(|_| anyhow::anyhow!("upstream.url: {host} is not a TLS server name"))?;
            Some((tls::upstream_connector(options.tls_verify)?, name))
        } else {
            None
        };
        Ok(Arc::new(Self {
            authority: HeaderValue::from_str(&authority)
                .map_err(|_| anyhow::anyhow!("upstream.url: {authority} is not a valid host"))?,
            host,
            port,
            options,
            tls,
            addr: ArcSwapOption::new(literal),
            idle: Mutex::new(Vec::new()),
        }))
    }

    /// The `Host` value naming the upstream itself.
    pub fn authority(&self) -> &HeaderValue {
        &self.authority
    }

    pub fn pass_host_header(&self) -> bool {
        self.options.pass_host_header
    }

    /// How long an unused connection is kept.
    pub fn idle_timeout(&self) -> Duration {
        self.options.idle_timeout
    }

    /// The longest silence from the upstream before the exchange fails.
    pub fn read_timeout(&self) -> Duration {
        self.options.read_timeout
    }

    /// Looks the host up once; an IP literal needs no lookup.
    pub async fn resolve(&self) -> std::io::Result<SocketAddr> {
        let found = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await?
            .next()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address"))?;
        self.addr.store(Some(Arc::new(found)));
        Ok(found)
    }

    /// Keeps the address fresh for as long as the gateway runs.
    pub async fn keep_resolving(self: Arc<Self>) {
        if self.host.parse::<std::net::IpAddr>().is_ok() {
            return;
        }
        loop {
            if let Err(e) = self.resolve().await {
                tracing::warn!(host = %self.host, error = %e, "cannot resolve the upstream host; requests get 502 until it resolves");
            }
            tokio::time::sleep(RESOLVE_EVERY).await;
        }
    }

    /// Sends `req` on the connection `pinned` keeps (or an idle or new one)
    /// and waits for the response head. A request that a reused connection
    /// closed before taking, or a bodyless idempotent one on a connection
    /// that had been idle, is sent once more on a new connection.
    pub async fn send(
        &self,
        pinned: &Pinned,
        req: Request<Outgoing>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let head_request = req.method() == http::Method::HEAD;
        let (mut link, reused) = match self.checkout(pinned) {
            Some(link) => (link, true),
            None => (self.connect().await?, false),
        };
        // Only a request that may be sent again once it went out pays for
        // the copy; one the connection never took comes back from hyper.
        let replay = (reused
            && may_send_again(
                Reached::Unanswered,
                req.method().is_idempotent(),
                req.body().is_end_stream(),
                link.idle_since.elapsed(),
            ))
        .then(|| copy_head(&req));
        let result = match link.sender.try_send_request(req).await {
            Err(mut e) if reused => match (e.take_message(), replay) {
                (Some(req), _) | (None, Some(req)) => {
                    tracing::debug!(error = %e.error(), "reused upstream connection failed; sending again on a new one");
                    link = self.connect().await?;
                    link.sender.send_request(req).await
                }
                (None, None) => Err(e.into_error()),
            },
            other => other.map_err(|e| e.into_error()),
        };
        let response = result.map_err(UpstreamError::Exchange)?;
        link.idle_since = Instant::now();
        if reusable_after(head_request, &response) {
            pinned.keep(link);
        }
        Ok(response)
    }

    /// A connection ready for a request: the pinned one, else an idle one.
    fn checkout(&self, pinned: &Pinned) -> Option<Link> {
        let fresh = |l: &Link| l.ready_within(self.options.idle_timeout);
        {
            let mut slot = pinned.slot.lock().expect("pinned slot");
            if let Some(l) = slot.take() {
                if fresh(&l) {
                    return Some(l);
                }
                // Still busy with a streaming answer (HTTP/2 clients send
                // requests side by side): leave it for later.
                if l.busy() {
                    *slot = Some(l);
                }
            }
        }
        let mut idle = self.idle.lock().expect("idle pool");
        let mut busy = Vec::new();
        let mut found = None;
        while let Some(l) = idle.pop() {
            if fresh(&l) {
                found = Some(l);
                break;
            }
            // Parked while its answer still streams: it is ready later.
            if l.busy() {
                busy.push(l);
            }
        }
        idle.extend(busy);
        found
    }

    /// Keeps an unused connection for later, up to the pool's size.
    fn park(&self, link: Link) {
        if link.sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().expect("idle pool");
        if idle.len() < MAX_IDLE {
            idle.push(link);
        }
    }

    async fn connect(&self) -> Result<Link, UpstreamError> {
        let io = self.dial().await?;
        Ok(Link {
            sender: self.attach(io).await?,
            idle_since: Instant::now(),
        })
    }

    /// A new connection to the upstream, TLS when it is `https`; its writes
    /// are limited by `write_timeout`.
    pub async fn dial(&self) -> Result<Pin<Box<TimeoutStream<Box<dyn Io>>>>, UpstreamError> {
        let addr = *self.addr.load_full().ok_or(UpstreamError::NotResolved)?;
        let limit = self.options.connect_timeout;
        let tcp = tokio::time::timeout(limit, tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| UpstreamError::ConnectTimeout)?
            .map_err(UpstreamError::Connect)?;
        tcp.set_nodelay(true).map_err(UpstreamError::Connect)?;
        let io: Box<dyn Io> = match &self.tls {
            None => Box::new(tcp),
            Some((connector, name)) => Box::new(
                tokio::time::timeout(limit, connector.connect(name.clone(), tcp))
                    .await
                    .map_err(|_| UpstreamError::ConnectTimeout)?
                    .map_err(UpstreamError::Tls)?,
            ),
        };
        let mut io = TimeoutStream::new(io);
        io.set_write_timeout(Some(self.options.write_timeout));
        Ok(Box::pin(io))
    }

    /// Runs HTTP/1.1 over `io` on a task of its own; upgrades (WebSocket)
    /// are let through.
    async fn attach(
        &self,
        io: Pin<Box<TimeoutStream<Box<dyn Io>>>>,
    ) -> Result<SendRequest<Outgoing>, UpstreamError> {
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(UpstreamError::Exchange)?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended");
            }
        });
        Ok(sender)
    }
}

/// A byte stream to the upstream: TCP, or TLS over TCP.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// A bodyless request like `req`, to send again.
fn copy_head(req: &Request<Outgoing>) -> Request<Outgoing> {
    let mut again = Request::new(Outgoing::empty());
    *again.method_mut() = req.method().clone();
    *again.uri_mut() = req.uri().clone();
    *again.version_mut() = req.version();
    *again.headers_mut() = req.headers().clone();
    again
}

/// The upstream connection a downstream connection keeps between its
/// requests; it goes to the shared idle pool when the downstream closes.
pub struct Pinned {
    upstream: Arc<Upstream>,
    slot: Mutex<Option<Link>>,
}

impl Pinned {
    pub fn new(upstream: Arc<Upstream>) -> Self {
        Self {
            upstream,
            slot: Mutex::new(None),
        }
    }

    /// Keeps `link` for this connection's next request, or parks it when
    /// another one is kept already.
    fn keep(&self, link: Link) {
        let mut slot = self.slot.lock().expect("pinned slot");
        if slot.is_none() {
            *slot = Some(link);
        } else {
            drop(slot);
            self.upstream.park(link);
        }
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        if let Some(link) = self.slot.get_mut().ok().and_then(Option::take) {
            self.upstream.park(link);
        }
    }
}

/// A client's request body on its way upstream; it tells when the upstream
/// has taken all of it, so that waiting for the answer is timed from then
/// on and a long upload is not mistaken for a silent upstream. A client
/// that sends nothing more of it for `patience` while the upstream waits
/// for it (has not answered yet) fails the upload (`ClientStalled`).
pub struct Outgoing {
    /// `None` for a request without a body.
    inner: Option<Incoming>,
    upload: Option<Arc<Upload>>,
    /// Runs while the upstream waits for the client's next bytes.
    silence: Option<Silence>,
}

/// What the forwarding side and an upload body share.
#[derive(Default)]
pub struct Upload {
    sent: Notify,
    answered: AtomicBool,
}

impl Upload {
    /// Returns once the upstream has taken the whole body.
    pub async fn sent(&self) {
        self.sent.notified().await
    }

    /// The upstream has answered: from now on the client may pause its
    /// upload for as long as it likes (the exchange streams both ways).
    pub fn answered(&self) {
        self.answered.store(true, Ordering::Relaxed);
    }
}

impl Outgoing {
    /// The body, and what it shares with the forwarding side (`None` when
    /// there is no body to send).
    pub fn new(inner: Incoming, patience: Duration) -> (Self, Option<Arc<Upload>>) {
        if inner.is_end_stream() {
            return (Self::empty(), None);
        }
        let upload = Arc::new(Upload::default());
        let body = Self {
            inner: Some(inner),
            upload: Some(upload.clone()),
            silence: Some(Silence::new(patience)),
        };
        (body, Some(upload))
    }

    fn empty() -> Self {
        Self {
            inner: None,
            upload: None,
            silence: None,
        }
    }

    fn done(&mut self) {
        if let Some(upload) = self.upload.take() {
            upload.sent.notify_one();
        }
    }

    /// Whether the upstream is waiting on the client's body.
    fn awaited(&self) -> bool {
        self.upload
            .as_ref()
            .is_some_and(|u| !u.answered.load(Ordering::Relaxed))
    }
}

/// hyper stops reading a body early when its declared length is written,
/// or when a GET's body is not to be sent: the wait for the answer starts
/// then too.
impl Drop for Outgoing {
    fn drop(&mut self) {
        self.done();
    }
}

impl Body for Outgoing {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let Some(inner) = &mut this.inner else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(&mut *inner).poll_frame(cx);
        let end = inner.is_end_stream();
        let awaited = this.awaited();
        if let Some(silence) = &mut this.silence {
            if polled.is_pending() && awaited {
                return match silence.poll_quiet(cx) {
                    Poll::Ready(()) => {
                        Poll::Ready(Some(Err(ClientStalled(silence.limit()).into())))
                    }
                    Poll::Pending => Poll::Pending,
                };
            }
            silence.heard();
        }
        if matches!(polled, Poll::Ready(None)) || end {
            this.done();
        }
        polled.map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}
