//! The rules a provider must meet before anything is stored. The `ap`
//! command checks them before it sends anything; the admin API checks them
//! again (with the gateway's `[oidc] allow_insecure_http`) before it writes.

use std::net::IpAddr;

use super::Provider;

/// The longest provider ID.
pub const MAX_ID_LEN: usize = 36;
const MAX_NAME_LEN: usize = 100;

/// What the gateway's config allows beyond the default rules.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rules {
    pub allow_insecure_http: bool,
}

/// Checks the provider ID rule of the contract.
pub fn provider_id(id: &str) -> Result<(), String> {
    let bytes = id.as_bytes();
    let ok = (3..=MAX_ID_LEN).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
        && !id.contains("--");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid provider ID {id:?}: it must be 3 to {MAX_ID_LEN} characters of lower-case letters, \
             digits and dashes, with no leading, trailing or doubled dash (^[a-z0-9](?:[-]?[a-z0-9]){{2,}}$)"
        ))
    }
}

/// Checks every field of a complete provider; the first problem is returned.
pub fn provider(p: &Provider, rules: Rules) -> Result<(), String> {
    provider_id(p.id())?;
    if p.name.trim().is_empty()
        || p.name.chars().count() > MAX_NAME_LEN
        || p.name.chars().any(char::is_control)
    {
        return Err(format!(
            "invalid name {:?}: it must be 1 to {MAX_NAME_LEN} printable characters",
            p.name
        ));
    }
    let oidc = &p.configuration.oidc;
    if oidc.client_id.trim().is_empty() {
        return Err(
            "missing client ID: --configuration.provider.oidc.client-id must not be empty".into(),
        );
    }
    if oidc.client_secret.as_deref().is_none_or(|s| s.is_empty()) {
        return Err(
            "missing client secret: --configuration.provider.oidc.client-secret must not be empty"
                .into(),
        );
    }
    provider_url(&oidc.provider_url, rules)?;
    for d in &p.allowed_email_domains {
        email_domain(d)?;
    }
    for t in &p.allowed_tenants {
        if t.is_empty()
            || !t
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return Err(format!(
                "invalid allowed tenant {t:?}: it must be a tenant ID (GUID) or domain"
            ));
        }
    }
    Ok(())
}

/// `provider_url` is where discovery lives: absolute, `https://` unless the
/// host is loopback or the gateway allows insecure http, no query or fragment.
pub fn provider_url(raw: &str, rules: Rules) -> Result<(), String> {
    let url = url::Url::parse(raw).map_err(|_| {
        format!("invalid provider URL {raw:?}: it must be an absolute https:// URL such as https://login.microsoftonline.com/<tenant>/v2.0")
    })?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "invalid provider URL {raw:?}: it must not have a query or fragment"
        ));
    }
    let host = url.host_str().unwrap_or_default();
    if host.is_empty() {
        return Err(format!("invalid provider URL {raw:?}: it has no host"));
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(host) || rules.allow_insecure_http => Ok(()),
        "http" => Err(format!(
            "invalid provider URL {raw:?}: it must be https:// (http:// is accepted only for \
             localhost, 127.0.0.0/8 and [::1], or with [oidc] allow_insecure_http = true)"
        )),
        _ => Err(format!(
            "invalid provider URL {raw:?}: it must be an https:// URL"
        )),
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_matches(['[', ']'])
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A DNS name, optionally with `*.` in front (subdomains only).
pub fn email_domain(raw: &str) -> Result<(), String> {
    let name = raw.strip_prefix("*.").unwrap_or(raw);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.len() <= 253 && name.contains('.') && name.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(format!(
            "invalid email domain {raw:?}: it must be a DNS name such as example.com, optionally \
             with *. in front to admit its subdomains"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_ids() {
        for ok in ["abc", "microsoft-entra", "a1b", "a-b-c", &"a".repeat(36)] {
            assert!(provider_id(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ab",
            "-abc",
            "abc-",
            "a--b",
            "Abc",
            "a_b",
            "a.b",
            "",
            &"a".repeat(37),
            "ab ",
            "ä-bc",
        ] {
            let err = provider_id(bad).unwrap_err();
            assert!(err.contains("^[a-z0-9](?:[-]?[a-z0-9]){2,}$"), "{err}");
        }
    }

    #[test]
    fn provider_urls() {
        let strict = Rules::default();
        assert!(provider_url("https://login.microsoftonline.com/t/v2.0", strict).is_ok());
        assert!(provider_url("http://localhost:8080/t/v2.0", strict).is_ok());
        assert!(provider_url("http://127.0.0.5/t/v2.0", strict).is_ok());
        assert!(provider_url("http://[::1]:9000/t/v2.0", strict).is_ok());
        assert!(provider_url("http://idp.internal/t/v2.0", strict).is_err());
        let lax = Rules {
            allow_insecure_http: true,
        };
        assert!(provider_url("http://idp.internal/t/v2.0", lax).is_ok());
        assert!(provider_url("https://x/v2.0?a=b", strict).is_err());
        assert!(provider_url("https://x/v2.0#f", strict).is_err());
        assert!(provider_url("login.microsoftonline.com/t", strict).is_err());
        assert!(provider_url("ftp://x/t", lax).is_err());
    }

    #[test]
    fn email_domains() {
        for ok in ["example.com", "*.example.com", "a-b.example.co.uk"] {
            assert!(email_domain(ok).is_ok(), "{ok}");
        }
        for bad in [
            "example",
            "exa mple.com",
            "*example.com",
            "-a.com",
            "a..com",
            "*.",
            "@example.com",
            "",
        ] {
            assert!(email_domain(bad).is_err(), "{bad}");
        }
    }
}
