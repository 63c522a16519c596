//! The hyper path's side of the upstream: hyper's HTTP/1.1 client run over
//! a connection from the shared pool, for the requests the gateway's own
//! client (`fast::direct`) does not send. A client connection keeps the
//! upstream connections its requests used, by either client (`Pinned`),
//! so a keep-alive client costs no pool lookup; once they have sat idle
//! for `HOLD_UPSTREAM`, or when the client connection closes, they go back
//! (hyper's once hyper hands them back, those left between requests), for
//! the fast path as much as for the hyper path.

use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use http_body::Body as _;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::client::conn::TrySendError;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;

use super::{
    may_send_again, Outgoing, Pool, Reached, Upstream, UpstreamError, Wire, HOLD_UPSTREAM,
};
use crate::policy::fields;
use crate::proxy::fast::deadline::Deadline;

/// Upstream connections one client connection keeps at most (an HTTP/2
/// client's requests run side by side, each on one of them).
const MAX_PINNED: usize = 16;

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

/// One upstream connection under hyper's client.
struct Link {
    sender: SendRequest<Outgoing>,
    idle_since: Instant,
    /// Tells the connection's task that it was let go between requests,
    /// and since when it has been idle; `None` on a connection that may
    /// switch protocols, which never goes back to the pool.
    hand_back: Option<oneshot::Sender<Instant>>,
}

impl Link {
    /// Runs hyper's client over `wire` on a task of its own. The task gives
    /// the connection back to `pool` once hyper is done with it, if it was
    /// let go between requests (`release`). A link for a request that asks
    /// to switch protocols lets the switch through instead.
    async fn attach(wire: Wire, pool: &Arc<Pool>, upgrade: bool) -> Result<Self, UpstreamError> {
        let idle_since = wire.idle_since();
        let io = wire.io;
        // hyper reports a connection ready only once all of a request went
        // out when it queues writes (vectored I/O, as TCP and rustls do);
        // a connection without them never goes back to the pool.
        let poolable = !upgrade && tokio::io::AsyncWrite::is_write_vectored(&io);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(UpstreamError::Exchange)?;
        let hand_back = if !poolable {
            tokio::spawn(async move {
                if let Err(e) = conn.with_upgrades().await {
                    tracing::debug!(error = %e, "upstream connection ended");
                }
            });
            None
        } else {
            let (hand_back, mut let_go) = oneshot::channel();
            let pool = pool.clone();
            tokio::spawn(async move {
                match conn.without_shutdown().await {
                    Ok(parts) if parts.read_buf.is_empty() => {
                        // Nothing was sent when hyper finished first: the
                        // upstream closed it, or it was dropped mid-answer.
                        if let Ok(since) = let_go.try_recv() {
                            pool.park(Wire::new(parts.io.into_inner(), since));
                        }
                    }
                    Ok(_) => {}
                    Err(e) => tracing::debug!(error = %e, "upstream connection ended"),
                }
            });
            Some(hand_back)
        };
        Ok(Self {
            sender,
            idle_since,
            hand_back,
        })
    }

    /// Ready for a request, and not idle so long that it is given up.
    fn ready_within(&self, idle_timeout: Duration) -> bool {
        self.sender.is_ready() && self.idle_since.elapsed() < idle_timeout
    }

    /// Open, but still carrying an answer.
    fn busy(&self) -> bool {
        !self.sender.is_ready() && !self.sender.is_closed()
    }

    /// Lets the connection go to the pool: at once when it is between
    /// requests, else once its answer has streamed to the end (a
    /// connection whose answer is cut short is closed by hyper instead).
    fn release(self) {
        let Self {
            mut sender,
            idle_since,
            hand_back,
        } = self;
        let Some(hand_back) = hand_back else { return };
        if sender.is_ready() {
            let _ = hand_back.send(idle_since);
        } else if !sender.is_closed() {
            tokio::spawn(async move {
                if sender.ready().await.is_ok() {
                    let _ = hand_back.send(Instant::now());
                }
            });
        }
    }
}

