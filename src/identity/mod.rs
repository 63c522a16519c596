//! Who a signed-in person is, as the upstream learns it: the identity kept
//! in a session, the username rules, the email rules, the user registry and
//! the signed assertion.

pub mod assertion;
pub mod email;
pub mod header_value;
pub mod keys;
pub mod username;

use serde::{Deserialize, Serialize};

/// The verified identity of a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub provider_id: String,
    pub sub: String,
    pub username: String,
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// The token left the groups out (Entra's groups overage) and they
    /// were not looked up: no group rule admits.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub groups_unknown: bool,
}

impl Identity {
    /// The identity the verified `claims` of a sign-in (or a refresh) give
    /// the person known as `username`, with the email the rules accepted.
    pub fn from_claims(
        provider_id: &str,
        username: String,
        email: String,
        claims: crate::oidc::IdClaims,
    ) -> Self {
        Self {
            provider_id: provider_id.to_string(),
            sub: claims.sub,
            username,
            email,
            preferred_username: claims.preferred_username,
            name: claims.name,
            oid: claims.oid,
            tid: claims.tid,
            groups: claims.groups,
            roles: claims.roles,
            groups_unknown: claims.groups_overage,
        }
    }

    /// The groups and roles the access rules look at.
    pub fn held(&self) -> crate::policy::access::Held<'_> {
        crate::policy::access::Held {
            groups: &self.groups,
            roles: &self.roles,
            groups_unknown: self.groups_unknown,
        }
    }
}
