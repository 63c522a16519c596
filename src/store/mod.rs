//! The persistent registry behind the gateway: one `sqlx` code path over
//! SQLite (the embedded default) and PostgreSQL (for several replicas), with
//! embedded migrations run at startup.

pub mod announce;
pub mod providers;
pub mod secrets;
pub mod sessions;
pub mod users;

use std::path::Path;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyConnection, AnyPool, Connection};

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Why the database could not be used; the message names the URL without
/// its password.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {url}: cannot open: {reason}")]
    Open { url: String, reason: String },
    #[error("database {url}: cannot apply migrations: {reason}")]
    Migrate { url: String, reason: String },
    #[error("database query failed: {0}")]
    Query(#[from] sqlx::Error),
}

/// A connection pool with the schema in place.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Where it was opened, for the PostgreSQL notification listener.
    url: std::sync::Arc<str>,
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl Store {
    /// Opens the database at `url`, creating a SQLite file and its folder on
    /// first start, and applies every pending migration.
    pub async fn open(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let shown = redact_url(url);
        let open_err = |reason: String| StoreError::Open {
            url: shown.clone(),
            reason,
        };
        let (backend, connect_url) = if let Some(path) = url.strip_prefix("sqlite://") {
            prepare_sqlite_folder(path).map_err(|e| open_err(e.to_string()))?;
            (Backend::Sqlite, with_create_mode(url))
        } else {
            (Backend::Postgres, url.to_string())
        };
        // One direct connection first: a refused or misconfigured database
        // is reported at once, with the driver's own reason.
        let probe = tokio::time::timeout(CONNECT_TIMEOUT, AnyConnection::connect(&connect_url))
            .await
            .map_err(|_| open_err(describe(&sqlx::Error::PoolTimedOut)))?
            .map_err(|e| open_err(describe(&e)))?;
        let _ = probe.close().await;
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect(&connect_url)
            .await
            .map_err(|e| open_err(describe(&e)))?;
        if backend == Backend::Sqlite {
            sqlx::query("PRAGMA journal_mode=WAL")
                .execute(&pool)
                .await
                .map_err(|e| open_err(describe(&e)))?;
        }
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Migrate {
                url: shown.clone(),
                reason: e.to_string(),
            })?;
        Ok(Store {
            pool,
            backend,
            url: url.into(),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// A cheap round trip, for readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes every connection; for a clean shutdown.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn prepare_sqlite_folder(path: &str) -> std::io::Result<()> {
    let file = path.split('?').next().unwrap_or(path);
    match Path::new(file).parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir),
        _ => Ok(()),
    }
}

fn with_create_mode(url: &str) -> String {
    if url.contains("mode=") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

fn describe(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::PoolTimedOut => format!(
            "no connection within {}s (is the server running and reachable?)",
            CONNECT_TIMEOUT.as_secs()
        ),
        other => other.to_string(),
    }
}

/// The URL with any password replaced by `***`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}
