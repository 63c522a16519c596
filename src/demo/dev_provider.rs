//! `idgate dev-provider`: the local Entra-shaped identity provider on its
//! own, for docker-compose stacks and load benchmarks. It signs in made-up
//! users without a password: NEVER for production.

use std::net::SocketAddr;
use std::process::ExitCode;

use super::provider::{self, Client};

/// Options of `idgate dev-provider`.
#[derive(Debug, Clone, clap::Args)]
pub struct DevProviderArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub listen: SocketAddr,
    /// The origin browsers and gateways use to reach this provider
    /// (default: http://<listen>). Issuers are built from it.
    #[arg(long)]
    pub public_url: Option<url::Url>,
    /// A client allowed to sign in: CLIENT_ID:CLIENT_SECRET:REDIRECT_URI (repeatable).
    #[arg(
        long = "client",
        value_name = "ID:SECRET:REDIRECT_URI",
        required = true
    )]
    pub clients: Vec<String>,
}

fn parse_client(raw: &str) -> Result<Client, String> {
    let mut parts = raw.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(id), Some(secret), Some(uri))
            if !id.is_empty() && !secret.is_empty() && url::Url::parse(uri).is_ok() =>
        {
            Ok(Client {
                client_id: id.to_string(),
                client_secret: secret.to_string(),
                redirect_uris: vec![uri.to_string()],
            })
        }
        _ => Err(format!(
            "invalid --client {raw:?}: write CLIENT_ID:CLIENT_SECRET:REDIRECT_URI, e.g. \
             idgate:s3cret:http://localhost:8080/oauth/login/dev/callback"
        )),
    }
}

pub fn run(args: DevProviderArgs) -> ExitCode {
    let clients: Result<Vec<Client>, String> =
        args.clients.iter().map(|c| parse_client(c)).collect();
    let clients = match clients {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let base = args.public_url.clone().unwrap_or_else(|| {
        url::Url::parse(&format!("http://{}", args.listen)).expect("an address makes a URL")
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(args.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: cannot listen on {}: {e}", args.listen);
                return ExitCode::from(1);
            }
        };
        let idp = match provider::serve(listener, base.clone()).await {
            Ok(p) => p,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        };
        for c in clients {
            idp.register_client(c);
        }
        println!(
            "idgate dev-provider — made-up users, no passwords: NEVER for production.\n\
             listening on {}; tenants at {}<tenant>/v2.0 (e.g. {}common/v2.0)",
            args.listen, base, base
        );
        let _ = tokio::signal::ctrl_c().await;
        ExitCode::SUCCESS
    })
}
