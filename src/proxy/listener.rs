//! The public listener: `server.threads` threads, each with a
//! single-threaded runtime accepting on the same socket, so a connection
//! and everything it does stays on one core without cross-thread wakeups.
//! Each connection speaks HTTP/1.1 in clear, or TLS with HTTP/2 or
//! HTTP/1.1 as ALPN agreed; HTTP/1.1 starts on the fast path (`fast`) and
//! moves to hyper at its first request the fast path does not take; idle
//! on the fast path, it waits in a small task of its own (`keepalive`). A
//! client that takes no bytes of an answer for `client_timeout` loses its
//! connection. At shutdown every connection is closed gracefully: idle ones
//! at once, busy ones after their answer.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use prometheus::{IntCounterVec, IntGauge};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_io_timeout::TimeoutWriter;
use tokio_rustls::TlsAcceptor;

use super::exchange::Tracked;
use super::fast::rewind::Rewind;
use super::fast::Served;
use super::keepalive::{Parked, Socket};
use super::stop::Stop;
use super::{Conn, Gateway};
use crate::metrics::InFlight;
use crate::tls;

/// Most header fields a request may carry.
const MAX_HEADERS: usize = super::fast::request::MAX_HEADERS;
/// HTTP/2 connections are pinged this often, and closed when a ping goes
/// unanswered this long: a vanished client does not keep its connection.
const H2_PING_EVERY: Duration = Duration::from_secs(60);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);
/// An HTTP/2 connection's receive window: room for eight streams' windows
/// (1 MiB each), so a stream whose upstream reads its upload slowly does not
/// hold up the uploads of the others (they would stall, and get 408).
const H2_CONNECTION_WINDOW: u32 = 8 * 1024 * 1024;

/// How the listener serves connections.
pub struct ListenerSettings {
    pub threads: usize,
    pub tls: Option<TlsAcceptor>,
    /// The largest request head hyper buffers; the gateway's own, smaller
    /// limits answer with a page before that.
    pub max_head_bytes: usize,
    /// Longest wait for a TLS handshake, a request head, or a client to
    /// take bytes written to it.
    pub client_timeout: Duration,
    /// Counts open client connections.
    pub open_connections: IntGauge,
    /// Counts connections ended on hyper's own answer to a request head it
    /// cannot parse, or on a failed TLS handshake.
    pub refused_connections: IntCounterVec,
}

/// Starts the accepting threads; they stop accepting when the gateway
/// stops, and keep serving open connections until the process exits.
pub fn start(
    listener: std::net::TcpListener,
    settings: ListenerSettings,
    gateway: Arc<Gateway>,
) -> anyhow::Result<()> {
    listener.set_nonblocking(true)?;
    let settings = Arc::new(settings);
    for n in 0..settings.threads.max(1) {
        let listener = listener.try_clone()?;
        let (settings, gateway) = (settings.clone(), gateway.clone());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name(format!("idgate-proxy-{n}"))
            .spawn(move || runtime.block_on(accept(listener, settings, gateway)))?;
    }
    Ok(())
}

async fn accept(
    listener: std::net::TcpListener,
    settings: Arc<ListenerSettings>,
    gateway: Arc<Gateway>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot use the public listener");
            return;
        }
    };
    tokio::spawn(crate::memory::give_back_freed());
    // This thread's connections wait on a shutdown of their own.
    let stop = Arc::new(Stop::default());
    let mut stopping = std::pin::pin!(gateway.stopping().wait());
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) => {
                    let (settings, gateway) = (settings.clone(), gateway.clone());
                    tokio::spawn(serve(stream, addr.ip(), settings, gateway, stop.clone()));
                    // One connection at a time, between the thread's other
                    // tasks: a burst of new connections does not queue its
                    // handshakes ahead of the ones already under way.
                    tokio::task::yield_now().await;
                }
                Err(e) => {
                    // Out of file descriptors, most likely: let some close.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = &mut stopping => break,
        }
    }
    drop(listener);
    stop.set();
    std::future::pending::<()>().await;
}

