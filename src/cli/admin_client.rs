//! The client side of the admin API, shared by `idgate ap` and
//! `idgate user`: where the API is, its token, and how its answers map to
//! exit codes (0 done, 2 invalid input with nothing changed, 1 anything else).

use std::process::ExitCode;

use clap::Args;

/// Where the admin API is and how to authenticate to it.
#[derive(Args, Debug)]
pub struct AdminConn {
    /// Base URL of the gateway's admin listener.
    #[arg(
        long,
        env = "IDGATE_ADMIN_URL",
        default_value = "http://127.0.0.1:9090",
        global = true
    )]
    admin_url: String,
    /// Bearer token of the admin API (the gateway's admin.token).
    #[arg(
        long,
        env = "IDGATE_ADMIN_TOKEN",
        hide_env_values = true,
        global = true
    )]
    admin_token: Option<String>,
}

/// A failure, and the exit code it maps to.
pub enum Failure {
    Invalid(String),
    Other(String),
}

impl Failure {
    pub fn exit(self) -> ExitCode {
        let (code, message) = match self {
            Failure::Invalid(m) => (2, m),
            Failure::Other(m) => (1, m),
        };
        eprintln!("error: {message}");
        ExitCode::from(code)
    }
}

/// Runs a command's future and prints what it returns.
pub fn run<F>(work: F) -> ExitCode
where
    F: std::future::Future<Output = Result<Option<String>, Failure>>,
{
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return Failure::Other(format!("cannot start: {e}")).exit(),
    };
    match runtime.block_on(work) {
        Ok(Some(output)) => {
            println!("{output}");
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(f) => f.exit(),
    }
}

/// Pretty JSON, as the commands print it.
pub fn pretty<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).expect("admin API values serialise")
}

/// One collection of the admin API, e.g. `/api/v1/providers`.
pub struct Api<'a> {
    http: reqwest::Client,
    base: String,
    conn: &'a AdminConn,
}

impl<'a> Api<'a> {
    pub fn new(conn: &'a AdminConn, collection: &str) -> Result<Self, Failure> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| Failure::Other(format!("cannot start an HTTP client: {e}")))?;
        let base = format!("{}{collection}", conn.admin_url.trim_end_matches('/'));
        Ok(Self { http, base, conn })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.base));
        match &self.conn.admin_token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// Sends `body` (if any) and decodes the JSON answer.
    pub async fn send<T: serde::de::DeserializeOwned, B: serde::Serialize>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, Failure> {
        let mut req = self.request(method, path);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = self.checked(req).await?;
        resp.json()
            .await
            .map_err(|e| Failure::Other(format!("unexpected answer from the admin API: {e}")))
    }

    pub async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, Failure> {
        self.send::<T, ()>(reqwest::Method::GET, path, None).await
    }

    pub async fn delete(&self, path: &str) -> Result<(), Failure> {
        self.checked(self.request(reqwest::Method::DELETE, path))
            .await
            .map(drop)
    }

    async fn checked(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, Failure> {
        let resp = req.send().await.map_err(|e| {
            Failure::Other(format!(
                "cannot reach the admin API at {}: {} (is `idgate serve` running? set --admin-url or IDGATE_ADMIN_URL)",
                self.conn.admin_url,
                root_cause(&e)
            ))
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        let message = body["message"].as_str().unwrap_or("no message").to_string();
        let code = body["error"].as_str().unwrap_or_default();
        match (status.as_u16(), code) {
            (400, _) | (409, "already_exists") => Err(Failure::Invalid(message)),
            (401, _) => Err(Failure::Other(format!(
                "{message} (set --admin-token or IDGATE_ADMIN_TOKEN to the gateway's admin.token)"
            ))),
            _ => Err(Failure::Other(message)),
        }
    }
}

/// The innermost cause of an error: what went wrong, without wrappers.
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
