//! The upstream's request head on hyper's path, made from the client's
//! header map by the rules of `policy::fields`, `policy::cookies` and
//! `policy::forwarding`, in either of two forms: the map itself changed,
//! for hyper's client (`rewrite`), or HTTP/1.1 bytes written in one pass
//! over the map, for the gateway's own client (`write`), which leaves the
//! map as it is: no field is removed, inserted or copied into a value of
//! its own. The tests hold the two forms to the same fields.

use std::borrow::Cow;

use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::Version;

use super::fast::request::{forwarding_lines, line};
use super::headers::{self, Forwarded, Peer, X_FORWARDED_FOR};
use crate::policy::cookies;
use crate::policy::fields::{self, RequestField};

/// What the upstream's head says besides the client's fields.
pub struct Toward<'a> {
    /// The connection the request came in on.
    pub peer: &'a Peer,
    /// The configured identity header names.
    pub identity: &'a [String],
    /// `Host` naming the upstream, when the client's is not passed on
    /// (`upstream.pass_host_header = false`).
    pub host: Option<&'a HeaderValue>,
}

/// The authority of a request's target (HTTP/2's `:authority`, or an
/// absolute-form HTTP/1 target's), without user information (RFC 9112
/// §3.2.2).
fn target_authority(uri: &http::Uri) -> Option<Cow<'_, str>> {
    let a = uri.authority()?;
    Some(if !a.as_str().as_bytes().contains(&b'@') {
        Cow::Borrowed(a.as_str())
    } else if let Some(port) = a.port() {
        Cow::Owned(format!("{}:{port}", a.host()))
    } else {
        Cow::Owned(a.host().to_owned())
    })
}

/// Turns the client's request head into the upstream's, for hyper's
/// client, but for the fields the gateway adds: returns its X-Forwarded-*
/// (the identity headers are the caller's).
pub fn rewrite(parts: &mut Parts, upgrade: bool, to: &Toward<'_>) -> Forwarded {
    let h = &mut parts.headers;
    headers::strip_request_hop_by_hop(h, upgrade, to.identity);
    let authority = target_authority(&parts.uri);
    let forwarded = headers::forwarded(h, authority.as_deref(), to.peer);
    if let Some(host) = to.host {
        h.insert(header::HOST, host.clone());
    } else if let Some(v) = authority
        .as_deref()
        .and_then(|a| HeaderValue::from_str(a).ok())
    {
        // The target's authority wins over a Host header (RFC 9113
        // §8.3.1, RFC 9112 §3.2.2).
        h.insert(header::HOST, v);
    }
    if parts.version >= Version::HTTP_2 {
        join_cookies(h);
    }
    headers::strip_own_cookies(h);
    if authority.is_some() {
        parts.uri = parts
            .uri
            .path_and_query()
            .map_or_else(|| http::Uri::from_static("/"), |pq| pq.clone().into());
    }
    parts.version = Version::HTTP_11;
    forwarded
}

/// HTTP/2 may split `Cookie` into one header per cookie; HTTP/1.1 wants
/// them in one (RFC 9113 §8.2.3).
fn join_cookies(h: &mut HeaderMap) {
    if h.get_all(header::COOKIE).iter().nth(1).is_none() {
        return;
    }
    let joined: Vec<&[u8]> = h
        .get_all(header::COOKIE)
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    if let Ok(v) = HeaderValue::from_bytes(&joined.join(&b"; "[..])) {
        h.insert(header::COOKIE, v);
    }
}