/// One client connection, shared by the tasks that serve it in turn: one
/// sized for serving while it is busy, a small one while it waits idle for
/// its next request (`keepalive`).
struct Link {
    settings: Arc<ListenerSettings>,
    gateway: Arc<Gateway>,
    conn: Conn,
    /// Its thread's shutdown.
    stop: Arc<Stop>,
    _open: InFlight,
}

impl Link {
    /// Counts and logs how hyper's part of the connection ended.
    fn ended(&self, served: Result<(), hyper::Error>) {
        if let Err(e) = served {
            if e.is_parse() || e.is_parse_too_large() {
                self.settings.refused("malformed");
            }
            tracing::debug!(error = %e, "connection ended with an error");
        }
    }
}

async fn serve(
    stream: TcpStream,
    client: std::net::IpAddr,
    settings: Arc<ListenerSettings>,
    gateway: Arc<Gateway>,
    stop: Arc<Stop>,
) {
    let link = Arc::new(Link {
        _open: InFlight::start(&settings.open_connections),
        conn: gateway.connection(Some(client)),
        settings,
        gateway,
        stop,
    });
    let _ = stream.set_nodelay(true);
    // The TLS side is boxed: a task is as large as its largest state, and
    // a plain connection's are small.
    if link.settings.tls.is_none() {
        serve_http1(stream, link, Instant::now()).await
    } else {
        Box::pin(serve_tls(stream, link)).await
    }
}

/// `stream` with writes that wait at most `timeout` for the client to take
/// bytes, boxed, for hyper to serve (the fast path times its own writes:
/// an idle connection holds no timer for them).
fn timed<S: AsyncWrite>(stream: S, timeout: Duration) -> Pin<Box<TimeoutWriter<S>>> {
    let mut stream = TimeoutWriter::new(stream);
    stream.set_timeout(Some(timeout));
    Box::pin(stream)
}

/// Serves a TLS connection: HTTP/2 or HTTP/1.1, as ALPN agreed.
async fn serve_tls(stream: TcpStream, link: Arc<Link>) {
    let Some(acceptor) = &link.settings.tls else {
        return;
    };
    let Some(stream) = handshake(acceptor, stream, &link.settings).await else {
        return;
    };
    if !tls::is_h2(stream.get_ref().1) {
        // Boxed: the TLS state moves from task to task as the connection
        // goes idle and busy again, and is large.
        return serve_http1(Box::new(stream), link, Instant::now()).await;
    }
    let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(H2_PING_EVERY))
        .keep_alive_timeout(H2_PING_TIMEOUT)
        .initial_connection_window_size(H2_CONNECTION_WINDOW)
        .max_header_list_size(link.settings.max_head_bytes as u32)
        .serve_connection(
            TokioIo::new(timed(stream, link.settings.client_timeout)),
            service(link.clone()),
        );
    link.ended(until_stopped!(conn, link.stop));
}

/// The TLS handshake, within the client timeout. A failed one is counted,
/// unless the client closed before saying anything (a TCP health check, or
/// the readiness probe's own connect).
async fn handshake<IO>(
    acceptor: &TlsAcceptor,
    stream: IO,
    settings: &ListenerSettings,
) -> Option<tokio_rustls::server::TlsStream<IO>>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    match tokio::time::timeout(settings.client_timeout, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => return Some(stream),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            tracing::debug!(error = %e, "client closed before its TLS handshake");
        }
        Ok(Err(e)) => {
            settings.refused("tls_handshake");
            tracing::debug!(error = %e, "TLS handshake failed");
        }
        Err(_) => {
            settings.refused("tls_handshake");
            tracing::debug!("TLS handshake timed out");
        }
    }
    None
}

impl ListenerSettings {
    fn refused(&self, reason: &str) {
        self.refused_connections.with_label_values(&[reason]).inc();
    }
}

