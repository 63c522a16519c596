//! Normal forms of a request path: the one `[[routes]]` match on (only
//! unreserved characters decoded, so an encoded `/` or `\` never passes for
//! a separator), and the one The Things Stack routes on (everything
//! decoded), each with `.`/`..` resolved and repeated `/` merged.

use std::borrow::Cow;

/// The path `[[routes]]` are matched on: percent-encoded unreserved
/// characters decoded, `.` and `..` resolved, repeated `/` merged. `None`
/// for a path that still holds an encoded `/`, `\` or NUL, a backslash, a
/// `;` (some servers read `/..;/` as `/../`), or a malformed escape: such a
/// path never matches a route.
pub fn for_routes(path: &str) -> Option<Cow<'_, str>> {
    if is_plain(path) {
        return Some(Cow::Borrowed(path));
    }
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' | b';' => return None,
            b'%' => {
                let value = hex_pair(bytes.get(i + 1..i + 3)?)?;
                if is_unreserved(value) {
                    decoded.push(value);
                } else if matches!(value, b'/' | b'\\' | b';' | 0) {
                    return None;
                } else {
                    // Kept encoded, in upper case (RFC 3986 §6.2.2.1).
                    decoded.push(b'%');
                    decoded.extend_from_slice(format!("{value:02X}").as_bytes());
                }
                i += 3;
            }
            b => {
                decoded.push(b);
                i += 1;
            }
        }
    }
    Some(Cow::Owned(clean(&String::from_utf8(decoded).ok()?)))
}

/// The path as an upstream that decodes more than once could read it:
/// decoded (`as_the_stack_routes`) until nothing changes, at most three
/// times (`%252F` → `%2F` → `/`).
pub fn decoded_repeatedly(path: &str) -> Cow<'_, str> {
    let mut reading = as_the_stack_routes(path);
    for _ in 0..2 {
        let again = as_the_stack_routes(&reading);
        if again == reading {
            break;
        }
        reading = Cow::Owned(again.into_owned());
    }
    reading
}

/// `path` with each segment's `;` parameters dropped (`/a;x/b` → `/a/b`),
/// as servlet containers and some proxies read it.
pub fn without_segment_params(path: &str) -> Cow<'_, str> {
    if !path.contains(';') {
        return Cow::Borrowed(path);
    }
    let segments: Vec<&str> = path
        .split('/')
        .map(|segment| segment.split(';').next().unwrap_or_default())
        .collect();
    Cow::Owned(segments.join("/"))
}

/// The path as The Things Stack routes it: fully percent-decoded (`%2F`
/// included; a malformed escape stays as it is), then `.`/`..` resolved and
/// repeated `/` merged, as its root router redirects to.
pub fn as_the_stack_routes(path: &str) -> Cow<'_, str> {
    if is_plain(path) {
        return Cow::Borrowed(path);
    }
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    Cow::Owned(clean(&decoded))
}

/// A path that every normal form leaves as it is: it starts with `/`, and
/// has no escapes, backslashes, empty or dot segments. Most requests are
/// like that; they cost no allocation.
fn is_plain(path: &str) -> bool {
    path.starts_with('/')
        && !path.contains(['%', '\\', ';'])
        && !path.contains("//")
        && path.split('/').all(|s| s != "." && s != "..")
}

/// Resolves `.` and `..` segments and merges repeated `/`; the result starts
/// with `/` and keeps a trailing `/` (a trailing `.` or `..` leaves one).
fn clean(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let mut trailing = path.ends_with('/');
    for segment in path.split('/') {
        match segment {
            "" => {}
            "." => trailing = true,
            ".." => {
                out.pop();
                trailing = true;
            }
            s => {
                out.push(s);
                trailing = path.ends_with('/');
            }
        }
    }
    let mut cleaned = String::with_capacity(path.len() + 1);
    for segment in &out {
        cleaned.push('/');
        cleaned.push_str(segment);
    }
    if cleaned.is_empty() || trailing {
        cleaned.push('/');
    }
    cleaned
}

fn hex_pair(pair: &[u8]) -> Option<u8> {
    let digit = |b: u8| (b as char).to_digit(16);
    Some((digit(pair[0])? * 16 + digit(pair[1])?) as u8)
}

/// RFC 3986 §2.3.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_form_resolves_dots_and_merges_slashes() {
        for (raw, normal) in [
            ("/api/v3/users", "/api/v3/users"),
            ("/api/v3/", "/api/v3/"),
            ("/", "/"),
            ("//console/admin", "/console/admin"),
            ("/api/v3/../console", "/api/console"),
            ("/api/v3/../../console", "/console"),
            ("/api/v3/%2e%2e/%2E%2E/console", "/console"),
            ("/api/./v3/x", "/api/v3/x"),
            ("/api/v3/..", "/api/"),
            ("/api/v3/.", "/api/v3/"),
            ("/../../etc", "/etc"),
            ("/%61pi/v3/", "/api/v3/"),
            ("/a%20b", "/a%20b"),
            ("/a%3fb", "/a%3Fb"),
        ] {
            assert_eq!(for_routes(raw).as_deref(), Some(normal), "{raw}");
        }
    }

    #[test]
    fn route_form_refuses_encoded_separators() {
        for raw in [
            "/api/v3%2F..%2Fconsole",
            "/api/v3/%2f",
            "/api/v3/%5C..",
            "/api\\v3",
            "/api/%00",
            "/api/%zz",
            "/api/%2",
            "/api/v3/..;/console",
            "/api/v3/x;jsessionid=1",
            "/api/v3/%3B",
        ] {
            assert_eq!(for_routes(raw), None, "{raw}");
        }
    }

    #[test]
    fn stack_form_decodes_everything() {
        for (raw, normal) in [
            (
                "/api/v3/users/x%2Flogin-tokens",
                "/api/v3/users/x/login-tokens",
            ),
            (
                "/api/v3/users/x/login%2Dtokens",
                "/api/v3/users/x/login-tokens",
            ),
            (
                "/account/api/auth%2Ftoken-login",
                "/account/api/auth/token-login",
            ),
            (
                "/api/v3/users/x/%2e%2e/y/login-tokens",
                "/api/v3/users/y/login-tokens",
            ),
            ("//account//token-login/", "/account/token-login/"),
        ] {
            assert_eq!(as_the_stack_routes(raw), normal, "{raw}");
        }
    }
}
