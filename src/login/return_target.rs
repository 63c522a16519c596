//! The `rd` return target: where a person lands after signing in. Only a
//! same-origin relative path (with its query) in ASCII is ever followed;
//! anything a browser could read as another host becomes `/`. Non-ASCII
//! characters, raw or percent-encoded, are refused outright: a `Location`
//! header must be ASCII, and some clients fold look-alikes such as `〱` or
//! `ｰ` into `/`, so `/〱evil.example` would leave the origin.

const MAX_LEN: usize = 2048;

/// The target to use for a raw `rd` value.
pub fn sanitize(raw: Option<&str>) -> String {
    match raw {
        Some(rd) if is_safe(rd) => rd.to_string(),
        _ => "/".to_string(),
    }
}

/// `rd=<target>` as a URL query, for links to the login routes.
pub fn query(target: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("rd", target)
        .finish()
}

fn is_safe(rd: &str) -> bool {
    if rd.len() > MAX_LEN || !rd.is_ascii() || !looks_local(rd) {
        return false;
    }
    // Browsers and servers decode in different places: the decoded form must
    // be just as harmless.
    let decoded: Vec<u8> = percent_encoding::percent_decode_str(rd).collect();
    decoded.is_ascii() && std::str::from_utf8(&decoded).is_ok_and(looks_local)
}

/// A path that starts with exactly one `/`, without backslashes, whitespace
/// or control characters (which browsers strip or turn into `/`).
fn looks_local(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next() == Some('/')
        && !matches!(chars.next(), Some('/') | Some('\\'))
        && !s
            .chars()
            .any(|c| c == '\\' || c.is_control() || c.is_whitespace())
}

#[cfg(test)]
mod tests {
    use super::sanitize;

    #[test]
    fn same_origin_paths_are_kept() {
        for ok in [
            "/",
            "/console",
            "/console/applications?page=2",
            "/a/b?x=%2F&y=1#frag",
            "/a//b",
        ] {
            assert_eq!(sanitize(Some(ok)), ok);
        }
    }

    #[test]
    fn anything_that_leaves_the_origin_becomes_root() {
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "\\/evil.example",
            "https://evil.example",
            "javascript:alert(1)",
            "evil.example",
            "/%2Fevil.example",
            "/%5Cevil.example",
            "%2F%2Fevil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/%09/evil.example",
            "/%0a/evil.example",
            " /x",
            "/〱evil.example",
            "/ｰevil.example",
            "/%E3%80%B1evil.example",
            "/%EF%BD%B0evil.example",
            "/caf\u{e9}",
            "/%FF",
            "",
        ] {
            assert_eq!(sanitize(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(sanitize(None), "/");
        assert_eq!(sanitize(Some(&format!("/{}", "a".repeat(3000)))), "/");
    }
}
