//! The configuration loader. Property: any text (and any IDGATE_* override)
//! is either refused with problems that each name a key, or loaded; it
//! never panics.
#![no_main]

use arbitrary::Arbitrary;
use idgate::config::{from_toml_str, Source};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    text: String,
    env: Vec<(String, String)>,
}

fuzz_target!(|input: Input| {
    let env: Vec<(String, String)> = input
        .env
        .into_iter()
        .take(4)
        .map(|(k, v)| (format!("IDGATE_{k}"), v))
        .collect();
    if let Err(problems) = from_toml_str(&input.text, Source::Defaults, &env) {
        let text = problems.to_string();
        assert!(!text.trim().is_empty(), "a refusal without a reason");
    }
});
