//! A fresh PostgreSQL database per test, on the server named by
//! `IDGATE_TEST_POSTGRES_URL` (default: the local trust-auth server that
//! `.ci/run` starts). A missing server fails the test with what to do.

use sqlx::Connection;

pub fn admin_url() -> String {
    std::env::var("IDGATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// Creates an empty database and returns its URL.
pub async fn fresh_database() -> String {
    let admin = admin_url();
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is needed for this test and is not reachable at {admin}: {e}\n\
             Start it (`scripts/setup --test` installs and starts one) or point \
             IDGATE_TEST_POSTGRES_URL at a server where this user may CREATE DATABASE."
            )
        });
    let name = format!("idgate_t_{}_{}", std::process::id(), super::free_port());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let mut url = url::Url::parse(&admin).unwrap();
    url.set_path(&name);
    url.to_string()
}
