//! A client's request body on its way upstream over hyper's client, with
//! what the forwarding side needs to know about it: when the upstream has
//! taken all of it, and whether the client stalled while it waited.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::sync::Notify;

use crate::proxy::silence::Silence;

/// A client that sent nothing of its body for the client timeout.
#[derive(Debug, thiserror::Error)]
#[error("the client sent nothing of its body for {0:?}")]
pub struct ClientStalled(Duration);

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

    pub(super) fn empty() -> Self {
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
