//! `/.idgate/auth` behind a real nginx using `auth_request`, exactly as the
//! README's snippet configures it: nginx asks idgate, forwards the identity
//! headers idgate answers with, and sends people without a session to the
//! login page. Needs Debian's `nginx` (`scripts/setup --test` installs it).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::client;
use common::login::signed_in;
use common::upstream::{echoed, Upstream};

struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn nginx_binary() -> &'static str {
    ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("nginx is needed for this test and is not installed: run `scripts/setup --test`")
}

/// The README's nginx snippet, with the test's addresses.
fn config(dir: &std::path::Path, listen: u16, idgate: &str, app: &str) -> String {
    format!(
        r#"
daemon off;
master_process off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;

  server {{
    listen 127.0.0.1:{listen};

    # idgate's own routes (login, callback, logout, me) on the same origin.
    location /oauth/ {{ proxy_pass http://{idgate}; proxy_set_header Host $host; }}
    location /.idgate/ {{ proxy_pass http://{idgate}; proxy_set_header Host $host; }}

    location = /_idgate_auth {{
      internal;
      proxy_pass http://{idgate}/.idgate/auth;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header Host $host;
      proxy_set_header X-Original-URI $request_uri;
    }}

    location / {{
      auth_request /_idgate_auth;
      auth_request_set $idgate_user $upstream_http_x_forwarded_user;
      auth_request_set $idgate_email $upstream_http_x_forwarded_email;
      auth_request_set $idgate_assertion $upstream_http_x_idgate_assertion;
      proxy_set_header X-Forwarded-User $idgate_user;
      proxy_set_header X-Forwarded-Email $idgate_email;
      proxy_set_header X-Idgate-Assertion $idgate_assertion;
      error_page 401 = @idgate_login;
      proxy_pass http://{app};
    }}

    location @idgate_login {{
      return 302 /oauth/login?rd=$request_uri;
    }}
  }}
}}
"#,
        dir = dir.display()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn nginx_auth_request_forwards_the_identity() {
    let up = Upstream::start().await;
    let s = signed_in(&up.url(), "", None).await;
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let conf = dir.path().join("nginx.conf");
    std::fs::write(
        &conf,
        config(
            dir.path(),
            port,
            &s.gw.public.to_string(),
            &up.addr.to_string(),
        ),
    )
    .unwrap();
    let child = Command::new(nginx_binary())
        .arg("-c")
        .arg(&conf)
        .arg("-p")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nginx starts");
    let _nginx = Nginx(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nginx did not start: {:?}",
            std::fs::read_to_string(dir.path().join("error.log"))
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let base = format!("http://127.0.0.1:{port}");

    // Without a session: to the login page, served by idgate through nginx.
    let r = client()
        .get(format!("{base}/console?x=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let location = r.headers()["location"].to_str().unwrap();
    assert!(
        location.ends_with("/oauth/login?rd=/console?x=1"),
        "{location}"
    );
    let page = client()
        .get(format!("{base}/oauth/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Login to Contoso Entra"));

    // With one: the app sees idgate's identity, not the client's claims.
    let r = client()
        .get(format!("{base}/console"))
        .header("cookie", &s.cookie)
        .header("x-forwarded-user", "mallory")
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let echo: serde_json::Value = r.json().await.unwrap();
    let values = |name: &str| echoed(&echo, name);
    assert_eq!(values("x-forwarded-user"), vec!["ada"]);
    assert_eq!(values("x-forwarded-email"), vec!["ada@example.com"]);
    assert_eq!(values("x-idgate-assertion").len(), 1);
    assert!(values("x-idgate-assertion")[0].starts_with("ey"));
}