/// Writes the upstream's HTTP/1.1 head for a request that will not switch
/// protocols, from the client's head as it is: the same fields `rewrite`
/// leaves and adds, X-Forwarded-* included; `identity` appends the
/// identity header lines.
pub fn write(
    out: &mut Vec<u8>,
    parts: &Parts,
    to: &Toward<'_>,
    identity: impl FnOnce(&mut Vec<u8>),
) {
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    // The path is `/` when the target names none (RFC 9112 §3.2.1), as
    // an authority-form target does.
    match parts.uri.path() {
        "" => out.push(b'/'),
        path => out.extend_from_slice(path.as_bytes()),
    }
    if let Some(query) = parts.uri.query() {
        out.push(b'?');
        out.extend_from_slice(query.as_bytes());
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");

    let h = &parts.headers;
    let authority = target_authority(&parts.uri);
    let client_host = match &authority {
        Some(a) => Some(a.as_bytes()),
        None => h.get(header::HOST).map(HeaderValue::as_bytes),
    };
    if let Some(host) = to.host.map(HeaderValue::as_bytes).or(client_host) {
        line(out, b"host", host);
    }
    let named = ConnectionNames(h.get_all(header::CONNECTION));
    let trusted = to.peer.trusted;
    for (name, value) in h {
        let field = fields::request_field(name.as_str().as_bytes(), to.identity);
        let goes = match field {
            RequestField::Keep
            | RequestField::Accept
            | RequestField::ContentLength
            | RequestField::Expect => !named.remove(name, field),
            // A trusted proxy's own, but for the chain written anew.
            RequestField::Forwarding => trusted && *name != X_FORWARDED_FOR,
            RequestField::Host
            | RequestField::Cookie
            | RequestField::TransferEncoding
            | RequestField::Connection
            | RequestField::Upgrade
            | RequestField::HopByHop
            | RequestField::Reserved => false,
        };
        if goes {
            line(out, name.as_str().as_bytes(), value.as_bytes());
        }
    }
    if !named.remove(&header::COOKIE, RequestField::Cookie) {
        cookie_lines(out, h, parts.version >= Version::HTTP_2);
    }
    let relayed = headers::relayed(h, to.peer);
    let (client, proto) = (to.peer.client_value.as_bytes(), to.peer.proto.as_bytes());
    forwarding_lines(out, client, proto, client_host, relayed);
    identity(out);
    out.extend_from_slice(b"\r\n");
}

/// The header names a request's `Connection` lists.
struct ConnectionNames<'a>(header::GetAll<'a, HeaderValue>);

impl ConnectionNames<'_> {
    /// Whether the field `name` goes because `Connection` names it: only
    /// fields `fields::connection_may_remove` lets go.
    fn remove(&self, name: &header::HeaderName, field: RequestField) -> bool {
        fields::connection_may_remove(field)
            && headers::connection_tokens(&self.0).any(|t| t.eq_ignore_ascii_case(name.as_str()))
    }
}

/// The request's `Cookie` lines without the gateway's own cookies (as they
/// came when it holds none): one line each, or all in one when `joined`
/// (HTTP/2's split cookies, RFC 9113 §8.2.3).
fn cookie_lines(out: &mut Vec<u8>, h: &HeaderMap, joined: bool) {
    let values = h.get_all(header::COOKIE);
    let own = values.iter().any(|v| cookies::holds_own(v.as_bytes()));
    if joined {
        cookie_line(out, values.iter(), own);
    } else {
        for value in values {
            cookie_line(out, std::iter::once(value), own);
        }
    }
}

