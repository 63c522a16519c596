//! The fast path's request head parser and rewriter. Whatever it takes,
//! the head it writes for the upstream parses back (with httparse, as an
//! upstream would) to the same method and target, exactly one valid Host,
//! the framing the client's head said, every header the client sent that
//! policy keeps (same order, same value), none that policy removes, the
//! forwarding and identity lines once each, and none of idgate's cookies.
#![no_main]

use std::sync::OnceLock;

use idgate::policy::fields::{self, RequestField, DEFAULT_IDENTITY_HEADERS};
use idgate::policy::{cookies, Policy};
use idgate::proxy::fast::request::{line, parse, write_head, Intake, Limits, Rewrite};
use libfuzzer_sys::fuzz_target;

fn identity() -> &'static [String] {
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    NAMES.get_or_init(|| {
        DEFAULT_IDENTITY_HEADERS
            .iter()
            .map(|n| n.to_string())
            .collect()
    })
}

fn policy() -> &'static Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    POLICY.get_or_init(|| Policy::new(Vec::new(), Some("/account")))
}

/// The header fields policy passes as they are, in order.
fn kept_by_policy<'h>(headers: &[httparse::Header<'h>]) -> Vec<(&'h str, &'h [u8])> {
    headers
        .iter()
        .filter(|h| {
            matches!(
                fields::request_field(h.name.as_bytes(), identity()),
                RequestField::Keep | RequestField::Accept
            )
        })
        .map(|h| (h.name, h.value))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_uri_bytes: 8192,
        max_header_bytes: 16384,
        identity_headers: identity(),
        policy: policy(),
        trusted: false,
    };
    let mut kept = Vec::new();
    let Intake::Forward(head) = parse(data, &limits, &mut kept) else {
        return;
    };

    // What the client sent, read by httparse on its own.
    let mut client_storage = [httparse::EMPTY_HEADER; 300];
    let mut client = httparse::Request::new(&mut client_storage);
    let Ok(httparse::Status::Complete(client_len)) = client.parse(data) else {
        panic!("taken, but the client's head does not parse on its own");
    };
    assert_eq!(client_len, head.len);

    let mut out = Vec::new();
    let rewrite = Rewrite {
        host: None,
        client: b"192.0.2.1",
        proto: b"http",
    };
    write_head(&mut out, data, &head, &kept, &rewrite, |o| {
        line(o, b"x-forwarded-user", b"ada")
    });

    let mut storage = [httparse::EMPTY_HEADER; 300];
    let mut upstream = httparse::Request::new(&mut storage);
    let parsed = upstream.parse(&out);
    assert_eq!(
        parsed,
        Ok(httparse::Status::Complete(out.len())),
        "the rewritten head does not parse back whole: {:?}",
        String::from_utf8_lossy(&out)
    );
    assert_eq!(upstream.method, client.method);
    assert_eq!(upstream.path, client.path);
    assert_eq!(upstream.version, Some(1));

    let named = |name: &str| -> Vec<&[u8]> {
        upstream
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
            .collect()
    };
    let hosts = named("host");
    assert_eq!(hosts.len(), 1);
    assert!(fields::valid_host(hosts[0]));
    assert_eq!(named("x-forwarded-host"), hosts);
    assert_eq!(named("x-forwarded-for"), [b"192.0.2.1".as_slice()]);
    assert_eq!(named("x-forwarded-user"), [b"ada".as_slice()]);
    assert!(named("transfer-encoding").is_empty());
    let lengths = named("content-length");
    match head.content_length {
        Some(n) => assert_eq!(lengths, [n.to_string().as_bytes()]),
        None => assert!(lengths.is_empty()),
    }
    for cookie in named("cookie") {
        assert!(!cookies::holds_own(cookie), "idgate's cookie went upstream");
    }

    // Every header the client sent that policy keeps arrives, in order,
    // with its value; nothing else from the client does.
    let from_client = kept_by_policy(client.headers);
    let passed = kept_by_policy(upstream.headers);
    assert_eq!(passed, from_client);
    for h in upstream.headers.iter() {
        let field = fields::request_field(h.name.as_bytes(), identity());
        assert!(
            !matches!(
                field,
                RequestField::HopByHop
                    | RequestField::Connection
                    | RequestField::Upgrade
                    | RequestField::Expect
            ),
            "{} went upstream",
            h.name
        );
        if field == RequestField::Reserved {
            assert_eq!(
                h.name, "x-forwarded-user",
                "a client's {} went upstream",
                h.name
            );
        }
    }
});
