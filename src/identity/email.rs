//! The email rules: Entra does not verify email, so an address is trusted
//! only when the provider's domain list, or the provider itself, vouches for
//! it. Identity is (provider, `sub`); the email is only ever an attribute.
//! A session keeps what its sign-in's email was vouched by, so the rules
//! can be applied again after the provider's have changed.

use serde::{Deserialize, Serialize};

use crate::providers::Provider;

/// What the ID token says about the email.
#[derive(Debug, Clone, Copy, Default)]
pub struct Evidence<'a> {
    pub email: Option<&'a str>,
    pub email_verified: Option<bool>,
    pub xms_edov: Option<bool>,
    pub tid: Option<&'a str>,
}

/// What vouched for an accepted email at sign-in, beyond the address and
/// the tenant (which the identity keeps).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Vouching {
    /// The provider's issuer is a multi-tenant one.
    pub multi_tenant: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xms_edov: Option<bool>,
}

impl Vouching {
    pub fn of(multi_tenant: bool, ev: &Evidence<'_>) -> Self {
        Self {
            multi_tenant,
            email_verified: ev.email_verified,
            xms_edov: ev.xms_edov,
        }
    }
}

/// Whether an email that passed [`check`] was vouched for by the domain
/// list, `email_verified` or `xms_edov` (and not only by an allowed tenant):
/// what The Things Stack may be told is a validated address.
pub fn vouched_for(provider: &Provider, vouching: &Vouching) -> bool {
    vouching.xms_edov == Some(true)
        || vouching.email_verified == Some(true)
        || !provider.allowed_email_domains.is_empty()
}

/// Whether `provider`'s rules as they are now still admit an email they
/// admitted at sign-in, going by the same evidence; with no evidence kept
/// (a session from before it was), by the domain list alone.
pub fn check_again(
    provider: &Provider,
    email: &str,
    tid: Option<&str>,
    vouching: Option<Vouching>,
) -> Result<(), EmailRefusal> {
    let Some(vouching) = vouching else {
        return check_domain(provider, email);
    };
    let ev = Evidence {
        email: Some(email),
        email_verified: vouching.email_verified,
        xms_edov: vouching.xms_edov,
        tid,
    };
    check(provider, vouching.multi_tenant, &ev).map(drop)
}

/// Why an email was not accepted; each is a 403 for the person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailRefusal {
    Missing,
    Malformed,
    DomainNotAllowed,
    /// `xms_edov: false`: the tenant says the domain is not verified.
    DomainUnverified,
    /// No domain list, and neither `email_verified` nor `xms_edov` is true.
    NotVerified,
    /// Multi-tenant provider: the domain list alone vouches for nothing.
    TenantNotAllowed,
}

impl EmailRefusal {
    /// A stable reason for logs.
    pub fn reason(self) -> &'static str {
        match self {
            EmailRefusal::Missing => "email_missing",
            EmailRefusal::Malformed => "email_malformed",
            EmailRefusal::DomainNotAllowed => "email_domain_not_allowed",
            EmailRefusal::DomainUnverified => "email_domain_unverified",
            EmailRefusal::NotVerified => "email_not_verified",
            EmailRefusal::TenantNotAllowed => "tenant_not_allowed",
        }
    }

    /// What the person is told.
    pub fn message(self) -> &'static str {
        match self {
            EmailRefusal::Missing => "Your account did not share an email address, which this site requires. Ask your administrator to include the email claim.",
            EmailRefusal::Malformed => "The email address of your account is not one this site can use.",
            EmailRefusal::DomainNotAllowed => "Accounts with your email domain are not allowed to sign in here.",
            EmailRefusal::DomainUnverified => "Your organisation has not verified the domain of your email address, so this site cannot trust it.",
            EmailRefusal::NotVerified => "Your email address is not verified by your sign-in provider, so this site cannot trust it.",
            EmailRefusal::TenantNotAllowed => "Your organisation (tenant) is not allowed to sign in here.",
        }
    }
}

