//! The operator's API: CRDs generated from the Rust types, checked in, and
//! accepted (with their validation) by an API server.

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
            let (code, v) = post(&server, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", &crd).await;
            assert_eq!(code, 201, "{v}");
        }
        let example: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/imagecopy.yaml")).unwrap()).unwrap();
        let (code, v) = post(&server, "/apis/kopeo.dev/v1alpha1/namespaces/default/imagecopies", &example).await;
        assert_eq!(code, 201, "{v}");
        assert_eq!(v["spec"]["retry"]["times"], 3);
        let bad = json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "ImageCopy", "metadata": {"name": "bad"},
                          "spec": {"source": "ftp://nope", "destination": "oci:/x", "format": "v2s1", "refreshInterval": "soon"}});
        let (code, v) = post(&server, "/apis/kopeo.dev/v1alpha1/namespaces/default/imagecopies", &bad).await;
        assert_eq!(code, 422, "{v}");
        let msg = v["message"].as_str().unwrap();
        assert!(msg.contains("spec.source") && msg.contains("spec.format") && msg.contains("spec.refreshInterval"), "{msg}");
        let cred = json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "RegistryCredential", "metadata": {"name": "c"}, "spec": {"registry": "reg example/Team"}});
        let (code, v) = post(&server, "/apis/kopeo.dev/v1alpha1/namespaces/default/registrycredentials", &cred).await;
        assert_eq!(code, 422, "the registry must look like a host[/namespace]: {v}");
        // Validation rules (CEL) catch mistakes the schema alone cannot.
        let cases = [
            ("imagecopies", json!({"kind": "ImageCopy", "spec": {"source": "oci:/a:x", "destination": "oci:/a:x"}}), "spec: Invalid value: \"object\": source and destination must differ"),
            ("imagecopies", json!({"kind": "ImageCopy", "spec": {"source": "oci:/a:x", "destination": "oci:/b:x", "compression": {"format": "gzip", "level": 15}}}),
                "spec.compression: Invalid value: \"object\": compression level out of range (gzip 0-9, zstd 1-22)"),
            ("imagesyncs", json!({"kind": "ImageSync", "spec": {"registry": "r.example", "destination": "m.example/x", "images": {}}}),
                "select images with images, imagesByTagRegex, imagesBySemver or catalog"),
            ("registrycredentials", json!({"kind": "RegistryCredential", "spec": {"registry": "r.example"}}), "set secretRef, tls, or both"),
        ];
        for (i, (plural, mut body, want)) in cases.into_iter().enumerate() {
            body["apiVersion"] = json!("kopeo.dev/v1alpha1");
            body["metadata"] = json!({"name": format!("rule-{i}")});
            let (code, v) = post(&server, &format!("/apis/kopeo.dev/v1alpha1/namespaces/default/{plural}"), &body).await;
            assert_eq!(code, 422, "{v}");
            assert!(v["message"].as_str().unwrap().contains(want), "{v}");
        }
        let zstd = json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "ImageCopy", "metadata": {"name": "zstd-15"},
            "spec": {"source": "oci:/a:x", "destination": "oci:/b:x", "compression": {"format": "zstd", "level": 15}}});
        assert_eq!(post(&server, "/apis/kopeo.dev/v1alpha1/namespaces/default/imagecopies", &zstd).await.0, 201);
    });
}

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

