//! The test API server as real kubectl sees it: imperative commands (which
//! send built-in kinds as protobuf), events in both API versions, printed
//! ages, validation messages.

use crate::support::tempdir;
use kopeo_test_apiserver::{ApiServer, Options};
use serde_json::Value;
use std::path::Path;

/// Run kubectl against a kubeconfig; (success, stdout + stderr).
pub fn kubectl(kc: &Path, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(crate::support::tool("KUBECTL", "kubectl"))
        .arg("--kubeconfig")
        .arg(kc)
        .args(args)
        .output()
        .expect("running kubectl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn ok(kc: &Path, args: &[&str]) -> String {
    let (ok, text) = kubectl(kc, args);
    assert!(ok, "kubectl {args:?}: {text}");
    text
}

fn json(kc: &Path, args: &[&str]) -> Value {
    let text = ok(kc, &[args, &["-o", "json"]].concat());
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn imperative_commands_write_what_they_say() {
    let home = tempdir();
    let server = ApiServer::start(Options::default());
    let kc = server.write_kubeconfig(&home.path().join("kubeconfig"));
    assert!(ok(&kc, &["create", "namespace", "mirror"]).contains("namespace/mirror created"));
    ok(
        &kc,
        &[
            "create",
            "secret",
            "generic",
            "login",
            "-n",
            "mirror",
            "--from-literal=username=u",
            "--from-literal=password=p w",
        ],
    );
    ok(
        &kc,
        &[
            "create",
            "secret",
            "docker-registry",
            "pull",
            "-n",
            "mirror",
            "--docker-server=127.0.0.1:5000",
            "--docker-username=u",
            "--docker-password=p",
        ],
    );
    ok(
        &kc,
        &[
            "create",
            "configmap",
            "keys",
            "-n",
            "mirror",
            "--from-literal=key.pub=KEY",
        ],
    );
    ok(&kc, &["create", "serviceaccount", "worker", "-n", "mirror"]);
    ok(&kc, &["label", "namespace", "mirror", "team=images"]);
    ok(
        &kc,
        &[
            "annotate",
            "configmap",
            "keys",
            "-n",
            "mirror",
            "kopeo.dev/note=rotated",
        ],
    );

    let ns = json(&kc, &["get", "namespace", "mirror"]);
    assert_eq!(ns["metadata"]["labels"]["team"], "images", "{ns}");
    assert_eq!(ns["status"]["phase"], "Active", "{ns}");
    let login = json(&kc, &["get", "secret", "login", "-n", "mirror"]);
    assert_eq!(login["type"], "Opaque", "defaulted as the API server does: {login}");
    assert_eq!(login["data"]["password"], "cCB3", "{login}");
    for absent in ["generateName", "selfLink", "generation"] {
        assert!(login["metadata"].get(absent).is_none(), "{absent}: {login}");
    }
    let pull = json(&kc, &["get", "secret", "pull", "-n", "mirror"]);
    assert_eq!(pull["type"], "kubernetes.io/dockerconfigjson", "{pull}");
    let keys = json(&kc, &["get", "configmap", "keys", "-n", "mirror"]);
    assert_eq!(keys["data"]["key.pub"], "KEY");
    assert_eq!(keys["metadata"]["annotations"]["kopeo.dev/note"], "rotated");
    json(&kc, &["get", "serviceaccount", "worker", "-n", "mirror"]);

    assert!(ok(&kc, &["delete", "configmap", "keys", "-n", "mirror"]).contains("deleted"));
    let (found, text) = kubectl(&kc, &["get", "configmap", "keys", "-n", "mirror"]);
    assert!(!found && text.contains("NotFound"), "{text}");
    ok(&kc, &["delete", "namespace", "mirror"]);
    let (found, text) = kubectl(&kc, &["get", "secret", "login", "-n", "mirror"]);
    assert!(!found, "the namespace's contents went with it: {text}");
}

#[test]
fn events_of_either_version_show_in_get_and_describe() {
    let home = tempdir();
    let server = ApiServer::start(Options::default());
    let kc = server.write_kubeconfig(&home.path().join("kubeconfig"));
    ok(
        &kc,
        &[
            "apply",
            "-f",
            concat!(env!("CARGO_MANIFEST_DIR"), "/crds/kopeo.dev.yaml"),
        ],
    );
    let file = home.path().join("copy.yaml");
    std::fs::write(
        &file,
        "apiVersion: kopeo.dev/v1alpha1\nkind: ImageCopy\nmetadata: {name: c1, namespace: default}\n\
         spec: {source: 'docker://127.0.0.1:1/a:1', destination: 'docker://127.0.0.1:1/b:1'}\n",
    )
    .unwrap();
    ok(&kc, &["apply", "-f", file.to_str().unwrap()]);
    let uid = json(&kc, &["get", "imagecopy", "c1"])["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    // Written as kube-rs's recorder writes them: events.k8s.io/v1.
    let event = serde_json::json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "c1.1", "namespace": "default"},
        "eventTime": "2026-12-03T18:00:00.000000Z", "action": "Reconcile",
        "reason": "Copied", "type": "Normal", "note": "copied sha256:abc",
        "reportingController": "kopeo", "reportingInstance": "kopeo-0",
        "regarding": {"apiVersion": "kopeo.dev/v1alpha1", "kind": "ImageCopy", "name": "c1", "namespace": "default", "uid": uid}
    });
    let file = home.path().join("event.json");
    std::fs::write(&file, event.to_string()).unwrap();
    ok(&kc, &["create", "-f", file.to_str().unwrap()]);

    let listed = ok(&kc, &["get", "events"]);
    let row = listed.lines().find(|l| l.contains("Copied")).unwrap_or_default();
    assert!(
        row.contains("Normal") && row.contains("imagecopy/c1") && row.contains("copied sha256:abc"),
        "kubectl get events (core/v1): {listed}"
    );
    let core = json(&kc, &["get", "events.v1.", "c1.1"]);
    assert_eq!(core["involvedObject"]["uid"], uid.as_str(), "{core}");
    assert_eq!(core["message"], "copied sha256:abc", "{core}");
    assert_eq!(core["reportingComponent"], "kopeo", "{core}");
    let described = ok(&kc, &["describe", "imagecopy", "c1"]);
    let events = described.split("Events:").nth(1).unwrap_or_default();
    assert!(
        events.contains("Copied") && events.contains("copied sha256:abc"),
        "kubectl describe: {described}"
    );
    // A core/v1 write reads back through events.k8s.io/v1.
    ok(
        &kc,
        &[
            "patch",
            "event",
            "c1.1",
            "--type=merge",
            "-p",
            r#"{"message": "copied again"}"#,
        ],
    );
    let v1 = json(&kc, &["get", "events.v1.events.k8s.io", "c1.1"]);
    assert_eq!(v1["note"], "copied again", "{v1}");
    assert!(v1.get("message").is_none(), "{v1}");

    // AGE is printed as an age, not a timestamp.
    let table = ok(&kc, &["get", "imagecopies"]);
    let line = table.lines().find(|l| l.starts_with("c1")).unwrap_or_default();
    let age = line.split_whitespace().last().unwrap_or_default();
    assert!(
        age.ends_with('s') && age.trim_end_matches('s').parse::<u32>().is_ok(),
        "{table}"
    );
}

#[test]
fn a_refused_resource_names_each_field_once() {
    let home = tempdir();
    let server = ApiServer::start(Options::default());
    let kc = server.write_kubeconfig(&home.path().join("kubeconfig"));
    ok(
        &kc,
        &[
            "apply",
            "-f",
            concat!(env!("CARGO_MANIFEST_DIR"), "/crds/kopeo.dev.yaml"),
        ],
    );
    let file = home.path().join("bad.yaml");
    std::fs::write(
        &file,
        "apiVersion: kopeo.dev/v1alpha1\nkind: RegistryCredential\nmetadata: {name: bad, namespace: default}\nspec: {}\n",
    )
    .unwrap();
    let (applied, text) = kubectl(&kc, &["apply", "-f", file.to_str().unwrap()]);
    assert!(!applied, "{text}");
    assert!(
        text.contains("is invalid: spec.registry: Required value") && !text.contains("spec.registry: spec.registry"),
        "{text}"
    );
}
