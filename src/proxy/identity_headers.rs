//! The identity headers a signed-in person's requests carry upstream (and
//! `/.idgate/auth` answers with), under their configured names. A person
//! in very many groups does not make the upstream request too large: past
//! an eighth of `server.max_header_bytes`, only the groups the access
//! rules name are sent (in the header and the assertion alike).

use std::borrow::Cow;

use http::{HeaderName, HeaderValue};

use crate::config::HeadersConfig;
use crate::identity::assertion::Signer;
use crate::identity::header_value::encode;
use crate::identity::Identity;
use crate::session::Live;

/// Parsed header names; `None` for a header that is not sent.
pub struct IdentityHeaders {
    user: Option<HeaderName>,
    email: Option<HeaderName>,
    preferred_username: Option<HeaderName>,
    provider: Option<HeaderName>,
    assertion: Option<HeaderName>,
    groups: Option<HeaderName>,
    roles: Option<HeaderName>,
    oid: Option<HeaderName>,
    tid: Option<HeaderName>,
    /// Most bytes the groups may take, joined by commas.
    groups_budget: usize,
    /// The groups the access rules name: what is sent past the budget.
    named_groups: Vec<String>,
}

fn name(raw: &str) -> Option<HeaderName> {
    HeaderName::from_bytes(raw.as_bytes()).ok()
}

impl IdentityHeaders {
    /// `named_groups`: every group `[access]` and `[[routes]]` name.
    pub fn new(c: &HeadersConfig, max_header_bytes: usize, named_groups: Vec<String>) -> Self {
        Self {
            groups_budget: max_header_bytes / 8,
            named_groups,
            user: name(&c.user),
            email: name(&c.email),
            preferred_username: name(&c.preferred_username),
            provider: name(&c.provider),
            assertion: name(&c.assertion),
            groups: name(&c.groups),
            roles: name(&c.roles),
            oid: name(&c.oid),
            tid: name(&c.tid),
        }
    }

    /// Calls `set` with every header for `live`. The values are built once
    /// per session; the assertion is re-signed only near its expiry.
    pub fn for_each(
        &self,
        live: &Live,
        signer: &Signer,
        mut set: impl FnMut(&HeaderName, HeaderValue),
    ) {
        for (name, value) in live.headers(|id| self.values(id)) {
            set(name, value.clone());
        }
        if let Some(n) = &self.assertion {
            match live.assertion(signer, |id| self.groups_of(id)) {
                Ok(token) => set(n, token),
                Err(e) => tracing::error!(error = %e, "cannot sign the identity assertion"),
            }
        }
    }

    fn values(&self, id: &Identity) -> Vec<(HeaderName, HeaderValue)> {
        let mut out = Vec::new();
        let mut put = |n: &Option<HeaderName>, v: Option<&str>| {
            if let (Some(n), Some(v)) = (n, v) {
                out.push((n.clone(), encode(v)));
            }
        };
        put(&self.user, Some(&id.username));
        put(&self.email, Some(&id.email));
        put(&self.preferred_username, id.preferred_username.as_deref());
        put(&self.provider, Some(&id.provider_id));
        put(&self.oid, id.oid.as_deref());
        put(&self.tid, id.tid.as_deref());
        let groups = self.groups_of(id);
        if groups.len() < id.groups.len() {
            tracing::warn!(username = %id.username, groups = id.groups.len(), sent = groups.len(), "too many groups to send upstream; only those the access rules name are sent");
        }
        if !groups.is_empty() {
            put(&self.groups, Some(&groups.join(",")));
        }
        if !id.roles.is_empty() {
            put(&self.roles, Some(&id.roles.join(",")));
        }
        out
    }

    /// The groups sent for `id`: all of them while they fit the budget,
    /// else those the access rules name.
    fn groups_of<'a>(&self, id: &'a Identity) -> Cow<'a, [String]> {
        let joined: usize = id.groups.iter().map(|g| g.len() + 1).sum();
        if joined <= self.groups_budget {
            return Cow::Borrowed(&id.groups);
        }
        let named = id
            .groups
            .iter()
            .filter(|g| self.named_groups.iter().any(|n| n.eq_ignore_ascii_case(g)));
        Cow::Owned(named.cloned().collect())
    }
}
