//! `idgate probe <url>`: a health check for containers without curl. Exit 0
//! when the URL answers 2xx in time, 1 otherwise, with the reason on stderr.

use std::process::ExitCode;
use std::time::Duration;

pub fn run(url: &str, timeout: Duration) -> ExitCode {
    if url::Url::parse(url).is_err() {
        eprintln!("probe: {url:?} is not a URL; write one like http://127.0.0.1:9090/readyz");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("probe: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(timeout)
            .build()?;
        client.get(url).send().await
    });
    match result {
        Ok(r) if r.status().is_success() => ExitCode::SUCCESS,
        Ok(r) => {
            eprintln!("probe: {url} answered {}", r.status());
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("probe: {url}: {}", super::admin_client::root_cause(&e));
            ExitCode::from(1)
        }
    }
}
