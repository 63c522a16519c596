//! One replica's session store at scale, on PostgreSQL (the local test
//! server, `IDGATE_TEST_POSTGRES_URL`): 1,000,000 stored sessions, then
//! the time of a cold lookup (a cookie this replica has not cached: the
//! database row read and checked), median and p99 over 2,000 random
//! sessions, and the process's resident memory before and after 250,000
//! distinct sessions have been looked up (the cache keeps at most 200,000).
//!
//!   cargo bench --bench sessions_at_scale     # SESSIONS=100000 for a quicker run

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use idgate::provider_registry::Registry;
use idgate::providers::validate::Rules;
use idgate::providers::ProviderChange;
use idgate::session::cookies::CookieCodec;
use idgate::session::sealed::Sealer;
use idgate::session::{Lifetimes, Sessions};
use idgate::store::Store;
use rand::Rng;

/// The `Cookie` header for session ID `id`.
fn cookie(codec: &CookieCodec, id: &str) -> http::HeaderValue {
    let set = codec.session_cookie(id, 3600);
    http::HeaderValue::from_str(set.split(';').next().unwrap()).unwrap()
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kb: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb / 1024.0
}

fn summary(mut d: Vec<Duration>) -> String {
    d.sort();
    let at = |q: f64| d[((d.len() as f64 * q).ceil() as usize).clamp(1, d.len()) - 1];
    format!(
        "median {:.3} ms, p99 {:.3} ms",
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3
    )
}

async fn run(n: i64) {
    let url = common::pg::fresh_database().await;
    let store = Store::open(&url, 8).await.expect("store opens");
    let started = Instant::now();
    // The identity is what a session row holds (fields of the contract's
    // identity); the ID hash is the SHA-256 of the ID `id<i>`, in hex.
    sqlx::query(
        "INSERT INTO sessions (id_hash, provider_id, sub, identity, created_at, expires_at, last_seen) \
         SELECT encode(sha256(convert_to('id' || i, 'UTF8')), 'hex'), 'entra', 's' || i, \
                '{\"provider_id\":\"entra\",\"sub\":\"s' || i || '\",\"username\":\"u' || i || \
                '\",\"email\":\"u' || i || '@example.com\"}', \
                $2, $2 + 43200, $2 \
         FROM generate_series(1, $1) AS i",
    )
    .bind(n)
    .bind(idgate::time::unix_now())
    .execute(store.pool())
    .await
    .expect("sessions stored");
    sqlx::query("ANALYZE sessions")
        .execute(store.pool())
        .await
        .unwrap();
    println!(
        "{n} sessions stored in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let entra = ProviderChange {
        allowed_email_domains: Some(vec!["example.com".into()]),
        ..Default::default()
    }
    .into_new("entra", "");
    let providers = Registry::load(store.clone(), vec![entra], Rules::default())
        .await
        .expect("providers load");
    let codec = CookieCodec::new(&[7u8; 64], false);
    let sessions = Arc::new(Sessions::new(
        store,
        providers,
        codec.clone(),
        Lifetimes {
            absolute: 12 * 3600,
            idle: 12 * 3600,
            revalidate_every: 3600,
            revalidate_grace: 3600,
        },
        Default::default(),
        Sealer::new(&[7u8; 64]),
    ));

    let mut rng = rand::thread_rng();
    let mut cold = Vec::with_capacity(2_000);
    for _ in 0..2_000 {
        let c = cookie(&codec, &format!("id{}", rng.gen_range(1..=n)));
        let t = Instant::now();
        let live = sessions.find(std::iter::once(&c)).await;
        cold.push(t.elapsed());
        assert!(live.is_some(), "a stored session was not found");
    }
    println!("cold lookup of a stored session: {}", summary(cold));

    let before = rss_mib();
    let warm = 250_000.min(n);
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let (sessions, codec) = (sessions.clone(), codec.clone());
            tokio::spawn(async move {
                let mut i = t + 1;
                while i <= warm {
                    let c = cookie(&codec, &format!("id{i}"));
                    assert!(sessions.find(std::iter::once(&c)).await.is_some());
                    i += 16;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    println!(
        "resident memory: {before:.0} MiB before, {:.0} MiB after looking up {warm} distinct sessions",
        rss_mib()
    );
}

fn main() {
    let n: i64 = std::env::var("SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(n));
}
