//! The upstream the gateway forwards to: its address (re-resolved in the
//! background, so a container that moves is found again) and the peer
//! options every request's connection uses.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use pingora::upstreams::peer::HttpPeer;

use crate::config::UpstreamConfig;

/// How often the upstream host name is looked up again.
const RESOLVE_EVERY: Duration = Duration::from_secs(10);

/// The upstream as configured, with its last resolved address.
pub struct Upstream {
    host: String,
    port: u16,
    tls: bool,
    /// `host:port` as written in the config, for the Host header.
    authority: String,
    options: UpstreamConfig,
    addr: ArcSwapOption<SocketAddr>,
}

impl Upstream {
    pub fn new(url: &url::Url, options: UpstreamConfig) -> Arc<Self> {
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
        Arc::new(Self {
            host,
            port,
            tls: url.scheme() == "https",
            authority,
            options,
            addr: ArcSwapOption::new(literal),
        })
    }

    /// The `Host` value naming the upstream itself.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    pub fn pass_host_header(&self) -> bool {
        self.options.pass_host_header
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

    /// The peer for one request, or `None` while the host has never resolved.
    pub fn peer(&self) -> Option<HttpPeer> {
        let addr = *self.addr.load_full()?;
        let mut peer = HttpPeer::new(addr, self.tls, self.host.clone());
        let o = &mut peer.options;
        o.connection_timeout = Some(self.options.connect_timeout);
        o.total_connection_timeout = Some(self.options.connect_timeout);
        o.read_timeout = Some(self.options.read_timeout);
        o.write_timeout = Some(self.options.write_timeout);
        o.idle_timeout = Some(self.options.idle_timeout);
        o.verify_cert = self.options.tls_verify;
        o.verify_hostname = self.options.tls_verify;
        Some(peer)
    }
}
