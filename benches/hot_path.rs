//! Criterion micro-benchmarks of the per-request work on the hot path.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use idgate::proxy::headers::{self, Peer, DEFAULT_IDENTITY_HEADERS};
use pingora::http::RequestHeader;

fn browser_request() -> RequestHeader {
    let mut req = RequestHeader::build("GET", b"/console/applications?page=2", None).unwrap();
    for (k, v) in [
        ("host", "console.example.com"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0",
        ),
        (
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        ("accept-language", "en-US,en;q=0.9"),
        ("accept-encoding", "gzip, deflate, br"),
        (
            "cookie",
            "idgate_session=0123456789abcdef0123456789abcdef0123456789abcdef",
        ),
        ("referer", "https://console.example.com/console"),
        ("sec-fetch-mode", "navigate"),
    ] {
        req.append_header(k, v).unwrap();
    }
    req
}

fn bench_headers(c: &mut Criterion) {
    let reserved: Vec<String> = DEFAULT_IDENTITY_HEADERS
        .iter()
        .map(|s| s.to_string())
        .collect();
    let peer = Peer {
        client_ip: Some("203.0.113.9".parse().unwrap()),
        trusted: false,
        proto: "https",
    };
    let clean = browser_request();
    c.bench_function("strip identity headers (none present)", |b| {
        b.iter_batched_ref(
            || clean.clone(),
            |req| headers::strip_identity_headers(black_box(req), &reserved),
            criterion::BatchSize::SmallInput,
        )
    });
    let mut spoofed = browser_request();
    for name in [
        "X-Forwarded-User",
        "x_forwarded_email",
        "X-Idgate-Assertion",
    ] {
        spoofed.append_header(name.to_string(), "mallory").unwrap();
    }
    c.bench_function("strip identity headers (three spoofed)", |b| {
        b.iter_batched_ref(
            || spoofed.clone(),
            |req| headers::strip_identity_headers(black_box(req), &reserved),
            criterion::BatchSize::SmallInput,
        )
    });
    c.bench_function("set X-Forwarded-*", |b| {
        b.iter_batched_ref(
            || clean.clone(),
            |req| headers::set_forwarded(black_box(req), peer),
            criterion::BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, bench_headers);
criterion_main!(benches);
