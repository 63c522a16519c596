//! The header rules of `policy::fields` and `policy::cookies` carried out
//! on hyper's `HeaderMap`s: client copies of identity and credential headers
//! are removed, hop-by-hop headers go no further than their connection, the
//! gateway's own cookies stay behind, and the X-Forwarded-* set is written
//! by the gateway (kept from the client only when it is a trusted proxy).

use std::net::IpAddr;

use http::header::{self, GetAll, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Version};

use crate::policy::cookies;
use crate::policy::fields::{self, RequestField};
use crate::policy::forwarding::{self, Line, Relayed, Value};

/// Removes every copy of every reserved identity or credential header from
/// `headers`, whatever its case or separator, and the `_` look-alikes of
/// framing and forwarding headers. Returns how many distinct names were
/// removed.
pub fn strip_client_reserved(headers: &mut HeaderMap, identity: &[String]) -> usize {
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|n| {
            fields::request_field(n.as_str().as_bytes(), identity) == RequestField::Reserved
        })
        .cloned()
        .collect();
    for name in &doomed {
        headers.remove(name);
    }
    doomed.len()
}

/// Whether a request is a WebSocket handshake (RFC 6455 §4.1): an HTTP/1.1
/// `GET` with
/// `Upgrade: websocket` and `Connection: upgrade`. No other protocol switch
/// is let through: a tunnel to the upstream would carry requests that the
/// gateway never sees, so never checks.
pub fn is_websocket(version: Version, method: &Method, headers: &HeaderMap) -> bool {
    // HTTP/1.0 has no protocol switch: it ignores `Upgrade` (RFC 9110 §7.8).
    version == Version::HTTP_11
        && method == Method::GET
        && headers
            .get(header::UPGRADE)
            .is_some_and(is_websocket_protocol)
        && connection_tokens(&headers.get_all(header::CONNECTION))
            .any(|t| t.eq_ignore_ascii_case("upgrade"))
}

/// Whether an `Upgrade` value names the WebSocket protocol.
pub fn is_websocket_protocol(value: &HeaderValue) -> bool {
    value.as_bytes().eq_ignore_ascii_case(b"websocket")
}