#[test]
fn operator_copies_and_recovers_when_the_credential_secret_appears() {
    use crate::support::registry::{PASSWORD, USER};
    use kube::api::{Api, PostParams};
    let LoginSource { home, src, dst, img } = login_source();
    let server = ApiServer::start(Options::default());
    runtime().block_on(async {
        let client = cluster(&server).await;
        let operator = start_operator(&client);
        let dynamic = |kind: &str, plural: &str| kopeo_api(&client, kind, plural);
        let obj = |v: Value| serde_json::from_value::<kube::api::DynamicObject>(v).unwrap();
        let creds = dynamic("RegistryCredential", "registrycredentials");
        for (name, registry, secret) in [("src", &src.host, "src-login"), ("dst", &dst.host, "dst-anon")] {
            creds.create(&PostParams::default(), &obj(json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "RegistryCredential", "metadata": {"name": name},
                "spec": {"registry": registry, "secretRef": {"name": secret}, "tls": {"insecure": true}}}))).await.unwrap();
        }
        let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), "default");
        // Labelled as Helm labels what it installs: any Secret a credential names counts.
        let secret = |name: &str, user: &str, pass: &str| serde_json::from_value::<k8s_openapi::api::core::v1::Secret>(json!({"metadata": {"name": name,
            "labels": {"app.kubernetes.io/managed-by": "Helm"}}, "stringData": {"username": user, "password": pass}})).unwrap();
        secrets.create(&PostParams::default(), &secret("dst-anon", "nobody", "unused")).await.unwrap();
        let copies = dynamic("ImageCopy", "imagecopies");
        copies.create(&PostParams::default(), &obj(json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "ImageCopy", "metadata": {"name": "mirror"},
            "spec": {"source": format!("docker://{}/team/app:1", src.host), "destination": format!("docker://{}/mirror/app:1", dst.host)}}))).await.unwrap();
        let ready_reason = || {
            let copies = copies.clone();
            async move {
                let o = copies.get("mirror").await.ok()?;
                let c = o.data["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == "Ready")?.clone();
                Some((c["status"].as_str()?.to_string(), c["reason"].as_str()?.to_string(), o.data["status"]["destinationDigest"].as_str().map(str::to_string)))
            }
        };
        let mut seen = None;
        for _ in 0..200 {
            seen = ready_reason().await;
            if seen.as_ref().is_some_and(|s| s.1 == "AuthenticationFailed") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(seen.as_ref().map(|s| s.1.as_str()), Some("AuthenticationFailed"), "without the Secret the copy cannot authenticate: {seen:?}");
        // The Secret appears: the operator notices and copies, without a restart.
        secrets.create(&PostParams::default(), &secret("src-login", USER, PASSWORD)).await.unwrap();
        for _ in 0..300 {
            seen = ready_reason().await;
            if seen.as_ref().is_some_and(|s| s.0 == "True") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(seen, Some(("True".into(), "Copied".into(), Some(img.digest.clone()))));
        let pull = secrets.get("kopeo-registry-auth").await.unwrap();
        assert_eq!(pull.type_.as_deref(), Some("kubernetes.io/dockerconfigjson"));
        let mut reason = Value::Null;
        for _ in 0..100 {
            reason = creds.get("src").await.unwrap().data["status"]["conditions"][0]["reason"].clone();
            if reason == "SecretValid" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(reason, "SecretValid", "the credential saw its Secret appear");
        // Rendered after the Secret appeared (poll: the two controllers race).
        let mut pulled = Default::default();
        for _ in 0..100 {
            pulled = secrets.get("kopeo-registry-auth").await.unwrap().data.unwrap_or_default();
            if pulled.get(".dockerconfigjson").is_some_and(|v| String::from_utf8_lossy(&v.0).contains(&src.host)) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let auth = String::from_utf8(pulled[".dockerconfigjson"].0.clone()).unwrap();
        assert!(auth.contains(&src.host), "the pull Secret holds the source's login: {auth:?}");
        let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), "default");
        // The Event follows the status write: wait for it.
        let mut evs = events.list(&Default::default()).await.unwrap();
        for _ in 0..100 {
            if evs.items.iter().any(|e| e.reason.as_deref() == Some("Copied")) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            evs = events.list(&Default::default()).await.unwrap();
        }
        assert!(evs.items.iter().any(|e| e.reason.as_deref() == Some("Copied")));
        for e in &evs.items {
            assert!(!e.note.as_deref().unwrap_or("").contains(PASSWORD), "no secret in Events");
        }
        let status = copies.get("mirror").await.unwrap().data["status"].to_string();
        assert!(!status.contains(PASSWORD), "no secret in status");
        // Another namespace cannot borrow this namespace's credential: with
        // only TLS settings of its own, its copy from the same source fails.
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
        namespaces.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "other"}})).unwrap()).await.unwrap();
        let in_other = |kind: &str, plural: &str| {
            let ar = kube::api::ApiResource { group: "kopeo.dev".into(), version: "v1alpha1".into(), api_version: "kopeo.dev/v1alpha1".into(), kind: kind.into(), plural: plural.into() };
            kube::Api::<kube::api::DynamicObject>::namespaced_with(client.clone(), "other", &ar)
        };
        for (name, registry) in [("src", &src.host), ("dst", &dst.host)] {
            in_other("RegistryCredential", "registrycredentials").create(&PostParams::default(), &obj(json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "RegistryCredential",
                "metadata": {"name": name}, "spec": {"registry": registry, "tls": {"insecure": true}}}))).await.unwrap();
        }
        let other_copies = in_other("ImageCopy", "imagecopies");
        other_copies.create(&PostParams::default(), &obj(json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "ImageCopy", "metadata": {"name": "borrow"},
            "spec": {"source": format!("docker://{}/team/app:1", src.host), "destination": format!("docker://{}/borrowed/app:1", dst.host)}}))).await.unwrap();
        let mut reason = Value::Null;
        for _ in 0..200 {
            let st = other_copies.get("borrow").await.unwrap().data["status"].clone();
            reason = st["conditions"].as_array().and_then(|cs| cs.iter().find(|c| c["type"] == "Ready")).map(|c| c["reason"].clone()).unwrap_or(Value::Null);
            if !reason.is_null() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(reason, "AuthenticationFailed", "a resource in namespace other cannot use default's credential");
        assert!(kopeo_tags(&dst, "borrowed/app").await.is_empty());
        // An ImageSync with the same credentials mirrors the repository.
        let syncs = dynamic("ImageSync", "imagesyncs");
        syncs.create(&PostParams::default(), &obj(json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "ImageSync", "metadata": {"name": "team"},
            "spec": {"registry": src.host, "images": {"team/app": []}, "destination": format!("{}/synced", dst.host), "interval": "1h"}}))).await.unwrap();
        let mut st = Value::Null;
        for _ in 0..300 {
            st = syncs.get("team").await.unwrap().data["status"].clone();
            if st["copied"] == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(st["copied"], 1, "{st}");
        assert!(st["conditions"].as_array().unwrap().iter().any(|c| c["type"] == "Ready" && c["status"] == "True"), "{st}");
        assert!(st["nextSyncTime"].is_string());
        // A dry run with include/exclude rules only plans, into status.
        syncs.create(&PostParams::default(), &obj(json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "ImageSync", "metadata": {"name": "plan-only"},
            "spec": {"registry": src.host, "imagesByTagRegex": {"team/app": "^[0-9]+$"}, "excludeTags": ["^2$"], "destination": format!("{}/planned", dst.host), "dryRun": true}}))).await.unwrap();
        for _ in 0..300 {
            st = syncs.get("plan-only").await.unwrap().data["status"].clone();
            if st["plan"].is_array() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(st["plan"].as_array().map(Vec::len), Some(1), "{st}");
        assert!(st["plan"][0].as_str().unwrap().contains("/planned/app:1"), "{st}");
        let planned = kopeo_tags(&dst, "planned/app").await;
        assert!(planned.is_empty(), "a dry run copies nothing");
        // Deleting a credential takes its login out of the pull Secret; the
        // pull Secret goes with the last credential.
        creds.delete("src", &Default::default()).await.unwrap();
        let mut auth = String::new();
        for _ in 0..100 {
            let data = secrets.get("kopeo-registry-auth").await.unwrap().data.unwrap_or_default();
            auth = data.get(".dockerconfigjson").map(|v| String::from_utf8_lossy(&v.0).into_owned()).unwrap_or_default();
            if !auth.contains(&src.host) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(!auth.contains(&src.host) && auth.contains(&dst.host), "{auth}");
        creds.delete("dst", &Default::default()).await.unwrap();
        assert!(secrets.get_opt("kopeo-registry-auth").await.unwrap().is_none(), "collected with its last owner");
        operator.abort();
    });
    let mirrored = dst.digest(home.path(), "mirror/app:1");
    assert_eq!(mirrored, img.digest);
}

