//! What one replica tells the others through the database they share:
//! with PostgreSQL, a session ended, a person deleted or a provider changed
//! is announced with `NOTIFY` and heard by every replica that `LISTEN`s,
//! within a moment. SQLite has one replica: nothing is announced. When the
//! channel is down, replicas fall back to their caches' time limits.

use std::time::Duration;

use sqlx::postgres::PgListener;

use super::{Backend, Store};

/// The notification channel.
const CHANNEL: &str = "idgate";
/// Wait before listening again after the listener failed.
const RETRY: Duration = Duration::from_secs(1);

/// One thing a replica changed that others cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Announcement {
    /// The session with this ID hash ended.
    Session(String),
    /// The person's sessions ended (the person was deleted).
    User { provider_id: String, sub: String },
    /// The provider changed or was deleted.
    Provider(String),
}

impl Announcement {
    fn encode(&self) -> String {
        match self {
            Announcement::Session(h) => format!("session {h}"),
            Announcement::User { provider_id, sub } => format!("user {provider_id} {sub}"),
            Announcement::Provider(id) => format!("provider {id}"),
        }
    }

    fn decode(message: &str) -> Option<Self> {
        let (kind, rest) = message.split_once(' ')?;
        Some(match kind {
            "session" => Announcement::Session(rest.to_string()),
            "user" => {
                let (provider_id, sub) = rest.split_once(' ')?;
                Announcement::User {
                    provider_id: provider_id.to_string(),
                    sub: sub.to_string(),
                }
            }
            "provider" => Announcement::Provider(rest.to_string()),
            _ => return None,
        })
    }
}

impl Store {
    /// Tells the other replicas, when there are any (PostgreSQL). A failure
    /// is logged: they still follow within their caches' time limits.
    pub async fn announce(&self, a: &Announcement) {
        if self.backend != Backend::Postgres {
            return;
        }
        let sent = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(a.encode())
            .execute(&self.pool)
            .await;
        if let Err(e) = sent {
            tracing::warn!(error = %e, "cannot announce a change to the other replicas");
        }
    }

    /// Hears every announcement (its own included) for as long as the
    /// gateway runs, listening again by itself when the channel drops.
    pub async fn listen<F, Fut>(&self, heard: F)
    where
        F: Fn(Announcement) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        if self.backend != Backend::Postgres {
            return;
        }
        loop {
            match self.listen_once(&heard).await {
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "not hearing other replicas; listening again in 1s (meanwhile their changes reach this one within the cache limits)")
                }
            }
            tokio::time::sleep(RETRY).await;
        }
    }

    async fn listen_once<F, Fut>(&self, heard: &F) -> Result<(), sqlx::Error>
    where
        F: Fn(Announcement) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let mut listener = PgListener::connect(&self.url).await?;
        listener.listen(CHANNEL).await?;
        tracing::info!("listening for other replicas' changes");
        loop {
            // `None`: the connection dropped. What was announced meanwhile
            // is lost: it reaches this replica through the caches' limits.
            match listener.try_recv().await? {
                Some(n) => match Announcement::decode(n.payload()) {
                    Some(a) => heard(a).await,
                    None => tracing::debug!(payload = n.payload(), "unknown announcement"),
                },
                None => {
                    tracing::warn!("lost the notification channel; listening again");
                    return Ok(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_survive_the_wire() {
        for a in [
            Announcement::Session("abc".into()),
            Announcement::User {
                provider_id: "entra".into(),
                sub: "s u b".into(),
            },
            Announcement::Provider("entra".into()),
        ] {
            assert_eq!(Announcement::decode(&a.encode()), Some(a));
        }
        assert_eq!(Announcement::decode("nonsense"), None);
    }
}
