//! `rd` validation. Property: whatever a client sends, the return target is
//! `/` or the value itself, and then an ASCII path that a browser resolves,
//! as sent and once more decoded, to the gateway's own origin.
#![no_main]

use idgate::login::return_target::sanitize;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let raw = String::from_utf8_lossy(data);
    let target = sanitize(Some(&raw));
    if target == "/" {
        return;
    }
    assert_eq!(target, raw);
    assert!(target.is_ascii() && target.starts_with('/'));
    assert!(!target
        .bytes()
        .any(|b| b.is_ascii_control() || b == b'\\' || b == b' '));
    let base = url::Url::parse("https://gw.example/app/").unwrap();
    let decoded: Vec<u8> = percent_encoding::percent_decode_str(&target).collect();
    let decoded = String::from_utf8(decoded).expect("decodes to UTF-8");
    for form in [target.as_str(), decoded.as_str()] {
        let joined = base.join(form).expect("a relative reference");
        assert_eq!(joined.origin(), base.origin(), "{form:?} leaves the origin");
    }
});
