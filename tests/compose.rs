//! The compose files, checked without a Docker engine: valid against the
//! Compose Specification's JSON schema, every image pinned, only idgate
//! publishing ports, every mounted file present in the repository, health
//! checks and restart policies everywhere, and idgate's mounted config
//! accepted by `idgate check-config` with the environment the file gives it.
//! For the console sign-in: login tokens enabled in the stack's config, the
//! stack's mounts and URLs matching idgate's `[tts]`, the bearer and public
//! routes, and the API key handed from stack-init to idgate on a volume
//! before idgate starts (deploy/stack/init.sh run against a stand-in for
//! the stack's command).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The stacks with The Things Stack behind idgate.
const FILES: &[&str] = &["docker-compose.yml", "docker-compose.entra.yml"];
/// Several idgate replicas behind nginx on one PostgreSQL.
const REPLICAS: &str = "docker-compose.replicas.yml";
/// Every compose file: each follows the specification, pins its images,
/// watches its services and mounts only files in the repository.
const ALL: &[&str] = &["docker-compose.yml", "docker-compose.entra.yml", REPLICAS];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn load(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(repo().join(name)).unwrap();
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{name} is not YAML: {e}"))
}

fn services(doc: &serde_json::Value) -> &serde_json::Map<String, serde_json::Value> {
    doc["services"].as_object().expect("services")
}

/// Example values for the variables the Entra file requires.
fn sample_env(name: &str) -> Option<&'static str> {
    Some(match name {
        "OIDC_PROVIDER_ID" => "microsoft-entra",
        "OIDC_CLIENT_ID" => "00000000-0000-0000-0000-000000000001",
        "OIDC_CLIENT_SECRET" => "example-secret",
        "OIDC_MICROSOFT_TENANT" => "00000000-0000-0000-0000-000000000002",
        "OIDC_ALLOWED_EMAIL_DOMAINS" => "example.com",
        "IDGATE_ADMIN_TOKEN" => "an-admin-token-for-the-check",
        "IDGATE_DB_PASSWORD" => "a-database-password-for-the-check",
        _ => return None,
    })
}

