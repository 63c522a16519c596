//! Shared harness for the black-box tests: the real `idgate` binary started
//! on loopback with a config written for the test, a real upstream server
//! (echo, streaming, SSE, WebSocket, slow and failing routes), a scripted
//! raw HTTP/1 upstream, and a raw keep-alive client reading answers off the
//! wire.

#![allow(dead_code)]

pub mod fake_tts;
pub mod login;
pub mod nginx;
pub mod pg;
pub mod raw_upstream;
pub mod upstream;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port for a listener the test will start later.
///
/// The port is taken below the kernel's ephemeral range, so no client
/// connection of a parallel test can be given it between now and the bind
/// (a port bound to 0 and released can be, which made startups fail with
/// "Address already in use"). Each port is handed out once per test process.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOWEST: u32 = 10_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768);
    if ephemeral_start <= LOWEST + 1_000 {
        return bound_then_released();
    }
    let span = ephemeral_start - LOWEST;
    let start = std::process::id().wrapping_mul(7_919) % span;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(n < span, "no free loopback port below {ephemeral_start}");
        let port = (LOWEST + (start + n) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn bound_then_released() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn idgate_bin() -> &'static str {
    env!("CARGO_BIN_EXE_idgate")
}

/// An HTTP client that never uses a proxy from the environment and never
/// follows redirects (tests look at what the browser was told).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// A running gateway process; killed when dropped.
pub struct Gateway {
    child: Option<Child>,
    pub public: SocketAddr,
    /// `https://localhost:<port>` when the test configured `[server.tls]`,
    /// else `http://127.0.0.1:<port>`.
    pub origin: String,
    pub admin: SocketAddr,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    log_path: PathBuf,
}

/// How to start a gateway for a test.
#[derive(Default)]
pub struct Options<'a> {
    /// TOML merged over the test defaults (listeners, upstream, database).
    pub toml: &'a str,
    pub env: Vec<(&'a str, String)>,
    /// Reuse this folder (for restart tests) instead of a new one.
    pub dir: Option<tempfile::TempDir>,
}

impl Gateway {
    /// Starts a gateway in front of `upstream` with extra config `toml`.
    pub async fn start(upstream: &str, toml: &str) -> Gateway {
        Self::start_with(
            upstream,
            Options {
                toml,
                ..Default::default()
            },
        )
        .await
    }

