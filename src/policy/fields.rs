//! What each header field is to the gateway, decided by name once for both
//! data paths: hyper's renders these decisions into a `HeaderMap`, the fast
//! path into bytes, and neither keeps a table of its own. Also the checks of
//! the values that frame or address a request (Content-Length, Transfer-
//! Encoding, Host), and whether a client prefers pages.

/// Identity header names only the gateway may set (their configured names
/// replace these). Besides them, every name starting with `x-idgate-` and
/// every [`CREDENTIAL_HEADERS`] name is reserved.
pub const DEFAULT_IDENTITY_HEADERS: &[&str] = &[
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-preferred-username",
    "x-idgate-provider",
    "x-idgate-assertion",
];

/// The default identity header names as configured names, for tests.
#[cfg(test)]
pub(crate) fn default_identity_headers() -> Vec<String> {
    DEFAULT_IDENTITY_HEADERS
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// Headers that upstreams read as proof of who the client is, written by
/// the TLS-terminating or identity-aware proxy in front of them: a client's
/// copy would pose as a certificate or a sign-in the gateway never saw. The
/// Things Stack reads the first three from a trusted proxy as the client's
/// TLS certificate, which its Gateway Server takes as a gateway's login.
/// Also the path overrides some frameworks take from a proxy. Every name
/// starting with one of [`CREDENTIAL_PREFIXES`] is reserved as well.
pub const CREDENTIAL_HEADERS: &[&str] = &[
    // Envoy, Traefik (The Things Stack: pkg/webmiddleware/proxy_headers.go).
    "x-forwarded-client-cert",
    "x-forwarded-tls-client-cert",
    "x-forwarded-tls-client-cert-info",
    // ingress-nginx, HAProxy and Apache conventions.
    "x-client-cert",
    "x-client-verify",
    "x-client-dn",
    // Identity-aware proxies and the apps behind them.
    "x-webauth-user",
    "x-goog-iap-jwt-assertion",
    // Path overrides (IIS, Symfony, Laminas).
    "x-original-url",
    "x-rewrite-url",
];

/// Name prefixes of headers that proxies in front of an upstream write as
/// proof of identity: client certificates (`ssl-client-*`), Authelia
/// (`remote-*`), Kubernetes front proxies (`x-remote-*`), oauth2-proxy
/// (`x-auth-request-*`), AWS ALB, Azure App Service, Google IAP and
/// Cloudflare Access.
pub const CREDENTIAL_PREFIXES: &[&str] = &[
    "ssl-client-",
    "x-ssl-client-",
    "remote-",
    "x-remote-",
    "x-auth-request-",
    "x-amzn-oidc-",
    "x-amzn-mtls-",
    "x-ms-client-principal",
    "x-goog-authenticated-user-",
    "cf-access-",
];

/// Forwarding headers beyond the ones the gateway writes (`X-Forwarded-Port`,
/// `-Prefix`, `-Server`, `-Scheme`, `-Ssl`, …): kept only from a trusted
/// proxy, as the gateway's own are.
const FORWARDING_PREFIX: &[u8] = b"x-forwarded-";

const RESERVED_PREFIX: &[u8] = b"x-idgate-";

/// What a request header field is to the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestField {
    /// Forwarded as it came.
    Keep,
    Host,
    Cookie,
    Accept,
    ContentLength,
    TransferEncoding,
    Connection,
    Upgrade,
    Expect,
    /// Concerns one connection only (RFC 9110 §7.6.1): never forwarded.
    HopByHop,
    /// `Forwarded`, `X-Real-IP`, every `X-Forwarded-*` that is no identity
    /// header, `Front-End-Https`, `X-Url-Scheme`: the gateway's own (kept
    /// only from a trusted proxy).
    Forwarding,
    /// An identity or credential header, or a `_` look-alike of a framing
    /// or forwarding header: removed from every client request.
    Reserved,
}

