//! The operator's safety promises: a tenant cannot reach the pod's
//! filesystem or daemon sockets, a leader cut off from the API server stops
//! before another takes over, and the chart's RBAC is exactly what the
//! operator uses.

use crate::support::cluster::*;
use crate::support::registry::{Mode, PASSWORD, Registry, USER};
use crate::support::{kopeo, tempdir};
use kopeo_test_apiserver::{ApiServer, Fault, Options, authz::User};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Wait until the ImageCopy `name` in `default` has a Ready condition; it.
async fn ready_condition(copies: &kube::Api<kube::api::DynamicObject>, name: &str) -> Value {
    for _ in 0..400 {
        if let Ok(o) = copies.get(name).await
            && let Some(c) = o.data["status"]["conditions"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        {
            return c.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{name} never got a Ready condition");
}

#[test]
fn an_imagecopy_naming_local_paths_is_refused_unless_local_storage_is_enabled() {
    use crate::support::image::{Spec, build};
    let home = tempdir();
    let img = build(&home.path().join("src"), "x", &Spec::default());
    let server = ApiServer::start(Options::default());
    runtime().block_on(async {
        let client = cluster(&server).await;
        // The operator's defaults: registries only.
        let operator = tokio::spawn(kopeo::operator::controller::run(
            client.clone(),
            kopeo::operator::controller::OperatorOptions {
                concurrency: 2,
                instance: "test".into(),
                ..Default::default()
            },
        ));
        let copies = kopeo_api(&client, "ImageCopy", "imagecopies");
        let stolen = home.path().join("stolen");
        let cases = [
            (
                "read-files",
                img.reference(),
                "docker://127.0.0.1:1/x:1".to_string(),
                "the oci: transport is not enabled in this operator",
            ),
            (
                "write-files",
                "docker://127.0.0.1:1/x:1".to_string(),
                format!("dir:{}", stolen.display()),
                "the dir: transport is not enabled in this operator",
            ),
            (
                "daemon",
                "docker-daemon:app:1".to_string(),
                "docker://127.0.0.1:1/x:1".to_string(),
                "the docker-daemon: transport is not enabled in this operator",
            ),
        ];
        for (name, source, destination, _) in &cases {
            let ic = serde_json::from_value(
                json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "ImageCopy", "metadata": {"name": name},
                "spec": {"source": source, "destination": destination}}),
            )
            .unwrap();
            copies.create(&Default::default(), &ic).await.unwrap();
        }
        for (name, _, _, message) in &cases {
            let ready = ready_condition(&copies, name).await;
            assert_eq!(ready["status"], "False", "{name}");
            assert_eq!(ready["reason"], "TransportNotAllowed", "{name}: {ready}");
            assert!(
                ready["message"].as_str().unwrap().starts_with(message),
                "{name}: {ready}"
            );
            let stalled = copies.get(name).await.unwrap().data["status"]["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == "Stalled")
                .cloned()
                .unwrap();
            assert_eq!(stalled["status"], "True", "{name}");
        }
        assert!(!stolen.exists(), "nothing was written to the pod's filesystem");
        operator.abort();
    });
    // `kopeo run` acts for its user: the same local copy is done.
    let manifest = home.path().join("copy.yaml");
    std::fs::write(
        &manifest,
        serde_yaml_ng::to_string(&json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "ImageCopy", "metadata": {"name": "local", "namespace": "default"},
            "spec": {"source": img.reference(), "destination": format!("oci:{}/run-copy:x", home.path().display())}}))
        .unwrap(),
    )
    .unwrap();
    kopeo(home.path(), &["run", "-f", manifest.to_str().unwrap()]).ok();
    assert!(home.path().join("run-copy/index.json").exists());
}