/// The tokens of a request's `Connection` values (a value that is not
/// visible ASCII names none).
pub fn connection_tokens<'a>(values: &'a GetAll<'a, HeaderValue>) -> impl Iterator<Item = &'a str> {
    values
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

/// Removes a request's hop-by-hop headers and the ones its `Connection`
/// names (never the host, the framing, or what the gateway writes); with
/// `upgrade`, `Upgrade` is kept and `Connection: upgrade` said again, so a
/// protocol switch passes through. One scan finds them, so a request
/// without any costs no lookups.
pub fn strip_request_hop_by_hop(headers: &mut HeaderMap, upgrade: bool, identity: &[String]) {
    let field = |n: &HeaderName| fields::request_field(n.as_str().as_bytes(), identity);
    strip_hop(
        headers,
        upgrade,
        |n| {
            matches!(
                field(n),
                RequestField::HopByHop
                    | RequestField::Connection
                    | RequestField::TransferEncoding
                    | RequestField::Upgrade
            )
        },
        |n| fields::connection_may_remove(field(n)),
    );
}

/// Removes a response's hop-by-hop headers and the ones its `Connection`
/// names (never its framing); with `switched`, `Upgrade` is kept and
/// `Connection: upgrade` said again.
pub fn strip_response_hop_by_hop(headers: &mut HeaderMap, switched: bool) {
    strip_hop(
        headers,
        switched,
        |n| fields::response_hop_by_hop(n.as_str().as_bytes()),
        |n| n != header::CONTENT_LENGTH,
    );
}

/// Removes the headers `hop` says concern one connection and, when there
/// are any, those `Connection` names that `may_go` lets go.
fn strip_hop(
    headers: &mut HeaderMap,
    keep_upgrade: bool,
    hop: impl Fn(&HeaderName) -> bool,
    may_go: impl Fn(&HeaderName) -> bool,
) {
    let doomed: Vec<HeaderName> = headers.keys().filter(|n| hop(n)).cloned().collect();
    if doomed.is_empty() {
        return;
    }
    let kept = if keep_upgrade {
        headers.remove(header::UPGRADE)
    } else {
        None
    };
    // Only names present are looked at: `keep-alive` or `close`, the usual
    // tokens, cost no allocation.
    let named: Vec<HeaderName> = connection_tokens(&headers.get_all(header::CONNECTION))
        .filter(|t| headers.contains_key(*t))
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .filter(|n| may_go(n))
        .collect();
    for name in named.iter().chain(&doomed) {
        headers.remove(name);
    }
    if let Some(protocol) = kept {
        headers.insert(header::UPGRADE, protocol);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Takes the gateway's own cookies out of the `Cookie` headers; a header
/// left with none goes. Requests that carry none cost no allocation.
pub fn strip_own_cookies(headers: &mut HeaderMap) {
    let values = headers.get_all(header::COOKIE);
    if !values.iter().any(|v| cookies::holds_own(v.as_bytes())) {
        return;
    }
    let mut kept: Vec<HeaderValue> = Vec::new();
    for value in values {
        let mut out = Vec::with_capacity(value.len());
        if cookies::append_foreign(value.as_bytes(), &mut out) > 0 {
            kept.extend(HeaderValue::from_bytes(&out).ok());
        }
    }
    headers.remove(header::COOKIE);
    for value in kept {
        headers.append(header::COOKIE, value);
    }
}

/// What the gateway knows about the connection a request came in on.
#[derive(Debug, Clone)]
pub struct Peer {
    pub client_ip: Option<IpAddr>,
    /// The client's address as a header value, written once per connection.
    pub client_value: HeaderValue,
    /// The client is a configured trusted proxy: its X-Forwarded-* are kept.
    pub trusted: bool,
    /// `https` when the public listener terminates TLS.
    pub proto: &'static str,
}

impl Peer {
    pub fn new(client_ip: Option<IpAddr>, trusted: bool, proto: &'static str) -> Self {
        let text = client_ip.map(|ip| ip.to_string()).unwrap_or_default();
        Self {
            client_ip,
            client_value: HeaderValue::from_str(&text).expect("an IP address is a header value"),
            trusted,
            proto,
        }
    }
}

pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static(Line::For.name());
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static(Line::Proto.name());
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static(Line::Host.name());

/// What a trusted proxy said itself about a request (`None` from any
/// other client): its X-Forwarded-For chain, and whether it sent
/// X-Forwarded-Proto and -Host.
pub fn relayed<'a>(
    headers: &'a HeaderMap,
    peer: &Peer,
) -> Option<Relayed<impl Iterator<Item = &'a [u8]>>> {
    peer.trusted.then(|| Relayed {
        chain: headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .map(HeaderValue::as_bytes),
        proto: headers.contains_key(&X_FORWARDED_PROTO),
        host: headers.contains_key(&X_FORWARDED_HOST),
    })
}

/// The X-Forwarded-For, -Proto and -Host fields a request goes upstream
/// with, when it does.
pub type Forwarded = [Option<(HeaderName, HeaderValue)>; 3];

/// The X-Forwarded-For, -Proto and -Host a request goes upstream with
/// (`authority` is the request target's — HTTP/2's `:authority` — which
/// wins over Host), each taken out of `headers` where the request carries
/// it: from an untrusted client every forwarding header it sent goes,
/// from a trusted proxy the ones the gateway writes anew.
pub fn forwarded(headers: &mut HeaderMap, authority: Option<&str>, peer: &Peer) -> Forwarded {
    if !peer.trusted {
        // Every forwarding header of an untrusted client goes, whatever it
        // is called (X-Forwarded-Prefix, -Port, Forwarded, X-Real-IP, …).
        let forged: Vec<HeaderName> = headers
            .keys()
            .filter(|n| {
                fields::request_field(n.as_str().as_bytes(), &[]) == RequestField::Forwarding
            })
            .cloned()
            .collect();
        for name in &forged {
            headers.remove(name);
        }
    }
    let host = authority
        .and_then(|a| HeaderValue::from_str(a).ok())
        .or_else(|| headers.get(header::HOST).cloned());
    let relayed = relayed(headers, peer);
    // Written once the trusted proxy's own lines are no longer borrowed.
    let mut lines: [Option<(HeaderName, HeaderValue)>; 3] = Default::default();
    forwarding::forwarded(
        peer.client_value.as_bytes(),
        host.is_some(),
        relayed,
        |line, value| {
            let value = match value {
                Value::Peer => peer.client_value.clone(),
                Value::Proto => HeaderValue::from_static(peer.proto),
                Value::Host => host.clone().expect("named only with a host"),
                Value::Chain(chain) => {
                    HeaderValue::from_bytes(chain).unwrap_or_else(|_| peer.client_value.clone())
                }
            };
            let name = match line {
                Line::For => X_FORWARDED_FOR,
                Line::Proto => X_FORWARDED_PROTO,
                Line::Host => X_FORWARDED_HOST,
            };
            lines[line as usize] = Some((name, value));
        },
    );
    if peer.trusted {
        for (name, _) in lines.iter().flatten() {
            headers.remove(name);
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::policy::fields::default_identity_headers;

    /// The request's fields once the gateway's X-Forwarded-* are in.
    fn set_forwarded(headers: &mut HeaderMap, authority: Option<&str>, peer: &Peer) {
        for (name, value) in forwarded(headers, authority, peer).into_iter().flatten() {
            headers.append(name, value);
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn strips_every_variant_and_copy() {
        let mut h = headers(&[
            ("X-Forwarded-User", "mallory"),
            ("x-forwarded-user", "mallory"),
            ("X_FORWARDED_USER", "mallory"),
            ("x-Forwarded_Email", "mallory"),
            ("X-Idgate-Anything", "mallory"),
            ("x_idgate_assertion", "mallory"),
            ("x-forwarded-users", "kept"),
            ("accept", "text/html"),
        ]);
        strip_client_reserved(&mut h, &default_identity_headers());
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, vec!["accept", "x-forwarded-users"]);
    }

    #[test]
    fn underscore_lookalikes_of_framing_and_forwarding_headers_are_stripped() {
        let mut h = headers(&[
            ("content_length", "5"),
            ("Transfer_Encoding", "chunked"),
            ("x_forwarded_for", "10.0.0.1"),
            ("X_Forwarded_Host", "admin.internal"),
            ("x_real_ip", "10.0.0.1"),
            ("x-forwarded-for", "kept here, replaced later"),
            ("x_custom_header", "kept"),
        ]);
        strip_client_reserved(&mut h, &default_identity_headers());
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, vec!["x-forwarded-for", "x_custom_header"]);
    }

    #[test]
    fn hop_by_hop_headers_and_the_ones_connection_names_are_removed() {
        let mut h = headers(&[
            ("connection", "close, X-Secret-Hop"),
            ("x-secret-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("proxy-authorization", "Basic Zm9vOmJhcg=="),
            ("upgrade", "websocket"),
            ("accept", "*/*"),
        ]);
        strip_request_hop_by_hop(&mut h, false, &default_identity_headers());
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, vec!["accept"]);
    }

    #[test]
    fn a_websocket_upgrade_keeps_its_protocol() {
        let mut h = headers(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "WebSocket"),
        ]);
        assert!(is_websocket(Version::HTTP_11, &Method::GET, &h));
        strip_request_hop_by_hop(&mut h, true, &default_identity_headers());
        assert_eq!(h["upgrade"], "WebSocket");
        assert_eq!(h["connection"], "upgrade");
    }

    #[test]
    fn only_websocket_handshakes_are_upgrades() {
        let h2c = headers(&[
            ("connection", "Upgrade, HTTP2-Settings"),
            ("upgrade", "h2c"),
        ]);
        assert!(!is_websocket(Version::HTTP_11, &Method::GET, &h2c));
        let ws = headers(&[("connection", "upgrade"), ("upgrade", "websocket")]);
        assert!(!is_websocket(Version::HTTP_11, &Method::POST, &ws));
        let no_connection = headers(&[("upgrade", "websocket")]);
        assert!(!is_websocket(
            Version::HTTP_11,
            &Method::GET,
            &no_connection
        ));
        assert!(!is_websocket(Version::HTTP_10, &Method::GET, &ws));
    }

    #[test]
    fn connection_cannot_name_away_the_host_or_the_framing() {
        let mut h = headers(&[
            (
                "connection",
                "Host, Content-Length, X-Forwarded-User, X-Gone",
            ),
            ("host", "gw"),
            ("content-length", "3"),
            ("x-gone", "1"),
        ]);
        strip_request_hop_by_hop(&mut h, false, &default_identity_headers());
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, vec!["content-length", "host"]);
    }

    #[test]
    fn the_gateways_cookies_stay_behind() {
        let mut h = headers(&[
            ("cookie", "a=1; idgate_session=s"),
            ("cookie", "idgate_login_x=y"),
            ("cookie", "b=2"),
        ]);
        strip_own_cookies(&mut h);
        let left: Vec<&str> = h
            .get_all("cookie")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(left, vec!["a=1", "b=2"]);
    }

    #[test]
    fn untrusted_client_cannot_forge_forwarding() {
        let mut h = headers(&[
            ("host", "gw.example"),
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example"),
            ("forwarded", "for=6.6.6.6"),
        ]);
        let peer = Peer::new(Some("10.1.2.3".parse().unwrap()), false, "http");
        set_forwarded(&mut h, None, &peer);
        assert_eq!(h["x-forwarded-for"], "10.1.2.3");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "gw.example");
        assert!(h.get("forwarded").is_none());
    }

    #[test]
    fn the_peer_address_is_written_once_as_text() {
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(
            Peer::new(Some(v6), false, "http").client_value,
            "2001:db8::1"
        );
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(Peer::new(Some(v4), false, "http").client_value, "192.0.2.7");
        assert!(Peer::new(None, false, "http").client_value.is_empty());
    }

    #[test]
    fn http2_authority_wins_over_host() {
        let mut h = headers(&[("host", "other.example")]);
        let peer = Peer::new(Some("10.1.2.3".parse().unwrap()), false, "https");
        set_forwarded(&mut h, Some("gw.example:8443"), &peer);
        assert_eq!(h["x-forwarded-host"], "gw.example:8443");
    }

    #[test]
    fn trusted_proxy_chain_is_extended() {
        let mut h = headers(&[
            ("host", "gw.example"),
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-for", "2.2.2.2"),
            ("x-forwarded-proto", "https"),
        ]);
        let peer = Peer::new(Some("10.0.0.9".parse().unwrap()), true, "http");
        set_forwarded(&mut h, None, &peer);
        assert_eq!(h["x-forwarded-for"], "1.1.1.1, 2.2.2.2, 10.0.0.9");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "gw.example");
    }
}
