//! The public listener: `server.threads` threads, each with a
//! single-threaded runtime accepting on the same socket, so a connection
//! and everything it does stays on one core without cross-thread wakeups.
//! Each connection speaks HTTP/1.1 in clear, or TLS with HTTP/2 or
//! HTTP/1.1 as ALPN agreed; HTTP/1.1 starts on the fast path (`fast`) and
//! moves to hyper at its first request the fast path does not take. A
//! client that takes no bytes of an answer for `client_timeout` loses its
//! connection. At shutdown every connection is closed gracefully: idle ones
//! at once, busy ones after their answer.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use prometheus::{IntCounterVec, IntGauge};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_io_timeout::TimeoutWriter;
use tokio_rustls::TlsAcceptor;

use super::exchange::Tracked;
use super::fast::rewind::Rewind;
use super::fast::{Served, Socket};
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
        let (settings, gateway, stop) = (settings.clone(), gateway.clone(), gateway.stopping());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name(format!("idgate-proxy-{n}"))
            .spawn(move || runtime.block_on(accept(listener, settings, gateway, stop)))?;
    }
    Ok(())
}

async fn accept(
    listener: std::net::TcpListener,
    settings: Arc<ListenerSettings>,
    gateway: Arc<Gateway>,
    mut stop: watch::Receiver<bool>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot use the public listener");
            return;
        }
    };
    let for_connections = stop.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) => {
                    let (settings, gateway) = (settings.clone(), gateway.clone());
                    let stop = for_connections.clone();
                    tokio::spawn(serve(stream, addr.ip(), settings, gateway, stop));
                }
                Err(e) => {
                    // Out of file descriptors, most likely: let some close.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = stop.wait_for(|stop| *stop) => break,
        }
    }
    drop(listener);
    std::future::pending::<()>().await;
}

async fn serve(
    stream: TcpStream,
    client: std::net::IpAddr,
    settings: Arc<ListenerSettings>,
    gateway: Arc<Gateway>,
    stop: watch::Receiver<bool>,
) {
    let _open = InFlight::start(&settings.open_connections);
    let stream = timed(stream, settings.client_timeout);
    let conn = Arc::new(gateway.connection(Some(client)));
    // The TLS side is boxed: a connection's task is as large as its largest
    // state, and a plain connection's idle state is small.
    let served = match &settings.tls {
        None => serve_http1(stream, &settings, gateway, conn, stop).await,
        Some(acceptor) => {
            Box::pin(serve_tls(acceptor, stream, &settings, gateway, conn, stop)).await
        }
    };
    if let Err(e) = served {
        if e.is_parse() || e.is_parse_too_large() {
            settings.refused("malformed");
        }
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// `stream` with writes that wait at most `timeout` for the client to take
/// bytes, boxed. Not in `serve` itself: a value moved out of an async
/// function's local still takes room in its state.
fn timed(stream: TcpStream, timeout: Duration) -> Pin<Box<TimeoutWriter<TcpStream>>> {
    let _ = stream.set_nodelay(true);
    let mut stream = TimeoutWriter::new(stream);
    stream.set_timeout(Some(timeout));
    Box::pin(stream)
}

/// Serves a TLS connection: HTTP/2 or HTTP/1.1, as ALPN agreed.
async fn serve_tls(
    acceptor: &TlsAcceptor,
    stream: Pin<Box<TimeoutWriter<TcpStream>>>,
    settings: &ListenerSettings,
    gateway: Arc<Gateway>,
    conn: Arc<Conn>,
    stop: watch::Receiver<bool>,
) -> Result<(), hyper::Error> {
    let Some(stream) = handshake(acceptor, stream, settings).await else {
        return Ok(());
    };
    if tls::is_h2(stream.get_ref().1) {
        let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(Some(H2_PING_EVERY))
            .keep_alive_timeout(H2_PING_TIMEOUT)
            .initial_connection_window_size(H2_CONNECTION_WINDOW)
            .max_header_list_size(settings.max_head_bytes as u32)
            .serve_connection(TokioIo::new(stream), service(gateway, conn));
        until_stopped!(conn, stop)
    } else {
        serve_http1(stream, settings, gateway, conn, stop).await
    }
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

/// Serves an HTTP/1.1 connection: on the fast path while its requests are
/// the fast path's, then on hyper.
async fn serve_http1<C>(
    io: C,
    settings: &ListenerSettings,
    gateway: Arc<Gateway>,
    conn: Arc<Conn>,
    stop: watch::Receiver<bool>,
) -> Result<(), hyper::Error>
where
    C: AsyncRead + AsyncWrite + Socket + Send + Unpin + 'static,
{
    let (io, read) = match gateway.serve_fast(&conn, io, stop.clone()).await {
        Served::Closed => return Ok(()),
        Served::HandOff(io, read) => (io, read),
    };
    let conn = hyper_http1(settings)
        .serve_connection(TokioIo::new(Rewind::new(read, io)), service(gateway, conn))
        .with_upgrades();
    until_stopped!(conn, stop)
}

/// hyper's HTTP/1.1 server settings. Built outside `serve_http1`: its
/// locals live in every connection's task, idle or not.
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
    gateway: Arc<Gateway>,
    conn: Arc<Conn>,
) -> impl hyper::service::Service<
    hyper::Request<Incoming>,
    Response = hyper::Response<Tracked>,
    Error = Infallible,
    Future = impl std::future::Future<Output = Result<hyper::Response<Tracked>, Infallible>> + Send,
> + Clone {
    service_fn(move |req: hyper::Request<Incoming>| {
        let (gateway, conn) = (gateway.clone(), conn.clone());
        // Boxed: `handle`'s state is several KiB, and hyper moves the
        // service's future into an HTTP/2 stream's task (and keeps it in an
        // HTTP/1 connection's, idle or not); the box is all that moves.
        async move { Ok::<_, Infallible>(Box::pin(gateway.handle(&conn, req)).await) }
    })
}

/// Serves a hyper connection to its end; once `stop` turns true it is told
/// to finish its current exchange and close (`Connection: close`, or
/// HTTP/2 GOAWAY). A macro: hyper's two connection types share no trait.
/// The connection is boxed: a connection's task is as large as its largest
/// state, and most connections never leave the fast path (or the TLS
/// handshake, boxed likewise), whose idle state is small.
macro_rules! until_stopped {
    ($conn:expr, $stop:expr) => {{
        let mut conn = Box::pin($conn);
        let mut stop = $stop;
        let stopped = tokio::select! {
            done = conn.as_mut() => Some(done),
            _ = stop.wait_for(|stop| *stop) => None,
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