#[test]
fn a_leader_that_cannot_renew_its_lease_stops_working_before_a_standby_takes_over() {
    let home = tempdir();
    let (src, dst) = (Registry::start(Mode::Plain), Registry::start(Mode::Plain));
    let img = crate::registry_copy::seed(&src, home.path(), "app/x:1", &crate::support::image::Spec::default());
    let server = ApiServer::start(Options::default());
    let kubeconfig = server.write_kubeconfig(&home.path().join("kubeconfig"));
    runtime().block_on(async {
        let client = cluster(&server).await;
        insecure_credentials(&server, &[&src.host, &dst.host]).await;
        let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> = kube::Api::namespaced(client.clone(), "default");
        let holder = || async {
            leases
                .get_opt("kopeo-leader")
                .await
                .unwrap()
                .and_then(|l| l.spec)
                .and_then(|s| s.holder_identity)
        };
        let a = OperatorProcess::start(home.path(), &kubeconfig, "replica-a");
        for _ in 0..200 {
            if holder().await.as_deref() == Some("replica-a") && a.leading().await == Some(true) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(holder().await.as_deref(), Some("replica-a"));
        let b = OperatorProcess::start(home.path(), &kubeconfig, "replica-b");
        // replica-a is cut off from writing the Lease: every renewal fails.
        server.inject(Fault {
            method: Some("PUT".into()),
            path_contains: "/leases/kopeo-leader".into(),
            body_contains: Some("\"holderIdentity\":\"replica-a\"".into()),
            code: 500,
            times: None,
        });
        let cut = Instant::now();
        let (mut a_stopped, mut b_started) = (None, None);
        while b_started.is_none() {
            assert!(cut.elapsed() < Duration::from_secs(40), "the standby never took over");
            let (la, lb) = (a.leading().await, b.leading().await);
            assert!(
                !(la == Some(true) && lb == Some(true)),
                "two leaders at {:?}:\n{}\n{}\n{}",
                cut.elapsed(),
                std::fs::read_to_string(&a.log).unwrap_or_default(),
                std::fs::read_to_string(&b.log).unwrap_or_default(),
                b.get("/metrics").await.1
            );
            if la == Some(false) && a_stopped.is_none() {
                a_stopped = Some(cut.elapsed());
            }
            if lb == Some(true) {
                b_started = Some(cut.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (a_stopped, b_started) = (a_stopped.expect("replica-a stopped"), b_started.unwrap_or_default());
        eprintln!("replica-a stopped working {a_stopped:?} after its renewals began to fail; replica-b took over at {b_started:?}");
        assert!(a_stopped < b_started, "the cut-off leader stops first");
        assert!(a_stopped <= Duration::from_secs(12), "within the renew deadline: {a_stopped:?}");
        let log = std::fs::read_to_string(&a.log).unwrap();
        assert!(log.contains("could not renew the lease in time"), "{log}");
        assert_eq!(holder().await.as_deref(), Some("replica-b"));
        // Only the new leader acts on new work.
        let copies = kopeo_api(&client, "ImageCopy", "imagecopies");
        let ic = serde_json::from_value(json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "ImageCopy", "metadata": {"name": "after"},
            "spec": {"source": src.image("app/x:1"), "destination": dst.image("mirror/x:1")}}))
        .unwrap();
        copies.create(&Default::default(), &ic).await.unwrap();
        assert!(wait_ready(&copies, "after", 600).await);
        let events: kube::Api<k8s_openapi::api::events::v1::Event> = kube::Api::namespaced(client.clone(), "default");
        for e in events.list(&Default::default()).await.unwrap().items {
            if e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("after") {
                assert_eq!(e.reporting_instance.as_deref(), Some("replica-b"));
            }
        }
        assert_eq!(dst.digest(home.path(), "mirror/x:1"), img.digest);
        // The API server answers replica-a again: it stays a standby.
        server.clear_faults();
        // An absence ("does not take the Lease back") needs a window: longer
        // than a standby's retry period (2 s), so replica-a has looked again.
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(a.leading().await, Some(false));
        assert_eq!(b.leading().await, Some(true));
    });
}

/// The RBAC objects of a rendered chart, as JSON.
fn rbac_objects(rendered: &str) -> Vec<Value> {
    rendered
        .split("\n---")
        .filter_map(|d| serde_yaml_ng::from_str::<Value>(d).ok())
        .filter(|v| v["apiVersion"] == "rbac.authorization.k8s.io/v1")
        .collect()
}

/// (group, resource, verb) of every rule of `objects`' Roles and ClusterRoles.
fn granted(objects: &[Value]) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for o in objects
        .iter()
        .filter(|o| o["kind"] == "Role" || o["kind"] == "ClusterRole")
    {
        for r in o["rules"].as_array().unwrap() {
            for g in r["apiGroups"].as_array().unwrap() {
                for res in r["resources"].as_array().unwrap() {
                    for v in r["verbs"].as_array().unwrap() {
                        out.insert((
                            g.as_str().unwrap().into(),
                            res.as_str().unwrap().into(),
                            v.as_str().unwrap().into(),
                        ));
                    }
                }
            }
        }
    }
    out
}

/// (group, resource, verb) of every request `user` made, by the audit log,
/// and the requests it was refused.
fn used(audit: &std::path::Path, user: &str) -> (BTreeSet<(String, String, String)>, Vec<String>) {
    let (mut out, mut refused) = (BTreeSet::new(), vec![]);
    for line in std::fs::read_to_string(audit).unwrap().lines() {
        let e: Value = serde_json::from_str(line).unwrap();
        if e["user"]["username"] != user || e["objectRef"]["resource"].is_null() {
            continue;
        }
        if e["responseStatus"]["code"] == 403 {
            refused.push(line.to_string());
        }
        let r = &e["objectRef"];
        let resource = match r["subresource"].as_str() {
            Some(s) => format!("{}/{s}", r["resource"].as_str().unwrap()),
            None => r["resource"].as_str().unwrap().to_string(),
        };
        let group = r["apiGroup"].as_str().unwrap().to_string();
        let verb = e["verb"].as_str().unwrap().to_string();
        // A server-side apply that created its object was authorized as create too.
        if verb == "patch" && e["responseStatus"]["code"] == 201 {
            out.insert((group.clone(), resource.clone(), "create".into()));
        }
        out.insert((group, resource, verb));
    }
    (out, refused)
}

#[test]
fn the_operator_needs_exactly_the_rbac_the_chart_grants() {
    let helm = crate::support::tool("HELM", "helm");
    let render = std::process::Command::new(&helm)
        .args(["template", "kopeo", "charts/kopeo", "--namespace", "kopeo"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(render.status.success(), "{}", String::from_utf8_lossy(&render.stderr));
    let rbac = rbac_objects(&String::from_utf8_lossy(&render.stdout));
    assert_eq!(
        rbac.len(),
        5,
        "ClusterRole, ClusterRoleBinding, leader Role and RoleBinding, the worker ClusterRole"
    );
    let home = tempdir();
    let audit = home.path().join("audit.log");
    let sa = User::service_account("kopeo", "kopeo");
    let server = ApiServer::start(Options {
        token: Some("admin-token".into()),
        users: vec![("operator-token".into(), sa.clone())],
        rbac: true,
        audit_log: Some(audit.clone()),
        ..Default::default()
    });
    let (src, dst) = (Registry::start(Mode::Htpasswd), Registry::start(Mode::Plain));
    // A ~3 MB image behind a slow proxy: copies and syncs run for seconds,
    // long enough to be watched for cancellation.
    let img = crate::support::image::build(
        &home.path().join("l"),
        "x",
        &crate::support::image::Spec {
            layers: vec![3_000_000],
            ..Default::default()
        },
    );
    let slow = crate::support::proxy::slow(&src.host, Duration::from_millis(10));
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
    runtime().block_on(async {
        let admin = {
            kopeo::install_crypto_provider();
            let mut config = kube::Config::new(server.url().parse().unwrap());
            config.auth_info.token = Some("admin-token".to_string().into());
            kube::Client::try_from(config).unwrap()
        };
        let url = server.url();
        let post = |path: String, body: Value| {
            let url = url.clone();
            async move {
                let r = reqwest::Client::new()
                    .post(format!("{url}{path}"))
                    .bearer_auth("admin-token")
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(
                    r.status().as_u16(),
                    201,
                    "{path}: {}",
                    r.text().await.unwrap_or_default()
                );
            }
        };
        for crd in crd_documents() {
            post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions".into(), crd).await;
        }
        post("/api/v1/namespaces".into(), json!({"metadata": {"name": "kopeo"}})).await;
        for o in &rbac {
            let plural = match o["kind"].as_str().unwrap() {
                "ClusterRole" => "clusterroles",
                "ClusterRoleBinding" => "clusterrolebindings",
                "Role" => "roles",
                _ => "rolebindings",
            };
            let path = match o["metadata"]["namespace"].as_str() {
                Some(ns) => format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/{plural}"),
                None => format!("/apis/rbac.authorization.k8s.io/v1/{plural}"),
            };
            post(path, o.clone()).await;
        }
        // Everything an operator does: credentials from a Secret, the pull
        // Secret, a copy, a sync, a Secret change, a deleted credential, the
        // Lease taken, watched and released.
        let ns = "/apis/kopeo.dev/v1alpha1/namespaces/default";
        post(
            "/api/v1/namespaces/default/secrets".into(),
            json!({"metadata": {"name": "login"}, "type": "kubernetes.io/basic-auth",
            "stringData": {"username": USER, "password": PASSWORD}}),
        )
        .await;
        post(
            format!("{ns}/registrycredentials"),
            json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "RegistryCredential", "metadata": {"name": "src"},
            "spec": {"registry": slow, "secretRef": {"name": "login"}, "tls": {"insecure": true}}}),
        )
        .await;
        post(
            format!("{ns}/registrycredentials"),
            json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "RegistryCredential", "metadata": {"name": "dst"},
            "spec": {"registry": dst.host, "tls": {"insecure": true}}}),
        )
        .await;
        let kubeconfig = server.write_kubeconfig_with_token(&home.path().join("kubeconfig"), "operator-token");
        let operator = OperatorProcess::launch(
            home.path(),
            &kubeconfig,
            "kopeo-0",
            &[
                "--lease-namespace",
                "kopeo",
                "--lease-name",
                "kopeo-leader",
                "--worker-image",
                "registry.example/kopeo:test",
            ],
            &[("POD_NAMESPACE", "kopeo")],
        );
        post(
            format!("{ns}/imagecopies"),
            json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "ImageCopy", "metadata": {"name": "copy"},
            "spec": {"source": format!("docker://{slow}/team/app:1"), "destination": dst.image("mirror/app:1")}}),
        )
        .await;
        post(
            format!("{ns}/imagesyncs"),
            json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "ImageSync", "metadata": {"name": "sync"},
            "spec": {"registry": slow, "destination": format!("{}/synced", dst.host), "images": {"team/app": []}}}),
        )
        .await;
        let copies = kopeo_api(&admin, "ImageCopy", "imagecopies");
        assert!(
            wait_ready(&copies, "copy", 600).await,
            "{:?}",
            copies.get("copy").await.map(|c| c.data)
        );
        // spec.verify reads its keys' ConfigMap (get only; here it is missing).
        post(
            format!("{ns}/imagecopies"),
            json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "ImageCopy", "metadata": {"name": "verified"},
            "spec": {"source": format!("docker://{slow}/team/app:1"), "destination": dst.image("mirror/verified:1"),
                "verify": {"keys": {"configMapKeyRef": {"name": "keys", "key": "cosign.pub"}}}}}),
        )
        .await;
        let mut reason = Value::Null;
        for _ in 0..400 {
            let c = copies.get("verified").await.unwrap();
            reason = c.data["status"]["conditions"][0]["reason"].clone();
            if reason == "VerifyKeysNotFound" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(reason, "VerifyKeysNotFound");
        let syncs = kopeo_api(&admin, "ImageSync", "imagesyncs");
        for _ in 0..400 {
            let s = syncs.get("sync").await.unwrap();
            if s.data["status"]["conditions"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // A sharded sync: its Job, the workers' account and binding made;
        // suspended (the Job patched); its spec changed (the Job deleted).
        // No node runs here: the Job's pods are never started.
        post(
            format!("{ns}/imagesyncs"),
            json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "ImageSync", "metadata": {"name": "sharded"},
            "spec": {"registry": slow, "destination": format!("{}/sharded", dst.host), "images": {"team/app": []}, "workers": 2}}),
        )
        .await;
        let jobs: kube::Api<k8s_openapi::api::batch::v1::Job> = kube::Api::namespaced(admin.clone(), "default");
        let mut job = None;
        for _ in 0..400 {
            job = syncs.get("sharded").await.unwrap().data["status"]["job"].as_str().map(str::to_string);
            if job.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let job = job.expect("the sharded sync's Job");
        let merge = |v: Value| kube::api::Patch::Merge(v);
        syncs.patch("sharded", &Default::default(), &merge(json!({"spec": {"suspend": true}}))).await.unwrap();
        let mut suspended = false;
        for _ in 0..400 {
            suspended = jobs.get(&job).await.unwrap().spec.and_then(|s| s.suspend) == Some(true);
            if suspended {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(suspended, "the Job is suspended with its ImageSync");
        syncs.patch("sharded", &Default::default(), &merge(json!({"spec": {"concurrency": 3}}))).await.unwrap();
        let mut gone = false;
        for _ in 0..400 {
            gone = jobs.get_opt(&job).await.unwrap().is_none();
            if gone {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(gone, "a changed spec replaces the Job");
        let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> = kube::Api::namespaced(admin.clone(), "default");
        secrets
            .patch(
                "login",
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(json!({"metadata": {"labels": {"touched": "yes"}}})),
            )
            .await
            .unwrap();
        let creds = kopeo_api(&admin, "RegistryCredential", "registrycredentials");
        creds.delete("dst", &Default::default()).await.unwrap();
        // The deletion is handled once the pull Secret no longer names dst's
        // registry; it is kept for the credential that remains.
        let mut pull = None;
        for _ in 0..250 {
            pull = secrets.get_opt("kopeo-registry-auth").await.unwrap();
            let auth = pull
                .as_ref()
                .and_then(|s| s.data.as_ref())
                .and_then(|d| d.get(".dockerconfigjson"))
                .map(|v| String::from_utf8_lossy(&v.0).into_owned())
                .unwrap_or_default();
            if pull.is_none() || !auth.contains(&dst.host) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(pull.is_some(), "the pull Secret was kept");
        assert_eq!(operator.terminate(), Some(0));
    });
    assert_eq!(dst.digest(home.path(), "mirror/app:1"), img.digest);
    // Secrets are listed and watched as metadata only: their data never
    // reaches the operator but for those a credential names (by get).
    for line in std::fs::read_to_string(&audit).unwrap().lines() {
        let e: Value = serde_json::from_str(line).unwrap();
        if e["user"]["username"] == sa.name
            && e["objectRef"]["resource"] == "secrets"
            && matches!(e["verb"].as_str(), Some("list" | "watch"))
        {
            assert_eq!(
                e["annotations"]["test.kopeo.dev/response-shape"], "PartialObjectMetadata",
                "{line}"
            );
        }
    }
    let (used, refused) = used(&audit, &sa.name);
    assert!(
        refused.is_empty(),
        "requests the chart's RBAC refused:\n{}",
        refused.join("\n")
    );
    let granted = granted(&rbac);
    // Granted but not exercised above, each for a reason.
    let rare: BTreeSet<(String, String, String)> = [
        // The events Recorder patches an Event when an identical one repeats.
        ("events.k8s.io", "events", "patch"),
    ]
    .iter()
    .map(|(g, r, v)| (g.to_string(), r.to_string(), v.to_string()))
    .collect();
    let unused: Vec<_> = granted.difference(&used).filter(|g| !rare.contains(*g)).collect();
    assert!(
        unused.is_empty(),
        "the chart grants what the operator never uses: {unused:?}"
    );
}
