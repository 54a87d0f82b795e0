//! `kopeo run -f`: resources reconciled once from manifests, without a
//! cluster, with credentials from Secrets in the same files.

use crate::support::cluster::*;
use crate::support::{kopeo, tempdir};
use serde_json::{Value, json};

#[test]
fn kopeo_run_reconciles_manifests_with_namespace_credentials() {
    use crate::support::registry::{PASSWORD, USER};
    let LoginSource { home, src, dst, img } = login_source();
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
    let mirrored = dst.digest(home.path(), "mirror/app:1");
    assert_eq!(mirrored, img.digest);
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
fn kopeo_run_takes_a_registrys_ca_and_client_certificate_from_secrets() {
    use crate::support::image::{Spec, build};
    use crate::support::registry::{Mode, Registry};
    let home = tempdir();
    let reg = Registry::start(Mode::MutualTls);
    let img = build(&home.path().join("l"), "x", &Spec::default());
    let pem = |f: &str| std::fs::read_to_string(reg.client_cert_dir().join(f)).unwrap();
    let run = |tls: Value, with_ca_secret: bool| {
        let mut docs = vec![
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "reg-client", "namespace": "default"},
                   "type": "kubernetes.io/tls", "stringData": {"tls.crt": pem("client.cert"), "tls.key": pem("client.key")}}),
            json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "RegistryCredential", "metadata": {"name": "reg", "namespace": "default"},
                   "spec": {"registry": reg.host, "tls": tls}}),
            json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "ImageCopy", "metadata": {"name": "push", "namespace": "default"},
                   "spec": {"source": img.reference(), "destination": format!("docker://{}/tls/app:1", reg.host)}}),
        ];
        if with_ca_secret {
            docs.push(
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "reg-ca", "namespace": "default"},
                             "stringData": {"ca.crt": pem("ca.crt")}}),
            );
        }
        let text: String = docs.iter().map(|d| format!("---\n{d}\n")).collect();
        let file = home.path().join("tls.yaml");
        std::fs::write(&file, text).unwrap();
        let out = kopeo(home.path(), &["run", "-f", file.to_str().unwrap()]);
        let docs: Vec<Value> = out
            .stdout
            .split("---\n")
            .filter(|d| !d.trim().is_empty())
            .map(|d| serde_yaml_ng::from_str(d).unwrap())
            .collect();
        let reason = |kind: &str| {
            let d = docs.iter().find(|d| d["kind"] == kind).unwrap();
            let ready = d["status"]["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == "Ready")
                .unwrap();
            (
                ready["reason"].as_str().unwrap().to_string(),
                ready["message"].as_str().unwrap_or("").to_string(),
            )
        };
        (out.code, reason("RegistryCredential"), reason("ImageCopy"))
    };
    let both = json!({"caSecretRef": {"name": "reg-ca"}, "clientCertSecretRef": {"name": "reg-client"}});
    let (code, cred, copy) = run(both.clone(), true);
    assert_eq!(
        (code, cred.0.as_str(), copy.0.as_str()),
        (0, "SecretValid", "Copied"),
        "{cred:?} {copy:?}"
    );
    let pushed = kopeo(
        home.path(),
        &[
            "inspect",
            "--cert-dir",
            reg.client_cert_dir().to_str().unwrap(),
            "--format",
            "{{.Digest}}",
            &reg.image("tls/app:1"),
        ],
    )
    .ok();
    assert_eq!(pushed.stdout.trim(), img.digest);
    // Without the client certificate the registry refuses the connection.
    let (code, cred, copy) = run(json!({"caSecretRef": {"name": "reg-ca"}}), true);
    assert_eq!((code, cred.0.as_str()), (1, "SecretValid"));
    assert_eq!(copy.0, "CopyFailed", "{copy:?}");
    assert!(
        copy.1.contains(&format!("pinging container registry {}", reg.host)),
        "{copy:?}"
    );
    // Without the CA's Secret the credential says so, and the copy cannot verify the registry.
    let (code, cred, copy) = run(both, false);
    assert_eq!((code, cred.0.as_str()), (1, "SecretNotFound"), "{cred:?}");
    assert!(cred.1.contains("reg-ca"), "{cred:?}");
    assert_eq!(copy.0, "CopyFailed", "{copy:?}");
    assert!(
        copy.1.contains("x509: certificate signed by unknown authority"),
        "{copy:?}"
    );
}

