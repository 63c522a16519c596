//! The identity headers a signed-in person's requests carry upstream (and
//! `/.idgate/auth` answers with), under their configured names.

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
}

fn name(raw: &str) -> Option<HeaderName> {
    HeaderName::from_bytes(raw.as_bytes()).ok()
}

impl IdentityHeaders {
    pub fn new(c: &HeadersConfig) -> Self {
        Self {
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
            match live.assertion(signer) {
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
        if !id.groups.is_empty() {
            put(&self.groups, Some(&id.groups.join(",")));
        }
        if !id.roles.is_empty() {
            put(&self.roles, Some(&id.roles.join(",")));
        }
        out
    }
}
