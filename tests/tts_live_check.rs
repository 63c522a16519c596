//! `scripts/tts-live-check`, the operators' end-to-end check of a deployed
//! gateway in front of The Things Stack, run against the real binary in
//! front of the fake stack: every step passes, and a refused API key makes
//! it fail. Needs bash and curl.

mod common;

use common::fake_tts::{FakeStack, ADMIN_KEY};
use common::login::{provider, provider_toml, register, TENANT};
use common::Gateway;

async fn run_check(gw: &Gateway, stack: &FakeStack, key: &str) -> (i32, String) {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/tts-live-check");
    let out = tokio::process::Command::new(script)
        .args([
            "--gateway",
            &gw.origin,
            "--stack",
            &stack.url,
            "--provider",
            "entra",
        ])
        .env("STACK_API_KEY", key)
        .env_remove("TTS_CHECK_CONFIG")
        .output()
        .await
        .expect("the script runs");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_live_check_passes_against_a_stack_that_behaves() {
    let stack = FakeStack::start().await;
    let idp = provider().await;
    let gw = Gateway::start(
        &stack.url,
        &format!(
            "[tts]\napi_key = \"{ADMIN_KEY}\"\naccount_mount = \"/account\"\n\
             [[routes]]\npath = \"/api/v3/\"\nallow = \"bearer\"\n\
             [[routes]]\npath = \"/healthz\"\nallow = \"public\"\n{}",
            provider_toml(
                &idp,
                "entra",
                TENANT,
                r#"allowed_email_domains = ["example.com"]"#
            )
        ),
    )
    .await;
    register(&idp, &gw, "entra");
    stack.set_console_root_url(&gw.origin);

    let (code, out) = run_check(&gw, &stack, ADMIN_KEY).await;
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("FAIL"), "{out}");
    assert!(!out.contains(ADMIN_KEY), "the key was printed: {out}");

    stack.revoke_key(ADMIN_KEY);
    let (code, out) = run_check(&gw, &stack, ADMIN_KEY).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL"), "{out}");
}
