//! `idgate ap`: provider management through the running gateway's admin
//! API, with the flags and JSON output of The Things Stack's `tti-lw-cli ap`.
//! Exit codes: 0 done, 2 invalid input (nothing changed), 1 anything else.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgAction, Args, Subcommand};

use super::admin_client::{self, pretty, AdminConn, Api, Failure};
use crate::providers::validate::{self, Rules};
use crate::providers::{ConfigurationChange, OidcChange, Provider, ProviderChange, ProviderIds};

#[derive(Subcommand, Debug)]
pub enum ApCommand {
    /// Register an authentication provider; prints it as JSON.
    ///
    /// Example (Microsoft Entra ID, single tenant; the redirect URI to register
    /// at Entra is <public_url>/oauth/login/<provider-id>/callback):
    ///
    ///   idgate ap create microsoft-entra --name "My OIDC Provider" \
    ///     --allow-registrations true --allowed-email-domains example.com \
    ///     --configuration.provider.oidc.client-id client123 \
    ///     --configuration.provider.oidc.client-secret-file /run/secrets/entra \
    ///     --configuration.provider.oidc.provider-url https://login.microsoftonline.com/<tenant>/v2.0
    #[command(verbatim_doc_comment)]
    Create {
        /// 3 to 36 lower-case letters, digits and single dashes.
        #[arg(allow_hyphen_values = true)]
        provider_id: String,
        #[command(flatten)]
        fields: ProviderFlags,
    },
    /// Print one provider as JSON.
    Get {
        /// The provider ID, as `ap list` shows it.
        provider_id: String,
        /// Include the client secret.
        #[arg(long)]
        include_secrets: bool,
    },
    /// Print every provider as a JSON array.
    List {
        /// Include the client secrets.
        #[arg(long)]
        include_secrets: bool,
    },
    /// Change the fields given, leave the rest; prints the provider as JSON.
    Update {
        /// The provider ID, as `ap list` shows it.
        provider_id: String,
        #[command(flatten)]
        fields: ProviderFlags,
    },
    /// Remove a provider; its login routes answer 404 at once.
    Delete {
        /// The provider ID, as `ap list` shows it.
        provider_id: String,
    },
}

#[derive(Args, Debug, Default)]
pub struct ProviderFlags {
    /// Shown on the login page as "Login to <name>".
    #[arg(long)]
    name: Option<String>,
    /// Whether people not yet known may sign up through this provider.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    allow_registrations: Option<bool>,
    /// Email domains admitted (repeatable or comma-separated; *.example.com admits subdomains).
    #[arg(long, value_name = "DOMAIN", value_delimiter = ',', action = ArgAction::Append)]
    allowed_email_domains: Option<Vec<String>>,
    /// Entra tenant IDs admitted on a multi-tenant endpoint (repeatable or comma-separated).
    #[arg(long, value_name = "TENANT", value_delimiter = ',', action = ArgAction::Append)]
    allowed_tenants: Option<Vec<String>>,
    /// The application (client) ID registered at the provider.
    #[arg(long = "configuration.provider.oidc.client-id", value_name = "ID")]
    client_id: Option<String>,
    /// The client secret (prefer the -file form to keep it out of shell history).
    #[arg(
        long = "configuration.provider.oidc.client-secret",
        value_name = "SECRET",
        conflicts_with = "client_secret_file"
    )]
    client_secret: Option<String>,
    /// Read the client secret from a file, or from standard input with `-`.
    #[arg(
        long = "configuration.provider.oidc.client-secret-file",
        value_name = "PATH"
    )]
    client_secret_file: Option<PathBuf>,
    /// Where discovery lives: <url>/.well-known/openid-configuration.
    #[arg(long = "configuration.provider.oidc.provider-url", value_name = "URL")]
    provider_url: Option<String>,
}

pub fn run(conn: AdminConn, command: ApCommand) -> ExitCode {
    admin_client::run(execute(&conn, command))
}

