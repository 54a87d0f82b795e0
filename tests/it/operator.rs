//! The operator's API: CRDs generated from the Rust types, checked in, and
//! accepted (with their validation) by an API server.

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
        let http = reqwest::Client::new();
        let post = |path: String, body: Value| {
            let http = http.clone();
            let url = format!("{}{path}", server.url());
            async move {
                let r = http.post(url).header("content-type", "application/json").body(body.to_string()).send().await.unwrap();
                let code = r.status().as_u16();
                (code, r.json::<Value>().await.unwrap_or(Value::Null))
            }
        };
        let yaml = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/crds/kopeo.dev.yaml")).unwrap();
        for doc in yaml.split("---\n").filter(|d| !d.trim().is_empty()) {
            let crd: Value = serde_yaml_ng::from_str(doc).unwrap();
            let (code, v) = post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions".into(), crd).await;
            assert_eq!(code, 201, "{v}");
        }
        let example: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/imagecopy.yaml")).unwrap()).unwrap();
        let (code, v) = post("/apis/kopeo.dev/v1alpha1/namespaces/default/imagecopies".into(), example).await;
        assert_eq!(code, 201, "{v}");
        assert_eq!(v["spec"]["retry"]["times"], 3);
        let bad = json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "ImageCopy", "metadata": {"name": "bad"},
                          "spec": {"source": "ftp://nope", "destination": "oci:/x", "format": "v2s1", "refreshInterval": "soon"}});
        let (code, v) = post("/apis/kopeo.dev/v1alpha1/namespaces/default/imagecopies".into(), bad).await;
        assert_eq!(code, 422, "{v}");
        let msg = v["message"].as_str().unwrap();
        assert!(msg.contains("spec.source") && msg.contains("spec.format") && msg.contains("spec.refreshInterval"), "{msg}");
        let cred = json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "RegistryCredential", "metadata": {"name": "c"}, "spec": {"registry": "reg.example/team"}});
        let (code, v) = post("/apis/kopeo.dev/v1alpha1/namespaces/default/registrycredentials".into(), cred).await;
        assert_eq!(code, 422, "secretRef is required: {v}");
    });
}
