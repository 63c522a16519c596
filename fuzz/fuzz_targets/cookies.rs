//! The cookie codec. Properties: reading a session or a pending login from
//! any `Cookie` header never panics and never yields a value nobody signed;
//! taking idgate's cookies out of a header leaves none of them, and leaves
//! every other cookie, unchanged and in order.
#![no_main]

use arbitrary::Arbitrary;
use http::HeaderValue;
use idgate::policy::cookies;
use idgate::session::cookies::CookieCodec;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    https: bool,
    state: String,
    header: Vec<u8>,
}

fuzz_target!(|input: Input| {
    // Pairs as a server splits them.
    let pairs: Vec<&[u8]> = input
        .header
        .split(|&b| b == b';')
        .map(<[u8]>::trim_ascii)
        .filter(|p| !p.is_empty())
        .collect();
    let own = |pair: &[u8]| {
        let name = pair
            .split(|&b| b == b'=')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        name.starts_with(b"idgate_") || name.starts_with(b"__Host-idgate_")
    };
    let mut out = Vec::new();
    let kept = cookies::append_foreign(&input.header, &mut out);
    let expected: Vec<&[u8]> = pairs.iter().copied().filter(|p| !own(p)).collect();
    assert_eq!(kept, expected.len());
    assert_eq!(out, expected.join(&b"; "[..]));
    assert!(!cookies::holds_own(&out));
    assert_eq!(
        cookies::holds_own(&input.header),
        pairs.iter().any(|p| own(p))
    );

    let Ok(value) = HeaderValue::from_bytes(&input.header) else {
        return;
    };
    let codec = CookieCodec::new(&[7u8; 64], input.https);
    // Nobody signed anything with this key here: nothing may verify.
    assert_eq!(codec.session_id([&value].into_iter()), None);
    assert_eq!(
        codec.pending_login([&value].into_iter(), &input.state),
        None
    );
    let cleared = codec.clear_all_logins([&value].into_iter());
    assert_eq!(cleared.is_empty(), !codec.holds_login([&value].into_iter()));
});
