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

#[test]
fn kopeo_run_reconciles_manifests_with_namespace_credentials() {
    use crate::support::image::{Spec, build};
    use crate::support::registry::{Mode, PASSWORD, Registry, USER};
    let home = tempdir();
    let (src, dst) = (Registry::start(Mode::Htpasswd), Registry::start(Mode::Plain));
    let img = build(&home.path().join("l"), "x", &Spec::default());
    kopeo(
        home.path(),
        &[
            "copy",
            "-q",
            "--dest-tls-verify=false",
            &format!("--dest-creds={USER}:{PASSWORD}"),
            &img.reference(),
            &src.image("team/app:1"),
        ],
    )
    .ok();
    let manifests = |secret_ns: &str| {
        format!(
            r#"
apiVersion: v1
kind: Secret
metadata: {{name: src-login, namespace: {secret_ns}}}
type: kubernetes.io/basic-auth
stringData: {{username: {USER}, password: {PASSWORD}}}
---
apiVersion: kopeo.dev/v1alpha1
kind: RegistryCredential
metadata: {{name: src, namespace: default}}
spec:
  registry: {src}
  secretRef: {{name: src-login}}
  tls: {{insecure: true}}
---
apiVersion: kopeo.dev/v1alpha1
kind: RegistryCredential
metadata: {{name: dst, namespace: default}}
spec:
  registry: {dst}
  secretRef: {{name: dst-anon}}
  tls: {{insecure: true}}
---
apiVersion: v1
kind: Secret
metadata: {{name: dst-anon, namespace: default}}
stringData: {{username: nobody, password: unused}}
---
apiVersion: kopeo.dev/v1alpha1
kind: ImageCopy
metadata: {{name: mirror, namespace: default}}
spec:
  source: docker://{src}/team/app:1
  destination: docker://{dst}/mirror/app:1
---
apiVersion: kopeo.dev/v1alpha1
kind: ImageSync
metadata: {{name: plan, namespace: default}}
spec:
  registry: {src}
  images: {{team/app: []}}
  destination: {dst}/synced
  dryRun: true
"#,
            src = src.host,
            dst = dst.host
        )
    };
    let file = home.path().join("resources.yaml");
    std::fs::write(&file, manifests("default")).unwrap();
    let out = kopeo(home.path(), &["run", "-f", file.to_str().unwrap()]).ok();
    let docs: Vec<Value> = out
        .stdout
        .split("---\n")
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_yaml_ng::from_str(d).unwrap())
        .collect();
    let status = |kind: &str, name: &str| {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap()["status"]
            .clone()
    };
    let copy = status("ImageCopy", "mirror");
    assert_eq!(copy["destinationDigest"], img.digest, "{}", out.stdout);
    assert_eq!(
        status("RegistryCredential", "src")["conditions"][0]["reason"],
        "SecretValid"
    );
    let plan = status("ImageSync", "plan");
    assert_eq!(plan["plan"].as_array().unwrap().len(), 1, "{plan}");
    assert!(
        !out.stdout.contains(PASSWORD) && !out.stderr.contains(PASSWORD),
        "no secret in statuses or logs"
    );
    let mirrored = kopeo(
        home.path(),
        &[
            "inspect",
            "--tls-verify=false",
            "--format",
            "{{.Digest}}",
            &dst.image("mirror/app:1"),
        ],
    )
    .ok();
    assert_eq!(mirrored.stdout.trim(), img.digest);
    // A Secret in another namespace is not usable: the credential and the copy fail.
    std::fs::write(&file, manifests("other")).unwrap();
    let out = kopeo(home.path(), &["run", "-f", file.to_str().unwrap()]);
    assert_eq!(out.code, 1);
    let docs: Vec<Value> = out
        .stdout
        .split("---\n")
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_yaml_ng::from_str(d).unwrap())
        .collect();
    let cred = docs
        .iter()
        .find(|d| d["kind"] == "RegistryCredential" && d["metadata"]["name"] == "src")
        .unwrap();
    assert_eq!(cred["status"]["conditions"][0]["reason"], "SecretNotFound");
    let copy = docs.iter().find(|d| d["kind"] == "ImageCopy").unwrap();
    let ready = copy["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(ready["status"], "False");
    assert!(!out.stdout.contains(PASSWORD));
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
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("reason: Copied")
            || String::from_utf8_lossy(&out.stdout).contains("status: 'True'")
    );
}
