//! A scripted browser for the login tests: it keeps cookies, follows the
//! flow step by step, and signs in at the local Entra-shaped provider in its
//! non-interactive mode (claims and faults as query parameters).

use idgate::demo::provider::{self, Client, Provider};

use super::Gateway;

pub const TENANT: &str = "11111111-2222-3333-4444-555555555555";
pub const CLIENT_ID: &str = "idgate-test-client";
pub const CLIENT_SECRET: &str = "idgate-test-secret-0123456789";

/// A local provider on loopback.
pub async fn provider() -> Provider {
    provider::spawn_local(0).await.expect("provider starts").0
}

/// A local provider served from a runtime of its own, and what stops it:
/// afterwards nothing answers at its address.
pub fn provider_that_stops() -> (Provider, impl FnOnce()) {
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        tx.send(rt.block_on(provider())).unwrap();
        let _ = rt.block_on(stopped);
    });
    let idp = rx.recv().expect("provider starts");
    let stop = move || {
        let _ = stop.send(());
        thread.join().unwrap();
    };
    (idp, stop)
}

/// `[[providers]]` TOML for `id` at `idp`'s tenant `tenant`.
pub fn provider_toml(idp: &Provider, id: &str, tenant: &str, extra: &str) -> String {
    format!(
        r#"
[[providers]]
ids = {{ provider_id = "{id}" }}
name = "Contoso Entra"
allow_registrations = true
{extra}
[providers.configuration.oidc]
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
provider_url = "{}/{tenant}/v2.0"
"#,
        idp.base_url().trim_end_matches('/')
    )
}

/// Lets `gw`'s callback for `id` through at `idp`.
pub fn register(idp: &Provider, gw: &Gateway, id: &str) {
    idp.register_client(Client {
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        redirect_uris: vec![gw.url(&format!("/oauth/login/{id}/callback"))],
    });
}

/// A browser with its own cookie jar.
pub struct Browser {
    pub http: reqwest::Client,
    jar: std::sync::Arc<reqwest::cookie::Jar>,
}

impl Browser {
    pub fn new() -> Self {
        Self::trusting(None)
    }

    /// A browser that also trusts `root` (for a gateway serving TLS).
    pub fn trusting(root: Option<reqwest::Certificate>) -> Self {
        let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none());
        if let Some(root) = root {
            builder = builder.add_root_certificate(root);
        }
        Self {
            http: builder.build().unwrap(),
            jar,
        }
    }

    /// What the echo upstream received for `path`, fetched as this browser.
    pub async fn echo(&self, gw: &Gateway, path: &str) -> serde_json::Value {
        let r = self
            .http
            .get(gw.url(path))
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        r.json().await.unwrap()
    }

    /// `/.idgate/me` as JSON: who this browser is signed in as.
    pub async fn identity(&self, gw: &Gateway) -> serde_json::Value {
        self.http
            .get(gw.url("/.idgate/me"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The status of `/.idgate/me`: 200 while signed in, 401 otherwise.
    pub async fn me(&self, gw: &Gateway) -> reqwest::StatusCode {
        self.http
            .get(gw.url("/.idgate/me"))
            .send()
            .await
            .unwrap()
            .status()
    }

    /// The `Cookie` header this browser sends to `gw`.
    pub fn cookies(&self, gw: &Gateway) -> String {
        self.cookies_at(gw, "/")
    }

    /// The `Cookie` header this browser sends to `path` at `gw`.
    pub fn cookies_at(&self, gw: &Gateway, path: &str) -> String {
        use reqwest::cookie::CookieStore;
        let url = url::Url::parse(&gw.url(path)).unwrap();
        self.jar
            .cookies(&url)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    }

    pub async fn get(&self, url: &str) -> reqwest::Response {
        self.http
            .get(url)
            .header("accept", "text/html")
            .send()
            .await
            .unwrap()
    }

    /// Starts a login at the gateway; returns the provider's authorization URL.
    pub async fn start(&self, gw: &Gateway, id: &str, rd: &str) -> url::Url {
        let start = gw.url(&format!(
            "/oauth/login/{id}?{}",
            form_urlencoded::Serializer::new(String::new())
                .append_pair("rd", rd)
                .finish()
        ));
        let r = self.get(&start).await;
        assert_eq!(r.status(), 302, "login start: {}", r.text().await.unwrap());
        url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap()
    }

    /// Signs in at the provider without a form and returns the callback
    /// request the provider sends the browser to: (method, url, form body).
    pub async fn authorize(&self, mut authorize: url::Url, claims: &[(&str, &str)]) -> Callback {
        {
            let mut q = authorize.query_pairs_mut();
            q.append_pair("auto", "1");
            for (k, v) in claims {
                q.append_pair(k, v);
            }
        }
        let form_post = authorize
            .query_pairs()
            .any(|(k, v)| k == "response_mode" && v == "form_post");
        let r = self.get(authorize.as_str()).await;
        if form_post {
            assert_eq!(r.status(), 200);
            let html = r.text().await.unwrap();
            let action = attr(&html, "action").expect("form action");
            let fields = ["code", "state", "error"]
                .iter()
                .filter_map(|f| hidden(&html, f).map(|v| (f.to_string(), v)))
                .collect();
            Callback::Post(action, fields)
        } else {
            assert_eq!(r.status(), 302, "authorize: {}", r.text().await.unwrap());
            Callback::Get(r.headers()["location"].to_str().unwrap().to_string())
        }
    }

    /// Delivers the callback to the gateway.
    pub async fn deliver(&self, cb: &Callback) -> reqwest::Response {
        match cb {
            Callback::Get(url) => self.get(url).await,
            Callback::Post(url, fields) => self
                .http
                .post(url)
                .header("accept", "text/html")
                .form(fields)
                .send()
                .await
                .unwrap(),
        }
    }

    /// The whole login; returns the gateway's answer to the callback.
    pub async fn login(
        &self,
        gw: &Gateway,
        id: &str,
        rd: &str,
        claims: &[(&str, &str)],
    ) -> reqwest::Response {
        let authorize = self.start(gw, id, rd).await;
        let cb = self.authorize(authorize, claims).await;
        self.deliver(&cb).await
    }
}

/// The request the provider sends the browser back with.
#[derive(Debug, Clone)]
pub enum Callback {
    Get(String),
    Post(String, Vec<(String, String)>),
}

fn attr(html: &str, name: &str) -> Option<String> {
    let start = html.find(&format!("{name}=\""))? + name.len() + 2;
    let end = html[start..].find('"')? + start;
    Some(unescape(&html[start..end]))
}

fn hidden(html: &str, field: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{field}\""))?;
    let tag_start = html[..at].rfind('<')?;
    let tag_end = html[at..].find('>')? + at;
    attr(&html[tag_start..tag_end], "value")
}

