//! A scripted HTTP/1 upstream for the wire-level tests: it records every
//! byte each connection brings, parses the requests in them (bodies framed
//! by Content-Length or chunked, so keep-alive and pipelined requests are
//! served in turn), and answers each with the bytes the test chose, verbatim,
//! malformed or not.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::values_named;

/// One request as the upstream read it.
#[derive(Debug, Clone)]
pub struct ParsedRequest {
    /// Which accepted connection it came on, counting from 0.
    pub connection: usize,
    pub method: String,
    pub target: String,
    /// The minor version: 1 for HTTP/1.1.
    pub version: u8,
    pub headers: Vec<(String, String)>,
    /// The body, chunked encoding removed.
    pub body: Vec<u8>,
    /// Exactly the bytes of this request, head and body, as they arrived.
    pub raw: Vec<u8>,
}

impl ParsedRequest {
    /// Every value of header `name` (any letter case).
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        values_named(&self.headers, name)
    }
}

/// What the upstream writes back to one request.
pub struct Reply {
    bytes: Vec<u8>,
    close: bool,
}

impl Reply {
    /// `bytes` exactly as given; the connection stays open for more.
    pub fn raw(bytes: impl Into<Vec<u8>>) -> Self {
        Self {
            bytes: bytes.into(),
            close: false,
        }
    }

    /// `200 OK` with `body`, framed by Content-Length.
    pub fn ok(body: &str) -> Self {
        Self::raw(format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ))
    }

    /// The upstream closes the connection once this reply is written.
    pub fn then_close(mut self) -> Self {
        self.close = true;
        self
    }
}

type Script = dyn Fn(&ParsedRequest) -> Reply + Send + Sync;

#[derive(Default)]
struct Log {
    /// Every byte received, one entry per accepted connection.
    received: Vec<Vec<u8>>,
    requests: Vec<ParsedRequest>,
}

/// A running scripted upstream on loopback.
pub struct RawUpstream {
    pub addr: SocketAddr,
    log: Arc<Mutex<Log>>,
}

impl RawUpstream {
    /// Answers each request with what `script` returns for it.
    pub async fn start(script: impl Fn(&ParsedRequest) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Log::default()));
        let script: Arc<Script> = Arc::new(script);
        let shared = log.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let id = {
                    let mut log = shared.lock().unwrap();
                    log.received.push(Vec::new());
                    log.received.len() - 1
                };
                let connection = Connection {
                    stream,
                    id,
                    buf: Vec::new(),
                    log: shared.clone(),
                };
                tokio::spawn(connection.serve(script.clone()));
            }
        });
        Self { addr, log }
    }

    /// Answers every request `200 OK` with its target as the body.
    pub async fn answering_targets() -> Self {
        Self::start(|r| Reply::ok(&r.target)).await
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The requests read in full so far, in the order they were answered.
    pub fn requests(&self) -> Vec<ParsedRequest> {
        self.log.lock().unwrap().requests.clone()
    }

    pub fn targets(&self) -> Vec<String> {
        self.requests().into_iter().map(|r| r.target).collect()
    }

    /// How many connections the upstream has accepted.
    pub fn connections(&self) -> usize {
        self.log.lock().unwrap().received.len()
    }

    /// Every byte received, connection after connection, as text.
    pub fn received_text(&self) -> String {
        let log = self.log.lock().unwrap();
        String::from_utf8_lossy(&log.received.concat()).into_owned()
    }

    /// Asserts that the upstream read requests for exactly `targets`, in
    /// that order, and not one byte besides them.
    pub fn assert_received_only(&self, targets: &[&str]) {
        let log = self.log.lock().unwrap();
        let got: Vec<&str> = log.requests.iter().map(|r| r.target.as_str()).collect();
        let all = String::from_utf8_lossy(&log.received.concat()).into_owned();
        assert_eq!(got, targets, "the upstream received:\n{all}");
        let framed: usize = log.requests.iter().map(|r| r.raw.len()).sum();
        let total: usize = log.received.iter().map(Vec::len).sum();
        assert_eq!(
            framed, total,
            "the upstream received bytes outside those requests:\n{all}"
        );
    }
}

/// One accepted connection and the bytes read from it but not yet parsed.
struct Connection {
    stream: TcpStream,
    id: usize,
    buf: Vec<u8>,
    log: Arc<Mutex<Log>>,
}

enum Framing {
    Length(usize),
    Chunked,
}

