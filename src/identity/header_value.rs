//! Identity values as HTTP header values: printable ASCII passes unchanged,
//! anything else (non-ASCII, control characters, CR, LF) is percent-encoded
//! as UTF-8, so no value can ever break out of its header.

use percent_encoding::CONTROLS;

/// The header value for `raw`. Printable ASCII (a `%` included) is kept as
/// it is, per the contract; control characters and non-ASCII are encoded.
pub fn encode(raw: &str) -> http::HeaderValue {
    let encoded = percent_encoding::utf8_percent_encode(raw, CONTROLS).to_string();
    http::HeaderValue::from_str(&encoded).expect("percent-encoded text is a valid header value")
}

#[cfg(test)]
mod tests {
    use super::encode;

    #[test]
    fn printable_ascii_is_unchanged() {
        assert_eq!(encode("j.doe@example.com"), "j.doe@example.com");
        assert_eq!(encode("John Doe (IT) <x>"), "John Doe (IT) <x>");
    }

    #[test]
    fn everything_else_is_percent_encoded() {
        assert_eq!(encode("Zoë"), "Zo%C3%AB");
        assert_eq!(
            encode("a\r\nX-Forwarded-User: admin"),
            "a%0D%0AX-Forwarded-User: admin"
        );
        assert_eq!(encode("tab\there"), "tab%09here");
        assert_eq!(encode("100%"), "100%");
        assert_eq!(encode("北京"), "%E5%8C%97%E4%BA%AC");
        assert_eq!(encode("del\u{7f}"), "del%7F");
    }
}