fn unescape(s: &str) -> String {
    s.replace("&#38;", "&")
        .replace("&amp;", "&")
        .replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#60;", "<")
        .replace("&#62;", ">")
        .replace("&#x2f;", "/")
        .replace("&#47;", "/")
}

/// A gateway with a provider `entra` and a person signed in through it.
pub struct SignedIn {
    pub gw: Gateway,
    pub idp: Provider,
    pub browser: Browser,
    /// The `Cookie` header that carries the session.
    pub cookie: String,
}

impl SignedIn {
    /// A request to the gateway carrying the session cookie.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        super::client()
            .request(method, self.gw.url(path))
            .header("cookie", &self.cookie)
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::GET, path)
    }
}

/// As `signed_in`, with the gateway's public listener terminating TLS with
/// a certificate of its own (`listener_cert`); the certificate, for a
/// client to trust, and the directory holding its files go with it.
pub async fn signed_in_over_tls(
    upstream: &str,
    toml: &str,
) -> (SignedIn, rcgen::CertifiedKey, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (tls, cert) = super::listener_cert(dir.path());
    let root = reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap();
    let s = signed_in(upstream, &format!("{toml}\n{tls}"), Some(root)).await;
    (s, cert, dir)
}

/// Starts a gateway in front of `upstream` with `toml` and signs Ada in.
pub async fn signed_in(upstream: &str, toml: &str, root: Option<reqwest::Certificate>) -> SignedIn {
    let idp = provider().await;
    let full = format!(
        "{toml}\n{}",
        provider_toml(
            &idp,
            "entra",
            TENANT,
            r#"allowed_email_domains = ["example.com"]"#
        )
    );
    let gw = Gateway::start(upstream, &full).await;
    register(&idp, &gw, "entra");
    let browser = Browser::trusting(root);
    let r = browser
        .login(
            &gw,
            "entra",
            "/",
            &[("email", "ada@example.com"), ("preferred_username", "ada")],
        )
        .await;
    assert_eq!(r.status(), 302, "sign-in for the test failed");
    let cookie = browser.cookies(&gw);
    assert!(
        cookie.contains("idgate_session"),
        "no session cookie: {cookie}"
    );
    SignedIn {
        gw,
        idp,
        browser,
        cookie,
    }
}