async fn execute(conn: &AdminConn, command: ApCommand) -> Result<Option<String>, Failure> {
    let api = Api::new(conn, "/api/v1/providers")?;
    match command {
        ApCommand::Create {
            provider_id,
            fields,
        } => {
            validate::provider_id(&provider_id).map_err(Failure::Invalid)?;
            let change = fields.into_change(Some(&provider_id))?;
            check_create(&provider_id, &change)?;
            let created: Provider = api.send(reqwest::Method::POST, "", Some(&change)).await?;
            Ok(Some(pretty(&created)))
        }
        ApCommand::Get {
            provider_id,
            include_secrets,
        } => {
            validate::provider_id(&provider_id).map_err(Failure::Invalid)?;
            let path = format!("/{provider_id}{}", secrets_query(include_secrets));
            let p: Provider = api.get(&path).await?;
            Ok(Some(pretty(&p)))
        }
        ApCommand::List { include_secrets } => {
            let all: Vec<Provider> = api.get(secrets_query(include_secrets)).await?;
            Ok(Some(pretty(&all)))
        }
        ApCommand::Update {
            provider_id,
            fields,
        } => {
            validate::provider_id(&provider_id).map_err(Failure::Invalid)?;
            let change = fields.into_change(None)?;
            if change == ProviderChange::default() {
                return Err(Failure::Invalid(
                    "nothing to update: give at least one field flag".into(),
                ));
            }
            check_fields(&change)?;
            let p: Provider = api
                .send(
                    reqwest::Method::PUT,
                    &format!("/{provider_id}"),
                    Some(&change),
                )
                .await?;
            Ok(Some(pretty(&p)))
        }
        ApCommand::Delete { provider_id } => {
            validate::provider_id(&provider_id).map_err(Failure::Invalid)?;
            api.delete(&format!("/{provider_id}")).await?;
            Ok(None)
        }
    }
}

fn secrets_query(include: bool) -> &'static str {
    if include {
        "?include_secrets=true"
    } else {
        ""
    }
}

/// A create must name everything a provider needs; the https rule is left
/// to the gateway, which knows its own `allow_insecure_http`.
fn check_create(id: &str, change: &ProviderChange) -> Result<(), Failure> {
    let candidate = change.clone().into_new(id, "");
    validate::provider(
        &candidate,
        Rules {
            allow_insecure_http: true,
        },
    )
    .map_err(Failure::Invalid)
}

/// An update's given fields must each be valid on their own.
fn check_fields(change: &ProviderChange) -> Result<(), Failure> {
    let lax = Rules {
        allow_insecure_http: true,
    };
    let oidc = change.configuration.as_ref().and_then(|c| c.oidc.as_ref());
    if let Some(url) = oidc.and_then(|o| o.provider_url.as_deref()) {
        validate::provider_url(url, lax).map_err(Failure::Invalid)?;
    }
    for d in change.allowed_email_domains.iter().flatten() {
        validate::email_domain(d).map_err(Failure::Invalid)?;
    }
    if oidc
        .and_then(|o| o.client_id.as_deref())
        .is_some_and(str::is_empty)
    {
        return Err(Failure::Invalid(
            "missing client ID: --configuration.provider.oidc.client-id must not be empty".into(),
        ));
    }
    if oidc
        .and_then(|o| o.client_secret.as_deref())
        .is_some_and(str::is_empty)
    {
        return Err(Failure::Invalid(
            "missing client secret: --configuration.provider.oidc.client-secret must not be empty"
                .into(),
        ));
    }
    Ok(())
}

impl ProviderFlags {
    fn into_change(self, id: Option<&str>) -> Result<ProviderChange, Failure> {
        let client_secret = match (self.client_secret, self.client_secret_file) {
            (Some(s), _) => Some(s),
            (None, Some(path)) => Some(read_secret(&path)?),
            (None, None) => None,
        };
        let oidc = OidcChange {
            client_id: self.client_id,
            client_secret,
            provider_url: self.provider_url,
        };
        let configuration =
            (oidc != OidcChange::default()).then_some(ConfigurationChange { oidc: Some(oidc) });
        let lower = |v: Vec<String>| {
            v.into_iter()
                .map(|d| d.trim().to_ascii_lowercase())
                .filter(|d| !d.is_empty())
                .collect()
        };
        Ok(ProviderChange {
            ids: id.map(|id| ProviderIds {
                provider_id: id.to_string(),
            }),
            name: self.name,
            allow_registrations: self.allow_registrations,
            configuration,
            allowed_email_domains: self.allowed_email_domains.map(lower),
            allowed_tenants: self.allowed_tenants.map(lower),
        })
    }
}

fn read_secret(path: &PathBuf) -> Result<String, Failure> {
    let mut text = String::new();
    let result = if path.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text).map(drop)
    } else {
        std::fs::File::open(path)
            .and_then(|mut f| f.read_to_string(&mut text))
            .map(drop)
    };
    result.map_err(|e| {
        Failure::Invalid(format!(
            "cannot read the client secret from {}: {e}",
            path.display()
        ))
    })?;
    Ok(text.trim_end_matches(['\r', '\n']).to_string())
}
