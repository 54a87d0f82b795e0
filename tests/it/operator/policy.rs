//! The chart's cluster-wide trust policy: `helm template` with
//! `policy.json` renders a ConfigMap mounted into the operator and
//! `--policy` pointing at it; an operator process started with those very
//! arguments (the mount mapped to a temp dir) judges every ImageCopy and
//! ImageSync without `spec.verify` by it — a rejected source stalls with
//! the policy's words and nothing is written.

use crate::support::cluster::*;
use crate::support::image::{Spec, build};
use crate::support::registry::{Mode, Registry};
use crate::support::tempdir;
use kopeo_test_apiserver::{ApiServer, Options};
use serde_json::{Value, json};

/// The rendered chart's policy ConfigMap data and operator arguments.
fn rendered(values: &std::path::Path) -> (String, Vec<String>, Value) {
    let docs = helm_template(&["-f", values.to_str().unwrap()]);
    let cm = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == "kopeo-policy")
        .expect("the policy ConfigMap");
    let pod = &docs.iter().find(|d| d["kind"] == "Deployment").expect("Deployment")["spec"]["template"]["spec"];
    let operator = container(pod, "operator");
    let args = operator["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    (
        cm["data"]["policy.json"].as_str().unwrap().to_string(),
        args,
        pod.clone(),
    )
}

#[test]
fn the_charts_cluster_wide_policy_judges_every_resource_without_verify() {
    let home = tempdir();
    let reg = Registry::start(Mode::Plain);
    let host = reg.host.clone();
    let built = build(&home.path().join("layout"), "app", &Spec::default());
    for repo in ["trusted/app:1", "blocked/app:1"] {
        crate::support::kopeo(
            home.path(),
            &[
                "copy",
                "-q",
                "--dest-tls-verify=false",
                &built.reference(),
                &reg.image(repo),
            ],
        )
        .ok();
    }
    let policy = json!({"default": [{"type": "insecureAcceptAnything"}],
        "transports": {"docker": {format!("{host}/blocked"): [{"type": "reject"}]}}});
    let values = home.path().join("values.yaml");
    std::fs::write(&values, format!("policy:\n  json: '{policy}'\n")).unwrap();
    let (data, args, pod) = rendered(&values);
    assert_eq!(serde_json::from_str::<Value>(&data).unwrap(), policy);
    let flag = args
        .iter()
        .find(|a| a.starts_with("--policy="))
        .expect("--policy in the operator's arguments");
    let mount = pod["containers"][0]["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "policy")
        .unwrap();
    assert_eq!(mount["mountPath"], "/etc/kopeo/policy");
    assert_eq!(mount["readOnly"], true);
    // The pod on this machine: the ConfigMap's file where the flag says.
    let dir = home.path().join("etc-kopeo-policy");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("policy.json"), &data).unwrap();
    let flag = flag.replace("/etc/kopeo/policy", dir.to_str().unwrap());

    let server = ApiServer::start(Options::default());
    let kubeconfig = server.write_kubeconfig(&home.path().join("kubeconfig"));
    let _op = OperatorProcess::launch(
        home.path(),
        &kubeconfig,
        "policy",
        &["--lease-namespace", "default", &flag],
        &[],
    );
    runtime().block_on(async {
        let client = cluster(&server).await;
        insecure_credentials(&server, &[&host]).await;
        let copies = kopeo_api(&client, "ImageCopy", "imagecopies");
        for (name, from) in [("trusted", "trusted/app:1"), ("blocked", "blocked/app:1")] {
            post(
                &server,
                "/apis/kopeo.dev/v1alpha1/namespaces/default/imagecopies",
                &json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "ImageCopy", "metadata": {"name": name},
                    "spec": {"source": reg.image(from), "destination": reg.image(&format!("mirror/{name}:1"))}}),
            )
            .await;
        }
        post(
            &server,
            "/apis/kopeo.dev/v1alpha1/namespaces/default/imagesyncs",
            &json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "ImageSync", "metadata": {"name": "sync-blocked"},
                "spec": {"registry": host, "images": {"blocked/app": ["1"]}, "destination": format!("{host}/synced")}}),
        )
        .await;
        assert!(
            wait_ready(&copies, "trusted", 600).await,
            "{:?}",
            copies.get("trusted").await.map(|c| c.data)
        );
        let stalled = |o: &Value| {
            o["status"]["conditions"].as_array().and_then(|cs| {
                cs.iter()
                    .find(|c| c["type"] == "Stalled" && c["status"] == "True")
                    .cloned()
            })
        };
        let mut seen = None;
        for _ in 0..400 {
            seen = stalled(&copies.get("blocked").await.unwrap().data);
            if seen.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let c = seen.expect("the blocked copy stalls");
        assert_eq!(c["reason"], "SignatureRejected", "{c}");
        assert!(c["message"].as_str().unwrap().contains("is rejected by policy"), "{c}");
        let syncs = kopeo_api(&client, "ImageSync", "imagesyncs");
        let mut failed = Value::Null;
        for _ in 0..400 {
            let o = syncs.get("sync-blocked").await.unwrap().data;
            if o["status"]["failed"].as_u64().unwrap_or(0) > 0 || stalled(&o).is_some() {
                failed = o["status"].clone();
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(failed.to_string().contains("is rejected by policy"), "{failed}");
    });
    assert!(
        reg.lacks(home.path(), "mirror/blocked:1"),
        "a rejected source wrote nothing"
    );
    assert!(reg.lacks(home.path(), "synced/blocked/app:1"), "nor did the sync");
    assert!(!reg.lacks(home.path(), "mirror/trusted:1"));
}
