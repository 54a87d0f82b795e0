//! ImageCopy `spec.encryption` / `spec.decryption` through an operator
//! process wired exactly as the Helm chart wires it: the rendered
//! OCICRYPT_KEYPROVIDER_CONFIG (its /run/keyprovider volume mapped to a
//! temp dir), a gRPC provider on the socket the sidecar is told, a command
//! provider installed where the init container copies it. The mirror is
//! encrypted and decrypted through them, skopeo reads the JWE part, and no
//! key reaches status, Events or the log.

use crate::encryption::Keys;
use crate::support::cluster::*;
use crate::support::image::Spec;
use crate::support::kms;
use crate::support::registry::{Mode, Registry};
use kopeo_test_apiserver::{ApiServer, Options};
use serde_json::{Value, json};

const SECRET: &str = "kms-secret-canary";

/// `helm template` of the chart with a gRPC and a command provider: the
/// ConfigMap's ocicrypt.json and the operator container's env.
fn rendered(log: &std::path::Path) -> (Value, Vec<Value>, Value) {
    let args = format!("{{{SECRET},{},ok,vault}}", log.display());
    let docs = helm_template(&[
        "--set",
        "keyProviders[0].name=kms",
        "--set",
        "keyProviders[0].image=example/kms:1",
        "--set",
        "keyProviders[1].name=vault",
        "--set",
        "keyProviders[1].command.image=example/vault:1",
        "--set",
        "keyProviders[1].command.path=/usr/bin/vault-keyprovider",
        "--set",
        &format!("keyProviders[1].command.args={args}"),
    ]);
    let cm = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == "kopeo-keyproviders");
    let cfg: Value = serde_json::from_str(
        cm.expect("the keyproviders ConfigMap")["data"]["ocicrypt.json"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let deploy = docs.iter().find(|d| d["kind"] == "Deployment").expect("the Deployment");
    let pod = &deploy["spec"]["template"]["spec"];
    let operator = container(pod, "operator");
    (cfg, operator["env"].as_array().unwrap().clone(), pod.clone())
}

#[test]
fn encrypted_and_decrypted_mirrors_through_providers_wired_as_the_chart_wires_them() {
    let k = Keys::new();
    let run = k.path("run-keyprovider"); // the pod's /run/keyprovider
    std::fs::create_dir_all(&run).unwrap();
    let (cfg, env, pod) = rendered(&k.path("kms.log"));
    // What the chart promises the operator.
    assert_eq!(cfg["key-providers"]["kms"]["grpc"], "unix:///run/keyprovider/kms.sock");
    assert_eq!(cfg["key-providers"]["vault"]["cmd"]["path"], "/run/keyprovider/vault");
    let cfg_path = env.iter().find(|e| e["name"] == "OCICRYPT_KEYPROVIDER_CONFIG").unwrap()["value"]
        .as_str()
        .unwrap();
    assert_eq!(cfg_path, "/etc/kopeo/keyproviders/ocicrypt.json");
    let sidecar = pod["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "keyprovider-kms")
        .unwrap();
    let socket = sidecar["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "KEYPROVIDER_SOCKET")
        .unwrap()["value"]
        .as_str()
        .unwrap()
        .to_string();
    let init = &pod["initContainers"][0];
    assert_eq!(
        init["command"],
        json!(["cp", "/usr/bin/vault-keyprovider", "/run/keyprovider/vault"])
    );
    // The pod, on this machine: the volume is a temp dir; the sidecar
    // listens where it is told; the init container's copy is made.
    let map = |p: &str| p.replace("/run/keyprovider", run.to_str().unwrap());
    let config = k.path("ocicrypt.json");
    std::fs::write(&config, map(&cfg.to_string())).unwrap();
    let _sidecar = kms::grpc_server(SECRET, "kms", Some(std::path::Path::new(&map(&socket))));
    std::fs::copy(kms::script(), run.join("vault")).unwrap();

    let reg = Registry::start(Mode::Plain);
    let src = k.image("src", Spec::default());
    k.kopeo(&[
        "copy",
        "-q",
        "--dest-tls-verify=false",
        &src.reference(),
        &reg.image("ns/app:1"),
    ])
    .ok();
    let original = reg.digest(k.home.path(), "ns/app:1");
    let server = ApiServer::start(Options::default());
    let kubeconfig = server.write_kubeconfig(&k.path("kubeconfig"));
    let op = OperatorProcess::start_with(
        k.home.path(),
        &kubeconfig,
        "crypt",
        &[("OCICRYPT_KEYPROVIDER_CONFIG", config.to_str().unwrap())],
    );
    runtime().block_on(async {
        let client = cluster(&server).await;
        insecure_credentials(&server, &[&reg.host]).await;
        let public = std::fs::read_to_string(k.path("rsa.pub")).unwrap();
        let private = std::fs::read_to_string(k.path("rsa.pem")).unwrap();
        post(&server, "/api/v1/namespaces/default/configmaps", &json!({"metadata": {"name": "pub"}, "data": {"rsa.pub": public}})).await;
        post(&server, "/api/v1/namespaces/default/secrets", &json!({"metadata": {"name": "priv"}, "stringData": {"rsa.pem": private}})).await;
        let copies = kopeo_api(&client, "ImageCopy", "imagecopies");
        let create = |name: &str, spec: Value| {
            let server = &server;
            let name = name.to_string();
            async move {
                post(server, "/apis/kopeo.dev/v1alpha1/namespaces/default/imagecopies",
                    &json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "ImageCopy", "metadata": {"name": name}, "spec": spec})).await;
            }
        };
        create("enc", json!({"source": reg.image("ns/app:1"), "destination": reg.image("enc/app:1"),
            "encryption": {"recipients": [
                {"provider": {"name": "kms", "argument": "grpc-key"}},
                {"provider": {"name": "vault", "argument": "cmd-key"}},
                {"configMapKeyRef": {"name": "pub", "key": "rsa.pub"}}]}})).await;
        assert!(wait_ready(&copies, "enc", 600).await, "{:?}", copies.get("enc").await.map(|c| c.data));
        for (name, key) in [
            ("via-grpc", json!({"provider": {"name": "kms"}})),
            ("via-cmd", json!({"provider": {"name": "vault"}})),
            ("via-secret", json!({"secretKeyRef": {"name": "priv", "key": "rsa.pem"}})),
        ] {
            create(name, json!({"source": reg.image("enc/app:1"), "destination": reg.image(&format!("dec/{name}:1")),
                "decryption": {"keys": [key]}})).await;
        }
        for name in ["via-grpc", "via-cmd", "via-secret"] {
            assert!(wait_ready(&copies, name, 600).await, "{name}: {:?}", copies.get(name).await.map(|c| c.data));
        }
        // A provider the operator was not given stalls, saying so.
        create("unknown", json!({"source": reg.image("enc/app:1"), "destination": reg.image("dec/unknown:1"),
            "decryption": {"keys": [{"provider": {"name": "hsm"}}]}})).await;
        let mut reason = Value::Null;
        for _ in 0..400 {
            let o = copies.get("unknown").await.unwrap();
            let conds = o.data["status"]["conditions"].as_array().cloned().unwrap_or_default();
            if let Some(c) = conds.iter().find(|c| c["type"] == "Stalled" && c["status"] == "True") {
                reason = c["reason"].clone();
                assert!(c["message"].as_str().unwrap().contains("hsm"), "{c}");
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(reason, "EncryptionKeysInvalid");
        // Nothing of the private key in any status or Event.
        let canary = private.lines().nth(3).unwrap().to_string();
        for o in copies.list(&Default::default()).await.unwrap().items {
            assert!(!o.data.to_string().contains(&canary), "{}", o.metadata.name.unwrap_or_default());
        }
        let events: kube::Api<k8s_openapi::api::events::v1::Event> = kube::Api::namespaced(client.clone(), "default");
        let evs = serde_json::to_string(&events.list(&Default::default()).await.unwrap().items).unwrap();
        assert!(!evs.contains(&canary) && !evs.contains(SECRET));
    });
    let log = std::fs::read_to_string(&op.log).unwrap_or_default();
    let canary = std::fs::read_to_string(k.path("rsa.pem"))
        .unwrap()
        .lines()
        .nth(3)
        .unwrap()
        .to_string();
    assert!(
        !log.contains(&canary) && !log.contains(SECRET),
        "a key in the operator's log"
    );
    // Each decrypted mirror is the original image, byte for byte.
    for name in ["via-grpc", "via-cmd", "via-secret"] {
        assert_eq!(reg.digest(k.home.path(), &format!("dec/{name}:1")), original, "{name}");
    }
    // The encrypted mirror: three wrapped keys per layer; skopeo reads the JWE one.
    let m: Value = serde_json::from_str(&reg.raw_manifest(k.home.path(), "enc/app:1")).unwrap();
    let ann = &m["layers"][0]["annotations"];
    for a in ["jwe", "provider.kms", "provider.vault"] {
        assert!(
            ann[format!("org.opencontainers.image.enc.keys.{a}")].is_string(),
            "{a}: {ann}"
        );
    }
    let out = format!("oci:{}:x", k.s("skopeo-dec"));
    k.skopeo(&[
        "copy",
        "-q",
        "--src-tls-verify=false",
        "--decryption-key",
        &k.s("rsa.pem"),
        &reg.image("enc/app:1"),
        &out,
    ])
    .ok();
    let (_, plain) = crate::encryption::manifest(&k.path("src"));
    assert_eq!(
        crate::encryption::layers(&crate::encryption::manifest(&k.path("skopeo-dec")).1),
        crate::encryption::layers(&plain)
    );
    drop(op);
}

#[test]
fn kopeo_run_syncs_a_repository_encrypted_then_decrypted() {
    let k = Keys::new();
    let reg = Registry::start(Mode::Plain);
    let host = reg.host.clone();
    for (tag, seed) in [("a", 1), ("b", 2)] {
        let src = k.image(
            &format!("src-{tag}"),
            Spec {
                seed,
                ..Spec::default()
            },
        );
        k.kopeo(&[
            "copy",
            "-q",
            "--dest-tls-verify=false",
            &src.reference(),
            &reg.image(&format!("team/app:{tag}")),
        ])
        .ok();
    }
    let cfg = kms::cmd_config(k.home.path(), SECRET, "ok");
    let indent = |f: &str| -> String {
        std::fs::read_to_string(k.path(f))
            .unwrap()
            .lines()
            .map(|l| format!("    {l}\n"))
            .collect()
    };
    crate::support::openssl(
        k.home.path(),
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "tls.key", "-out", "tls.crt", "-subj", "/CN=m",
            "-days", "9",
        ],
    );
    let (public, private) = (indent("ec.pub"), indent("ec.pem"));
    let (tls_crt, tls_key) = (indent("tls.crt"), indent("tls.key"));
    let sync = |name: &str, from: &str, to: &str, crypt: &str| {
        format!(
            "---\napiVersion: kopeo.dev/v1alpha1\nkind: ImageSync\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  registry: \"{host}\"\n  images: {{{from}: [a, b]}}\n  destination: \"{host}/{to}\"\n{crypt}"
        )
    };
    let common = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: keys, namespace: default}}\nstringData:\n  ec.pub: |\n{public}  ec.pem: |\n{private}  tls.crt: |\n{tls_crt}  tls.key: |\n{tls_key}---\napiVersion: kopeo.dev/v1alpha1\nkind: RegistryCredential\nmetadata: {{name: reg, namespace: default}}\nspec: {{registry: \"{host}\", tls: {{insecure: true}}}}\n"
    );
    let enc = common.clone()
        + &sync(
            "enc",
            "team/app",
            "enc",
            "  encryption:\n    recipients:\n    - secretKeyRef: {name: keys, key: ec.pub}\n    - provider: {name: testkms, argument: sync-key}\n    - secretKeyRef: {name: keys, key: tls.crt}\n    layers: [-1]\n",
        );
    let env = [("OCICRYPT_KEYPROVIDER_CONFIG", cfg.to_str().unwrap())];
    let run = |yaml: String, file: &str| {
        let path = k.path(file);
        std::fs::write(&path, yaml).unwrap();
        let out = crate::support::kopeo_env(k.home.path(), &["run", "-f", path.to_str().unwrap()], None, &env);
        assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    };
    run(enc.clone(), "enc.yaml");
    let first: Vec<String> = ["a", "b"]
        .iter()
        .map(|t| reg.digest(k.home.path(), &format!("enc/app:{t}")))
        .collect();
    // Synced again, nothing changed: the encrypted copies are recognised, not made anew.
    run(enc, "enc.yaml");
    let again: Vec<String> = ["a", "b"]
        .iter()
        .map(|t| reg.digest(k.home.path(), &format!("enc/app:{t}")))
        .collect();
    assert_eq!(first, again, "an unchanged image was encrypted again");
    for tag in ["a", "b"] {
        let m: Value = serde_json::from_str(&reg.raw_manifest(k.home.path(), &format!("enc/app:{tag}"))).unwrap();
        let types: Vec<&str> = m["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["mediaType"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            [
                "application/vnd.oci.image.layer.v1.tar+gzip",
                "application/vnd.oci.image.layer.v1.tar+gzip+encrypted"
            ]
        );
    }
    for (name, key) in [
        ("dec-jwe", "secretKeyRef: {name: keys, key: ec.pem}"),
        ("dec-kms", "provider: {name: testkms}"),
        (
            "dec-pkcs7",
            "secretKeyRef: {name: keys, key: tls.key}\n    - secretKeyRef: {name: keys, key: tls.crt}",
        ),
    ] {
        let yaml = common.clone()
            + &sync(
                name,
                "enc/app",
                name,
                &format!("  decryption:\n    keys:\n    - {key}\n"),
            );
        run(yaml, &format!("{name}.yaml"));
        for tag in ["a", "b"] {
            assert_eq!(
                reg.digest(k.home.path(), &format!("{name}/app:{tag}")),
                reg.digest(k.home.path(), &format!("team/app:{tag}")),
                "{name} {tag}"
            );
        }
    }
}
