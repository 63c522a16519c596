//! The `idgate` command line; `idgate --help` is its manual.

pub mod admin_client;
pub mod ap;
pub mod probe;
pub mod tts;
pub mod user;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config;

/// idgate — an identity-aware gateway that puts Microsoft Entra ID (or any
/// OpenID Connect provider) login in front of The Things Stack console or
/// any web application.
#[derive(Parser)]
#[command(name = "idgate", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway: the public proxy listener and the admin listener.
    ///
    /// The config file is taken from --config, else IDGATE_CONFIG, else
    /// config/idgate.toml; with no file at all the built-in defaults are used.
    /// Any key can be overridden by an environment variable
    /// IDGATE_<SECTION>_<KEY> (e.g. IDGATE_UPSTREAM_URL), which wins over the
    /// file. A bad config is refused before anything listens.
    Serve(ConfigArg),
    /// Validate the configuration (file plus environment) and exit.
    ///
    /// Prints each problem as `key: what is wrong` and exits 1 if there is any,
    /// or prints a summary and exits 0.
    CheckConfig {
        #[command(flatten)]
        config: ConfigArg,
        /// List every configuration key with its environment variable instead.
        #[arg(long)]
        keys: bool,
    },
    /// The whole stack on loopback in one process, for a first look: a local
    /// Entra-shaped identity provider with a sign-in form for made-up users,
    /// an echo upstream showing the headers it received, and the gateway.
    /// NEVER for production.
    Demo(crate::demo::DemoArgs),
    /// Only the local Entra-shaped identity provider of the demo, for
    /// docker-compose stacks and benchmarks. Signs in made-up users without
    /// a password: NEVER for production.
    ///
    /// To try the gateway's session rules by hand, its sign-in form also
    /// chooses the person's groups, app roles and a groups overage (the
    /// token then leaves the groups out and its small Microsoft Graph at
    /// /v1.0/me/transitiveMemberOf lists them; point the gateway's
    /// oidc.graph_url at this provider). It issues refresh tokens when
    /// offline_access is asked for; `curl -X POST
    /// '<this provider>/_revoke?sub=<sub>'` revokes a person's, so their
    /// next revalidation signs them out. Sign-out is at
    /// /<tenant>/oauth2/v2.0/logout.
    DevProvider(crate::demo::dev_provider::DevProviderArgs),
    /// Exit 0 when URL answers 2xx in time: a health check for containers
    /// (the image has no curl).
    Probe {
        /// The URL to ask, e.g. http://127.0.0.1:9090/readyz.
        url: String,
        /// How long to wait for the answer.
        #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
    },
    /// List, show or delete registered users through the running gateway's admin API.
    User {
        #[command(flatten)]
        conn: admin_client::AdminConn,
        #[command(subcommand)]
        command: user::UserCommand,
    },
    /// Check the console sign-in to The Things Stack configured in [tts].
    Tts {
        #[command(subcommand)]
        command: tts::TtsCommand,
    },
    /// Manage authentication providers through the running gateway's admin API
    /// (the same flags and JSON as The Things Stack's `tti-lw-cli ap`).
    Ap {
        #[command(flatten)]
        conn: admin_client::AdminConn,
        #[command(subcommand)]
        command: Box<ap::ApCommand>,
    },
}

#[derive(clap::Args)]
pub struct ConfigArg {
    /// Path of the TOML configuration file.
    #[arg(long, env = "IDGATE_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
}

/// Parses the command line and runs the command.
pub fn run() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            // `idgate` or `idgate ap` alone: the manual of what can follow.
            let _ = e.print();
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("{}", usage_error(&e.render().to_string()));
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Serve(arg) => serve(arg),
        Command::CheckConfig { keys: true, .. } => {
            print_keys();
            ExitCode::SUCCESS
        }
        Command::CheckConfig { config, .. } => check_config(config),
        Command::Ap { conn, command } => ap::run(conn, *command),
        Command::Demo(args) => crate::demo::run(args),
        Command::DevProvider(args) => crate::demo::dev_provider::run(args),
        Command::User { conn, command } => user::run(conn, command),
        Command::Probe { url, timeout } => probe::run(&url, timeout),
        Command::Tts { command } => tts::run(command),
    }
}

/// A command-line error in one line, as every idgate error is printed:
/// clap's message with what it lists, and which command's help to read.
fn usage_error(rendered: &str) -> String {
    let mut message = String::new();
    let mut command = "idgate".to_string();
    let mut in_message = true;
    for line in rendered.lines() {
        let trimmed = line.trim();
        if let Some(usage) = trimmed.strip_prefix("Usage: ") {
            command = usage
                .split(' ')
                .take_while(|w| !w.starts_with(['<', '[']))
                .collect::<Vec<_>>()
                .join(" ");
            in_message = false;
        } else if trimmed.is_empty() {
            in_message = false;
        } else if in_message || trimmed.starts_with("tip:") {
            if !message.is_empty() {
                message.push(if message.ends_with(':') { ' ' } else { ';' });
                if message.ends_with(';') {
                    message.push(' ');
                }
            }
            message.push_str(trimmed);
        }
    }
    if message.is_empty() {
        message.push_str("error: invalid command line");
    }
    format!("{message} (see '{command} --help')")
}

pub(crate) fn load(arg: &ConfigArg) -> Result<config::Loaded, ExitCode> {
    config::load(arg.config.as_deref()).map_err(|problems| {
        eprintln!("{problems}");
        ExitCode::from(1)
    })
}

fn serve(arg: ConfigArg) -> ExitCode {
    let cfg = match load(&arg) {
        Ok(c) => c,
        Err(code) => return code,
    };
    crate::logging::init(&cfg.config.log);
    match crate::server::serve(cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            crate::logging::flush();
            eprintln!("idgate: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn check_config(arg: ConfigArg) -> ExitCode {
    match load(&arg) {
        Ok(cfg) => {
            println!(
                "config OK ({}): listening on {}, upstream {}, admin on {}, {} provider(s) declared",
                cfg.source,
                cfg.listen,
                cfg.upstream_url,
                cfg.admin_listen,
                cfg.providers.len()
            );
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

fn print_keys() {
    for key in config::KEYS {
        println!(
            "{:<28} {:<36} {}",
            key.path,
            config::env_name(key.path),
            key.help
        );
    }
    println!(
        "{:<28} {:<36} providers declared in the file (read-only through the API)",
        "[[providers]]", "-"
    );
}
