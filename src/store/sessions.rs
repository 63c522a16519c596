//! Session rows: what lets a restart, or another replica, recognise a
//! session cookie. Keyed by the SHA-256 of the session ID.

use sqlx::Row;

use super::{Store, StoreError};

/// A stored session; `identity` is the JSON of the identity and of what its
/// sign-in went by.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub id_hash: String,
    pub provider_id: String,
    pub sub: String,
    pub identity: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub last_seen: i64,
    /// SHA-256 of the provider's session ID (`sid`) when the token had one.
    pub sid_hash: Option<String>,
    /// The sealed refresh token, when the provider gave one.
    pub refresh_token: Option<String>,
    /// When the provider last vouched for the session (its sign-in, or its
    /// last successful revalidation).
    pub validated_at: i64,
    /// When the provider is to be asked again.
    pub revalidate_at: Option<i64>,
}

impl Store {
    pub async fn insert_session(&self, s: &SessionRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (id_hash, provider_id, sub, identity, created_at, expires_at, last_seen, sid_hash, \
             refresh_token, validated_at, revalidate_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&s.id_hash)
        .bind(&s.provider_id)
        .bind(&s.sub)
        .bind(&s.identity)
        .bind(s.created_at)
        .bind(s.expires_at)
        .bind(s.last_seen)
        .bind(&s.sid_hash)
        .bind(&s.refresh_token)
        .bind(s.validated_at)
        .bind(s.revalidate_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn get_session(&self, id_hash: &str) -> Result<Option<SessionRow>, StoreError> {
        let row = sqlx::query(
            "SELECT id_hash, provider_id, sub, identity, created_at, expires_at, last_seen, sid_hash, \
             refresh_token, validated_at, revalidate_at FROM sessions WHERE id_hash = $1",
        )
        .bind(id_hash)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|r| SessionRow {
            id_hash: r.get("id_hash"),
            provider_id: r.get("provider_id"),
            sub: r.get("sub"),
            identity: r.get("identity"),
            created_at: r.get("created_at"),
            expires_at: r.get("expires_at"),
            last_seen: r.get("last_seen"),
            sid_hash: r.get("sid_hash"),
            refresh_token: r.get("refresh_token"),
            validated_at: r
                .get::<Option<i64>, _>("validated_at")
                .unwrap_or_else(|| r.get("created_at")),
            revalidate_at: r.get("revalidate_at"),
        }))
    }

    /// Claims the revalidation of a session for `lease` seconds, unless
    /// another replica holds it or has just done it (the row is not due);
    /// the sealed refresh token when claimed.
    pub async fn claim_revalidation(
        &self,
        id_hash: &str,
        now: i64,
        lease: i64,
        claim: &str,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(
            "UPDATE sessions SET refreshing_until = $3, refresh_claim = $4 WHERE id_hash = $1 \
             AND refresh_token IS NOT NULL AND (refreshing_until IS NULL OR refreshing_until <= $2) \
             AND (revalidate_at IS NULL OR revalidate_at <= $2) \
             RETURNING refresh_token",
        )
        .bind(id_hash)
        .bind(now)
        .bind(now + lease)
        .bind(claim)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|r| r.get("refresh_token")))
    }

    /// Records a successful revalidation and releases the claim; false
    /// when the row is gone (signed out meanwhile) or the claim is no
    /// longer `claim`'s (its lease ran out and another took over).
    pub async fn revalidated(
        &self,
        id_hash: &str,
        claim: &str,
        identity: &str,
        refresh_token: &str,
        validated_at: i64,
        revalidate_at: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE sessions SET identity = $3, refresh_token = $4, validated_at = $5, \
             revalidate_at = $6, refreshing_until = NULL, refresh_claim = NULL \
             WHERE id_hash = $1 AND refresh_claim = $2",
        )
        .bind(id_hash)
        .bind(claim)
        .bind(identity)
        .bind(refresh_token)
        .bind(validated_at)
        .bind(revalidate_at)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records a revalidation that could not reach a verdict (the provider
    /// is down): tried again at `retry_at`; releases the claim.
    pub async fn revalidation_postponed(
        &self,
        id_hash: &str,
        claim: &str,
        retry_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE sessions SET revalidate_at = $3, refreshing_until = NULL, refresh_claim = NULL \
             WHERE id_hash = $1 AND refresh_claim = $2",
        )
        .bind(id_hash)
        .bind(claim)
        .bind(retry_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn touch_session(&self, id_hash: &str, last_seen: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET last_seen = $2 WHERE id_hash = $1")
            .bind(id_hash)
            .bind(last_seen)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn delete_session(&self, id_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Deletes the sessions of `provider_id` signed in during the
    /// provider's session `sid_hash`; returns their `id_hash`es.
    pub async fn delete_sessions_of_sid(
        &self,
        provider_id: &str,
        sid_hash: &str,
    ) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "DELETE FROM sessions WHERE provider_id = $1 AND sid_hash = $2 RETURNING id_hash",
        )
        .bind(provider_id)
        .bind(sid_hash)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(|r| r.get("id_hash")).collect())
    }

    pub async fn delete_sessions_of_provider(&self, provider_id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE provider_id = $1")
            .bind(provider_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Drops sessions past their lifetime or idle for longer than `idle`
    /// seconds, and used login states that could no longer be replayed.
    pub async fn purge_sessions(&self, now: i64, idle: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1 OR last_seen <= $2")
            .bind(now)
            .bind(now - idle)
            .execute(self.pool())
            .await?;
        sqlx::query("DELETE FROM used_states WHERE expires_at <= $1")
            .bind(now)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }

    /// Records a login state as used; false when it was already (on any
    /// replica). `expires_at` is when the login could no longer finish.
    pub async fn use_state(&self, state_hash: &str, expires_at: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("INSERT INTO used_states (state_hash, expires_at) VALUES ($1, $2)")
            .bind(state_hash)
            .bind(expires_at)
            .execute(self.pool())
            .await;
        match done {
            Ok(_) => Ok(true),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}