/// The email to use, or why there is none.
pub fn check(
    provider: &Provider,
    multi_tenant: bool,
    ev: &Evidence<'_>,
) -> Result<String, EmailRefusal> {
    let email = ev
        .email
        .filter(|e| !e.is_empty())
        .ok_or(EmailRefusal::Missing)?;
    let (local, domain) = split(email).ok_or(EmailRefusal::Malformed)?;
    if local.is_empty() || domain.is_empty() {
        return Err(EmailRefusal::Malformed);
    }
    if ev.xms_edov == Some(false) {
        return Err(EmailRefusal::DomainUnverified);
    }
    if multi_tenant {
        // Anyone can create a tenant and put any address in it: on a
        // multi-tenant endpoint only the tenant's verification (xms_edov) or
        // an allowed tenant vouches for anything.
        let tenant_allowed = ev.tid.is_some_and(|tid| {
            provider
                .allowed_tenants
                .iter()
                .any(|t| t.eq_ignore_ascii_case(tid))
        });
        if ev.xms_edov != Some(true) && !tenant_allowed {
            return Err(EmailRefusal::TenantNotAllowed);
        }
    }
    if provider.allowed_email_domains.is_empty() {
        if ev.email_verified == Some(true) || ev.xms_edov == Some(true) {
            return Ok(email.to_string());
        }
        return Err(EmailRefusal::NotVerified);
    }
    check_domain(provider, email)?;
    Ok(email.to_string())
}

/// Whether the provider's domain list, when it has one, admits the domain
/// of `email`.
fn check_domain(provider: &Provider, email: &str) -> Result<(), EmailRefusal> {
    let domain = split(email).ok_or(EmailRefusal::Malformed)?.1;
    let listed = provider.allowed_email_domains.is_empty()
        || provider
            .allowed_email_domains
            .iter()
            .any(|allowed| domain_matches(allowed, domain));
    listed.then_some(()).ok_or(EmailRefusal::DomainNotAllowed)
}

/// Local part and domain of an address with exactly one `@`.
fn split(email: &str) -> Option<(&str, &str)> {
    let (local, domain) = email.split_once('@')?;
    (!domain.contains('@')).then_some((local, domain))
}

