//! User rows: people who signed in, keyed by (provider, `sub`), each with a
//! username unique across all providers.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{Store, StoreError};

/// A person as the registry remembers them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UserRecord {
    pub provider_id: String,
    pub sub: String,
    pub username: String,
    pub email: String,
    pub name: String,
    pub given_name: String,
    pub family_name: String,
    pub preferred_username: String,
    pub oid: String,
    pub tid: String,
    pub created_at: String,
    pub last_login: String,
}

/// Why a new user was not stored.
#[derive(Debug, thiserror::Error)]
pub enum NewUserError {
    #[error("the username is taken")]
    UsernameTaken,
    #[error("this person was registered meanwhile")]
    AlreadyRegistered,
    #[error(transparent)]
    Store(#[from] StoreError),
}

const COLUMNS: &str = "provider_id, sub, username, email, name, given_name, family_name, \
    preferred_username, oid, tid, created_at, last_login";

fn from_row(r: &AnyRow) -> Result<UserRecord, sqlx::Error> {
    Ok(UserRecord {
        provider_id: r.try_get("provider_id")?,
        sub: r.try_get("sub")?,
        username: r.try_get("username")?,
        email: r.try_get("email")?,
        name: r.try_get("name")?,
        given_name: r.try_get("given_name")?,
        family_name: r.try_get("family_name")?,
        preferred_username: r.try_get("preferred_username")?,
        oid: r.try_get("oid")?,
        tid: r.try_get("tid")?,
        created_at: r.try_get("created_at")?,
        last_login: r.try_get("last_login")?,
    })
}

impl Store {
    pub async fn find_user(
        &self,
        provider_id: &str,
        sub: &str,
    ) -> Result<Option<UserRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM users WHERE provider_id = $1 AND sub = $2"
        ))
        .bind(provider_id)
        .bind(sub)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(from_row).transpose()?)
    }

    pub async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM users WHERE username = $1"))
            .bind(username)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.as_ref().map(from_row).transpose()?)
    }

    pub async fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM users ORDER BY username"))
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    /// Stores a new user; the database's uniqueness decides races.
    pub async fn insert_user(&self, u: &UserRecord) -> Result<(), NewUserError> {
        let result = sqlx::query(&format!(
            "INSERT INTO users ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        ))
        .bind(&u.provider_id)
        .bind(&u.sub)
        .bind(&u.username)
        .bind(&u.email)
        .bind(&u.name)
        .bind(&u.given_name)
        .bind(&u.family_name)
        .bind(&u.preferred_username)
        .bind(&u.oid)
        .bind(&u.tid)
        .bind(&u.created_at)
        .bind(&u.last_login)
        .execute(self.pool())
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                if self.find_user(&u.provider_id, &u.sub).await?.is_some() {
                    Err(NewUserError::AlreadyRegistered)
                } else {
                    Err(NewUserError::UsernameTaken)
                }
            }
            Err(e) => Err(StoreError::Query(e).into()),
        }
    }

    /// Refreshes what the provider says about a known person; never the username.
    pub async fn update_user_claims(&self, u: &UserRecord) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE users SET email = $3, name = $4, given_name = $5, family_name = $6, \
             preferred_username = $7, oid = $8, tid = $9, last_login = $10 \
             WHERE provider_id = $1 AND sub = $2",
        )
        .bind(&u.provider_id)
        .bind(&u.sub)
        .bind(&u.email)
        .bind(&u.name)
        .bind(&u.given_name)
        .bind(&u.family_name)
        .bind(&u.preferred_username)
        .bind(&u.oid)
        .bind(&u.tid)
        .bind(&u.last_login)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Notes that the person's user in The Things Stack was created by idgate.
    pub async fn mark_in_stack(&self, provider_id: &str, sub: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET in_stack = 1 WHERE provider_id = $1 AND sub = $2")
            .bind(provider_id)
            .bind(sub)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Whether idgate created the person's user in The Things Stack.
    pub async fn in_stack(&self, provider_id: &str, sub: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT in_stack FROM users WHERE provider_id = $1 AND sub = $2")
            .bind(provider_id)
            .bind(sub)
            .fetch_optional(self.pool())
            .await?;
        Ok(match row {
            Some(r) => r.try_get::<i64, _>("in_stack")? != 0,
            None => false,
        })
    }

    /// Removes a user and every session of theirs; returns who it was.
    pub async fn delete_user(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        let Some(user) = self.user_by_username(username).await? else {
            return Ok(None);
        };
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM sessions WHERE provider_id = $1 AND sub = $2")
            .bind(&user.provider_id)
            .bind(&user.sub)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM users WHERE username = $1")
            .bind(username)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(user))
    }
}
