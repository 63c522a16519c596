//! The public listener: `server.threads` threads, each with a
//! single-threaded runtime accepting on the same socket, so a connection
//! and everything it does stays on one core without cross-thread wakeups.
//! Each connection is served by hyper: HTTP/1.1 in clear, or TLS with
//! HTTP/2 or HTTP/1.1 as ALPN agreed.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::{tls, Gateway};

/// Longest wait for a request head (and for a TLS handshake), so idle or
/// slow clients cannot hold connections open forever.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// How the listener serves connections.
pub struct ListenerSettings {
    pub threads: usize,
    pub tls: Option<TlsAcceptor>,
    /// The largest request head hyper buffers; the gateway's own, smaller
    /// limits answer with a page before that.
    pub max_head_bytes: usize,
}

/// Starts the accepting threads; they stop accepting when `stop` turns
/// true, and keep serving open connections until the process exits.
pub fn start(
    listener: std::net::TcpListener,
    settings: ListenerSettings,
    gateway: Arc<Gateway>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    listener.set_nonblocking(true)?;
    let settings = Arc::new(settings);
    for n in 0..settings.threads.max(1) {
        let listener = listener.try_clone()?;
        let (settings, gateway, stop) = (settings.clone(), gateway.clone(), stop.clone());
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
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) => {
                    let (settings, gateway) = (settings.clone(), gateway.clone());
                    tokio::spawn(serve(stream, addr.ip(), settings, gateway));
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
) {
    let _ = stream.set_nodelay(true);
    let conn = Arc::new(gateway.connection(Some(client)));
    let service = service_fn(move |req: hyper::Request<Incoming>| {
        let (gateway, conn) = (gateway.clone(), conn.clone());
        async move { Ok::<_, Infallible>(gateway.handle(&conn, req).await) }
    });
    let mut h1 = hyper::server::conn::http1::Builder::new();
    h1.timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_buf_size(settings.max_head_bytes);
    let served = match &settings.tls {
        None => {
            h1.serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await
        }
        Some(acceptor) => {
            let stream = match tokio::time::timeout(HEAD_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => return tracing::debug!(error = %e, "TLS handshake failed"),
                Err(_) => return tracing::debug!("TLS handshake timed out"),
            };
            if tls::is_h2(stream.get_ref().1) {
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .timer(TokioTimer::new())
                    .max_header_list_size(settings.max_head_bytes as u32)
                    .serve_connection(TokioIo::new(stream), service)
                    .await
            } else {
                h1.serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await
            }
        }
    };
    if let Err(e) = served {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
