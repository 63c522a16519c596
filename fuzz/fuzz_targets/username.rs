//! Username normalisation. Properties: the result is in username form
//! (`[a-z0-9-]`, no leading, trailing or doubled dash, at most the maximum
//! length), normalising it again changes nothing, and whenever it has two
//! characters or more it is a valid username.
#![no_main]

use idgate::identity::username::{is_valid, normalize, MAX_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|raw: &str| {
    let name = normalize(raw);
    assert!(name.len() <= MAX_LEN);
    assert!(name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
    assert!(!name.starts_with('-') && !name.ends_with('-') && !name.contains("--"));
    assert_eq!(normalize(&name), name);
    assert_eq!(is_valid(&name), name.len() >= 2);
});
