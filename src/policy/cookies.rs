//! The gateway's own cookies (the session and pending sign-ins, every name
//! starting `idgate_` or `__Host-idgate_`) stay between the browser and the
//! gateway: both data paths take them out of the `Cookie` header before it
//! goes upstream, so the upstream never holds a credential it has no use
//! for. Every other cookie passes byte for byte, in order.

const OWN_PREFIXES: [&[u8]; 2] = [b"idgate_", b"__Host-idgate_"];

/// Whether one `name=value` pair of a `Cookie` header is the gateway's own.
/// Names are read as Go and most servers read them: without the blanks
/// around them.
fn is_own(pair: &[u8]) -> bool {
    let name = match memchr::memchr(b'=', pair) {
        Some(i) => &pair[..i],
        None => pair,
    };
    let name = name.trim_ascii();
    OWN_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The `;`-separated pieces of a `Cookie` header value, found with
/// `memchr` (a session cookie is long, and every request carries one).
fn pairs(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(value);
    std::iter::from_fn(move || {
        let left = rest?;
        match memchr::memchr(b';', left) {
            Some(i) => {
                rest = Some(&left[i + 1..]);
                Some(&left[..i])
            }
            None => {
                rest = None;
                Some(left)
            }
        }
    })
}

/// Whether a `Cookie` header value holds any of the gateway's own cookies.
pub fn holds_own(value: &[u8]) -> bool {
    pairs(value).any(is_own)
}

/// Appends the pairs of `value` that are not the gateway's own to `out`,
/// joined by `; `; returns how many it appended.
pub fn append_foreign(value: &[u8], out: &mut Vec<u8>) -> usize {
    let mut kept = 0;
    for pair in pairs(value) {
        let pair = pair.trim_ascii();
        if pair.is_empty() || is_own(pair) {
            continue;
        }
        if kept > 0 {
            out.extend_from_slice(b"; ");
        }
        out.extend_from_slice(pair);
        kept += 1;
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn foreign(value: &str) -> (String, usize) {
        let mut out = Vec::new();
        let n = append_foreign(value.as_bytes(), &mut out);
        (String::from_utf8(out).unwrap(), n)
    }

    #[test]
    fn the_gateways_cookies_are_taken_out_and_the_rest_kept_in_order() {
        let value =
            "a=1; idgate_session=s.mac; _session=x%3D; __Host-idgate_login_abc=enc; b=\"q\"";
        assert!(holds_own(value.as_bytes()));
        assert_eq!(foreign(value), ("a=1; _session=x%3D; b=\"q\"".into(), 3));
        assert_eq!(
            foreign(" idgate_session =x;\tidgate_login_1=y"),
            (String::new(), 0)
        );
        assert_eq!(foreign("idgate_session"), (String::new(), 0));
        assert_eq!(
            foreign(";a=1;;idgate_session=s; b=2;"),
            ("a=1; b=2".into(), 2)
        );
        assert!(holds_own(b";;idgate_session"));
    }

    #[test]
    fn pairs_are_the_pieces_between_semicolons() {
        for value in ["", ";", "a;", ";a", "a;;b", "a=1; b=2", "a"] {
            let value = value.as_bytes();
            let expected: Vec<&[u8]> = value.split(|&b| b == b';').collect();
            assert_eq!(pairs(value).collect::<Vec<_>>(), expected);
        }
        assert!(!holds_own(b""));
    }

    #[test]
    fn other_cookies_pass_untouched() {
        for value in ["a=1", "a=1; b=2", "xidgate_session=1", "Idgate_session=1"] {
            assert!(!holds_own(value.as_bytes()), "{value}");
            assert_eq!(foreign(value).0, value);
        }
    }
}