/// The upstream connections a client connection keeps between its
/// requests; they go back to the shared pool once idle for
/// `HOLD_UPSTREAM`, or when it closes.
#[derive(Default)]
pub struct Pinned {
    /// Made at the first connection kept: most client connections never
    /// keep one.
    kept: OnceLock<Arc<Mutex<Kept>>>,
}

struct Kept {
    /// Where the connections go once let go.
    pool: Arc<Pool>,
    links: Vec<Link>,
    /// Connections of the gateway's own client (`fast::direct`), between
    /// requests.
    wires: Vec<Held>,
    /// Whether a task is letting idle connections go (`let_idle_go`).
    watched: bool,
}

impl Kept {
    fn new(pool: &Arc<Pool>) -> Arc<Mutex<Self>> {
        Arc::new(Mutex::new(Self {
            pool: pool.clone(),
            links: Vec::new(),
            wires: Vec::new(),
            watched: false,
        }))
    }

    /// Whether one more connection may be kept; when it may, the task that
    /// lets idle ones go runs.
    fn room(&mut self, shared: &Arc<Mutex<Kept>>) -> bool {
        if self.links.len() + self.wires.len() >= MAX_PINNED {
            return false;
        }
        if !self.watched {
            self.watched = true;
            tokio::spawn(let_idle_go(Arc::downgrade(shared)));
        }
        true
    }
}

/// The client connection has closed (its `Pinned` held the one lasting
/// reference): what it kept goes back.
impl Drop for Kept {
    fn drop(&mut self) {
        std::mem::take(&mut self.links)
            .into_iter()
            .for_each(Link::release);
        for (wire, _) in std::mem::take(&mut self.wires) {
            self.pool.park(wire);
        }
    }
}

/// A connection of the gateway's own client between requests, and the
/// deadline its reads are timed by: kept with it, so that a request on it
/// arms no timer of its own (what `Deadline` is for).
pub type Held = (Wire, Deadline);

/// Where a connection of the gateway's own client goes once its answer
/// has ended cleanly: back to the client connection's kept ones, or to the
/// pool once that connection has closed (or keeps enough).
pub struct Home {
    kept: Weak<Mutex<Kept>>,
    pool: Arc<Pool>,
}

impl Home {
    /// Takes `wire` home, idle since it rested, with the deadline its
    /// reads were timed by.
    pub fn keep(self, wire: Wire, wait: Deadline) {
        let Some(shared) = self.kept.upgrade() else {
            return self.pool.park(wire);
        };
        let mut kept = shared.lock().expect("pinned links");
        if kept.room(&shared) {
            kept.wires.push((wire, wait));
        } else {
            drop(kept);
            self.pool.park(wire);
        }
    }
}