/// A `kopeo operator` process against the test API server.
#[test]
fn operator_processes_elect_one_leader_and_fail_over_on_sigterm_and_on_a_crash() {
    use crate::support::image::{Spec, build};
    use crate::support::registry::{Mode, Registry};
    use kube::api::{Api, PostParams};
    let home = tempdir();
    let reg = Registry::start(Mode::Plain);
    let img = build(&home.path().join("l"), "x", &Spec::default());
    kopeo(
        home.path(),
        &[
            "copy",
            "-q",
            "--dest-tls-verify=false",
            &img.reference(),
            &reg.image("le/src:1"),
        ],
    )
    .ok();
    let server = ApiServer::start(Options::default());
    let kubeconfig = server.write_kubeconfig(&home.path().join("kubeconfig"));
    runtime().block_on(async {
        let client = cluster(&server).await;
        let mut replicas = vec![
            OperatorProcess::start(home.path(), &kubeconfig, "replica-a"),
            OperatorProcess::start(home.path(), &kubeconfig, "replica-b"),
        ];
        // The plain-HTTP registry needs no Secret, only its TLS setting.
        let insecure = json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "RegistryCredential", "metadata": {"name": "plain", "namespace": "default"},
            "spec": {"registry": reg.host, "tls": {"insecure": true}}});
        post(&server, "/apis/kopeo.dev/v1alpha1/namespaces/default/registrycredentials", &insecure).await;
        let copies = kopeo_api(&client, "ImageCopy", "imagecopies");
        let image_copy = |name: &str| -> kube::api::DynamicObject {
            serde_json::from_value(json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "ImageCopy", "metadata": {"name": name},
                "spec": {"source": format!("docker://{}/le/src:1", reg.host), "destination": format!("docker://{}/le/{name}:x", reg.host)}})).unwrap()
        };
        copies.create(&PostParams::default(), &image_copy("first")).await.unwrap();
        if !wait_ready(&copies, "first", 600).await {
            let lease = reqwest::get(format!("{}/apis/coordination.k8s.io/v1/namespaces/default/leases", server.url())).await.unwrap().text().await.unwrap();
            let logs: Vec<String> = replicas.iter().map(|r| std::fs::read_to_string(&r.log).unwrap_or_default()).collect();
            panic!("the leader did not copy the image: lease {lease}\nimagecopy {:?}\nlogs {logs:#?}", copies.get("first").await.unwrap().data);
        }
        let leases: Api<k8s_openapi::api::coordination::v1::Lease> = Api::namespaced(client.clone(), "default");
        let holder = leases.get("kopeo-leader").await.unwrap().spec.unwrap().holder_identity.unwrap();
        let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), "default");
        for e in events.list(&Default::default()).await.unwrap().items {
            assert_eq!(e.reporting_instance.as_deref(), Some(holder.as_str()), "only the leader acts");
        }
        // Health and metrics endpoints of both processes.
        for r in &replicas {
            assert_eq!(r.get("/healthz").await.0, 200, "{}", r.name);
            assert_eq!(r.get("/readyz").await.0, 200, "{}", r.name);
            let (_, m) = r.get("/metrics").await;
            let expect = if r.name == holder { "kopeo_leader 1" } else { "kopeo_leader 0" };
            // Whole lines: the HELP text also reads "kopeo_leader 1 when …".
            assert!(m.lines().any(|l| l == expect), "{}: {m}", r.name);
            if r.name == holder {
                assert!(m.contains("kopeo_runs_total{kind=\"ImageCopy\",result=\"copied\"} 1"), "{m}");
            }
        }

        // SIGTERM to the leader: it stops cleanly and releases the Lease; the
        // other replica takes over and handles new resources.
        let leader = replicas.iter().position(|r| r.name == holder).unwrap();
        let leader = replicas.remove(leader);
        let log = leader.log.clone();
        let stopped = std::time::Instant::now();
        assert_eq!(leader.terminate(), Some(0), "the operator exits 0 on SIGTERM");
        let log = std::fs::read_to_string(log).unwrap();
        assert!(log.contains("released the lease"), "{log}");
        copies.create(&PostParams::default(), &image_copy("second")).await.unwrap();
        assert!(wait_ready(&copies, "second", 1200).await, "the standby took over: {:?}", copies.get("second").await.unwrap().data);
        let new_holder = leases.get("kopeo-leader").await.unwrap().spec.unwrap().holder_identity.unwrap();
        assert_eq!(new_holder, replicas[0].name);
        eprintln!("failover: the standby copied {:?} after the leader's SIGTERM", stopped.elapsed());
        assert_eq!(replicas[0].leading().await, Some(true));

        // A leader that dies without a word (SIGKILL) keeps the Lease until it
        // expires (15 s); then a standby takes over.
        replicas.push(OperatorProcess::start(home.path(), &kubeconfig, "replica-c"));
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let mut dead = replicas.remove(0);
        dead.child.kill().unwrap();
        dead.child.wait().unwrap();
        let killed = std::time::Instant::now();
        copies.create(&PostParams::default(), &image_copy("third")).await.unwrap();
        assert!(wait_ready(&copies, "third", 1200).await, "the standby took over from a dead leader");
        let holder = leases.get("kopeo-leader").await.unwrap().spec.unwrap().holder_identity.unwrap();
        assert_eq!(holder, "replica-c");
        eprintln!("failover: the standby copied {:?} after the leader was killed", killed.elapsed());
    });
}

