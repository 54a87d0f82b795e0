//! The operator's API: CRDs generated from the Rust types, checked in, and
//! accepted (with their validation) by an API server; the examples reconcile.

use crate::support::cluster::*;
use crate::support::{kopeo, tempdir};
use kopeo_test_apiserver::{ApiServer, Options};
use serde_json::{Value, json};

#[test]
fn checked_in_crds_match_the_rust_types() {
    let home = tempdir();
    let generated = kopeo(home.path(), &["crd"]).ok().stdout;
    let checked_in = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/crds/kopeo.dev.yaml")).unwrap();
    assert!(
        generated == checked_in,
        "crds/kopeo.dev.yaml is stale: run `cargo run -- crd > crds/kopeo.dev.yaml`"
    );
}

#[test]
fn the_api_server_serves_and_validates_the_custom_resources() {
    let server = ApiServer::start(Options::default());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for crd in crd_documents() {
            let (code, v) = post_answer(&server, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", &crd).await;
            assert_eq!(code, 201, "{v}");
        }
        let example: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/imagecopy.yaml")).unwrap()).unwrap();
        let (code, v) = post_answer(&server, "/apis/kopeo.dev/v1alpha1/namespaces/default/imagecopies", &example).await;
        assert_eq!(code, 201, "{v}");
        assert_eq!(v["spec"]["retry"]["times"], 3);
        let bad = json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "ImageCopy", "metadata": {"name": "bad"},
                          "spec": {"source": "ftp://nope", "destination": "oci:/x", "format": "v2s1", "refreshInterval": "soon"}});
        let (code, v) = post_answer(&server, "/apis/kopeo.dev/v1alpha1/namespaces/default/imagecopies", &bad).await;
        assert_eq!(code, 422, "{v}");
        let msg = v["message"].as_str().unwrap();
        assert!(msg.contains("spec.source") && msg.contains("spec.format") && msg.contains("spec.refreshInterval"), "{msg}");
        let cred = json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "RegistryCredential", "metadata": {"name": "c"}, "spec": {"registry": "reg example/Team"}});
        let (code, v) = post_answer(&server, "/apis/kopeo.dev/v1alpha1/namespaces/default/registrycredentials", &cred).await;
        assert_eq!(code, 422, "the registry must look like a host[/namespace]: {v}");
        // Validation rules (CEL) catch mistakes the schema alone cannot.
        let cases = [
            ("imagecopies", json!({"kind": "ImageCopy", "spec": {"source": "oci:/a:x", "destination": "oci:/a:x"}}), "spec: Invalid value: \"object\": source and destination must differ"),
            ("imagecopies", json!({"kind": "ImageCopy", "spec": {"source": "oci:/a:x", "destination": "oci:/b:x", "compression": {"format": "gzip", "level": 15}}}),
                "spec.compression: Invalid value: \"object\": compression level out of range (gzip 0-9, zstd 1-22)"),
            ("imagesyncs", json!({"kind": "ImageSync", "spec": {"registry": "r.example", "destination": "m.example/x", "images": {}}}),
                "select images with images, imagesByTagRegex, imagesBySemver or catalog"),
            ("registrycredentials", json!({"kind": "RegistryCredential", "spec": {"registry": "r.example"}}), "set secretRef, tls, or both"),
            ("imagecopies", json!({"kind": "ImageCopy", "spec": {"source": "oci:/a:x", "destination": "oci:/b:x",
                "encryption": {"recipients": [{"provider": {"name": "kms"}, "secretKeyRef": {"name": "s", "key": "k"}}]}}}),
                "give exactly one of secretKeyRef, configMapKeyRef and provider"),
        ];
        // The encryption example is a valid pair of resources.
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/encryption/mirror.yaml")).unwrap();
        for doc in text.split("\n---").filter(|d| d.contains("kind:")) {
            let example: Value = serde_yaml_ng::from_str(doc).unwrap();
            let (code, v) = post_answer(&server, "/apis/kopeo.dev/v1alpha1/namespaces/default/imagecopies", &example).await;
            assert_eq!(code, 201, "{v}");
        }
        for (i, (plural, mut body, want)) in cases.into_iter().enumerate() {
            body["apiVersion"] = json!("kopeo.dev/v1alpha1");
            body["metadata"] = json!({"name": format!("rule-{i}")});
            let (code, v) = post_answer(&server, &format!("/apis/kopeo.dev/v1alpha1/namespaces/default/{plural}"), &body).await;
            assert_eq!(code, 422, "{v}");
            assert!(v["message"].as_str().unwrap().contains(want), "{v}");
        }
        let zstd = json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "ImageCopy", "metadata": {"name": "zstd-15"},
            "spec": {"source": "oci:/a:x", "destination": "oci:/b:x", "compression": {"format": "zstd", "level": 15}}});
        assert_eq!(post_answer(&server, "/apis/kopeo.dev/v1alpha1/namespaces/default/imagecopies", &zstd).await.0, 201);
    });
}