/// The headers the gateway treats by name.
const NAMED: &[(&[u8], RequestField)] = &[
    (b"host", RequestField::Host),
    (b"cookie", RequestField::Cookie),
    (b"accept", RequestField::Accept),
    (b"content-length", RequestField::ContentLength),
    (b"transfer-encoding", RequestField::TransferEncoding),
    (b"connection", RequestField::Connection),
    (b"upgrade", RequestField::Upgrade),
    (b"expect", RequestField::Expect),
    (b"keep-alive", RequestField::HopByHop),
    (b"proxy-connection", RequestField::HopByHop),
    (b"proxy-authenticate", RequestField::HopByHop),
    (b"proxy-authorization", RequestField::HopByHop),
    (b"te", RequestField::HopByHop),
    (b"trailer", RequestField::HopByHop),
    (b"forwarded", RequestField::Forwarding),
    (b"x-real-ip", RequestField::Forwarding),
    (b"x-forwarded-for", RequestField::Forwarding),
    (b"x-forwarded-proto", RequestField::Forwarding),
    (b"x-forwarded-host", RequestField::Forwarding),
];

/// Room for the longest name or prefix listed here (a test holds them to
/// it): a name is folded this far, once, before it is compared with them.
const FOLDED: usize = 48;

/// What a request header named `name` is; `identity` holds the configured
/// identity header names (lower case).
pub fn request_field(name: &[u8], identity: &[String]) -> RequestField {
    // Folded once (lower case, `_` as `-`): every list below is compared
    // with these bytes, a name that is longer than any listed one by its
    // first `FOLDED` bytes (only prefixes can match it).
    let mut buf = [0u8; FOLDED];
    let mut underscore = false;
    for (to, &c) in buf.iter_mut().zip(name) {
        underscore |= c == b'_';
        *to = fold(c);
    }
    let whole = name.len() <= FOLDED;
    let folded = &buf[..name.len().min(FOLDED)];
    // The named fields are spelt with `-` only: a `_` makes another name.
    if whole && !underscore {
        if let Some((_, field)) = NAMED.iter().find(|(n, _)| *n == folded) {
            return *field;
        }
    }
    let listed = |n: &[u8]| whole && folded == n;
    let reserved = folded.starts_with(RESERVED_PREFIX)
        || identity.iter().any(|r| same_name(name, r.as_bytes()))
        || CREDENTIAL_HEADERS.iter().any(|r| listed(r.as_bytes()))
        || CREDENTIAL_PREFIXES
            .iter()
            .any(|p| folded.first() == p.as_bytes().first() && folded.starts_with(p.as_bytes()));
    if reserved || (underscore && LOOKALIKE_TARGETS.iter().any(|t| listed(t))) {
        RequestField::Reserved
    } else if folded.starts_with(FORWARDING_PREFIX)
        || listed(b"front-end-https")
        || listed(b"x-url-scheme")
    {
        RequestField::Forwarding
    } else {
        RequestField::Keep
    }
}

/// Whether `name` is one the gateway treats itself (Host, Cookie, Accept,
/// framing, hop-by-hop, `Forwarded`, `X-Real-IP`, X-Forwarded-For/-Proto/
/// -Host): no identity header may be called so.
pub fn is_named(name: &[u8]) -> bool {
    NAMED.iter().any(|(n, _)| name.eq_ignore_ascii_case(n))
}

/// Whether a header a request's `Connection` names may be removed with it:
/// never the host, the framing, or what the gateway itself writes.
pub fn connection_may_remove(field: RequestField) -> bool {
    matches!(
        field,
        RequestField::Keep | RequestField::Cookie | RequestField::Accept
    )
}

/// Whether a response header concerns one connection only (RFC 9110
/// §7.6.1); `Transfer-Encoding` is written anew when the body is chunked.
pub fn response_hop_by_hop(name: &[u8]) -> bool {
    const HOP_BY_HOP: &[&[u8]] = &[
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    ];
    HOP_BY_HOP.iter().any(|n| name.eq_ignore_ascii_case(n))
}

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

