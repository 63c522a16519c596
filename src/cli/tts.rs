//! `idgate tts check`: whether the console sign-in configured in `[tts]`
//! can work, one line per check, exit 0 when every check holds.

use std::process::ExitCode;

use crate::config::Loaded;
use crate::tts::client::StackClient;

/// What `idgate tts` can do.
#[derive(clap::Subcommand)]
pub enum TtsCommand {
    /// Check the stack: reachable, the API key valid and an
    /// administrator's, login tokens enabled. Creates and mints nothing.
    /// Exits 0 when all hold, 1 otherwise.
    Check {
        #[command(flatten)]
        config: super::ConfigArg,
    },
}

pub fn run(command: TtsCommand) -> ExitCode {
    match command {
        TtsCommand::Check { config } => match super::load(&config) {
            Ok(cfg) => check(&cfg),
            Err(code) => code,
        },
    }
}

fn check(cfg: &Loaded) -> ExitCode {
    let Some(t) = &cfg.tts else {
        eprintln!("tts: no console sign-in configured: set tts.api_key or tts.api_key_file (and tts.url when the stack is not upstream.url)");
        return ExitCode::from(1);
    };
    let client = match StackClient::new(&t.url, &t.api_key, &t.account_mount, t.timeout) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tts: cannot build an HTTP client: {e}");
            return ExitCode::from(1);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tts: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    let lines = runtime.block_on(crate::tts::check::run(&client));
    let mut ok = true;
    for line in &lines {
        println!("{} {}", if line.ok { "ok  " } else { "FAIL" }, line.text);
        ok &= line.ok;
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