#[test]
fn example_operator_manifests_reconcile() {
    let home = tempdir();
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/operator");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kopeo"))
        .args(["run", "-f", examples])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("HOME", home.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let status: Value = serde_yaml_ng::from_str(&String::from_utf8_lossy(&out.stdout)).expect("kopeo run prints YAML");
    let ready = status["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(
        (&ready["status"], &ready["reason"]),
        (&json!("True"), &json!("Copied")),
        "{status}"
    );
    // The example's source digest, and skopeo reads the same image back.
    let index: Value =
        serde_json::from_slice(&std::fs::read(format!("{examples}/../hello/index.json")).unwrap()).unwrap();
    let want = index["manifests"][0]["digest"].as_str().unwrap().to_string();
    assert_eq!(status["status"]["sourceDigest"], want.as_str(), "{status}");
    assert_eq!(status["status"]["destinationDigest"], want.as_str(), "{status}");
    let dest = concat!(env!("CARGO_MANIFEST_DIR"), "/target/example-out");
    let raw = crate::support::skopeo(home.path(), &["inspect", "--raw", &format!("oci:{dest}:hello")]).ok();
    use sha2::Digest as _;
    assert_eq!(
        format!("sha256:{}", hex::encode(sha2::Sha256::digest(raw.stdout.as_bytes()))),
        want
    );
}

#[test]
fn kubectl_apply_of_the_example_then_wait_until_the_operator_made_it_ready() {
    use crate::support::registry::{Mode, PASSWORD, Registry, USER};
    use base64::Engine as _;
    use sha2::{Digest as _, Sha256};
    let home = tempdir();
    // The source needs a password (a canary: it must not show up anywhere).
    let (src, dst) = (Registry::start(Mode::Htpasswd), Registry::start(Mode::Plain));
    let root = env!("CARGO_MANIFEST_DIR");
    let creds = format!("--creds={USER}:{PASSWORD}");
    kopeo(
        home.path(),
        &[
            "copy",
            "-q",
            "--all",
            "--dest-tls-verify=false",
            &format!("--dest-{}", &creds[2..]),
            &format!("oci:{root}/examples/hello:1.0"),
            &src.image("hello:1.0"),
        ],
    )
    .ok();
    let raw = |image: String| {
        let out = kopeo(home.path(), &["inspect", "--raw", "--tls-verify=false", &creds, &image])
            .ok()
            .stdout;
        format!("sha256:{}", hex::encode(Sha256::digest(out.as_bytes())))
    };
    let want = raw(src.image("hello:1.0"));
    let server = ApiServer::start(Options::default());
    let kc = server.write_kubeconfig(&home.path().join("kubeconfig"));
    let kubectl = |args: &[&str]| {
        let out = std::process::Command::new(crate::support::tool("KUBECTL", "kubectl"))
            .arg("--kubeconfig")
            .arg(&kc)
            .args(args)
            .output()
            .expect("running kubectl");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "kubectl {args:?}: {text}");
        text
    };
    kubectl(&["apply", "-f", &format!("{root}/crds/kopeo.dev.yaml")]);
    // The README's example, pointed at the test registries, with their TLS settings.
    let example = std::fs::read_to_string(format!("{root}/examples/imagecopy.yaml"))
        .unwrap()
        .replace("registry.example", &src.host)
        .replace("mirror.example", &dst.host);
    let credentials = format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: source-login, namespace: default}}\ntype: kubernetes.io/basic-auth\nstringData: {{username: {USER}, password: {PASSWORD}}}\n\
         ---\napiVersion: kopeo.dev/v1alpha1\nkind: RegistryCredential\nmetadata: {{name: source, namespace: default}}\nspec: {{registry: \"{}\", secretRef: {{name: source-login}}, tls: {{insecure: true}}}}\n\
         ---\napiVersion: kopeo.dev/v1alpha1\nkind: RegistryCredential\nmetadata: {{name: mirror, namespace: default}}\nspec: {{registry: \"{}\", tls: {{insecure: true}}}}\n",
        src.host, dst.host
    );
    let manifests = home.path().join("manifests.yaml");
    std::fs::write(&manifests, format!("{example}{credentials}")).unwrap();
    let applied = kubectl(&["apply", "-f", manifests.to_str().unwrap()]);
    assert!(
        applied.contains("imagecopy.kopeo.dev/hello-mirror created"),
        "{applied}"
    );
    // Debug logging everywhere: still no secret in the log.
    let operator = OperatorProcess::start_with(home.path(), &kc, "e2e", &[("KOPEO_LOG", "debug")]);
    kubectl(&[
        "wait",
        "--for=condition=Ready",
        "imagecopy/hello-mirror",
        "--timeout=60s",
    ]);
    let listed = kubectl(&["get", "imagecopies"]);
    assert!(listed.contains("hello-mirror") && listed.contains("True"), "{listed}");
    assert_eq!(
        raw(dst.image("hello:1.0")),
        want,
        "the mirror holds the same image (index and all)"
    );
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    let shown = [
        kubectl(&["get", "imagecopies,registrycredentials", "-o", "yaml"]),
        kubectl(&["get", "events.events.k8s.io", "-o", "yaml"]),
        std::fs::read_to_string(&operator.log).unwrap(),
    ];
    assert!(
        shown[2].contains("leading") && shown[2].contains("DEBUG"),
        "the operator's debug log: {}",
        shown[2]
    );
    for text in &shown {
        for canary in [PASSWORD, basic.as_str()] {
            assert!(!text.contains(canary), "a secret leaked: {text}");
        }
        assert!(
            !text.to_lowercase().contains("authorization: "),
            "an auth header was logged: {text}"
        );
    }
}
