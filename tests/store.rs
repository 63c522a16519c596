//! The store on both backends: created on first start, migrated once,
//! reachable for readiness.

mod common;

use idgate::store::{Backend, Store};
use sqlx::Row;

async fn applied_migrations(store: &Store) -> i64 {
    sqlx::query("SELECT COUNT(*) AS n FROM _sqlx_migrations")
        .fetch_one(store.pool())
        .await
        .unwrap()
        .get::<i64, _>("n")
}

#[tokio::test]
async fn sqlite_file_and_folder_are_created_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/nested/deeper/idgate.db", dir.path().display());
    let store = Store::open(&url, 2).await.unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    assert!(dir.path().join("nested/deeper/idgate.db").exists());
    let mode: String = sqlx::query("PRAGMA journal_mode")
        .fetch_one(store.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(mode, "wal");
    store.ping().await.unwrap();
    let first = applied_migrations(&store).await;
    assert!(first >= 1);
    store.close().await;

    let again = Store::open(&url, 2).await.unwrap();
    assert_eq!(
        applied_migrations(&again).await,
        first,
        "migrations run once"
    );
}

#[tokio::test]
async fn sqlite_relative_path_is_relative_to_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = common::run_idgate(
        &["check-config"],
        dir.path(),
        &[("IDGATE_DATABASE_URL", "sqlite://data/idgate.db")],
    );
    assert_eq!(code, 0, "{err}");
    let up = common::upstream::Upstream::start().await;
    let gw =
        common::Gateway::start(&up.url(), "[database]\nurl = \"sqlite://rel/idgate.db\"").await;
    assert!(gw.dir.path().join("rel/idgate.db").exists());
}

#[tokio::test]
async fn postgres_is_migrated_once_and_pings() {
    let url = common::pg::fresh_database().await;
    let store = Store::open(&url, 2).await.unwrap();
    assert_eq!(store.backend(), Backend::Postgres);
    store.ping().await.unwrap();
    let first = applied_migrations(&store).await;
    assert!(first >= 1);
    store.close().await;
    let again = Store::open(&url, 2).await.unwrap();
    assert_eq!(applied_migrations(&again).await, first);
}

#[tokio::test]
async fn an_unreachable_database_is_named_without_its_password() {
    let port = common::free_port();
    let url = format!("postgres://u:s3cret@127.0.0.1:{port}/db");
    let err = match Store::open(&url, 1).await {
        Ok(_) => panic!("opened a database that does not exist"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.starts_with(&format!(
            "database postgres://u:***@127.0.0.1:{port}/db: cannot open"
        )),
        "{err}"
    );
    assert!(!err.contains("s3cret"));
}

#[tokio::test]
async fn a_damaged_domain_list_is_an_error_not_an_open_door() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/idgate.db", dir.path().display());
    let store = Store::open(&url, 2).await.unwrap();
    let change: idgate::providers::ProviderChange = serde_json::from_value(serde_json::json!({
        "ids": {"provider_id": "entra"},
        "configuration": {"oidc": {"client_id": "c", "client_secret": "s", "provider_url": "https://x.example/v2.0"}},
        "allowed_email_domains": ["example.com"],
    }))
    .unwrap();
    store
        .insert_provider(&change.into_new("entra", "now"))
        .await
        .unwrap();
    assert!(store.get_provider("entra").await.unwrap().is_some());
    sqlx::query("UPDATE providers SET allowed_email_domains = 'not json'")
        .execute(store.pool())
        .await
        .unwrap();
    assert!(
        store.get_provider("entra").await.is_err(),
        "must not read as an empty list"
    );
    assert!(store.list_providers().await.is_err());
}

#[tokio::test]
async fn a_login_state_is_used_once_and_swept_when_it_could_no_longer_finish() {
    let pg = common::pg::fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}/idgate.db", dir.path().display());
    for url in [sqlite, pg] {
        let store = Store::open(&url, 2).await.unwrap();
        assert!(store.use_state("h1", 100).await.unwrap(), "{url}");
        assert!(!store.use_state("h1", 100).await.unwrap(), "{url}");
        assert!(store.use_state("h2", 300).await.unwrap(), "{url}");
        // Past its expiry the row goes; a later state is kept.
        store.purge_sessions(200, 3600).await.unwrap();
        let left: Vec<String> = sqlx::query("SELECT state_hash FROM used_states")
            .fetch_all(store.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<String, _>("state_hash"))
            .collect();
        assert_eq!(left, vec!["h2".to_string()], "{url}");
        store.close().await;
    }
}
