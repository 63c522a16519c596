//! Provider rows: the providers managed through the admin API.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{Store, StoreError};
use crate::providers::{Configuration, OidcConfiguration, Provider, ProviderIds};

const COLUMNS: &str = "provider_id, name, allow_registrations, client_id, client_secret, \
    provider_url, allowed_email_domains, allowed_tenants, created_at, updated_at";

/// What an insert can run into besides a broken database.
#[derive(Debug, thiserror::Error)]
pub enum InsertError {
    #[error("a provider with this ID exists")]
    Duplicate,
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn to_json(list: &[String]) -> String {
    serde_json::to_string(list).expect("a list of strings serialises")
}

/// A stored list; an unreadable one is an error, never an empty list (an
/// empty domain list would loosen the email rules).
fn from_json(text: &str) -> Result<Vec<String>, sqlx::Error> {
    serde_json::from_str(text).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

fn from_row(row: &AnyRow) -> Result<Provider, sqlx::Error> {
    Ok(Provider {
        ids: ProviderIds {
            provider_id: row.try_get("provider_id")?,
        },
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        name: row.try_get("name")?,
        allow_registrations: row.try_get::<i64, _>("allow_registrations")? != 0,
        configuration: Configuration {
            oidc: OidcConfiguration {
                client_id: row.try_get("client_id")?,
                client_secret: Some(row.try_get("client_secret")?),
                provider_url: row.try_get("provider_url")?,
            },
        },
        allowed_email_domains: from_json(&row.try_get::<String, _>("allowed_email_domains")?)?,
        allowed_tenants: from_json(&row.try_get::<String, _>("allowed_tenants")?)?,
        source: None,
    })
}

/// Binds $1..$9: the ID, every field, and `updated_at`.
fn bind_fields<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    p: &'q Provider,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    let oidc = &p.configuration.oidc;
    q.bind(p.id())
        .bind(&p.name)
        .bind(i64::from(p.allow_registrations))
        .bind(&oidc.client_id)
        .bind(oidc.client_secret.as_deref().unwrap_or_default())
        .bind(&oidc.provider_url)
        .bind(to_json(&p.allowed_email_domains))
        .bind(to_json(&p.allowed_tenants))
        .bind(&p.updated_at)
}

impl Store {
    pub async fn insert_provider(&self, p: &Provider) -> Result<(), InsertError> {
        let sql = "INSERT INTO providers (provider_id, name, allow_registrations, client_id, \
             client_secret, provider_url, allowed_email_domains, allowed_tenants, updated_at, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
        let result = bind_fields(sqlx::query(sql), p)
            .bind(&p.created_at)
            .execute(self.pool())
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(InsertError::Duplicate),
            Err(e) => Err(StoreError::Query(e).into()),
        }
    }

    pub async fn get_provider(&self, id: &str) -> Result<Option<Provider>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM providers WHERE provider_id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(from_row).transpose()?)
    }

    pub async fn list_providers(&self) -> Result<Vec<Provider>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM providers ORDER BY provider_id"
        ))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    /// Writes every field but the ID and `created_at`; false when absent.
    pub async fn update_provider(&self, p: &Provider) -> Result<bool, StoreError> {
        let sql = "UPDATE providers SET name = $2, allow_registrations = $3, client_id = $4, \
             client_secret = $5, provider_url = $6, allowed_email_domains = $7, \
             allowed_tenants = $8, updated_at = $9 WHERE provider_id = $1";
        let done = bind_fields(sqlx::query(sql), p)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// False when there was no such provider.
    pub async fn delete_provider(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM providers WHERE provider_id = $1")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