    pub async fn start_with(upstream: &str, opts: Options<'_>) -> Gateway {
        let dir = opts.dir.unwrap_or_else(|| tempfile::tempdir().unwrap());
        let public: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let origin = if opts.toml.contains("[server.tls]") {
            format!("https://localhost:{}", public.port())
        } else {
            format!("http://{public}")
        };
        let mut table: toml::Table = format!(
            r#"
            [server]
            listen = "{public}"
            public_url = "{origin}"
            threads = 2
            shutdown_grace = "10s"
            [upstream]
            url = "{upstream}"
            [admin]
            listen = "{admin}"
            [database]
            url = "sqlite://{}/idgate.db"
            "#,
            dir.path().display()
        )
        .parse()
        .unwrap();
        merge(&mut table, opts.toml.parse().expect("test TOML parses"));
        let config_path = dir.path().join("idgate.toml");
        std::fs::write(&config_path, toml::to_string(&table).unwrap()).unwrap();
        let log_path = dir.path().join("idgate.log");
        let child = spawn(&config_path, dir.path(), &log_path, &opts.env);
        let mut gw = Gateway {
            child: Some(child),
            public,
            origin,
            admin,
            dir,
            config_path,
            log_path,
        };
        gw.wait_ready().await;
        gw
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.origin, path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Everything the gateway logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The log once it holds every one of `needles` (the gateway writes its
    /// log from a background thread), or panics after a few seconds.
    pub async fn logs_with(&self, needles: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let logs = self.logs();
            if needles.iter().all(|n| logs.contains(n)) {
                return logs;
            }
            assert!(
                Instant::now() < deadline,
                "log lacks one of {needles:?}:\n{logs}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `/metrics` as it is now.
    pub async fn metrics(&self) -> String {
        client()
            .get(self.admin_url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// `/metrics` once it holds `needle` (counters settle just after a
    /// response ends), or panics after ten seconds.
    pub async fn metrics_with(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let m = self.metrics().await;
            if m.contains(needle) {
                return m;
            }
            assert!(Instant::now() < deadline, "metrics lack {needle:?}:\n{m}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = client();
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("idgate exited during startup ({status}):\n{}", self.logs());
            }
            if let Ok(r) = client.get(self.admin_url("/readyz")).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "idgate not ready after 30s:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends a signal to the process.
    pub fn signal(&self, sig: i32) {
        let rc = unsafe { libc::kill(self.pid() as i32, sig) };
        assert_eq!(rc, 0, "kill failed");
    }

    /// Waits for the process to exit and returns its exit code.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "idgate did not exit:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the process and hands back its folder (database and all).
    pub async fn stop(mut self) -> tempfile::TempDir {
        self.signal(libc::SIGTERM);
        self.wait_exit(Duration::from_secs(15)).await;
        let placeholder = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, placeholder)
    }

    /// Stops the process and starts another in front of `upstream` with
    /// `toml`, on the same folder (database and all).
    pub async fn restart(self, upstream: &str, toml: &str) -> Gateway {
        let dir = self.stop().await;
        Gateway::start_with(
            upstream,
            Options {
                toml,
                dir: Some(dir),
                ..Default::default()
            },
        )
        .await
    }

    /// Peak resident memory of the process, in bytes (Linux `VmHWM`).
    pub fn peak_rss(&self) -> u64 {
        self.memory("VmHWM:")
    }

    /// Resident anonymous memory of the process now (its heap, not its
    /// code), in bytes (Linux `RssAnon`).
    pub fn anon_rss(&self) -> u64 {
        self.memory("RssAnon:")
    }

    /// A `/proc/<pid>/status` line given in kB, in bytes.
    fn memory(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with(field)).unwrap();
        let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kb * 1024
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn spawn(config: &Path, cwd: &Path, log: &Path, env: &[(&str, String)]) -> Child {
    let log_file = std::fs::File::create(log).unwrap();
    let mut cmd = Command::new(idgate_bin());
    cmd.arg("serve")
        .arg("--config")
        .arg(config)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file);
    for (k, _) in std::env::vars() {
        if k.starts_with("IDGATE_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("idgate binary runs")
}

/// Runs `idgate <args>` to completion in `cwd` with `env`; returns
/// (exit code, stdout, stderr).
pub fn run_idgate(args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(idgate_bin());
    cmd.args(args).current_dir(cwd).stdin(Stdio::null());
    for (k, _) in std::env::vars() {
        if k.starts_with("IDGATE_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("idgate binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// One client connection kept open across requests, as a browser keeps it.
pub struct KeepAlive(std::io::BufReader<std::net::TcpStream>);

/// How long a read from the gateway may take before a test fails.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Every value of header `name` (any letter case) among `headers`.
pub fn values_named<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// One response as it came off the wire, its body framed the way RFC 9112
/// §6.3 says a client must.
#[derive(Debug)]
pub struct WireResponse {
    pub status: u16,
    /// Names and values exactly as sent.
    pub headers: Vec<(String, String)>,
    /// The body, chunked encoding removed.
    pub body: Vec<u8>,
}

impl WireResponse {
    /// Every value of header `name` (any letter case).
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        values_named(&self.headers, name)
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl KeepAlive {
    pub fn open(addr: std::net::SocketAddr) -> Self {
        let s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        Self(std::io::BufReader::new(s))
    }

    /// Sends `GET path` with `cookie`; returns the status of the answer.
    pub fn get(&mut self, path: &str, cookie: &str) -> u16 {
        self.send(format!(
            "GET {path} HTTP/1.1\r\nHost: gw\r\nCookie: {cookie}\r\n\r\n"
        ));
        self.response(false).status
    }

    /// Writes `bytes` as they are.
    pub fn send(&mut self, bytes: impl AsRef<[u8]>) {
        std::io::Write::write_all(self.0.get_mut(), bytes.as_ref()).unwrap();
    }

    /// Reads the next response, an interim (1xx) one included; `to_head`
    /// when it answers a HEAD request (no body then, whatever the headers
    /// say). Panics on a head that declares its length twice over (both
    /// Content-Length and Transfer-Encoding, or two lengths): the framing a
    /// request smuggler plays with.
    pub fn response(&mut self, to_head: bool) -> WireResponse {
        use std::io::{BufRead, Read};
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let n = self.0.read_until(b'\n', &mut head).unwrap();
            assert!(
                n > 0,
                "connection closed inside a response head: {:?}",
                String::from_utf8_lossy(&head)
            );
        }
        let mut fields = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Response::new(&mut fields);
        let complete = parsed.parse(&head).unwrap_or_else(|e| {
            panic!(
                "malformed response head ({e}): {:?}",
                String::from_utf8_lossy(&head)
            )
        });
        assert!(complete.is_complete());
        let status = parsed.code.unwrap();
        let headers: Vec<(String, String)> = parsed
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_string(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect();
        let mut response = WireResponse {
            status,
            headers,
            body: Vec::new(),
        };
        let chunked = response.headers_named("transfer-encoding");
        let lengths = response.headers_named("content-length");
        assert!(
            chunked.is_empty() || lengths.is_empty(),
            "a response framed twice over: {response:?}"
        );
        assert!(
            lengths.len() < 2,
            "two Content-Length headers: {response:?}"
        );
        if to_head || status < 200 || status == 204 || status == 304 {
            return response;
        }
        if let Some(te) = chunked.last() {
            assert!(
                te.trim().to_ascii_lowercase().ends_with("chunked"),
                "not chunked: {response:?}"
            );
            response.body = self.chunked_body();
        } else if let Some(length) = lengths.first() {
            let length: usize = length.trim().parse().expect("a decimal Content-Length");
            response.body = vec![0; length];
            self.0.read_exact(&mut response.body).unwrap();
        } else {
            self.0.read_to_end(&mut response.body).unwrap();
        }
        response
    }

    fn chunked_body(&mut self) -> Vec<u8> {
        use std::io::{BufRead, Read};
        let mut body = Vec::new();
        loop {
            let mut line = Vec::new();
            self.0.read_until(b'\n', &mut line).unwrap();
            let (_, size) = match httparse::parse_chunk_size(&line) {
                Ok(httparse::Status::Complete(parsed)) => parsed,
                _ => panic!("bad chunk size line {:?}", String::from_utf8_lossy(&line)),
            };
            if size == 0 {
                break;
            }
            let start = body.len();
            body.resize(start + size as usize + 2, 0);
            self.0.read_exact(&mut body[start..]).unwrap();
            assert!(body.ends_with(b"\r\n"), "chunk without its CRLF");
            body.truncate(body.len() - 2);
        }
        // Trailer fields, up to the empty line.
        loop {
            let mut line = Vec::new();
            self.0.read_until(b'\n', &mut line).unwrap();
            if line == b"\r\n" {
                return body;
            }
            assert!(!line.is_empty(), "connection closed inside a chunked body");
        }
    }

    /// Whatever the gateway sends within `within` without being asked:
    /// nothing, after a well-framed answer.
    pub fn unasked(&mut self, within: Duration) -> Vec<u8> {
        use std::io::{BufRead, Read};
        let mut stray = self.0.buffer().to_vec();
        self.0.consume(stray.len());
        if stray.is_empty() {
            self.0.get_mut().set_read_timeout(Some(within)).unwrap();
            let mut buf = [0u8; 4096];
            if let Ok(n) = self.0.read(&mut buf) {
                stray.extend_from_slice(&buf[..n]);
            }
            self.0
                .get_mut()
                .set_read_timeout(Some(READ_TIMEOUT))
                .unwrap();
        }
        stray
    }

    /// The connection's reading side, for reading past what `response`
    /// frames.
    pub fn reader(&mut self) -> &mut impl std::io::Read {
        &mut self.0
    }

    /// Whether the gateway closed this connection within `within`.
    pub fn closed_within(&mut self, within: Duration) -> bool {
        use std::io::Read;
        self.0.get_mut().set_read_timeout(Some(within)).unwrap();
        matches!(self.0.read(&mut [0u8; 1]), Ok(0))
    }
}

/// A self-signed certificate for `localhost` and its key, written into
/// `dir`: the `[server.tls]` section naming both files, and the
/// certificate (for a client to trust).
pub fn listener_cert(dir: &std::path::Path) -> (String, rcgen::CertifiedKey) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    let toml = format!(
        "[server.tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        cert_path.display(),
        key_path.display()
    );
    (toml, cert)
}
