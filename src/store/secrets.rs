//! Key material shared by every replica, created once on first start.

use sqlx::Row;

use super::{Store, StoreError};

impl Store {
    /// The secret stored under `name`; when there is none yet, `make`'s value
    /// is stored first. Replicas starting together all end up with the one
    /// value that was stored first.
    pub async fn secret_or_create(
        &self,
        name: &str,
        make: impl FnOnce() -> String,
    ) -> Result<String, StoreError> {
        if let Some(v) = self.secret(name).await? {
            return Ok(v);
        }
        sqlx::query("INSERT INTO secrets (name, value, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(make())
            .bind(crate::time::unix_now())
            .execute(self.pool())
            .await?;
        Ok(self.secret(name).await?.expect("a secret was just stored"))
    }

    /// Stores `value` under `name`, replacing what was there.
    pub async fn put_secret(&self, name: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO secrets (name, value, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value, created_at = excluded.created_at",
        )
        .bind(name)
        .bind(value)
        .bind(crate::time::unix_now())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn secret(&self, name: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT value FROM secrets WHERE name = $1")
            .bind(name)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(|r| r.get::<String, _>("value")))
    }
}
