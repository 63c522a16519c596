//! How long a sign-in takes with The Things Stack console sign-in, against
//! the fake stack answering at once, and without it, on SQLite and on
//! PostgreSQL, through the real binary: 200 sign-ins each, one after
//! another, each a new browser and a new person. Prints the median and p99
//! of the callback (the step that checks the ID token, registers the person
//! and, with the bridge, creates the stack user, mints and trades a login
//! token), of the whole sign-in (start, provider, callback), and sign-ins
//! per second one after another.
//!
//!   cargo bench --bench sign_in            # SIGN_INS=50 for a quicker run

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::fake_tts::{FakeStack, ADMIN_KEY};
use common::login::{provider, provider_toml, register, Browser, TENANT};
use common::Gateway;

struct Timings {
    callback: Vec<Duration>,
    whole: Vec<Duration>,
}

async fn run(bridge: bool, postgres: bool, n: usize) -> Timings {
    let stack = FakeStack::start().await;
    let idp = provider().await;
    let tts = if bridge {
        format!("[tts]\napi_key = \"{ADMIN_KEY}\"\naccount_mount = \"/account\"\n")
    } else {
        String::new()
    };
    let database = if postgres {
        format!(
            "[database]\nurl = \"{}\"\n",
            common::pg::fresh_database().await
        )
    } else {
        String::new()
    };
    let toml = format!(
        "[log]\nlevel = \"warn\"\n[oidc]\nlogin_attempts_per_minute = 0\n{database}{tts}{}",
        provider_toml(
            &idp,
            "entra",
            TENANT,
            r#"allowed_email_domains = ["example.com"]"#
        )
    );
    let gw = Gateway::start(&stack.url, &toml).await;
    register(&idp, &gw, "entra");
    let mut t = Timings {
        callback: Vec::with_capacity(n),
        whole: Vec::with_capacity(n),
    };
    for i in 0..n {
        let browser = Browser::new();
        let (sub, email) = (format!("bench-{i}"), format!("person{i}@example.com"));
        let claims = [
            ("sub", sub.as_str()),
            ("email", email.as_str()),
            ("preferred_username", email.as_str()),
        ];
        let started = Instant::now();
        let authorize = browser.start(&gw, "entra", "/console").await;
        let cb = browser.authorize(authorize, &claims).await;
        let at_callback = Instant::now();
        let r = browser.deliver(&cb).await;
        let done = Instant::now();
        assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
        t.callback.push(done - at_callback);
        t.whole.push(done - started);
    }
    if bridge {
        assert_eq!(stack.users().len(), n + 1, "every person has a stack user");
    }
    t
}

fn summary(mut d: Vec<Duration>) -> String {
    d.sort();
    let at = |q: f64| d[((d.len() as f64 * q).ceil() as usize).clamp(1, d.len()) - 1];
    format!(
        "median {:>6.2} ms  p99 {:>6.2} ms",
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3
    )
}

fn main() {
    let n: usize = std::env::var("SIGN_INS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    for (bridge, postgres) in [(false, false), (true, false), (false, true)] {
        let t = rt.block_on(run(bridge, postgres, n));
        let label = match (bridge, postgres) {
            (false, false) => "on SQLite",
            (true, false) => "on SQLite with the console sign-in",
            _ => "on PostgreSQL",
        };
        let total: Duration = t.whole.iter().sum();
        println!(
            "{n} sign-ins {label}: {:.0} per second, one after another",
            n as f64 / total.as_secs_f64()
        );
        println!("  callback      {}", summary(t.callback));
        println!("  whole sign-in {}", summary(t.whole));
    }
}
