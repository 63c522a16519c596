//! Authentication providers: the model shared by the admin API, the `ap`
//! command and the login flow, its JSON shape (that of The Things Stack's
//! `tti-lw-cli ap`), and the validation rules both ends apply.

pub mod validate;

use serde::{Deserialize, Serialize};

/// A provider as printed by `idgate ap` and carried by the admin API. The
/// field order is the JSON key order of the contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provider {
    pub ids: ProviderIds,
    pub created_at: String,
    pub updated_at: String,
    pub name: String,
    pub allow_registrations: bool,
    pub configuration: Configuration,
    pub allowed_email_domains: Vec<String>,
    /// Entra tenant IDs admitted on a multi-tenant endpoint without
    /// `xms_edov` (see the contract's email rules). Omitted when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_tenants: Vec<String>,
    /// `config` for a provider declared in the config file (read-only).
    /// Omitted for providers managed through the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderIds {
    pub provider_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Configuration {
    pub oidc: OidcConfiguration,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OidcConfiguration {
    pub client_id: String,
    /// Left out of `get`/`list` output unless secrets are asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    pub provider_url: String,
}

impl Provider {
    pub fn id(&self) -> &str {
        &self.ids.provider_id
    }

    /// Whether this provider was declared in the config file.
    pub fn is_from_config(&self) -> bool {
        self.source.as_deref() == Some(SOURCE_CONFIG)
    }

    /// Whether `other` decides who may sign in as this one does: the same
    /// endpoint, client, email domains and tenants.
    pub fn same_sign_in_rules(&self, other: &Provider) -> bool {
        let (a, b) = (&self.configuration.oidc, &other.configuration.oidc);
        a.provider_url == b.provider_url
            && a.client_id == b.client_id
            && self.allowed_email_domains == other.allowed_email_domains
            && self.allowed_tenants == other.allowed_tenants
    }

    /// The same provider without its client secret.
    pub fn without_secret(mut self) -> Provider {
        self.configuration.oidc.client_secret = None;
        self
    }
}

pub const SOURCE_CONFIG: &str = "config";

/// The fields a create or update carries; absent fields are left alone by an
/// update, and take defaults on a create.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderChange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ids: Option<ProviderIds>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_registrations: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration: Option<ConfigurationChange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_email_domains: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_tenants: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigurationChange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<OidcChange>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcChange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_url: Option<String>,
}

impl ProviderChange {
    fn oidc(&self) -> Option<&OidcChange> {
        self.configuration.as_ref().and_then(|c| c.oidc.as_ref())
    }

    /// A new provider from this change, stamped `now`; `None` fields that a
    /// provider needs are left empty for validation to refuse.
    pub fn into_new(self, id: &str, now: &str) -> Provider {
        let oidc = self.oidc().cloned().unwrap_or_default();
        Provider {
            ids: ProviderIds {
                provider_id: id.to_string(),
            },
            created_at: now.to_string(),
            updated_at: now.to_string(),
            name: self.name.unwrap_or_else(|| id.to_string()),
            allow_registrations: self.allow_registrations.unwrap_or(false),
            configuration: Configuration {
                oidc: OidcConfiguration {
                    client_id: oidc.client_id.unwrap_or_default(),
                    client_secret: Some(oidc.client_secret.unwrap_or_default()),
                    provider_url: oidc.provider_url.unwrap_or_default(),
                },
            },
            allowed_email_domains: self.allowed_email_domains.unwrap_or_default(),
            allowed_tenants: self.allowed_tenants.unwrap_or_default(),
            source: None,
        }
    }

    /// `current` with this change applied, stamped `now`.
    pub fn apply_to(&self, mut current: Provider, now: &str) -> Provider {
        if let Some(name) = &self.name {
            current.name = name.clone();
        }
        if let Some(allow) = self.allow_registrations {
            current.allow_registrations = allow;
        }
        if let Some(o) = self.oidc() {
            let c = &mut current.configuration.oidc;
            if let Some(v) = &o.client_id {
                c.client_id = v.clone();
            }
            if let Some(v) = &o.client_secret {
                c.client_secret = Some(v.clone());
            }
            if let Some(v) = &o.provider_url {
                c.provider_url = v.clone();
            }
        }
        if let Some(d) = &self.allowed_email_domains {
            current.allowed_email_domains = d.clone();
        }
        if let Some(t) = &self.allowed_tenants {
            current.allowed_tenants = t.clone();
        }
        current.updated_at = now.to_string();
        current
    }
}