/// Compose's variable interpolation: `${X:-default}`, `${X:?message}`, `$$`.
fn interpolate(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if let Some(r) = rest.strip_prefix("$$") {
            out.push('$');
            rest = r;
        } else if let Some(r) = rest.strip_prefix("${") {
            let end = r.find('}').expect("closed ${…}");
            let expr = &r[..end];
            let (var, fallback) = match expr.split_once(":-") {
                Some((v, d)) => (v, Some(d)),
                None => (expr.split(":?").next().unwrap(), None),
            };
            let value = sample_env(var)
                .map(str::to_string)
                .or(fallback.map(str::to_string))
                .unwrap_or_else(|| panic!("variable {var} has no default and no sample"));
            out.push_str(&value);
            rest = &r[end + 1..];
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn compose_files_follow_the_specification() {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("tests/data/compose-spec.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    for name in ALL {
        let doc = load(name);
        let errors: Vec<String> = validator
            .iter_errors(&doc)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{name} breaks the Compose Specification:\n{}",
            errors.join("\n")
        );
    }
    let broken = serde_json::json!({"services": {"x": {"image": "a:1", "ports": "8080", "restart": 3}}, "unknown": 1});
    assert!(
        !validator.is_valid(&broken),
        "the schema must refuse a broken file"
    );
}

#[test]
fn every_image_is_pinned_and_every_service_is_watched() {
    for name in ALL {
        let doc = load(name);
        let built: Vec<&str> = services(&doc)
            .values()
            .filter(|d| d.get("build").is_some())
            .filter_map(|d| d["image"].as_str())
            .collect();
        for (svc, def) in services(&doc) {
            let image = def["image"]
                .as_str()
                .unwrap_or_else(|| panic!("{name}: {svc} names no image"));
            if !built.contains(&image) {
                let (_, tag) = image
                    .rsplit_once(':')
                    .unwrap_or_else(|| panic!("{name}: {svc}: {image} has no tag"));
                assert!(
                    tag != "latest" && !tag.is_empty(),
                    "{name}: {svc}: {image} is not pinned"
                );
                assert!(
                    tag.chars().any(|c| c.is_ascii_digit()),
                    "{name}: {svc}: {image} is not a version"
                );
            }
            assert!(
                def.get("restart").is_some(),
                "{name}: {svc} has no restart policy"
            );
            let one_shot = def["restart"] == "no" || def["restart"] == "on-failure";
            assert!(
                one_shot || def.get("healthcheck").is_some(),
                "{name}: {svc} has no health check"
            );
        }
    }
}

#[test]
fn only_idgate_publishes_ports() {
    for name in FILES {
        let doc = load(name);
        for (svc, def) in services(&doc) {
            if svc != "idgate" {
                assert!(
                    def.get("ports").is_none(),
                    "{name}: {svc} publishes ports; only idgate may"
                );
            }
        }
        assert!(services(&doc)["idgate"].get("ports").is_some());
        assert!(
            doc["volumes"].get("idgate-data").is_some(),
            "{name}: idgate's database needs a named volume"
        );
    }
}

/// A service's volume as written in the short syntax `source:target[:mode]`.
struct Mount {
    source: String,
    target: String,
    read_only: bool,
}

fn mounts(def: &serde_json::Value) -> Vec<Mount> {
    def["volumes"]
        .as_array()
        .map(|v| {
            v.iter()
                .filter_map(|m| m.as_str())
                .map(|m| {
                    let mut parts = m.split(':');
                    let source = parts.next().unwrap().to_string();
                    let target = parts.next().unwrap_or_default().to_string();
                    let read_only = parts
                        .next()
                        .is_some_and(|o| o.split(',').any(|o| o == "ro"));
                    Mount {
                        source,
                        target,
                        read_only,
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The named volume of `def` (declared at the top of `doc`) whose target
/// holds `path`, with `path` relative to that target.
fn named_volume_holding<'a>(
    doc: &serde_json::Value,
    def: &serde_json::Value,
    path: &'a str,
) -> Option<(Mount, &'a str)> {
    mounts(def).into_iter().find_map(|m| {
        let rest = path.strip_prefix(m.target.as_str())?.strip_prefix('/')?;
        let named = !m.source.starts_with('.') && !m.source.starts_with('/');
        (named && doc["volumes"].get(&m.source).is_some()).then_some((m, rest))
    })
}

fn bind_mounts(def: &serde_json::Value) -> Vec<(PathBuf, String)> {
    def["volumes"]
        .as_array()
        .map(|v| {
            v.iter()
                .filter_map(|m| m.as_str())
                .filter(|m| m.starts_with("./"))
                .map(|m| {
                    let mut parts = m.split(':');
                    let source = repo().join(parts.next().unwrap());
                    (source, parts.next().unwrap_or_default().to_string())
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn mounted_files_exist_in_the_repository() {
    for name in ALL {
        let doc = load(name);
        for (svc, def) in services(&doc) {
            for (source, _) in bind_mounts(def) {
                assert!(
                    source.exists(),
                    "{name}: {svc} mounts {} which is not in the repository",
                    source.display()
                );
            }
        }
    }
    let init = std::fs::metadata(repo().join("deploy/stack/init.sh")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert!(
        init.permissions().mode() & 0o111 != 0,
        "deploy/stack/init.sh must be executable"
    );
}

/// `ENV IDGATE_…` values the Dockerfile gives every idgate container.
fn dockerfile_env() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    text.split_whitespace()
        .filter(|w| w.starts_with("IDGATE_"))
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The config file mounted as idgate's, read as TOML.
fn idgate_config(name: &str, doc: &serde_json::Value) -> (PathBuf, toml::Table) {
    let idgate = &services(doc)["idgate"];
    let (config, _) = bind_mounts(idgate)
        .into_iter()
        .find(|(_, target)| target == "/etc/idgate/idgate.toml")
        .unwrap_or_else(|| panic!("{name}: idgate mounts no config"));
    let text = std::fs::read_to_string(&config).unwrap();
    let table = text
        .parse::<toml::Table>()
        .unwrap_or_else(|e| panic!("{}: {e}", config.display()));
    (config, table)
}

/// `[tts] api_key_file` of idgate's config.
fn api_key_file(name: &str, config: &toml::Table) -> String {
    config["tts"]
        .get("api_key_file")
        .and_then(|v| v.as_str())
        .filter(|f| !f.is_empty())
        .unwrap_or_else(|| panic!("{name}: idgate's config sets no tts.api_key_file"))
        .to_string()
}

/// A service's environment with compose's interpolation applied.
fn environment(def: &serde_json::Value) -> BTreeMap<String, String> {
    def["environment"]
        .as_object()
        .map(|e| {
            e.iter()
                .map(|(k, v)| (k.clone(), interpolate(v.as_str().unwrap())))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn idgates_config_passes_check_config_with_the_compose_environment() {
    for name in FILES {
        let doc = load(name);
        let idgate = &services(&doc)["idgate"];
        let (config, table) = idgate_config(name, &doc);
        let mut env = dockerfile_env();
        env.extend(environment(idgate));
        env.insert("IDGATE_CONFIG".into(), config.display().to_string());
        let dir = tempfile::tempdir().unwrap();
        // The API key file is written inside the running stack (stack-init,
        // checked below) onto a volume idgate mounts; here a placeholder
        // key stands in for it, and only for a file on such a volume.
        let key_file = api_key_file(name, &table);
        if named_volume_holding(&doc, idgate, &key_file).is_some() {
            // Without the key the config is refused: idgate would not start
            // before stack-init has written it.
            let without: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let (code, _, err) = common::run_idgate(&["check-config"], dir.path(), &without);
            assert!(
                code != 0 && err.contains("tts.api_key_file"),
                "{name}: check-config passed without the API key file {key_file}: {err}"
            );
            let placeholder = dir.path().join("admin-api-key");
            std::fs::write(&placeholder, "NNSXS.PLACEHOLDER.FOR-CHECK-CONFIG\n").unwrap();
            env.insert(
                "IDGATE_TTS_API_KEY_FILE".into(),
                placeholder.display().to_string(),
            );
        }
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (code, out, err) = common::run_idgate(&["check-config"], dir.path(), &env);
        assert_eq!(code, 0, "{name}: {err}");
        let published: Vec<String> = idgate["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().rsplit(':').next().unwrap().to_string())
            .collect();
        let listen_port = out
            .split("listening on ")
            .nth(1)
            .unwrap()
            .split([',', ' '])
            .next()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .to_string();
        assert!(
            published.contains(&listen_port),
            "{name}: server.listen port {listen_port} is not published ({published:?})"
        );
    }
}

#[test]
fn the_entra_file_registers_the_provider_with_ap_create() {
    let doc = load("docker-compose.entra.yml");
    let register = &services(&doc)["register-provider"];
    let script = interpolate(register["command"][0].as_str().unwrap());
    for flag in [
        "idgate ap create",
        "--allow-registrations",
        "--allowed-email-domains",
        "--configuration.provider.oidc.client-id",
        "--configuration.provider.oidc.client-secret-file -",
        "--configuration.provider.oidc.provider-url \"https://login.microsoftonline.com/$OIDC_MICROSOFT_TENANT/v2.0\"",
    ] {
        assert!(script.contains(flag), "missing {flag} in: {script}");
    }
    assert!(Path::new(&repo().join("deploy/idgate/entra.toml")).exists());
}

/// The stack's config file as the stack service mounts it.
fn stack_config(name: &str, doc: &serde_json::Value) -> serde_json::Value {
    let stack = &services(doc)["stack"];
    let entrypoint = stack["entrypoint"].as_str().unwrap_or_default();
    let file = entrypoint
        .split_whitespace()
        .skip_while(|w| *w != "-c")
        .nth(1)
        .unwrap_or_else(|| panic!("{name}: the stack's entrypoint names no -c config"));
    let (source, target) = bind_mounts(stack)
        .into_iter()
        .find(|(_, target)| file.starts_with(&format!("{target}/")))
        .unwrap_or_else(|| panic!("{name}: the stack does not mount {file}"));
    let path = source.join(file.strip_prefix(&format!("{target}/")).unwrap());
    let text = std::fs::read_to_string(&path).unwrap();
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A value of the stack's config: the `TTN_LW_…` variable the compose file
/// gives the stack when it sets one (it wins over the file), else the file's.
fn stack_setting(doc: &serde_json::Value, config: &serde_json::Value, key: &str) -> Option<String> {
    let var = format!("TTN_LW_{}", key.replace(['.', '-'], "_").to_uppercase());
    if let Some(v) = environment(&services(doc)["stack"]).get(&var) {
        return Some(v.clone());
    }
    let mut v = config;
    for part in key.split('.') {
        v = v.get(part)?;
    }
    Some(match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

#[test]
fn the_stack_enables_login_tokens_with_a_short_ttl() {
    for name in FILES {
        let doc = load(name);
        let config = stack_config(name, &doc);
        assert_eq!(
            stack_setting(&doc, &config, "is.login-tokens.enabled").as_deref(),
            Some("true"),
            "{name}: idgate's console sign-in needs is.login-tokens.enabled: true"
        );
        let ttl = stack_setting(&doc, &config, "is.login-tokens.token-ttl")
            .unwrap_or_else(|| panic!("{name}: no is.login-tokens.token-ttl (the default is 1h)"));
        let ttl = humantime::parse_duration(&ttl)
            .unwrap_or_else(|e| panic!("{name}: token-ttl {ttl:?}: {e}"));
        assert!(
            ttl > std::time::Duration::ZERO && ttl <= std::time::Duration::from_secs(300),
            "{name}: idgate trades each token at once; keep the TTL short, not {ttl:?}"
        );
        assert_eq!(
            stack_setting(&doc, &config, "is.user-registration.enabled").as_deref(),
            Some("false"),
            "{name}: the /api/v3/ bearer route would let anyone self-register"
        );
    }
}

#[test]
fn idgates_tts_section_matches_the_stack() {
    for name in FILES {
        let doc = load(name);
        let (_, table) = idgate_config(name, &doc);
        let stack = stack_config(name, &doc);
        let tts = table["tts"].as_table().expect("[tts]");
        let str_of = |key: &str, default: &str| {
            tts.get(key)
                .map(|v| v.as_str().unwrap().to_string())
                .unwrap_or_else(|| default.to_string())
        };
        let account = str_of("account_mount", "/oauth");
        let console = str_of("console_mount", "/console");
        let mount = stack_setting(&doc, &stack, "is.oauth.mount").unwrap_or("/oauth".into());
        assert_eq!(
            account, mount,
            "{name}: tts.account_mount must be the stack's is.oauth.mount"
        );
        assert_ne!(
            account, "/oauth",
            "{name}: the stack's administrators keep its password sign-in only with the account app off /oauth"
        );
        // The stack's address: tts.url, else upstream.url; a compose service's port.
        let url = match str_of("url", "").as_str() {
            "" => table["upstream"]["url"].as_str().unwrap().to_string(),
            u => u.to_string(),
        };
        assert_eq!(url, "http://stack:1885", "{name}: tts.url");
        assert!(
            services(&doc)["stack"]["expose"]
                .as_array()
                .is_some_and(|e| e.iter().any(|p| p == "1885")),
            "{name}: the stack's :1885"
        );
        // The console's OAuth callback lands on the canonical URL: idgate's.
        let mut public = environment(&services(&doc)["idgate"])
            .get("IDGATE_SERVER_PUBLIC_URL")
            .cloned()
            .unwrap_or_else(|| table["server"]["public_url"].as_str().unwrap().to_string());
        public = public.trim_end_matches('/').to_string();
        assert_eq!(
            stack_setting(&doc, &stack, "console.ui.canonical-url"),
            Some(format!("{public}{console}")),
            "{name}: console.ui.canonical-url must be idgate's public URL"
        );
        assert_eq!(
            stack_setting(&doc, &stack, "is.oauth.ui.canonical-url"),
            Some(format!("{public}{account}")),
            "{name}: is.oauth.ui.canonical-url"
        );
        for key in ["console.oauth.authorize-url", "console.oauth.logout-url"] {
            let v = stack_setting(&doc, &stack, key).unwrap_or_default();
            assert!(
                v.starts_with(&format!("{public}{account}/")),
                "{name}: {key} {v:?} must be on idgate's public URL under {account}"
            );
        }
    }
}

#[test]
fn idgates_config_has_the_bearer_and_public_routes() {
    for name in FILES {
        let doc = load(name);
        let (_, table) = idgate_config(name, &doc);
        let routes: Vec<(String, String, usize)> = table
            .get("routes")
            .and_then(|r| r.as_array())
            .unwrap_or_else(|| panic!("{name}: no [[routes]]"))
            .iter()
            .map(|r| {
                (
                    r["path"].as_str().unwrap().to_string(),
                    r["allow"].as_str().unwrap().to_string(),
                    r.get("methods")
                        .and_then(|m| m.as_array())
                        .map_or(0, Vec::len),
                )
            })
            .collect();
        let find = |path: &str| routes.iter().find(|(p, _, _)| p == path);
        assert_eq!(
            find("/api/v3/"),
            Some(&("/api/v3/".to_string(), "bearer".to_string(), 0)),
            "{name}: API keys and the console's own API calls need /api/v3/ as bearer, every method"
        );
        assert_eq!(
            find("/healthz"),
            Some(&("/healthz".to_string(), "public".to_string(), 0)),
            "{name}: /healthz public, exact"
        );
        for (path, allow, _) in &routes {
            assert!(
                allow != "public" || path == "/healthz",
                "{name}: {path} is public; only /healthz should be"
            );
        }
    }
}

#[test]
fn stack_init_hands_the_api_key_to_idgate_before_it_starts() {
    for name in FILES {
        let doc = load(name);
        let svc = services(&doc);
        let idgate = &svc["idgate"];
        let init = &svc["stack-init"];
        assert_eq!(
            idgate["depends_on"]["stack-init"]["condition"], "service_completed_successfully",
            "{name}: idgate reads the key at start, so it must wait for stack-init"
        );
        assert_eq!(init["restart"], "no", "{name}: stack-init runs once");
        assert_eq!(init["entrypoint"], "/config/init.sh");
        let (_, table) = idgate_config(name, &doc);
        let key_file = api_key_file(name, &table);
        let (theirs, rest) = named_volume_holding(&doc, idgate, &key_file)
            .unwrap_or_else(|| panic!("{name}: {key_file} is on no named volume of idgate's"));
        assert!(
            theirs.read_only,
            "{name}: idgate mounts the key volume read-only"
        );
        let ours = mounts(init)
            .into_iter()
            .find(|m| m.source == theirs.source)
            .unwrap_or_else(|| panic!("{name}: stack-init does not mount {}", theirs.source));
        assert!(!ours.read_only, "{name}: stack-init writes the key");
        let env = environment(init);
        assert_eq!(
            env.get("IDGATE_KEY_FILE"),
            Some(&format!("{}/{rest}", ours.target)),
            "{name}: stack-init writes the key where idgate reads it"
        );
        for (svc_name, def) in svc {
            if svc_name != "idgate" && svc_name != "stack-init" {
                assert!(
                    mounts(def).iter().all(|m| m.source != theirs.source),
                    "{name}: {svc_name} mounts the admin key's volume"
                );
            }
        }
        // The file's owner is the user idgate's image runs as.
        let uid = std::fs::read_to_string(repo().join("Dockerfile"))
            .unwrap()
            .split("--uid ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next().map(str::to_string))
            .expect("the Dockerfile's useradd --uid");
        let owner = env.get("IDGATE_KEY_OWNER").expect("IDGATE_KEY_OWNER");
        assert_eq!(
            owner.split(':').next(),
            Some(uid.as_str()),
            "{name}: the key file's owner"
        );
        assert_eq!(
            init["user"], "0:0",
            "{name}: stack-init needs root for the chown"
        );
    }
}

/// A stand-in for `ttn-lw-stack` that logs its arguments and, for
/// `is-db create-user-api-key`, answers as the stack does (read from
/// cmd/ttn-lw-stack/commands/is_db_create_api_key.go, v3.32.1): the key on
/// stdout as `--output-format` says (a Go template, or "json" by default),
/// and an Info log line with the key on stderr unless `--log.level` is
/// warn or above.
const FAKE_STACK: &str = r#"#!/bin/sh
printf '%s\n' "$*" >>"$FAKE_STACK_LOG"
case "$*" in
  *"is-db create-user-api-key"*) ;;
  *) exit 0 ;;
esac
key="NNSXS.FAKEKEYID$(date +%s%N).FAKESECRET"
case "$*" in
  *"--log.level warn"*|*"--log.level=warn"*|*"--log.level error"*|*"--log.level=error"*) ;;
  *) echo "INFO API key value: $key" >&2 ;;
esac
case "$*" in
  *"--output-format {{.Key}}"*|*"--output-format={{.Key}}"*) printf '%s\n' "$key" ;;
  *) printf '{\n  "id": "FAKEKEYID",\n  "key": "%s",\n  "name": "x"\n}\n' "$key" ;;
esac
"#;

#[test]
fn init_sh_writes_the_key_once_and_never_prints_it() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let fake = bin.join("ttn-lw-stack");
    std::fs::write(&fake, FAKE_STACK).unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let log = dir.path().join("calls.log");
    let key_dir = dir.path().join("idgate-tts");
    std::fs::create_dir(&key_dir).unwrap();
    let key_file = key_dir.join("admin-api-key");
    // The test's own user (the owner of what it creates): chown to it
    // works without root.
    let owner = {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(dir.path()).unwrap();
        format!("{}:{}", meta.uid(), meta.gid())
    };
    let run = || {
        let out = std::process::Command::new(repo().join("deploy/stack/init.sh"))
            .env(
                "PATH",
                format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
            )
            .env("FAKE_STACK_LOG", &log)
            .env("IDGATE_KEY_FILE", &key_file)
            .env("IDGATE_KEY_OWNER", &owner)
            .env("PUBLIC_URL", "https://console.example.com/")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "init.sh failed: {text}");
        text
    };

    let first = run();
    let key = std::fs::read_to_string(&key_file).unwrap();
    let key = key.strip_suffix('\n').unwrap_or(&key);
    assert!(
        key.starts_with("NNSXS.") && !key.contains(char::is_whitespace),
        "the file holds the key alone: {key:?}"
    );
    assert!(!first.contains(key), "init.sh printed the key: {first}");
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode & 0o077,
        0,
        "the key file is readable by others: {mode:o}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&key_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "admin-api-key")
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    let calls = std::fs::read_to_string(&log).unwrap();
    let order: Vec<&str> = calls
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3))
        .collect();
    assert_eq!(
        order,
        [
            "migrate",
            "create-admin-user",
            "create-oauth-client",
            "create-user-api-key"
        ],
        "{calls}"
    );
    let create = calls.lines().last().unwrap();
    assert!(
        create.contains("--user-id admin") && create.contains("--name idgate"),
        "{create}"
    );
    assert!(
        calls.contains("--redirect-uri https://console.example.com/console/oauth/callback"),
        "{calls}"
    );

    // A second run keeps the key idgate already uses.
    let second = run();
    assert!(!second.contains(key), "init.sh printed the key: {second}");
    assert_eq!(std::fs::read_to_string(&key_file).unwrap().trim_end(), key);
    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        calls.matches("create-user-api-key").count(),
        1,
        "a second run made another key: {calls}"
    );
}

#[test]
fn the_replicas_file_runs_idgates_on_one_postgres_behind_the_balancer() {
    let doc = load(REPLICAS);
    let all = services(&doc);
    let replicas: Vec<&String> = all.keys().filter(|k| k.starts_with("idgate-")).collect();
    assert!(replicas.len() >= 2, "{replicas:?}");
    // Only the balancer is published.
    for (svc, def) in all {
        assert_eq!(
            def.get("ports").is_some(),
            svc == "lb",
            "{svc}: only the balancer publishes ports"
        );
    }
    let balancer = std::fs::read_to_string(repo().join("deploy/nginx/replicas.conf")).unwrap();
    let mut urls = Vec::new();
    for svc in &replicas {
        let def = &all[svc.as_str()];
        // Every replica: the same config, the same database, no file of
        // its own, and the balancer sends to it.
        let env = environment(def);
        let database = &env["IDGATE_DATABASE_URL"];
        assert!(database.starts_with("postgres://"), "{svc}: {database}");
        assert!(database.contains("@postgres:5432/"), "{svc}: {database}");
        urls.push(database.clone());
        assert!(
            balancer.contains(&format!("server {svc}:8080")),
            "{svc} is not behind the balancer"
        );
        let (config, _) = bind_mounts(def)
            .into_iter()
            .find(|(_, target)| target == "/etc/idgate/idgate.toml")
            .unwrap_or_else(|| panic!("{svc} mounts no config"));
        assert!(config.ends_with("deploy/idgate/replicas.toml"), "{svc}");
        assert!(
            mounts(def).iter().all(|m| m.source.starts_with("./")),
            "{svc} keeps state of its own"
        );
        let mut env: BTreeMap<String, String> = dockerfile_env();
        env.extend(environment(def));
        env.insert("IDGATE_CONFIG".into(), config.display().to_string());
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let dir = tempfile::tempdir().unwrap();
        let (code, out, err) = common::run_idgate(&["check-config"], dir.path(), &env);
        assert_eq!(code, 0, "{svc}: {out}{err}");
    }
    urls.dedup();
    assert_eq!(urls.len(), 1, "the replicas use different databases");
    // The balancer's config is one a real nginx accepts (the compose
    // network's names stand in as loopback addresses).
    let dir = tempfile::tempdir().unwrap();
    let mut server = balancer.replace(
        "listen 8080;",
        &format!("listen 127.0.0.1:{};", common::free_port()),
    );
    for svc in &replicas {
        server = server.replace(&format!("{svc}:8080"), "127.0.0.1:9");
    }
    let d = dir.path().display();
    let conf = dir.path().join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "pid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\nhttp {{\n\
             client_body_temp_path {d}/body;\nproxy_temp_path {d}/proxy;\n\
             access_log off;\n{server}\n}}\n"
        ),
    )
    .unwrap();
    let checked = std::process::Command::new(common::nginx::binary())
        .arg("-t")
        .arg("-c")
        .arg(&conf)
        .arg("-p")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "nginx refuses deploy/nginx/replicas.conf: {}",
        String::from_utf8_lossy(&checked.stderr)
    );
    assert!(all["lb"]["depends_on"].get(replicas[0].as_str()).is_some());
}