/// Framing and forwarding headers that some upstream stacks also read when
/// spelt with `_` for `-` (CGI-style variables make both one name): from a
/// client they are dropped, so no upstream reads one as the real one.
const LOOKALIKE_TARGETS: &[&[u8]] = &[
    b"content-length",
    b"transfer-encoding",
    b"keep-alive",
    b"proxy-connection",
    b"proxy-authorization",
    b"x-real-ip",
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-host",
];

/// Whether an `Accept` value asks for pages.
pub fn accepts_html(value: &[u8]) -> bool {
    value
        .windows(9)
        .any(|w| w.eq_ignore_ascii_case(b"text/html"))
}

/// A Content-Length value: digits only, as RFC 9110 §8.6 has it.
pub fn content_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 18 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// What a request's `Transfer-Encoding` lines mean to the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// Exactly one line, exactly `chunked`: a chunked body.
    Chunked,
    /// More than one line: 400, as nginx answers.
    Repeated,
    /// Any other coding, or a list: 501 (RFC 9112 §6.1), as nginx answers.
    Unsupported,
}

/// Judges a message's `Transfer-Encoding` values; `None` when it has none.
pub fn transfer_coding<'a>(mut values: impl Iterator<Item = &'a [u8]>) -> Option<Coding> {
    let first = values.next()?;
    Some(if values.next().is_some() {
        Coding::Repeated
    } else if first.trim_ascii().eq_ignore_ascii_case(b"chunked") {
        Coding::Chunked
    } else {
        Coding::Unsupported
    })
}

/// Whether an answer carries no body whatever it announces: one to a HEAD
/// request, a 204 or a 304 (RFC 9110 §6.4.1).
pub fn bodyless_answer(head_request: bool, status: u16) -> bool {
    head_request || status == 204 || status == 304
}

/// Whether the upstream connection that carried an answer may carry another
/// request, on either path: not after an answer framed both by a length
/// (`has_length`) and chunked (it may be splitting itself), nor after a
/// bodyless one that announced a body (the upstream may send it all the
/// same).
pub fn reusable_after_answer(
    bodyless: bool,
    chunked: bool,
    has_length: bool,
    length: Option<u64>,
) -> bool {
    !(chunked && has_length) && !(bodyless && (chunked || length.is_some_and(|n| n > 0)))
}

/// Whether a `Host` value is one RFC 9112 §3.2 lets a server accept:
/// `uri-host [ ":" port ]`, with no user information, path, query or space.
pub fn valid_host(value: &[u8]) -> bool {
    let (host, port) = match value.iter().rposition(|&b| b == b':') {
        // The colon of an IPv6 literal does not start a port.
        Some(i) if !value[i..].contains(&b']') => (&value[..i], Some(&value[i + 1..])),
        _ => (value, None),
    };
    let port_ok = port.is_none_or(|p| {
        p.len() <= 5
            && p.iter().all(u8::is_ascii_digit)
            && std::str::from_utf8(p).is_ok_and(|p| p.parse::<u16>().is_ok())
    });
    let host_ok = match host {
        [] => false,
        [b'[', inner @ .., b']'] => {
            !inner.is_empty()
                && inner
                    .iter()
                    .all(|&b| b.is_ascii_hexdigit() || b".:".contains(&b))
        }
        reg_name => reg_name.iter().all(|&b| REG_NAME[usize::from(b)]),
    };
    port_ok && host_ok
}

