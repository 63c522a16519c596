//! The Kubernetes examples (`deploy/kubernetes/`), checked without a
//! cluster: valid against the Kubernetes API's schemas (`kubernetes-validate
//! --strict`, from PyPI; `scripts/setup --test` installs it), idgate's admin
//! port reachable from no Service, its secrets from a Secret, readiness and
//! liveness probes on `/readyz` and `/healthz`, several replicas behind a
//! Service, and idgate's mounted config accepted by `idgate check-config`
//! with the environment the pod gives it, Kubernetes' service links
//! included.

mod common;

use std::path::PathBuf;

const FILES: &[&str] = &["sidecar.yaml", "replicas.yaml"];

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/kubernetes")
        .join(name)
}

fn documents(name: &str) -> Vec<serde_json::Value> {
    use serde::Deserialize;
    let text = std::fs::read_to_string(path(name)).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|d| serde_json::Value::deserialize(d).unwrap())
        .collect()
}

fn of_kind<'a>(docs: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn idgate_container(docs: &[serde_json::Value]) -> &serde_json::Value {
    let deployment = of_kind(docs, "Deployment")[0];
    deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "idgate")
        .expect("an idgate container")
}

#[test]
fn the_examples_are_valid_kubernetes() {
    for name in FILES {
        let out = std::process::Command::new("python3")
            .args(["-m", "kubernetes_validate", "--strict", "--quiet"])
            .arg(path(name))
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "{name}: {}{}\n(kubernetes-validate is needed: run `scripts/setup --test`)",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_admin_port_is_reachable_from_no_service_and_probes_use_it_inside() {
    for name in FILES {
        let docs = documents(name);
        let c = idgate_container(&docs);
        let ports: Vec<i64> = c["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["containerPort"].as_i64().unwrap())
            .collect();
        assert_eq!(ports, vec![8080], "{name}");
        for svc in of_kind(&docs, "Service") {
            for p in svc["spec"]["ports"].as_array().unwrap() {
                assert_eq!(p["targetPort"], "http", "{name}: {p}");
            }
        }
        for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
            let command = &c[probe]["exec"]["command"];
            assert_eq!(
                command,
                &serde_json::json!(["idgate", "probe", format!("http://127.0.0.1:9090{path}")]),
                "{name}: {probe}"
            );
        }
    }
}

#[test]
fn secrets_come_from_a_secret() {
    for name in FILES {
        let docs = documents(name);
        let secret = of_kind(&docs, "Secret")[0];
        let c = idgate_container(&docs);
        for var in [
            "IDGATE_ADMIN_TOKEN",
            "IDGATE_DATABASE_URL",
            "IDGATE_TTS_API_KEY",
        ] {
            let env = c["env"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["name"] == var)
                .unwrap_or_else(|| panic!("{name}: no {var}"));
            let from = &env["valueFrom"]["secretKeyRef"];
            assert_eq!(from["name"], secret["metadata"]["name"], "{name}: {var}");
            let key = from["key"].as_str().unwrap();
            assert!(
                secret["stringData"][key].is_string(),
                "{name}: the Secret has no {key}"
            );
        }
        let db = secret["stringData"]["database-url"].as_str().unwrap();
        assert!(db.starts_with("postgres://"), "{name}: {db}");
    }
    let replicas = documents("replicas.yaml");
    let deployment = of_kind(&replicas, "Deployment")[0];
    assert!(deployment["spec"]["replicas"].as_i64().unwrap() >= 2);
}

#[test]
fn idgate_accepts_the_config_with_the_pods_environment() {
    for name in FILES {
        let docs = documents(name);
        let config = of_kind(&docs, "ConfigMap")[0]["data"]["idgate.toml"]
            .as_str()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("idgate.toml");
        std::fs::write(&file, config).unwrap();
        let secret = &of_kind(&docs, "Secret")[0]["stringData"];
        let env = [
            (
                "IDGATE_ADMIN_TOKEN",
                secret["admin-token"].as_str().unwrap(),
            ),
            (
                "IDGATE_DATABASE_URL",
                secret["database-url"].as_str().unwrap(),
            ),
            (
                "IDGATE_TTS_API_KEY",
                secret["tts-api-key"].as_str().unwrap(),
            ),
            // What Kubernetes adds for the Service `idgate` in the namespace.
            ("IDGATE_SERVICE_HOST", "10.96.0.20"),
            ("IDGATE_SERVICE_PORT", "80"),
            ("IDGATE_SERVICE_PORT_HTTP", "80"),
            ("IDGATE_PORT", "tcp://10.96.0.20:80"),
            ("IDGATE_PORT_80_TCP", "tcp://10.96.0.20:80"),
            ("IDGATE_PORT_80_TCP_PROTO", "tcp"),
            ("IDGATE_PORT_80_TCP_PORT", "80"),
            ("IDGATE_PORT_80_TCP_ADDR", "10.96.0.20"),
        ];
        let (code, out, err) = common::run_idgate(
            &["check-config", "--config", file.to_str().unwrap()],
            dir.path(),
            &env,
        );
        assert_eq!(code, 0, "{name}: {out}{err}");
    }
}