/// Appends one `Cookie` line of `values` joined by `; `, the gateway's own
/// cookies taken out when there are any (`own`); none when that leaves
/// nothing.
fn cookie_line<'v>(out: &mut Vec<u8>, values: impl Iterator<Item = &'v HeaderValue>, own: bool) {
    let start = out.len();
    out.extend_from_slice(b"cookie: ");
    let mut pieces = 0;
    for value in values {
        let mark = out.len();
        if pieces > 0 {
            out.extend_from_slice(b"; ");
        }
        let kept = if own {
            cookies::append_foreign(value.as_bytes(), out)
        } else {
            out.extend_from_slice(value.as_bytes());
            1
        };
        if kept == 0 {
            out.truncate(mark);
        }
        pieces += kept;
    }
    if pieces == 0 {
        out.truncate(start);
    } else {
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use http::{HeaderName, Method, Request};
    use proptest::prelude::*;

    use crate::policy::fields::default_identity_headers;

    /// What `Toward` borrows: the default identity header names, a client
    /// at 192.0.2.7 over https, and the upstream's own Host.
    struct Setting {
        identity: Vec<String>,
        peer: Peer,
        upstream: HeaderValue,
    }

    impl Setting {
        fn new(trusted: bool) -> Self {
            Self {
                identity: default_identity_headers(),
                peer: Peer::new(Some("192.0.2.7".parse().unwrap()), trusted, "https"),
                upstream: HeaderValue::from_static("app.internal:8080"),
            }
        }

        /// `upstream_host`: Host names the upstream, not the client's.
        fn toward(&self, upstream_host: bool) -> Toward<'_> {
            Toward {
                peer: &self.peer,
                identity: &self.identity,
                host: upstream_host.then_some(&self.upstream),
            }
        }
    }

    fn parts(version: Version, target: &str, fields: &[(&str, &str)]) -> Parts {
        let mut req = Request::builder()
            .method(Method::GET)
            .uri(target)
            .version(version);
        for (name, value) in fields {
            req = req.header(*name, *value);
        }
        let (mut parts, ()) = req.body(()).unwrap().into_parts();
        // As the gateway does before routing.
        headers::strip_client_reserved(&mut parts.headers, &default_identity_headers());
        parts
    }

    /// A head as request line and fields, each name's values in order.
    type Head = (String, std::collections::BTreeMap<String, Vec<String>>);

    fn read(bytes: &[u8]) -> Head {
        let text = std::str::from_utf8(bytes).unwrap();
        let (head, rest) = text.split_once("\r\n").unwrap();
        assert!(rest.ends_with("\r\n\r\n") || rest == "\r\n", "{text:?}");
        let mut fields = std::collections::BTreeMap::<String, Vec<String>>::new();
        for field in rest.split("\r\n").filter(|l| !l.is_empty()) {
            let (name, value) = field.split_once(": ").unwrap();
            fields
                .entry(name.to_ascii_lowercase())
                .or_default()
                .push(value.to_owned());
        }
        (head.to_owned(), fields)
    }

    /// The head `write` writes.
    fn written(parts: &Parts, to: &Toward<'_>) -> Head {
        let mut out = Vec::new();
        write(&mut out, parts, to, |out| {
            line(out, b"x-forwarded-user", b"ada")
        });
        read(&out)
    }

    /// The head hyper's client would send once `rewrite` has made it.
    fn rewritten(mut parts: Parts, to: &Toward<'_>) -> Head {
        let forwarded = rewrite(&mut parts, false, to);
        for (name, value) in forwarded.into_iter().flatten() {
            parts.headers.append(name, value);
        }
        parts.headers.append(
            HeaderName::from_static("x-forwarded-user"),
            HeaderValue::from_static("ada"),
        );
        assert_eq!(parts.version, Version::HTTP_11);
        let mut out = format!("{} {} HTTP/1.1\r\n", parts.method, parts.uri).into_bytes();
        for (name, value) in &parts.headers {
            line(&mut out, name.as_str().as_bytes(), value.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        read(&out)
    }

    #[test]
    fn an_http2_request_goes_upstream_as_http1() {
        let p = parts(
            Version::HTTP_2,
            "https://gw.example/console/apps?page=2",
            &[
                ("cookie", "a=1"),
                ("cookie", "idgate_session=s"),
                ("cookie", "b=2"),
                ("user-agent", "t"),
                ("x-forwarded-for", "6.6.6.6"),
                ("x-forwarded-user", "mallory"),
                ("te", "trailers"),
            ],
        );
        let setting = Setting::new(false);
        let to = setting.toward(false);
        let mut out = Vec::new();
        write(&mut out, &p, &to, |out| {
            line(out, b"x-forwarded-user", b"ada")
        });
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET /console/apps?page=2 HTTP/1.1\r\nhost: gw.example\r\nuser-agent: t\r\n\
             cookie: a=1; b=2\r\nx-forwarded-for: 192.0.2.7\r\nx-forwarded-proto: https\r\n\
             x-forwarded-host: gw.example\r\nx-forwarded-user: ada\r\n\r\n"
        );
        assert_eq!(written(&p, &to), rewritten(p, &to));
    }

    #[test]
    fn the_upstreams_host_replaces_the_clients_when_configured() {
        let setting = Setting::new(false);
        let to = setting.toward(true);
        let p = parts(Version::HTTP_11, "/x", &[("host", "gw"), ("cookie", "c=1")]);
        let (_, fields) = written(&p, &to);
        assert_eq!(fields["host"], ["app.internal:8080"]);
        assert_eq!(fields["x-forwarded-host"], ["gw"]);
        assert_eq!(written(&p, &to), rewritten(p, &to));
    }

    #[test]
    fn a_request_without_host_goes_without_one() {
        let setting = Setting::new(false);
        let to = setting.toward(false);
        let p = parts(Version::HTTP_10, "/x", &[("cookie", "c=1")]);
        let (_, fields) = written(&p, &to);
        assert!(!fields.contains_key("host"));
        assert!(!fields.contains_key("x-forwarded-host"));
        assert_eq!(written(&p, &to), rewritten(p, &to));
    }

    #[test]
    fn an_authority_form_target_goes_upstream_as_the_root() {
        let setting = Setting::new(false);
        let to = setting.toward(false);
        let p = parts(
            Version::HTTP_11,
            "gw.example:443",
            &[("host", "gw.example")],
        );
        let (line, _) = written(&p, &to);
        assert_eq!(line, "GET / HTTP/1.1");
        assert_eq!(written(&p, &to), rewritten(p, &to));
    }

    /// Identity and credential headers are taken out before routing; were
    /// one left in the map, it would still not be written.
    #[test]
    fn reserved_fields_are_never_written() {
        let setting = Setting::new(true);
        let to = setting.toward(false);
        let mut req = Request::builder().uri("/r");
        for (name, value) in [
            ("host", "gw"),
            ("x-forwarded-user", "mallory"),
            ("x_forwarded_for", "6.6.6.6"),
            ("x-idgate-assertion", "forged"),
            ("x-forwarded-client-cert", "Hash=1"),
        ] {
            req = req.header(name, value);
        }
        let (p, ()) = req.body(()).unwrap().into_parts();
        let mut out = Vec::new();
        write(&mut out, &p, &to, |_| {});
        let head = String::from_utf8(out).unwrap();
        for gone in ["mallory", "6.6.6.6", "forged", "Hash=1"] {
            assert!(!head.contains(gone), "{gone} in {head}");
        }
    }

    /// Header names the rules treat differently, and ordinary ones (Host
    /// and Transfer-Encoding come on their own, as the gateway lets them).
    const NAMES: &[&str] = &[
        "cookie",
        "accept",
        "user-agent",
        "x-a",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "content-length",
        "expect",
        "proxy-authorization",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-forwarded-port",
        "forwarded",
        "x-real-ip",
        "x-forwarded-user",
        "x_forwarded_for",
        "x-idgate-any",
    ];

    /// Values: cookies of the gateway and others, `Connection` tokens
    /// naming other fields, addresses, and odd spacing.
    const VALUES: &[&str] = &[
        "a=1",
        "idgate_session=s",
        "a=1; idgate_session=s; b=2",
        " a=1 ;; __Host-idgate_login=x",
        "idgate_login_1=x",
        "",
        "close",
        "keep-alive, x-a",
        "Cookie, Accept",
        "host, content-length, x-forwarded-for, upgrade",
        "x-a, \u{e9}",
        "203.0.113.1",
        "10.0.0.2, 10.0.0.3",
        "https",
        "gw.example:8443",
        "text/html",
    ];

    fn field() -> impl Strategy<Value = (&'static str, &'static str)> {
        (prop::sample::select(NAMES), prop::sample::select(VALUES))
    }

    fn target() -> impl Strategy<Value = &'static str> {
        prop::sample::select(
            &[
                "/",
                "/a/b?x=1",
                "http://gw.example/abs?q=1",
                "http://user@gw.example:8443/abs",
                "https://gw.example",
                "gw.example:443",
            ][..],
        )
    }

    proptest! {
        /// Whatever the request, `write` writes what `rewrite` makes: the
        /// same request line and the same fields with the same values, in
        /// the same order per name.
        #[test]
        fn both_forms_send_the_same_head(
            version in prop::sample::select(&[Version::HTTP_10, Version::HTTP_11, Version::HTTP_2][..]),
            target in target(),
            host in prop::sample::select(&[None, Some("gw.example"), Some("gw.example:8443")][..]),
            chunked in any::<bool>(),
            mut fields in prop::collection::vec(field(), 0..12),
            trusted in any::<bool>(),
            upstream_host in any::<bool>(),
        ) {
            fields.extend(host.map(|h| ("host", h)));
            if chunked {
                fields.push(("transfer-encoding", "chunked"));
            }
            let setting = Setting::new(trusted);
            let to = setting.toward(upstream_host);
            let p = parts(version, target, &fields);
            // What the gateway refuses goes nowhere.
            prop_assume!(crate::proxy::refuse_malformed(&p).is_none());
            prop_assert_eq!(written(&p, &to), rewritten(p, &to));
        }
    }
}
