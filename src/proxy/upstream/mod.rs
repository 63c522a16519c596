//! The upstream the gateway forwards to, for both data paths: its address
//! (re-resolved in the background, so a container that moves is found
//! again), the one place that dials it, the one pool of its idle
//! connections (`pool`), and the one rule for sending a request again on a
//! new connection (`may_send_again`). The fast path speaks HTTP/1.1 over a
//! pooled connection itself, and so does the hyper path for bodyless GETs
//! and HEADs (`fast::direct`); for the rest it runs hyper's client over one
//! (`link`).

mod link;
mod outgoing;
mod pool;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use http::HeaderValue;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_io_timeout::TimeoutStream;
use tokio_rustls::TlsConnector;

use crate::config::UpstreamConfig;
use crate::tls;
pub use link::{Home, Pinned};
use outgoing::ClientStalled;
pub use outgoing::{Outgoing, Upload};
pub use pool::{Pool, Wire};

/// How often the upstream host name is looked up again.
const RESOLVE_EVERY: Duration = Duration::from_secs(10);

/// How long a client connection waiting for its next request keeps the
/// upstream connections of its last ones (and the fast path its buffers)
/// before they go back to the pool: ten thousand idle browsers do not hold
/// ten thousand upstream connections. The one rule of both data paths.
/// Long enough for the next request of a browser; short, because every
/// client of a crowd arriving at once holds an upstream connection until
/// then. On the fast path its end is found by a sweep per proxy thread
/// (`fast::hold`), not a timer per connection: a client asking every 50 ms
/// cost 0.95–0.98× nginx's CPU per request at 100 ms with the sweep, and
/// 0.98–1.04× at 250 ms with a timer (1.10× at 100 ms, the timer firing
/// and moved on at every other request; `benches/load.sh`, `paced`).
pub const HOLD_UPSTREAM: Duration = Duration::from_millis(100);

/// A connection idle at least this long may have been closed by the
/// upstream's keep-alive timeout just as a request goes out on it.
const STALE_AFTER: Duration = Duration::from_secs(1);

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
    /// Idle connections, shared by both data paths.
    pool: Arc<Pool>,
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
            pool: Arc::default(),
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

    /// The idle connections both data paths take from and give back to.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// An idle connection from the pool, else a new one.
    pub async fn connection(&self) -> Result<(Wire, bool), UpstreamError> {
        match self.pool.take(self.options.idle_timeout) {
            Some(wire) => Ok((wire, true)),
            None => Ok((self.dial().await?, false)),
        }
    }

    /// A new connection to the upstream, TLS when it is `https`; its writes
    /// are limited by `write_timeout`. Dialling happens here only.
    pub async fn dial(&self) -> Result<Wire, UpstreamError> {
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
        Ok(Wire::new(Box::pin(io), std::time::Instant::now()))
    }
}

/// A byte stream to the upstream: TCP, or TLS over TCP.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}