impl Pinned {
    /// Sends `req` on a connection this client connection keeps (or a
    /// pooled or new one) and waits for the answer's head. A request that
    /// may switch protocols (`upgrade`) goes on a connection of its own.
    /// A failed reused connection is replaced once by a new one when
    /// `may_send_again` says so.
    pub async fn send(
        &self,
        upstream: &Upstream,
        req: Request<Outgoing>,
        upgrade: bool,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let head_request = req.method() == http::Method::HEAD;
        let kept = if upgrade { None } else { self.take(upstream) };
        let (mut link, reused) = match kept {
            Some(link) => (link, true),
            None => Box::pin(new_link(upstream, upgrade, true)).await?,
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
        let response = match link.sender.try_send_request(req).await {
            Ok(response) => response,
            Err(failed) if reused => {
                Box::pin(send_again(upstream, upgrade, failed, replay, &mut link)).await?
            }
            Err(failed) => return Err(UpstreamError::Exchange(failed.into_error())),
        };
        link.idle_since = Instant::now();
        if reusable_after(head_request, &response) {
            self.keep(link, &upstream.pool);
        }
        Ok(response)
    }

    /// A connection of the gateway's own client this client connection
    /// kept, if there is one (`fast::send` checks that it is usable).
    pub fn take_wire(&self) -> Option<Held> {
        self.kept.get()?.lock().expect("pinned links").wires.pop()
    }

    /// Where a connection of the gateway's own client goes once its
    /// answer has ended.
    pub fn home(&self, upstream: &Upstream) -> Home {
        let pool = &upstream.pool;
        Home {
            kept: Arc::downgrade(self.kept.get_or_init(|| Kept::new(pool))),
            pool: pool.clone(),
        }
    }

    /// A kept connection ready for a request; the ones closed or idle too
    /// long are let go, the ones still streaming an answer kept.
    fn take(&self, upstream: &Upstream) -> Option<Link> {
        let idle_timeout = upstream.idle_timeout();
        let mut kept = self.kept.get()?.lock().expect("pinned links");
        let links = &mut kept.links;
        links.retain(|l| l.ready_within(idle_timeout) || l.busy());
        let ready = links.iter().rposition(|l| l.ready_within(idle_timeout))?;
        Some(links.swap_remove(ready))
    }

    /// Keeps `link` for this client connection's next requests, or lets it
    /// go when enough are kept. The first one kept starts the task that
    /// lets them go once idle.
    fn keep(&self, link: Link, pool: &Arc<Pool>) {
        let shared = self.kept.get_or_init(|| Kept::new(pool));
        let mut kept = shared.lock().expect("pinned links");
        if kept.room(shared) {
            kept.links.push(link);
        } else {
            drop(kept);
            link.release();
        }
    }
}

/// Lets each kept connection go to the pool once it has been ready and
/// idle for `HOLD_UPSTREAM`; ends when none is kept, or the client
/// connection is gone (its `Kept` lets the rest go).
async fn let_idle_go(kept: Weak<Mutex<Kept>>) {
    let mut due = Instant::now() + HOLD_UPSTREAM;
    loop {
        tokio::time::sleep_until(due.into()).await;
        let Some(kept) = kept.upgrade() else { return };
        let mut kept = kept.lock().expect("pinned links");
        let now = Instant::now();
        let mut next = now + HOLD_UPSTREAM;
        for mut link in std::mem::take(&mut kept.links) {
            let until = link.idle_since + HOLD_UPSTREAM;
            if link.sender.is_ready() && until <= now {
                link.release();
            } else if link.sender.is_ready() {
                next = next.min(until);
                kept.links.push(link);
            } else if !link.sender.is_closed() {
                // Still carrying an answer: its hold counts from this look
                // on, so it goes at most one hold after its answer ends.
                link.idle_since = now;
                kept.links.push(link);
            }
        }
        for (wire, wait) in std::mem::take(&mut kept.wires) {
            let until = wire.idle_since() + HOLD_UPSTREAM;
            if until <= now {
                kept.pool.park(wire);
            } else {
                next = next.min(until);
                kept.wires.push((wire, wait));
            }
        }
        if kept.links.is_empty() && kept.wires.is_empty() {
            kept.watched = false;
            return;
        }
        due = next;
    }
}

/// After a reused connection failed a request: sends it once more on a new
/// connection (which becomes `link`) when hyper gave it back unsent, or
/// else its copy `replay`, made when `may_send_again` allowed it. Boxed
/// where awaited, as `new_link`.
async fn send_again(
    upstream: &Upstream,
    upgrade: bool,
    mut failed: TrySendError<Request<Outgoing>>,
    replay: Option<Request<Outgoing>>,
    link: &mut Link,
) -> Result<Response<Incoming>, UpstreamError> {
    let Some(req) = failed.take_message().or(replay) else {
        return Err(UpstreamError::Exchange(failed.into_error()));
    };
    tracing::debug!(error = %failed.error(), "reused upstream connection failed; sending again on a new one");
    *link = new_link(upstream, upgrade, false).await?.0;
    link.sender
        .send_request(req)
        .await
        .map_err(UpstreamError::Exchange)
}

/// A link on a pooled (`pooled`) or new connection, and whether the
/// connection was used before. Boxed where awaited: most requests go on a
/// kept link, and this future would otherwise be most of the size of
/// `Pinned::send`'s, so of every HTTP/2 stream's.
async fn new_link(
    upstream: &Upstream,
    upgrade: bool,
    pooled: bool,
) -> Result<(Link, bool), UpstreamError> {
    let (wire, reused) = if pooled {
        upstream.connection().await?
    } else {
        (upstream.dial().await?, false)
    };
    Ok((Link::attach(wire, &upstream.pool, upgrade).await?, reused))
}

/// A bodyless request like `req`, to send again.
fn copy_head(req: &Request<Outgoing>) -> Request<Outgoing> {
    let mut again = Request::new(Outgoing::empty());
    *again.method_mut() = req.method().clone();
    *again.uri_mut() = req.uri().clone();
    *again.version_mut() = req.version();
    *again.headers_mut() = req.headers().clone();
    again
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::oneshot;

    use super::*;
    use crate::config::UpstreamConfig;

    /// Reads one request head from `stream`.
    async fn read_head(stream: &mut TcpStream) {
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            assert_eq!(stream.read(&mut byte).await.unwrap(), 1, "a request head");
            head.push(byte[0]);
        }
    }

