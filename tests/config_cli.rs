//! `idgate check-config` and `idgate serve` against bad configurations:
//! every problem reported as `key: what is wrong`, a non-zero exit, and
//! nothing listening.

mod common;

use common::run_idgate;

fn write(dir: &std::path::Path, text: &str) -> String {
    let p = dir.join("idgate.toml");
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn defaults_pass_without_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = run_idgate(&["check-config"], dir.path(), &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("built-in defaults"), "{out}");
    assert!(out.contains("0.0.0.0:8080"), "{out}");
}

#[test]
fn the_contract_example_passes() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        r#"
[server]
listen = "0.0.0.0:8080"
public_url = "http://localhost:8080"

[upstream]
url = "http://127.0.0.1:1885"

[admin]
listen = "127.0.0.1:9090"
token = "change-me"

[database]
url = "sqlite://data/idgate.db"
"#,
    );
    let (code, _, err) = run_idgate(&["check-config", "--config", &path], dir.path(), &[]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn every_problem_is_reported_as_key_and_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        r#"
[server]
listen = "localhost"
public_url = "/relative"
lsiten = "typo"
trusted_proxies = ["10.0.0.0/33"]

[server.tls]
cert = "/nonexistent/cert.pem"
key = "/nonexistent/key.pem"

[upstream]
url = "127.0.0.1:1885"
read_timeout = "soon"

[database]
url = "mysql://x"

[log]
format = "xml"
"#,
    );
    let (code, out, err) = run_idgate(&["check-config", "--config", &path], dir.path(), &[]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    // Type problems are reported first and on their own.
    assert!(
        err.contains("server.lsiten: unknown key (expected one of: listen, public_url"),
        "{err}"
    );
    assert!(
        err.contains("upstream.read_timeout: must be a duration"),
        "{err}"
    );

    let path = write(
        dir.path(),
        r#"
[server]
listen = "localhost"
public_url = "/relative"
trusted_proxies = ["10.0.0.0/33"]
client_timeout = "0s"

[server.tls]
cert = "/nonexistent/cert.pem"
key = "/nonexistent/key.pem"

[upstream]
url = "127.0.0.1:1885"

[database]
url = "mysql://x"

[log]
format = "xml"
"#,
    );
    let (code, _, err) = run_idgate(&["check-config", "--config", &path], dir.path(), &[]);
    assert_eq!(code, 1);
    for expected in [
        "server.listen: \"localhost\" is not an address",
        "server.public_url: \"/relative\" is not an absolute URL; write one like http://localhost:8080",
        "server.trusted_proxies: \"10.0.0.0/33\" is not an IP address or CIDR",
        "server.client_timeout: must be longer than zero",
        "server.tls.cert: cannot read /nonexistent/cert.pem",
        "server.tls.key: cannot read /nonexistent/key.pem",
        "upstream.url: \"127.0.0.1:1885\" is not an absolute URL; write it with a scheme, e.g. http://127.0.0.1:1885",
        "database.url: must start with sqlite:// or postgres://",
        "log.format: \"xml\" must be text or json",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    for line in err.lines() {
        assert!(
            line.contains(": "),
            "line not in `key: problem` form: {line}"
        );
    }
}

#[test]
fn identity_headers_cannot_take_a_name_the_gateway_treats_itself() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "[headers]\nuser = \"Cookie\"\nemail = \"X-Forwarded-For\"\ngroups = \"X-Forwarded-Groups\"\n",
    );
    let (code, out, err) = run_idgate(&["check-config", "--config", &path], dir.path(), &[]);
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    for expected in [
        "headers.user: \"Cookie\" is a header the gateway itself writes or removes",
        "headers.email: \"X-Forwarded-For\" is a header the gateway itself writes or removes",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    assert!(!err.contains("headers.groups"), "{err}");
}

