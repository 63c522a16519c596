//! `idgate tts check`: whether the console sign-in can work, asked of the
//! stack without side effects, one line each: the stack reachable, the API
//! key valid and an administrator's, login tokens enabled (a token asked
//! for a user that does not exist answers "not found" when they are, and
//! "disabled" when not; nothing is minted).

use rand::distributions::{Alphanumeric, DistString};

use super::client::{StackClient, StackError};

/// One line of the report.
pub struct Line {
    pub ok: bool,
    pub text: String,
}

/// Runs the checks; every line, in order. Checks after a failed one that
/// they depend on are reported as not run.
pub async fn run(client: &StackClient) -> Vec<Line> {
    let mut lines = Vec::new();
    let key = client.check_key().await;
    let reachable = !matches!(
        key,
        Err(StackError::Unreachable { .. } | StackError::TimedOut(_))
    );
    lines.push(match &key {
        Err(e) if !reachable => Line {
            ok: false,
            text: format!("stack reachable: no: {e}"),
        },
        _ => Line {
            ok: true,
            text: format!("stack reachable: yes, at {}", client.base()),
        },
    });
    if !reachable {
        lines.push(not_run("API key valid and an administrator's"));
        lines.push(not_run("login tokens enabled"));
        return lines;
    }
    lines.push(match &key {
        Ok(owner) => Line {
            ok: true,
            text: format!("API key valid and an administrator's: yes, user {owner:?}"),
        },
        Err(e) => Line {
            ok: false,
            text: format!("API key valid and an administrator's: no: {e}"),
        },
    });
    if key.is_err() {
        lines.push(not_run("login tokens enabled"));
        return lines;
    }
    lines.push(match tokens_enabled(client).await {
        Ok(()) => Line {
            ok: true,
            text: "login tokens enabled: yes".into(),
        },
        Err(e) => Line {
            ok: false,
            text: format!("login tokens enabled: no: {e}"),
        },
    });
    lines
}

fn not_run(what: &str) -> Line {
    Line {
        ok: false,
        text: format!("{what}: not checked (the check above failed)"),
    }
}

/// Asks for a token for a user ID that is free: "not found" means enabled.
async fn tokens_enabled(client: &StackClient) -> Result<(), StackError> {
    let probe = loop {
        let id = format!(
            "idgate-probe-{}",
            Alphanumeric
                .sample_string(&mut rand::rngs::OsRng, 16)
                .to_ascii_lowercase()
        );
        if client.user(&id).await?.is_none() {
            break id;
        }
    };
    client.tokens_enabled(&probe).await
}
