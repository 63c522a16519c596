//! `idgate demo`: the whole stack on loopback in one process — a local
//! Entra-shaped OpenID provider with a sign-in form for made-up users, an
//! echo upstream that shows the headers it received, and the gateway wired
//! to both. Nothing here is for production.

pub mod dev_provider;
pub mod echo;
pub mod provider;

use std::net::SocketAddr;
use std::process::ExitCode;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;

use crate::config;

/// The tenant the demo provider's users belong to.
const DEMO_TENANT: &str = "11111111-2222-3333-4444-555555555555";
const PROVIDER_ID: &str = "demo";

/// Options of `idgate demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Port of the gateway on 127.0.0.1 (the address to open).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Port of the demo identity provider (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub provider_port: u16,
}

pub fn run(args: DemoArgs) -> ExitCode {
    match start(&args) {
        Ok(cfg) => {
            crate::logging::init(&cfg.config.log);
            match crate::server::serve(cfg) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    crate::logging::flush();
                    eprintln!("idgate demo: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
        Err(e) => {
            eprintln!("idgate demo: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Starts the provider and the echo upstream on a runtime of their own and
/// returns the gateway's configuration.
fn start(args: &DemoArgs) -> anyhow::Result<config::Loaded> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("idgate-demo")
        .enable_all()
        .build()?;
    let gateway: SocketAddr = ([127, 0, 0, 1], args.port).into();
    std::net::TcpListener::bind(gateway)
        .map(drop)
        .map_err(|e| {
            anyhow::anyhow!("cannot listen on {gateway}: {e} (choose another with --port)")
        })?;
    let public_url = format!("http://{gateway}");
    let (idp, echo_addr) = runtime.block_on(async {
        let (idp, _) = provider::spawn_local(args.provider_port).await?;
        let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let echo_addr = echo.local_addr()?;
        tokio::spawn(async move { axum::serve(echo, echo::router()).await });
        Ok::<_, std::io::Error>((idp, echo_addr))
    })?;
    let mut secret = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let client_secret = URL_SAFE_NO_PAD.encode(secret);
    let client_id = "idgate-demo";
    idp.register_client(provider::Client {
        client_id: client_id.into(),
        client_secret: client_secret.clone(),
        redirect_uris: vec![format!("{public_url}/oauth/login/{PROVIDER_ID}/callback")],
    });
    idp.set_front_channel_logout(
        client_id,
        &format!("{public_url}/oauth/login/{PROVIDER_ID}/front-channel-logout"),
    );
    let data = std::env::temp_dir().join(format!("idgate-demo-{}", std::process::id()));
    let admin = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let provider_url = format!(
        "{}/{DEMO_TENANT}/v2.0",
        idp.base_url().trim_end_matches('/')
    );
    let toml = format!(
        r#"
[server]
listen = "{gateway}"
public_url = "{public_url}"
shutdown_grace = "2s"
[upstream]
url = "http://{echo_addr}"
[admin]
listen = "{admin}"
[database]
url = "sqlite://{}/idgate.db"
[oidc]
graph_url = "{}"
[headers]
groups = "X-Idgate-Groups"
roles = "X-Idgate-Roles"
[[providers]]
ids = {{ provider_id = "{PROVIDER_ID}" }}
name = "Demo Entra ID (local, made-up users)"
allow_registrations = true
allowed_email_domains = ["example.com"]
[providers.configuration.oidc]
client_id = "{client_id}"
client_secret = "{client_secret}"
provider_url = "{provider_url}"
"#,
        data.display(),
        idp.base_url().trim_end_matches('/'),
    );
    let cfg = config::from_toml_str(&toml, config::Source::Demo, &[])
        .map_err(|p| anyhow::anyhow!("demo configuration: {p}"))?;
    // The runtime serving the provider and the echo upstream lives as long
    // as the process.
    std::mem::forget(runtime);
    println!(
        "\nidgate demo — for a first look only, NEVER for production.\n\n\
         Open {public_url}/ in a browser and choose \"Login to Demo Entra ID\".\n\
         Sign in as any made-up user with an @example.com address; the echo\n\
         upstream then shows the identity headers idgate forwarded.\n\n\
         gateway:           {public_url}\n\
         identity provider: {provider_url}\n\
         echo upstream:     http://{echo_addr}\n\
         admin (metrics):   http://{admin}/metrics\n\
         data:              {}\n\nStop with Ctrl-C.\n",
        data.display()
    );
    Ok(cfg)
}