impl Connection {
    async fn serve(mut self, script: Arc<Script>) {
        while let Some(request) = self.request().await {
            let reply = script(&request);
            // Logged before the answer goes, so a test holding the answer
            // finds the request in the log.
            self.log.lock().unwrap().requests.push(request);
            if self.stream.write_all(&reply.bytes).await.is_err() {
                return;
            }
            if reply.close {
                let _ = self.stream.shutdown().await;
                return;
            }
        }
    }

    /// Reads more bytes; `None` once the peer has closed.
    async fn fill(&mut self) -> Option<()> {
        let mut chunk = [0u8; 8192];
        let n = self.stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        self.buf.extend_from_slice(&chunk[..n]);
        self.log.lock().unwrap().received[self.id].extend_from_slice(&chunk[..n]);
        Some(())
    }

    /// Reads until at least `len` unparsed bytes are held.
    async fn hold(&mut self, len: usize) -> Option<()> {
        while self.buf.len() < len {
            self.fill().await?;
        }
        Some(())
    }

    /// The next whole request; `None` when the connection ends, or when
    /// what arrived is no request this upstream can frame.
    async fn request(&mut self) -> Option<ParsedRequest> {
        let (mut pos, mut request, framing) = loop {
            match parse_head(&self.buf, self.id) {
                Ok(Some(head)) => break head,
                Ok(None) => self.fill().await?,
                Err(()) => return None,
            }
        };
        match framing {
            Framing::Length(len) => {
                self.hold(pos + len).await?;
                request.body = self.buf[pos..pos + len].to_vec();
                pos += len;
            }
            Framing::Chunked => loop {
                let (used, size) = loop {
                    match httparse::parse_chunk_size(&self.buf[pos..]) {
                        Ok(httparse::Status::Complete(parsed)) => break parsed,
                        Ok(httparse::Status::Partial) => self.fill().await?,
                        Err(_) => return None,
                    }
                };
                pos += used;
                if size == 0 {
                    // Trailer fields, up to the empty line.
                    loop {
                        let end = self.line_end(pos).await?;
                        let empty = end == pos;
                        pos = end + 2;
                        if empty {
                            break;
                        }
                    }
                    break;
                }
                let size = usize::try_from(size).ok()?;
                self.hold(pos + size + 2).await?;
                request.body.extend_from_slice(&self.buf[pos..pos + size]);
                if &self.buf[pos + size..pos + size + 2] != b"\r\n" {
                    return None;
                }
                pos += size + 2;
            },
        }
        request.raw = self.buf.drain(..pos).collect();
        Some(request)
    }

    /// Where the CRLF ending the line that starts at `from` is.
    async fn line_end(&mut self, from: usize) -> Option<usize> {
        loop {
            if let Some(at) = self.buf[from..].windows(2).position(|w| w == b"\r\n") {
                return Some(from + at);
            }
            self.fill().await?;
        }
    }
}

/// The request head at the start of `buf`, with its length and how its
/// body is framed; `Ok(None)` while incomplete, `Err` when malformed.
fn parse_head(
    buf: &[u8],
    connection: usize,
) -> Result<Option<(usize, ParsedRequest, Framing)>, ()> {
    let mut fields = [httparse::EMPTY_HEADER; 128];
    let mut parsed = httparse::Request::new(&mut fields);
    let len = match parsed.parse(buf).map_err(|_| ())? {
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial => return Ok(None),
    };
    let request = ParsedRequest {
        connection,
        method: parsed.method.unwrap().to_string(),
        target: parsed.path.unwrap().to_string(),
        version: parsed.version.unwrap(),
        headers: parsed
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_string(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect(),
        body: Vec::new(),
        raw: Vec::new(),
    };
    // A request framed twice over, or in a way this upstream does not
    // know, is left unparsed: a test then sees its bytes as unframed.
    let lengths = request.headers_named("content-length");
    let framing = match request.headers_named("transfer-encoding").as_slice() {
        [te] if lengths.is_empty() && te.trim().eq_ignore_ascii_case("chunked") => Framing::Chunked,
        [] => match lengths.as_slice() {
            [] => Framing::Length(0),
            [len] if !len.is_empty() && len.bytes().all(|b| b.is_ascii_digit()) => {
                Framing::Length(len.parse().map_err(|_| ())?)
            }
            _ => return Err(()),
        },
        _ => return Err(()),
    };
    Ok(Some((len, request, framing)))
}