#[test]
fn operator_recovers_from_wrong_credentials_and_follows_a_moved_tag() {
    use crate::registry_copy::seed;
    use crate::support::image::Spec;
    use crate::support::registry::{Mode, PASSWORD, Registry, USER};
    use kube::api::{Api, Patch, PatchParams};
    let home = tempdir();
    let (src, dst) = (Registry::start(Mode::Htpasswd), Registry::start(Mode::Plain));
    let first = seed(
        &src,
        home.path(),
        "app/x:stable",
        &Spec {
            seed: 101,
            ..Spec::default()
        },
    );
    let server = ApiServer::start(Options::default());
    runtime().block_on(async {
        let client = cluster(&server).await;
        post(&server, "/api/v1/namespaces", &json!({"metadata": {"name": "other"}})).await;
        let operator = start_operator(&client);
        let ns_post = |ns: &str, plural: &str, body: Value| {
            let path = if plural == "secrets" { format!("/api/v1/namespaces/{ns}/secrets") } else { format!("/apis/kopeo.dev/v1alpha1/namespaces/{ns}/{plural}") };
            let server = &server;
            async move { post(server, &path, &body).await }
        };
        // The right Secret exists only in another namespace; here it is wrong.
        ns_post("other", "secrets", json!({"metadata": {"name": "login"}, "stringData": {"username": USER, "password": PASSWORD}})).await;
        ns_post("default", "secrets", json!({"metadata": {"name": "login"}, "stringData": {"username": USER, "password": "wrong"}})).await;
        ns_post("default", "registrycredentials", json!({"metadata": {"name": "src"}, "spec": {"registry": src.host, "secretRef": {"name": "login"}, "tls": {"insecure": true}}})).await;
        ns_post("default", "registrycredentials", json!({"metadata": {"name": "dst"}, "spec": {"registry": dst.host, "tls": {"insecure": true}}})).await;
        ns_post("default", "imagecopies", json!({"metadata": {"name": "follow"}, "spec": {
            "source": format!("docker://{}/app/x:stable", src.host), "destination": format!("docker://{}/app/x:stable", dst.host), "refreshInterval": "1s"}})).await;
        let copies = kopeo_api(&client, "ImageCopy", "imagecopies");
        let wait_for = |pred: Box<dyn Fn(&Value) -> bool + Send>| {
            let copies = copies.clone();
            async move {
                let mut last = Value::Null;
                for _ in 0..400 {
                    last = copies.get("follow").await.unwrap().data["status"].clone();
                    if pred(&last) {
                        return last;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                panic!("condition not reached; status: {last}");
            }
        };
        let reason = |st: &Value| st["conditions"].as_array().and_then(|cs| cs.iter().find(|c| c["type"] == "Ready")).map(|c| c["reason"].as_str().unwrap_or("").to_string());
        let st = wait_for(Box::new(move |st| reason(st).as_deref() == Some("AuthenticationFailed"))).await;
        assert!(st["conditions"].as_array().unwrap().iter().any(|c| c["type"] == "Stalled" && c["status"] == "True"), "{st}");
        // Fix the Secret: the credential is re-rendered and the copy recovers.
        let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), "default");
        secrets.patch("login", &PatchParams::default(), &Patch::Merge(json!({"stringData": {"password": PASSWORD}}))).await.unwrap();
        let want = first.digest.clone();
        wait_for(Box::new(move |st| st["destinationDigest"] == want.as_str())).await;
        // The source tag moves: the refresh copies again.
        let moved = seed(&src, home.path(), "app/x:stable", &Spec { seed: 102, ..Spec::default() });
        let want = moved.digest.clone();
        let st = wait_for(Box::new(move |st| st["destinationDigest"] == want.as_str())).await;
        assert_eq!(st["sourceDigest"], moved.digest.as_str());
        operator.abort();
    });
}

