//! `/.idgate/auth` behind a real nginx using `auth_request`, exactly as the
//! README's snippet configures it: nginx asks idgate, forwards the identity
//! headers idgate answers with, and sends people without a session to the
//! login page. Needs Debian's `nginx` (`scripts/setup --test` installs it).

mod common;

use common::client;
use common::login::signed_in;
use common::nginx::Nginx;
use common::upstream::{echoed, Upstream};

/// The README's nginx snippet, with the test's addresses.
fn config(listen: u16, idgate: &str, app: &str) -> String {
    format!(
        r#"
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
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn nginx_auth_request_forwards_the_identity() {
    let up = Upstream::start().await;
    let s = signed_in(&up.url(), "", None).await;
    let (idgate, app) = (s.gw.public.to_string(), up.addr.to_string());
    let nginx = Nginx::start(|port| config(port, &idgate, &app)).await;
    let base = nginx.origin();

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