/// RFC 3986 `reg-name` bytes: unreserved and sub-delims, as a table (every
/// request's Host is checked). Percent-encoding is refused: host names are
/// not encoded, and a consumer decoding `ev%69l.example` would read another
/// host than the gateway checked.
const REG_NAME: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    let marks = b"-._~!$&'()*+,;=";
    let mut i = 0;
    while i < marks.len() {
        table[marks[i] as usize] = true;
        i += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    /// `request_field` as first written: each list compared with the name
    /// byte by byte, folding as it goes (but `Front-End-Https` and
    /// `X-Url-Scheme`, which it took only with `-`, are taken with `_` now,
    /// as every other forwarding header is).
    fn reference(name: &[u8], identity: &[String]) -> RequestField {
        let starts_with_folded =
            |prefix: &[u8]| name.len() >= prefix.len() && same_name(&name[..prefix.len()], prefix);
        if let Some((_, field)) = NAMED.iter().find(|(n, _)| name.eq_ignore_ascii_case(n)) {
            return *field;
        }
        let reserved = starts_with_folded(RESERVED_PREFIX)
            || identity.iter().any(|r| same_name(name, r.as_bytes()))
            || CREDENTIAL_HEADERS
                .iter()
                .any(|r| same_name(name, r.as_bytes()))
            || CREDENTIAL_PREFIXES
                .iter()
                .any(|p| starts_with_folded(p.as_bytes()));
        let lookalike =
            name.contains(&b'_') && LOOKALIKE_TARGETS.iter().any(|t| same_name(name, t));
        if reserved || lookalike {
            RequestField::Reserved
        } else if starts_with_folded(FORWARDING_PREFIX)
            || same_name(name, b"front-end-https")
            || same_name(name, b"x-url-scheme")
        {
            RequestField::Forwarding
        } else {
            RequestField::Keep
        }
    }

    /// Every name and prefix the lists hold, and a configured identity
    /// header longer than any of them.
    fn listed() -> Vec<String> {
        let mut all: Vec<String> = NAMED.iter().map(|(n, _)| text(n)).collect();
        all.extend(CREDENTIAL_HEADERS.iter().map(|n| n.to_string()));
        all.extend(CREDENTIAL_PREFIXES.iter().map(|n| n.to_string()));
        all.extend(LOOKALIKE_TARGETS.iter().map(|n| text(n)));
        all.extend(DEFAULT_IDENTITY_HEADERS.iter().map(|n| n.to_string()));
        for n in [
            RESERVED_PREFIX,
            FORWARDING_PREFIX,
            b"front-end-https",
            b"x-url-scheme",
        ] {
            all.push(text(n));
        }
        all
    }

    fn text(n: &[u8]) -> String {
        String::from_utf8(n.to_vec()).unwrap()
    }

    #[test]
    fn every_listed_name_is_folded_whole() {
        for name in listed() {
            assert!(name.len() <= FOLDED, "{name} is longer than FOLDED");
        }
    }

    /// A listed name or prefix in any case, `-` or `_`, cut short or
    /// carried on, or an arbitrary name.
    fn name() -> impl Strategy<Value = String> {
        let spelt = (
            prop::sample::select(listed()),
            prop::collection::vec(any::<(bool, bool)>(), 48),
            "[a-zA-Z_-]{0,60}",
            0usize..4,
        )
            .prop_map(|(listed, spelling, tail, cut)| {
                let mut name: String = listed
                    .chars()
                    .zip(&spelling)
                    .map(|(c, &(upper, under))| match c {
                        '-' if under => '_',
                        c if upper => c.to_ascii_uppercase(),
                        c => c,
                    })
                    .collect();
                match cut {
                    0 => {}
                    1 => name.truncate(name.len().saturating_sub(1)),
                    _ => name.push_str(&tail),
                }
                name
            });
        prop_oneof![spelt, "[a-zA-Z0-9_-]{1,70}"]
    }

    proptest! {
        #[test]
        fn request_field_reads_every_name_as_the_lists_say(name in name()) {
            let configured = vec![
                "x-forwarded-user".to_string(),
                "x-my-identity-header-with-a-name-longer-than-forty-eight-bytes".to_string(),
            ];
            for identity in [default_identity_headers(), configured] {
                prop_assert_eq!(
                    request_field(name.as_bytes(), &identity),
                    reference(name.as_bytes(), &identity),
                    "{}", name
                );
            }
        }
    }

    #[test]
    fn identity_and_credential_headers_are_reserved_in_every_spelling() {
        for name in [
            "X-Forwarded-User",
            "x_forwarded_email",
            "X-Idgate-Anything",
            "x_idgate_assertion",
            "X-Forwarded-Tls-Client-Cert",
            "x_forwarded_tls_client_cert_info",
            "X-Forwarded-Client-Cert",
            "Ssl-Client-Cert",
            "X-Amzn-Oidc-Data",
            "Remote-Email",
            "X_Remote_Group",
            "X-Auth-Request-Groups",
            "X-Original-URL",
            "Content_Length",
            "x_forwarded_host",
        ] {
            assert_eq!(
                request_field(name.as_bytes(), &default_identity_headers()),
                RequestField::Reserved,
                "{name}"
            );
        }
        assert_eq!(
            request_field(b"x-idgate", &default_identity_headers()),
            RequestField::Keep
        );
        assert_eq!(
            request_field(b"x-forwarded", &default_identity_headers()),
            RequestField::Keep
        );
        assert_eq!(
            request_field(b"X_Host", &default_identity_headers()),
            RequestField::Keep
        );
        for forwarding in [
            "X-Forwarded-Prefix",
            "x-forwarded-port",
            "X_Forwarded_Ssl",
            "Front-End-Https",
            "Front_End_Https",
            "X_Url_Scheme",
            "x-forwarded-users",
        ] {
            assert_eq!(
                request_field(forwarding.as_bytes(), &default_identity_headers()),
                RequestField::Forwarding,
                "{forwarding}"
            );
        }
        assert_eq!(
            request_field(b"HOST", &default_identity_headers()),
            RequestField::Host
        );
    }

    #[test]
    fn connection_never_takes_away_the_host_framing_or_what_the_gateway_writes() {
        for name in [
            "host",
            "content-length",
            "transfer-encoding",
            "x-forwarded-for",
            "x-forwarded-user",
        ] {
            assert!(
                !connection_may_remove(request_field(name.as_bytes(), &default_identity_headers())),
                "{name}"
            );
        }
        assert!(connection_may_remove(request_field(
            b"x-secret",
            &default_identity_headers()
        )));
    }

    #[test]
    fn only_one_final_chunked_line_is_a_body() {
        let judge = |lines: &[&str]| transfer_coding(lines.iter().map(|l| l.as_bytes()));
        assert_eq!(judge(&[]), None);
        assert_eq!(judge(&["chunked"]), Some(Coding::Chunked));
        assert_eq!(judge(&["Chunked "]), Some(Coding::Chunked));
        assert_eq!(judge(&["gzip, chunked"]), Some(Coding::Unsupported));
        assert_eq!(judge(&["chunked, chunked"]), Some(Coding::Unsupported));
        assert_eq!(judge(&["chunked", "chunked"]), Some(Coding::Repeated));
    }

    #[test]
    fn reg_name_bytes_are_unreserved_and_sub_delims() {
        for b in 0..=255u8 {
            let rfc = b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&b);
            assert_eq!(REG_NAME[usize::from(b)], rfc, "byte {b:#04x}");
        }
        assert!(valid_host(b"a-b._~!$&'()*+,;=c:80"));
        assert!(!valid_host("gw\u{e9}.example".as_bytes()));
    }

    #[test]
    fn hosts_are_names_or_addresses_with_a_port() {
        for ok in [
            "gw",
            "gw.example:8443",
            "127.0.0.1",
            "[::1]:80",
            "[2001:db8::1]",
            "xn--bcher-kva.example",
            "GW.Example.",
            "gw:65535",
        ] {
            assert!(valid_host(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "",
            "a b",
            "gw@evil.example",
            "evil.example/x?",
            "gw:80:80",
            "gw:http",
            ":80",
            "[::1",
            "[]",
            "gw\\evil",
            "gw#x",
            "ev%69l.example",
            "%",
            "gw:99999",
            "gw:",
        ] {
            assert!(!valid_host(bad.as_bytes()), "{bad}");
        }
    }
}