/// `example.com` matches only itself; `*.example.com` only its subdomains.
/// Case-insensitive, nothing trimmed, no partial match.
fn domain_matches(allowed: &str, domain: &str) -> bool {
    match allowed.strip_prefix("*.") {
        Some(parent) => {
            domain.len() > parent.len() + 1
                && domain.as_bytes()[domain.len() - parent.len() - 1] == b'.'
                && domain[domain.len() - parent.len()..].eq_ignore_ascii_case(parent)
        }
        None => domain.eq_ignore_ascii_case(allowed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::{ProviderChange, ProviderIds};

    fn provider(domains: &[&str], tenants: &[&str]) -> Provider {
        ProviderChange {
            ids: Some(ProviderIds {
                provider_id: "p".into(),
            }),
            allowed_email_domains: Some(domains.iter().map(|s| s.to_string()).collect()),
            allowed_tenants: Some(tenants.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        }
        .into_new("p", "")
    }

    fn ev(email: &str) -> Evidence<'_> {
        Evidence {
            email: Some(email),
            ..Default::default()
        }
    }

    #[test]
    fn domain_list_matches_exactly_and_case_insensitively() {
        let p = provider(&["example.com", "*.corp.example"], &[]);
        assert!(check(&p, false, &ev("a@example.com")).is_ok());
        assert!(check(&p, false, &ev("a@EXAMPLE.com")).is_ok());
        assert!(check(&p, false, &ev("a@eu.corp.example")).is_ok());
        for bad in [
            "a@corp.example",
            "a@sub.example.com",
            "a@example.com.evil",
            "a@evilexample.com",
            "a@example.com ",
            "a@xcorp.example",
        ] {
            assert_eq!(
                check(&p, false, &ev(bad)),
                Err(EmailRefusal::DomainNotAllowed),
                "{bad}"
            );
        }
        assert_eq!(
            check(&p, false, &ev("a@b@example.com")),
            Err(EmailRefusal::Malformed)
        );
        assert_eq!(
            check(&p, false, &ev("@example.com")),
            Err(EmailRefusal::Malformed)
        );
        assert_eq!(check(&p, false, &ev("noat")), Err(EmailRefusal::Malformed));
        assert_eq!(
            check(&p, false, &Evidence::default()),
            Err(EmailRefusal::Missing)
        );
    }

    #[test]
    fn xms_edov_false_is_refused() {
        let p = provider(&["example.com"], &[]);
        let e = Evidence {
            xms_edov: Some(false),
            ..ev("a@example.com")
        };
        assert_eq!(check(&p, false, &e), Err(EmailRefusal::DomainUnverified));
    }

    #[test]
    fn without_a_list_the_provider_must_vouch() {
        let p = provider(&[], &[]);
        assert_eq!(
            check(&p, false, &ev("a@x.org")),
            Err(EmailRefusal::NotVerified)
        );
        let verified = Evidence {
            email_verified: Some(true),
            ..ev("a@x.org")
        };
        assert!(check(&p, false, &verified).is_ok());
        let edov = Evidence {
            xms_edov: Some(true),
            ..ev("a@x.org")
        };
        assert!(check(&p, false, &edov).is_ok());
    }

    #[test]
    fn multi_tenant_needs_edov_or_an_allowed_tenant() {
        let p = provider(&["example.com"], &["11111111-1111-1111-1111-111111111111"]);
        let plain = ev("a@example.com");
        assert_eq!(check(&p, true, &plain), Err(EmailRefusal::TenantNotAllowed));
        let edov = Evidence {
            xms_edov: Some(true),
            ..plain
        };
        assert!(check(&p, true, &edov).is_ok());
        let tenant = Evidence {
            tid: Some("11111111-1111-1111-1111-111111111111"),
            ..plain
        };
        assert!(check(&p, true, &tenant).is_ok());
        let no_list = provider(&[], &[]);
        let verified_elsewhere = Evidence {
            email_verified: Some(true),
            ..plain
        };
        assert_eq!(
            check(&no_list, true, &verified_elsewhere),
            Err(EmailRefusal::TenantNotAllowed),
            "email_verified from any tenant vouches for nothing"
        );
        let other = Evidence {
            tid: Some("22222222-2222-2222-2222-222222222222"),
            ..plain
        };
        assert_eq!(check(&p, true, &other), Err(EmailRefusal::TenantNotAllowed));
    }

    #[test]
    fn a_session_is_checked_again_by_its_sign_ins_evidence() {
        let listed = provider(&["example.com"], &[]);
        let unlisted = provider(&[], &[]);
        let edov = Vouching {
            xms_edov: Some(true),
            ..Default::default()
        };
        let list_only = Vouching::default();
        assert_eq!(
            check_again(&listed, "a@example.com", None, Some(list_only)),
            Ok(())
        );
        assert_eq!(
            check_again(&listed, "a@other.example", None, Some(edov)),
            Err(EmailRefusal::DomainNotAllowed)
        );
        assert_eq!(
            check_again(&unlisted, "a@example.com", None, Some(list_only)),
            Err(EmailRefusal::NotVerified)
        );
        assert_eq!(
            check_again(&unlisted, "a@example.com", None, Some(edov)),
            Ok(())
        );
    }

    #[test]
    fn a_session_without_evidence_is_checked_by_the_domain_list_alone() {
        let listed = provider(&["example.com"], &[]);
        assert_eq!(check_again(&listed, "a@example.com", None, None), Ok(()));
        assert_eq!(
            check_again(&listed, "a@other.example", None, None),
            Err(EmailRefusal::DomainNotAllowed)
        );
        assert_eq!(
            check_again(&provider(&[], &[]), "a@example.com", None, None),
            Ok(())
        );
    }
}