#[test]
fn environment_overrides_win_and_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "[upstream]\nurl = \"http://127.0.0.1:1885\"\n");
    let (code, out, err) = run_idgate(
        &["check-config", "--config", &path],
        dir.path(),
        &[("IDGATE_UPSTREAM_URL", "http://console.internal:1885")],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("upstream http://console.internal:1885/"),
        "{out}"
    );

    let (code, _, err) = run_idgate(
        &["check-config", "--config", &path],
        dir.path(),
        &[
            ("IDGATE_UPSTREAM_ULR", "http://x"),
            ("IDGATE_SERVER_MAX_URI_BYTES", "lots"),
        ],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("IDGATE_UPSTREAM_ULR: no such configuration key"),
        "{err}"
    );
    assert!(
        err.contains(
            "IDGATE_SERVER_MAX_URI_BYTES (server.max_uri_bytes): must be a non-negative integer"
        ),
        "{err}"
    );
}

#[test]
fn config_path_comes_from_flag_then_env() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run_idgate(
        &["check-config"],
        dir.path(),
        &[("IDGATE_CONFIG", "/nonexistent/idgate.toml")],
    );
    assert_eq!(code, 1);
    assert!(
        err.starts_with("config: cannot read /nonexistent/idgate.toml"),
        "{err}"
    );
    let path = write(dir.path(), "[log]\nlevel = \"debug\"\n");
    let (code, out, _) = run_idgate(
        &["check-config", "--config", &path],
        dir.path(),
        &[("IDGATE_CONFIG", "/nonexistent/idgate.toml")],
    );
    assert_eq!(code, 0);
    assert!(out.contains(&path), "{out}");
}

#[test]
fn broken_toml_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "[server\nlisten = ");
    let (code, _, err) = run_idgate(&["check-config", "--config", &path], dir.path(), &[]);
    assert_eq!(code, 1);
    assert!(err.starts_with("config: not valid TOML"), "{err}");
}

#[test]
fn serve_refuses_a_bad_config_before_listening() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let path = write(
        dir.path(),
        &format!("[server]\nlisten = \"127.0.0.1:{port}\"\n[upstream]\nurl = \"ftp://x\"\n"),
    );
    let (code, _, err) = run_idgate(&["serve", "--config", &path], dir.path(), &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("upstream.url: \"ftp://x\" must start with http:// or https://"),
        "{err}"
    );
    assert!(
        !dir.path().join("data").exists(),
        "nothing may be created for a refused config"
    );
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn serve_names_an_address_already_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let (code, _, err) = run_idgate(
        &["serve"],
        dir.path(),
        &[("IDGATE_SERVER_LISTEN", &addr.to_string())],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("server.listen: cannot listen on {addr}")),
        "{err}"
    );
}

#[test]
fn serve_names_the_database_it_cannot_open_without_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let dead = common::free_port();
    let url = format!("postgres://idgate:hunter2@127.0.0.1:{dead}/idgate");
    let listen = format!("127.0.0.1:{}", common::free_port());
    let admin = format!("127.0.0.1:{}", common::free_port());
    let (code, _, err) = run_idgate(
        &["serve"],
        dir.path(),
        &[
            ("IDGATE_DATABASE_URL", &url),
            ("IDGATE_SERVER_LISTEN", &listen),
            ("IDGATE_ADMIN_LISTEN", &admin),
        ],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!(
            "database postgres://idgate:***@127.0.0.1:{dead}/idgate: cannot open"
        )),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn keys_are_listed_with_their_environment_variables() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, _) = run_idgate(&["check-config", "--keys"], dir.path(), &[]);
    assert_eq!(code, 0);
    assert!(out.contains("upstream.url"));
    assert!(out.contains("IDGATE_SERVER_TLS_CERT"));
}

