//! `idgate demo`: one command, everything on loopback, a login a person can
//! click through — here scripted against the printed URL.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the demo if the test fails half-way.
struct Demo(std::process::Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_runs_the_whole_login_on_loopback() {
    let port = common::free_port();
    let dir = tempfile::tempdir().unwrap();
    let mut demo = Demo(
        Command::new(common::idgate_bin())
            .args(["demo", "--port", &port.to_string()])
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut banner = String::new();
    let mut out = BufReader::new(demo.0.stdout.take().unwrap());
    while !banner.contains("Stop with Ctrl-C") {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "demo ended early: {banner}"
        );
        banner.push_str(&line);
    }
    assert!(banner.contains("NEVER for production"), "{banner}");
    let url = format!("http://127.0.0.1:{port}");
    assert!(banner.contains(&format!("Open {url}/")), "{banner}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the demo gateway did not listen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let b = common::login::Browser::new();
    let r = b.get(&format!("{url}/")).await;
    assert_eq!(r.status(), 302);
    let page = b
        .get(&format!("{url}/oauth/login"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("Login to Demo Entra ID"), "{page}");
    let authorize = b.get(&format!("{url}/oauth/login/demo?rd=/")).await;
    assert_eq!(authorize.status(), 302);
    let authorize = url::Url::parse(authorize.headers()["location"].to_str().unwrap()).unwrap();
    let claims = [
        ("email", "newcomer@example.com"),
        ("preferred_username", "newcomer"),
    ];
    let cb = b.authorize(authorize, &claims).await;
    assert_eq!(b.deliver(&cb).await.status(), 302);
    let echo = b
        .get(&format!("{url}/anything"))
        .await
        .text()
        .await
        .unwrap();
    assert!(echo.contains("You reached the upstream"), "{echo}");
    assert!(echo.contains("newcomer"), "{echo}");
    assert!(echo.contains("x-idgate-assertion"), "{echo}");
    unsafe { libc::kill(demo.0.id() as i32, libc::SIGTERM) };
    let status = demo.0.wait().unwrap();
    assert!(status.success(), "{status}");
}