#[test]
fn kopeo_run_names_each_failure_by_its_reason() {
    use crate::support::image::{Spec, build};
    use crate::support::registry::{Mode, Registry};
    let home = tempdir();
    let (src, dst) = (Registry::start(Mode::Plain), Registry::start(Mode::Plain));
    let spec = |seed| Spec {
        layers: vec![20_000, 10_000],
        seed,
        ..Spec::default()
    };
    for (tag, seed) in [("good1", 40), ("good2", 42)] {
        crate::registry_copy::seed(&src, home.path(), &format!("r/img:{tag}"), &spec(seed));
    }
    let broken = crate::registry_copy::seed(&src, home.path(), "r/img:broken", &spec(41));
    let hex = broken.layers[1].trim_start_matches("sha256:");
    std::fs::remove_file(src.dir.path().join(format!(
        "storage/docker/registry/v2/blobs/sha256/{}/{hex}/data",
        &hex[..2]
    )))
    .unwrap();
    // A local image with a corrupt layer, and a layout without the asked tag.
    let corrupt = build(&home.path().join("corrupt"), "x", &spec(43));
    let victim = corrupt.layers[0].trim_start_matches("sha256:").to_string();
    let blob = corrupt.layout.join("blobs/sha256").join(&victim);
    let mut data = std::fs::read(&blob).unwrap();
    data[3] ^= 0xff;
    std::fs::write(&blob, data).unwrap();
    let (p, s, d) = (home.path().display(), src.host.clone(), dst.host.clone());
    let file = home.path().join("failures.yaml");
    std::fs::write(
        &file,
        format!(
            r#"
apiVersion: kopeo.dev/v1alpha1
kind: RegistryCredential
metadata: {{name: src, namespace: default}}
spec: {{registry: "{s}", tls: {{insecure: true}}}}
---
apiVersion: kopeo.dev/v1alpha1
kind: RegistryCredential
metadata: {{name: dst, namespace: default}}
spec: {{registry: "{d}", tls: {{insecure: true}}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: garbled, namespace: default}}
type: kubernetes.io/dockerconfigjson
stringData: {{.dockerconfigjson: "not json"}}
---
apiVersion: kopeo.dev/v1alpha1
kind: RegistryCredential
metadata: {{name: garbled, namespace: default}}
spec: {{registry: registry.invalid, secretRef: {{name: garbled}}}}
---
apiVersion: kopeo.dev/v1alpha1
kind: ImageCopy
metadata: {{name: missing, namespace: default}}
spec: {{source: "oci:{p}/corrupt:nope", destination: "oci:{p}/out-missing:x"}}
---
apiVersion: kopeo.dev/v1alpha1
kind: ImageCopy
metadata: {{name: corrupt, namespace: default}}
spec: {{source: "oci:{p}/corrupt:x", destination: "oci:{p}/out-corrupt:x"}}
---
apiVersion: kopeo.dev/v1alpha1
kind: ImageSync
metadata: {{name: partly, namespace: default}}
spec: {{registry: "{s}", images: {{r/img: []}}, destination: "{d}/m", keepGoing: true}}
"#
        ),
    )
    .unwrap();
    let out = kopeo(home.path(), &["run", "-f", file.to_str().unwrap()]);
    assert_eq!(out.code, 1, "not every resource is Ready: {}", out.stderr);
    let docs: Vec<Value> = out
        .stdout
        .split("---\n")
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_yaml_ng::from_str(d).unwrap())
        .collect();
    let condition = |kind: &str, name: &str, ty: &str| -> (String, String, String) {
        let doc = docs
            .iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no status for {kind} {name}: {}", out.stdout));
        let c = doc["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == ty))
            .unwrap_or_else(|| panic!("{kind} {name} has no {ty}: {doc}"));
        let text = |k: &str| c[k].as_str().unwrap_or_default().to_string();
        (text("status"), text("reason"), text("message"))
    };
    let (ready, reason, message) = condition("RegistryCredential", "garbled", "Ready");
    assert_eq!((ready.as_str(), reason.as_str()), ("False", "SecretMalformed"));
    assert_eq!(message, r#"Secret "garbled": .dockerconfigjson is not JSON"#);
    let (ready, reason, message) = condition("ImageCopy", "missing", "Ready");
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "SourceNotFound"),
        "{message}"
    );
    assert!(message.contains("nope"), "{message}");
    let (stalled, ..) = condition("ImageCopy", "missing", "Stalled");
    assert_eq!(
        stalled, "True",
        "a missing source waits for a change, it is not retried at once"
    );
    let (ready, reason, message) = condition("ImageCopy", "corrupt", "Ready");
    assert_eq!((ready.as_str(), reason.as_str()), ("False", "CopyFailed"), "{message}");
    assert!(
        message.contains(&victim) && message.contains("does not match"),
        "{message}"
    );
    assert!(
        !home.path().join("out-corrupt/index.json").exists(),
        "nothing committed"
    );
    let (ready, reason, message) = condition("ImageSync", "partly", "Ready");
    assert_eq!((ready.as_str(), reason.as_str()), ("False", "SyncFailed"), "{message}");
    assert_eq!(message, "1 of 3 images failed");
    assert_eq!(
        dst.tags(home.path(), "m/img"),
        ["good1", "good2"],
        "keepGoing copied the rest"
    );
}
