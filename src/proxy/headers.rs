//! Request-header rules applied before anything goes upstream: client copies
//! of identity headers are removed, and the X-Forwarded-* set is written by
//! the gateway (kept from the client only when it is a trusted proxy).

use std::net::IpAddr;

use pingora::http::RequestHeader;

/// Header names that only the gateway may set. Besides these, every header
/// whose name starts with `x-idgate-` is reserved.
pub const DEFAULT_IDENTITY_HEADERS: &[&str] = &[
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-preferred-username",
    "x-idgate-provider",
    "x-idgate-assertion",
];

const RESERVED_PREFIX: &[u8] = b"x-idgate-";

/// Compares a header name with a lower-case, dash-separated reserved name the
/// way lenient upstream stacks would: any letter case, `_` standing for `-`.
fn same_name(candidate: &[u8], reserved: &[u8]) -> bool {
    candidate.len() == reserved.len() && candidate.iter().zip(reserved).all(|(&c, &r)| fold(c) == r)
}

fn fold(c: u8) -> u8 {
    match c {
        b'_' => b'-',
        c => c.to_ascii_lowercase(),
    }
}

fn is_reserved(name: &[u8], reserved: &[String]) -> bool {
    (name.len() >= RESERVED_PREFIX.len()
        && same_name(&name[..RESERVED_PREFIX.len()], RESERVED_PREFIX))
        || reserved.iter().any(|r| same_name(name, r.as_bytes()))
}

/// Removes every copy of every reserved identity header from `req`, whatever
/// its case or separator. Returns how many distinct names were removed.
pub fn strip_identity_headers(req: &mut RequestHeader, reserved: &[String]) -> usize {
    let doomed: Vec<http::HeaderName> = req
        .headers
        .keys()
        .filter(|n| is_reserved(n.as_str().as_bytes(), reserved))
        .cloned()
        .collect();
    for name in &doomed {
        req.remove_header(name);
    }
    doomed.len()
}

/// What the gateway knows about the connection a request came in on.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub client_ip: Option<IpAddr>,
    /// The client is a configured trusted proxy: its X-Forwarded-* are kept.
    pub trusted: bool,
    /// `https` when the public listener terminates TLS.
    pub proto: &'static str,
}

/// Writes X-Forwarded-For, -Proto and -Host. From an untrusted client the
/// incoming values (and `Forwarded`, `X-Real-IP`) are discarded.
pub fn set_forwarded(req: &mut RequestHeader, peer: Peer) {
    let client = peer.client_ip.map(|ip| ip.to_string()).unwrap_or_default();
    if peer.trusted {
        let chain: Vec<&str> = req
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let xff = if chain.is_empty() {
            client
        } else {
            format!("{}, {client}", chain.join(", "))
        };
        insert(req, "x-forwarded-for", &xff);
        if !req.headers.contains_key("x-forwarded-proto") {
            insert(req, "x-forwarded-proto", peer.proto);
        }
        if !req.headers.contains_key("x-forwarded-host") {
            set_forwarded_host(req);
        }
    } else {
        req.remove_header("forwarded");
        req.remove_header("x-real-ip");
        insert(req, "x-forwarded-for", &client);
        insert(req, "x-forwarded-proto", peer.proto);
        set_forwarded_host(req);
    }
}

fn set_forwarded_host(req: &mut RequestHeader) {
    let host = req.headers.get(http::header::HOST).cloned().or_else(|| {
        req.uri
            .authority()
            .and_then(|a| http::HeaderValue::from_str(a.as_str()).ok())
    });
    match host {
        Some(h) => {
            let _ = req.insert_header("x-forwarded-host", h);
        }
        None => {
            req.remove_header("x-forwarded-host");
        }
    }
}

fn insert(req: &mut RequestHeader, name: &'static str, value: &str) {
    // Values come from a parsed request or an IP address: always valid header
    // values; an invalid one is dropped rather than forwarded.
    if let Ok(v) = http::HeaderValue::from_str(value) {
        let _ = req.insert_header(name, v);
    } else {
        req.remove_header(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reserved() -> Vec<String> {
        DEFAULT_IDENTITY_HEADERS
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn strips_every_variant_and_copy() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        for name in [
            "X-Forwarded-User",
            "x-forwarded-user",
            "X_FORWARDED_USER",
            "x-Forwarded_Email",
            "X-Idgate-Anything",
            "x_idgate_assertion",
        ] {
            req.append_header(name.to_string(), "mallory").unwrap();
        }
        req.append_header("x-forwarded-users", "kept").unwrap();
        req.append_header("accept", "text/html").unwrap();
        strip_identity_headers(&mut req, &reserved());
        let mut left: Vec<&str> = req.headers.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, vec!["accept", "x-forwarded-users"]);
    }

    #[test]
    fn untrusted_client_cannot_forge_forwarding() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.append_header("host", "gw.example").unwrap();
        req.append_header("x-forwarded-for", "6.6.6.6").unwrap();
        req.append_header("x-forwarded-proto", "https").unwrap();
        req.append_header("x-forwarded-host", "evil.example")
            .unwrap();
        req.append_header("forwarded", "for=6.6.6.6").unwrap();
        let peer = Peer {
            client_ip: Some("10.1.2.3".parse().unwrap()),
            trusted: false,
            proto: "http",
        };
        set_forwarded(&mut req, peer);
        assert_eq!(req.headers["x-forwarded-for"], "10.1.2.3");
        assert_eq!(req.headers["x-forwarded-proto"], "http");
        assert_eq!(req.headers["x-forwarded-host"], "gw.example");
        assert!(req.headers.get("forwarded").is_none());
    }

    #[test]
    fn trusted_proxy_chain_is_extended() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.append_header("host", "gw.example").unwrap();
        req.append_header("x-forwarded-for", "1.1.1.1").unwrap();
        req.append_header("x-forwarded-for", "2.2.2.2").unwrap();
        req.append_header("x-forwarded-proto", "https").unwrap();
        let peer = Peer {
            client_ip: Some("10.0.0.9".parse().unwrap()),
            trusted: true,
            proto: "http",
        };
        set_forwarded(&mut req, peer);
        assert_eq!(req.headers["x-forwarded-for"], "1.1.1.1, 2.2.2.2, 10.0.0.9");
        assert_eq!(req.headers["x-forwarded-proto"], "https");
        assert_eq!(req.headers["x-forwarded-host"], "gw.example");
    }
}
