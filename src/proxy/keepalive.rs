//! A keep-alive connection between its bursts of requests. Once it has been
//! idle for `HOLD_UPSTREAM` (its buffers and upstream connection given
//! back, see `fast`), it waits for its next request in a small task of its
//! own holding its socket and little else, as nginx's keep-alive wait does;
//! the task that served it, sized for serving, ends.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tokio::net::TcpStream;
use tokio::sync::futures::OwnedNotified;
use tokio::time::{Instant, Sleep};

use super::stop::Stop;

/// A client connection whose socket can be waited on without a read
/// buffer: plain TCP, or TLS over it (a TLS connection with bytes already
/// decrypted is never idle: the fast path reads those first).
pub trait Socket {
    fn tcp(&self) -> &TcpStream;
}

impl Socket for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl<S: Socket> Socket for tokio_rustls::server::TlsStream<S> {
    fn tcp(&self) -> &TcpStream {
        self.get_ref().0.tcp()
    }
}

impl<S: Socket> Socket for Box<S> {
    fn tcp(&self) -> &TcpStream {
        S::tcp(self)
    }
}

pin_project! {
    /// An idle connection's task: waits until its socket has bytes to
    /// read, or has been closed by the client, and then hands it on
    /// (`resume`, with what goes with it); or, at `deadline` or shutdown,
    /// closes it. A future of its own rather than an `async fn`, so it
    /// holds each of these once and nothing more.
    pub struct Parked<C, T, F> {
        held: Option<(C, T, F)>,
        #[pin]
        late: Sleep,
        #[pin]
        stopped: OwnedNotified,
    }
}

impl<C, T, F> Parked<C, T, F>
where
    C: Socket,
    F: FnOnce(C, T),
{
    /// `io` parked until `deadline`; none at shutdown (it is closed).
    pub fn new(io: C, with: T, resume: F, deadline: Instant, stop: &Stop) -> Option<Self> {
        Some(Self {
            stopped: stop.waiter()?,
            late: tokio::time::sleep_until(deadline),
            held: Some((io, with, resume)),
        })
    }
}

impl<C, T, F> Future for Parked<C, T, F>
where
    C: Socket,
    F: FnOnce(C, T),
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        let Some((io, _, _)) = this.held.as_ref() else {
            return Poll::Ready(());
        };
        match io.tcp().poll_read_ready(cx) {
            Poll::Ready(Ok(())) => {
                if let Some((io, with, resume)) = this.held.take() {
                    resume(io, with);
                }
                return Poll::Ready(());
            }
            Poll::Ready(Err(_)) => return Poll::Ready(()),
            Poll::Pending => {}
        }
        if this.late.poll(cx).is_ready() || this.stopped.poll(cx).is_ready() {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}
