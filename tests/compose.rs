//! The compose files, checked without a Docker engine: valid against the
//! Compose Specification's JSON schema, every image pinned, only idgate
//! publishing ports, every mounted file present in the repository, health
//! checks and restart policies everywhere, and idgate's mounted config
//! accepted by `idgate check-config` with the environment the file gives it.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const FILES: &[&str] = &["docker-compose.yml", "docker-compose.entra.yml"];

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
    for name in FILES {
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
    for name in FILES {
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
    for name in FILES {
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

#[test]
fn idgates_config_passes_check_config_with_the_compose_environment() {
    for name in FILES {
        let doc = load(name);
        let idgate = &services(&doc)["idgate"];
        let (config, _) = bind_mounts(idgate)
            .into_iter()
            .find(|(_, target)| target == "/etc/idgate/idgate.toml")
            .unwrap_or_else(|| panic!("{name}: idgate mounts no config"));
        let mut env = dockerfile_env();
        for (k, v) in idgate["environment"].as_object().unwrap() {
            env.insert(k.clone(), interpolate(v.as_str().unwrap()));
        }
        env.insert("IDGATE_CONFIG".into(), config.display().to_string());
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let dir = tempfile::tempdir().unwrap();
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