/// Serves an HTTP/1.1 connection whose next request is awaited since
/// `idle_since`: on the fast path while its requests are the fast path's,
/// then on hyper. Once idle on the fast path, it is parked (`park`) and
/// this task ends. Not an `async fn`: its future is spawned by `park`,
/// which it calls, so it says it is `Send` rather than have the compiler
/// work that out from itself (an `async fn` does not compile here).
#[allow(clippy::manual_async_fn)]
fn serve_http1<C>(io: C, link: Arc<Link>, idle_since: Instant) -> impl Future<Output = ()> + Send
where
    C: AsyncRead + AsyncWrite + Socket + Send + Unpin + 'static,
{
    async move {
        let (io, read) = match link
            .gateway
            .serve_fast(&link.conn, io, &link.stop, idle_since)
            .await
        {
            Served::Closed => return,
            Served::Idle(io, since) => return park(io, link, since),
            Served::HandOff(io, read) => (io, read),
        };
        let io = timed(io, link.settings.client_timeout);
        let conn = hyper_http1(&link.settings)
            .serve_connection(TokioIo::new(Rewind::new(read, io)), service(link.clone()))
            .with_upgrades();
        link.ended(until_stopped!(conn, link.stop));
    }
}

/// Parks an idle connection in a task of its own until its next request
/// (served in a new task), its client timeout since `idle_since`, or
/// shutdown.
fn park<C>(io: C, link: Arc<Link>, idle_since: Instant)
where
    C: AsyncRead + AsyncWrite + Socket + Send + Unpin + 'static,
{
    let deadline = tokio::time::Instant::from_std(idle_since + link.settings.client_timeout);
    let resume = |io, (link, since)| {
        tokio::spawn(serve_http1(io, link, since));
    };
    if let Some(parked) = Parked::new(io, (link.clone(), idle_since), resume, deadline, &link.stop)
    {
        tokio::spawn(parked);
    }
}

/// hyper's HTTP/1.1 server settings. Built outside `serve_http1`: its
/// locals would live in every serving task.
fn hyper_http1(settings: &ListenerSettings) -> hyper::server::conn::http1::Builder {
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(settings.client_timeout)
        .max_buf_size(settings.max_head_bytes)
        .max_headers(MAX_HEADERS);
    http1
}

/// hyper's service: every request goes to `Gateway::handle`.
fn service(
    link: Arc<Link>,
) -> impl hyper::service::Service<
    hyper::Request<Incoming>,
    Response = hyper::Response<Tracked>,
    Error = Infallible,
    Future = impl std::future::Future<Output = Result<hyper::Response<Tracked>, Infallible>> + Send,
> + Clone {
    service_fn(move |req: hyper::Request<Incoming>| {
        let link = link.clone();
        // Boxed: `handle`'s state is several KiB, and hyper moves the
        // service's future into an HTTP/2 stream's task (and keeps it in an
        // HTTP/1 connection's, idle or not); the box is all that moves. The
        // box is made first and the future written into it, which lets the
        // optimiser build it in place rather than on the stack and copy it
        // whole (not guaranteed; callgrind shows the 9 KiB copy gone).
        async move {
            let handling = Box::write(Box::new_uninit(), link.gateway.handle(&link.conn, req));
            Ok::<_, Infallible>(Box::into_pin(handling).await)
        }
    })
}

/// Serves a hyper connection to its end; once `stop` is set it is told
/// to finish its current exchange and close (`Connection: close`, or
/// HTTP/2 GOAWAY). A macro: hyper's two connection types share no trait.
/// The connection is boxed: a serving task is as large as its largest
/// state, and most connections never leave the fast path.
macro_rules! until_stopped {
    ($conn:expr, $stop:expr) => {{
        let mut conn = Box::pin($conn);
        let stopped = tokio::select! {
            done = conn.as_mut() => Some(done),
            _ = $stop.wait() => None,
        };
        match stopped {
            Some(done) => done,
            None => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        }
    }};
}
use until_stopped;