#[test]
fn a_spec_change_mid_copy_cancels_the_running_copy() {
    use kube::api::{Patch, PatchParams};
    // ~3 MB at 16 KiB per 10 ms: the first copy is still running when the spec changes.
    let SlowCopy {
        home,
        src: _src,
        dst,
        img,
        slow,
    } = slow_copy(111);
    let server = ApiServer::start(Options::default());
    runtime().block_on(async {
        let client = cluster(&server).await;
        insecure_credentials(&server, &[&slow, &dst.host]).await;
        let operator = start_operator(&client);
        post(&server, "/apis/kopeo.dev/v1alpha1/namespaces/default/imagecopies", &json!({"metadata": {"name": "c"}, "spec": {
            "source": format!("docker://{slow}/big/app:1"), "destination": format!("docker://{}/first/app:1", dst.host)}})).await;
        tokio::time::sleep(std::time::Duration::from_millis(800)).await;
        let copies = kopeo_api(&client, "ImageCopy", "imagecopies");
        copies.patch("c", &PatchParams::default(), &Patch::Merge(json!({"spec": {"destination": format!("docker://{}/second/app:1", dst.host)}}))).await.unwrap();
        let mut st = Value::Null;
        for _ in 0..600 {
            st = copies.get("c").await.unwrap().data["status"].clone();
            if st["observedGeneration"] == 2 && st["destinationDigest"] == img.digest.as_str() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!((st["observedGeneration"].as_i64(), st["destinationDigest"].as_str()), (Some(2), Some(img.digest.as_str())), "{st}");
        operator.abort();
    });
    let first = kopeo(
        home.path(),
        &["inspect", "--tls-verify=false", &dst.image("first/app:1")],
    );
    assert_eq!(first.code, 2, "the cancelled copy left no image at the old destination");
}

#[test]
fn a_long_copy_reports_progress_at_a_bounded_rate_and_a_deletion_cancels_it() {
    use kube::api::DeleteParams;
    use std::time::{Duration, Instant};
    // ~3 MB at 16 KiB per 10 ms: about two seconds a copy.
    let SlowCopy {
        home,
        src: _src,
        dst,
        img,
        slow,
    } = slow_copy(112);
    let audit = home.path().join("audit.log");
    let server = ApiServer::start(Options {
        audit_log: Some(audit.clone()),
        ..Default::default()
    });
    let interval = Duration::from_millis(200);
    runtime().block_on(async {
        let client = cluster(&server).await;
        insecure_credentials(&server, &[&slow, &dst.host]).await;
        let opts = kopeo::operator::controller::OperatorOptions {
            progress_interval: interval,
            ..operator_options()
        };
        let metrics = opts.metrics.clone();
        let operator = tokio::spawn(kopeo::operator::controller::run(client.clone(), opts));
        let copies = kopeo_api(&client, "ImageCopy", "imagecopies");
        let started = Instant::now();
        post(
            &server,
            "/apis/kopeo.dev/v1alpha1/namespaces/default/imagecopies",
            &json!({"metadata": {"name": "c"}, "spec": {
            "source": format!("docker://{slow}/big/app:1"), "destination": format!("docker://{}/c/app:1", dst.host)}}),
        )
        .await;
        // While it runs: Progressing, with progress that moves.
        let mut seen: Vec<u64> = vec![];
        let mut st = Value::Null;
        for _ in 0..1200 {
            st = copies.get("c").await.unwrap().data["status"].clone();
            if st["destinationDigest"] == img.digest.as_str() {
                break;
            }
            if let Some(done) = st["progress"]["bytesDone"].as_u64() {
                let progressing = st["conditions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|c| c["type"] == "Progressing" && c["status"] == "True" && c["reason"] == "Copying");
                assert!(progressing, "{st}");
                let total = st["progress"]["bytesTotal"].as_u64().unwrap_or(0);
                assert!(
                    total > 3_000_000 && done <= total && st["progress"]["blobsTotal"] == 2,
                    "{st}"
                );
                if seen.last() != Some(&done) {
                    seen.push(done);
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let elapsed = started.elapsed();
        assert_eq!(st["destinationDigest"], img.digest.as_str(), "{st}");
        assert!(
            st.get("progress").is_none(),
            "progress is cleared when the copy ends: {st}"
        );
        assert!(
            seen.len() >= 2 && seen.windows(2).all(|w| w[0] < w[1]),
            "progress moved forward in status: {seen:?}"
        );
        // Bounded: the first write after a grace, then one per interval at most, then the result.
        let writes = status_writes(&audit, "imagecopies", "c");
        let bound = (elapsed.as_millis() / interval.as_millis()) as usize + 2;
        assert!(
            writes >= 3 && writes <= bound,
            "{writes} status writes in {elapsed:?} (at most {bound})"
        );

        // A deletion mid-copy cancels the copy: nothing reaches the destination.
        post(
            &server,
            "/apis/kopeo.dev/v1alpha1/namespaces/default/imagecopies",
            &json!({"metadata": {"name": "d"}, "spec": {
            "source": format!("docker://{slow}/big/app:1"), "destination": format!("docker://{}/d/app:1", dst.host)}}),
        )
        .await;
        for _ in 0..500 {
            if copies.get("d").await.unwrap().data["status"]["progress"]["bytesDone"]
                .as_u64()
                .unwrap_or(0)
                > 0
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(metrics.in_flight.get(), 1, "the second copy runs");
        copies.delete("d", &DeleteParams::default()).await.unwrap();
        for _ in 0..100 {
            if metrics.in_flight.get() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(metrics.in_flight.get(), 0, "the deleted resource's copy stopped");
        // Longer than the whole copy would have taken: still nothing there.
        tokio::time::sleep(elapsed).await;
        assert!(
            kopeo_tags(&dst, "d/app").await.is_empty(),
            "a cancelled copy commits nothing"
        );
        operator.abort();
    });
}

#[test]
fn an_operator_watching_some_namespaces_reads_and_writes_only_there() {
    use crate::support::image::{Spec, build};
    use kube::api::PostParams;
    let home = tempdir();
    // The source layout, in team-a's directory of the operator's storage root.
    build(&home.path().join("team-a/l"), "x", &Spec::default());
    let audit = home.path().join("audit.log");
    let server = ApiServer::start(Options {
        audit_log: Some(audit.clone()),
        ..Default::default()
    });
    runtime().block_on(async {
        let client = cluster(&server).await;
        let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client.clone());
        for ns in ["team-a", "team-b"] {
            namespaces
                .create(
                    &PostParams::default(),
                    &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
                )
                .await
                .unwrap();
        }
        let before = std::fs::read_to_string(&audit).unwrap().lines().count();
        // Each namespace's local files live below its own directory of the storage root.
        let opts = kopeo::operator::controller::OperatorOptions {
            namespaces: vec!["team-a".into()],
            local: kopeo::operator::local_access::LocalAccess::Under(home.path().to_path_buf()),
            ..operator_options()
        };
        let operator = tokio::spawn(kopeo::operator::controller::run(client.clone(), opts));
        let ar = kube::api::ApiResource {
            group: "kopeo.dev".into(),
            version: "v1alpha1".into(),
            api_version: "kopeo.dev/v1alpha1".into(),
            kind: "ImageCopy".into(),
            plural: "imagecopies".into(),
        };
        let copies = |ns: &str| kube::Api::<kube::api::DynamicObject>::namespaced_with(client.clone(), ns, &ar);
        for ns in ["team-a", "team-b"] {
            let ic = serde_json::from_value(
                json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "ImageCopy", "metadata": {"name": "c"},
                "spec": {"source": "oci:l:x", "destination": "oci:out:x"}}),
            )
            .unwrap();
            copies(ns).create(&PostParams::default(), &ic).await.unwrap();
        }
        assert!(
            wait_ready(&copies("team-a"), "c", 400).await,
            "the watched namespace is served: {:?}",
            copies("team-a").get("c").await.unwrap().data
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        assert!(
            copies("team-b").get("c").await.unwrap().data.get("status").is_none(),
            "team-b is not watched"
        );
        assert!(home.path().join("team-a/out/index.json").exists());
        assert!(!home.path().join("team-b").exists());
        // Deleted and created again under the same name: a new resource, copied again.
        copies("team-a").delete("c", &Default::default()).await.unwrap();
        let again = serde_json::from_value(
            json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "ImageCopy", "metadata": {"name": "c"},
            "spec": {"source": "oci:l:x", "destination": "oci:again:x"}}),
        )
        .unwrap();
        copies("team-a").create(&PostParams::default(), &again).await.unwrap();
        assert!(wait_ready(&copies("team-a"), "c", 400).await);
        assert!(home.path().join("team-a/again/index.json").exists());
        operator.abort();
        // Every request the operator made stayed in team-a: a Role there is all it needs.
        let test_requests = [
            "/apis/kopeo.dev/v1alpha1/namespaces/team-a/imagecopies",
            "/apis/kopeo.dev/v1alpha1/namespaces/team-b/imagecopies",
        ];
        for line in std::fs::read_to_string(&audit).unwrap().lines().skip(before) {
            let e: Value = serde_json::from_str(line).unwrap();
            let uri = e["requestURI"].as_str().unwrap();
            if test_requests.iter().any(|t| uri.starts_with(t)) && matches!(e["verb"].as_str(), Some("create" | "get"))
            {
                continue; // this test's own
            }
            assert_eq!(
                e["objectRef"]["namespace"], "team-a",
                "a request outside team-a: {line}"
            );
        }
    });
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

#[test]
fn a_long_sync_reports_progress_and_suspending_it_cancels_it() {
    use crate::registry_copy::seed;
    use crate::support::image::Spec;
    use crate::support::registry::{Mode, Registry};
    use kube::api::{Patch, PatchParams};
    use std::time::Duration;
    let home = tempdir();
    let (src, dst) = (Registry::start(Mode::Plain), Registry::start(Mode::Plain));
    for i in 0..8u64 {
        let spec = Spec {
            layers: vec![400_000],
            seed: 300 + i,
            ..Spec::default()
        };
        seed(&src, home.path(), &format!("sync/app:{i}"), &spec);
    }
    // ~400 KB at 16 KiB per 10 ms: a quarter of a second an image, one at a time.
    let slow = crate::support::proxy::slow(&src.host, Duration::from_millis(10));
    let server = ApiServer::start(Options::default());
    runtime().block_on(async {
        let client = cluster(&server).await;
        insecure_credentials(&server, &[&slow, &dst.host]).await;
        let opts = kopeo::operator::controller::OperatorOptions {
            progress_interval: Duration::from_millis(200),
            ..operator_options()
        };
        let operator = tokio::spawn(kopeo::operator::controller::run(client.clone(), opts));
        let syncs = kopeo_api(&client, "ImageSync", "imagesyncs");
        let sync = |name: &str| {
            json!({"metadata": {"name": name}, "spec": {"registry": slow, "images": {"sync/app": []},
            "destination": format!("{}/{name}", dst.host), "concurrency": 1, "interval": "1h"}})
        };
        post(
            &server,
            "/apis/kopeo.dev/v1alpha1/namespaces/default/imagesyncs",
            &sync("a"),
        )
        .await;
        let mut done_seen = vec![];
        let mut st = Value::Null;
        for _ in 0..1500 {
            st = syncs.get("a").await.unwrap().data["status"].clone();
            if st["lastSyncTime"].is_string() {
                break;
            }
            if let Some(d) = st["progress"]["imagesDone"].as_u64() {
                assert_eq!(st["progress"]["imagesTotal"], 8, "{st}");
                assert!(
                    st["conditions"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|c| c["type"] == "Progressing" && c["status"] == "True" && c["reason"] == "Syncing"),
                    "{st}"
                );
                if done_seen.last() != Some(&d) {
                    done_seen.push(d);
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(st["copied"], 8, "{st}");
        assert!(
            st.get("progress").is_none(),
            "progress is cleared when the sync ends: {st}"
        );
        let events: kube::Api<k8s_openapi::api::events::v1::Event> = kube::Api::namespaced(client.clone(), "default");
        // The Event follows the status write: wait for it.
        let mut synced = false;
        for _ in 0..100 {
            synced = events
                .list(&Default::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .any(|e| {
                    e.reason.as_deref() == Some("Synced")
                        && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("a")
                });
            if synced {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(synced, "the finished sync is an Event");
        assert!(
            done_seen.len() >= 2 && done_seen.windows(2).all(|w| w[0] < w[1]),
            "{done_seen:?}"
        );

        // Suspending a running sync cancels it: the images not yet copied stay uncopied.
        post(
            &server,
            "/apis/kopeo.dev/v1alpha1/namespaces/default/imagesyncs",
            &sync("b"),
        )
        .await;
        for _ in 0..500 {
            if syncs.get("b").await.unwrap().data["status"]["progress"]["imagesDone"]
                .as_u64()
                .unwrap_or(0)
                >= 1
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        syncs
            .patch(
                "b",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"suspend": true}})),
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let copied = kopeo_tags(&dst, "b/app").await.len();
        assert!(
            (1..8).contains(&copied),
            "the suspended sync stopped part-way: {copied} of 8 copied"
        );
        operator.abort();
    });
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
    assert_ne!(copy.0, "Copied", "{copy:?}");
    // Without the CA's Secret the credential says so, and the copy cannot verify the registry.
    let (code, cred, copy) = run(both, false);
    assert_eq!((code, cred.0.as_str()), (1, "SecretNotFound"), "{cred:?}");
    assert!(cred.1.contains("reg-ca"), "{cred:?}");
    assert_ne!(copy.0, "Copied", "{copy:?}");
}

#[test]
fn a_failed_sync_is_retried_on_its_backoff_not_its_interval() {
    use crate::support::registry::{PASSWORD, USER};
    use kube::api::PostParams;
    let LoginSource {
        home: _home,
        src,
        dst,
        img: _,
    } = login_source();
    let server = ApiServer::start(Options::default());
    runtime().block_on(async {
        let client = cluster(&server).await;
        post(&server, "/apis/kopeo.dev/v1alpha1/namespaces/default/registrycredentials",
            &json!({"metadata": {"name": "src"}, "spec": {"registry": src.host, "secretRef": {"name": "login"}, "tls": {"insecure": true}}})).await;
        insecure_credentials(&server, &[&dst.host]).await;
        let operator = start_operator(&client);
        let syncs = kopeo_api(&client, "ImageSync", "imagesyncs");
        post(&server, "/apis/kopeo.dev/v1alpha1/namespaces/default/imagesyncs", &json!({"metadata": {"name": "s"},
            "spec": {"registry": src.host, "images": {"team/app": []}, "destination": format!("{}/mirror", dst.host), "interval": "1h"}})).await;
        let reason = || {
            let syncs = syncs.clone();
            async move {
                let st = syncs.get("s").await.unwrap().data["status"].clone();
                st["conditions"].as_array().and_then(|cs| cs.iter().find(|c| c["type"] == "Ready")).map(|c| c["reason"].as_str().unwrap_or("").to_string())
            }
        };
        let mut seen = None;
        for _ in 0..200 {
            seen = reason().await;
            if seen.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_ne!(seen.as_deref(), Some("Synced"), "without its Secret the sync cannot log in");
        // The Secret appears; the next attempt (seconds away, not an hour) succeeds.
        let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> = kube::Api::namespaced(client.clone(), "default");
        let login = serde_json::from_value(json!({"metadata": {"name": "login"}, "stringData": {"username": USER, "password": PASSWORD}})).unwrap();
        secrets.create(&PostParams::default(), &login).await.unwrap();
        for _ in 0..400 {
            seen = reason().await;
            if seen.as_deref() == Some("Synced") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(seen.as_deref(), Some("Synced"));
        assert_eq!(kopeo_tags(&dst, "mirror/app").await, ["1"]);
        operator.abort();
    });
}