    /// An upstream on loopback whose first answer sends half its body,
    /// the rest once `rest` fires; then it answers `again` to a second
    /// request on the same connection. The test's upstream and the pool.
    async fn half_answering() -> (Arc<Upstream>, oneshot::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = url::Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
        let upstream = Upstream::new(&url, UpstreamConfig::default()).unwrap();
        let (rest, go) = oneshot::channel();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            read_head(&mut stream).await;
            let head = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nabc";
            stream.write_all(head).await.unwrap();
            let _ = go.await;
            stream.write_all(b"def").await.unwrap();
            read_head(&mut stream).await;
            let again = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nagain";
            stream.write_all(again).await.unwrap();
            let _ = stream.read(&mut [0u8; 1]).await;
        });
        (upstream, rest)
    }

    fn get() -> Request<Outgoing> {
        Request::builder().uri("/").body(Outgoing::empty()).unwrap()
    }

    /// Waits a little for the pool to hold `n` connections.
    async fn pooled(upstream: &Upstream, n: usize) -> bool {
        for _ in 0..50 {
            if upstream.pool.parked() == n {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    /// A connection let go while its answer streams goes to the pool once
    /// the answer has ended, and carries the next request as raw bytes (as
    /// the fast path uses it) with nothing of the first answer left over.
    #[tokio::test]
    async fn a_connection_let_go_mid_answer_is_pooled_once_the_answer_ends() {
        let (upstream, rest) = half_answering().await;
        let pinned = Pinned::default();
        let answer = pinned.send(&upstream, get(), false).await.unwrap();
        drop(pinned);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(upstream.pool.parked(), 0, "pooled with its answer unread");

        rest.send(()).unwrap();
        let body = answer.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"abcdef");
        assert!(pooled(&upstream, 1).await, "not pooled after its answer");

        let mut wire = upstream.pool.take(Duration::from_secs(60)).unwrap();
        wire.io
            .write_all(b"GET /next HTTP/1.1\r\nHost: up\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        while !answer.ends_with(b"again") {
            let mut chunk = [0u8; 64];
            let n = wire.io.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed after {answer:?}");
            answer.extend_from_slice(&chunk[..n]);
        }
        assert!(answer.starts_with(b"HTTP/1.1 200 OK\r\n"), "{answer:?}");
    }

    /// A connection whose answer the client dropped halfway is closed,
    /// never pooled, even once the upstream has sent the rest.
    #[tokio::test]
    async fn a_connection_whose_answer_was_dropped_is_never_pooled() {
        let (upstream, rest) = half_answering().await;
        let pinned = Pinned::default();
        let answer = pinned.send(&upstream, get(), false).await.unwrap();
        drop(pinned);
        drop(answer);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            upstream.pool.parked(),
            0,
            "pooled halfway through an answer"
        );
        rest.send(()).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(upstream.pool.parked(), 0, "pooled after the rest arrived");
    }
}