#[test]
fn probe_names_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run_idgate(&["probe", "notaurl"], dir.path(), &[]);
    assert_eq!(code, 2);
    assert!(err.contains("\"notaurl\" is not a URL"), "{err}");
    let url = format!("http://127.0.0.1:{}/readyz", common::free_port());
    let (code, _, err) = run_idgate(&["probe", &url], dir.path(), &[]);
    assert_eq!(code, 1);
    assert!(err.contains("Connection refused"), "{err}");
}

#[test]
fn a_tls_key_that_does_not_fit_the_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let one = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, one.cert.pem()).unwrap();
    std::fs::write(&key, other.key_pair.serialize_pem()).unwrap();
    let toml = format!(
        "[server.tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        cert.display(),
        key.display()
    );
    let path = write(dir.path(), &toml);
    let (code, _, err) = run_idgate(&["check-config", "--config", &path], dir.path(), &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "server.tls: the key in {} does not fit the certificate in {}",
            key.display(),
            cert.display()
        )),
        "{err}"
    );

    std::fs::write(&key, one.key_pair.serialize_pem()).unwrap();
    let (code, out, err) = run_idgate(&["check-config", "--config", &path], dir.path(), &[]);
    assert_eq!(code, 0, "{out}{err}");
}

/// What Kubernetes puts in every pod of a namespace with the Services
/// `idgate` (port 8080, named http) and `idgate-admin` (port 9090).
const SERVICE_LINKS: &[(&str, &str)] = &[
    ("IDGATE_SERVICE_HOST", "10.96.12.7"),
    ("IDGATE_SERVICE_PORT", "8080"),
    ("IDGATE_SERVICE_PORT_HTTP", "8080"),
    ("IDGATE_PORT", "tcp://10.96.12.7:8080"),
    ("IDGATE_PORT_8080_TCP", "tcp://10.96.12.7:8080"),
    ("IDGATE_PORT_8080_TCP_PROTO", "tcp"),
    ("IDGATE_PORT_8080_TCP_PORT", "8080"),
    ("IDGATE_PORT_8080_TCP_ADDR", "10.96.12.7"),
    ("IDGATE_ADMIN_SERVICE_HOST", "10.96.12.8"),
    ("IDGATE_ADMIN_SERVICE_PORT", "9090"),
    ("IDGATE_ADMIN_PORT", "tcp://10.96.12.8:9090"),
    ("IDGATE_ADMIN_PORT_9090_TCP", "tcp://10.96.12.8:9090"),
    ("IDGATE_ADMIN_PORT_9090_TCP_PROTO", "tcp"),
    ("IDGATE_ADMIN_PORT_9090_TCP_PORT", "9090"),
    ("IDGATE_ADMIN_PORT_9090_TCP_ADDR", "10.96.12.8"),
];

#[test]
fn kubernetes_service_links_are_not_refused_but_typos_still_are() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = run_idgate(&["check-config"], dir.path(), SERVICE_LINKS);
    assert_eq!(code, 0, "{out}{err}");
    let mut with_typo = SERVICE_LINKS.to_vec();
    with_typo.push(("IDGATE_UPSTREAM_ULR", "http://console:1885"));
    with_typo.push(("IDGATE_SERVER_PORT", "8080"));
    let (code, _, err) = run_idgate(&["check-config"], dir.path(), &with_typo);
    assert_eq!(code, 1);
    assert!(
        err.contains("IDGATE_UPSTREAM_ULR: no such configuration key"),
        "{err}"
    );
    assert!(
        err.contains("IDGATE_SERVER_PORT: no such configuration key"),
        "{err}"
    );
    assert!(!err.contains("IDGATE_PORT_8080_TCP"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gateway_starts_among_kubernetes_service_links() {
    let env = SERVICE_LINKS
        .iter()
        .map(|(k, v)| (*k, v.to_string()))
        .collect();
    let gw = common::Gateway::start_with(
        "http://127.0.0.1:9",
        common::Options {
            env,
            ..Default::default()
        },
    )
    .await;
    let r = common::client()
        .get(gw.admin_url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
