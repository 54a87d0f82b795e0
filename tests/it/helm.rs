//! The Helm chart: lint, render with default and other values, schema
//! checks, and the rendered manifests applied to the test API server.

use crate::support::tempdir;
use kopeo_test_apiserver::{ApiServer, Options};
use std::process::Command;

fn run(bin: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("running a tool");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn kinds(yaml: &str) -> Vec<String> {
    let mut k: Vec<String> = yaml
        .lines()
        .filter_map(|l| l.strip_prefix("kind: "))
        .map(str::to_string)
        .collect();
    k.sort();
    k
}

#[test]
fn chart_lints_renders_and_applies() {
    let helm = crate::support::tool("HELM", "helm");
    let (ok, out, err) = run(&helm, &["lint", "charts/kopeo"]);
    assert!(ok, "helm lint: {out}{err}");
    let chart_crds =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/charts/kopeo/crds/kopeo.dev.yaml")).unwrap();
    let crds = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/crds/kopeo.dev.yaml")).unwrap();
    assert!(
        chart_crds == crds,
        "charts/kopeo/crds is stale: cp crds/kopeo.dev.yaml charts/kopeo/crds/"
    );

    let (ok, default, err) = run(
        &helm,
        &[
            "template",
            "kopeo",
            "charts/kopeo",
            "--namespace",
            "kopeo",
            "--include-crds",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(
        kinds(&default),
        [
            "ClusterRole",
            "ClusterRole",
            "ClusterRoleBinding",
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "Deployment",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount"
        ]
    );
    for hardening in [
        "runAsNonRoot: true",
        "readOnlyRootFilesystem: true",
        "drop: [\"ALL\"]",
        "allowPrivilegeEscalation: false",
        "--leader-elect=true",
        "--lease-name=kopeo-leader",
        "--progress-interval=10s",
    ] {
        assert!(default.contains(hardening), "missing {hardening}");
    }

    let (ok, custom, err) = run(
        &helm,
        &[
            "template",
            "kopeo",
            "charts/kopeo",
            "--namespace",
            "kopeo",
            "--set",
            "watchNamespaces={team-a,team-b}",
            "--set",
            "replicaCount=2",
            "--set",
            "metrics.serviceMonitor.enabled=true",
            "--set",
            "keyProviders[0].name=kms",
            "--set",
            "keyProviders[0].image=example/keyprovider:1",
        ],
    );
    assert!(ok, "{err}");
    let k = kinds(&custom);
    // The operator's own RBAC is namespaced; the worker ClusterRole grants
    // nothing until the operator binds it in a namespace (RoleBinding).
    assert!(
        !k.contains(&"ClusterRoleBinding".to_string()),
        "namespaced RBAC only: {k:?}"
    );
    assert_eq!(
        k.iter().filter(|x| *x == "ClusterRole").count(),
        1,
        "only the worker role: {k:?}"
    );
    assert_eq!(
        k.iter().filter(|x| *x == "Role").count(),
        3,
        "one Role per watched namespace plus the leader Lease role"
    );
    assert!(k.contains(&"ServiceMonitor".to_string()));
    assert!(
        custom.contains("replicas: 2")
            && custom.contains("- name: keyprovider-kms")
            && custom.contains("image: example/keyprovider:1")
    );
    assert!(custom.contains("namespace: team-a") && custom.contains("namespace: team-b"));
    assert!(
        custom.contains("--watch-namespaces=team-a,team-b"),
        "with namespaced RBAC the operator must watch only those namespaces"
    );
    assert!(!default.contains("--watch-namespaces"));

    let (ok, _, err) = run(&helm, &["template", "kopeo", "charts/kopeo", "--set", "concurrency=0"]);
    assert!(
        !ok && err.contains("concurrency"),
        "values.schema.json refuses bad values: {err}"
    );

    // The rendered manifests are accepted by an API server, through kubectl.
    let kubectl = crate::support::tool("KUBECTL", "kubectl");
    let server = ApiServer::start(Options::default());
    let home = tempdir();
    let kc = server.write_kubeconfig(&home.path().join("kubeconfig"));
    let kc = kc.to_str().unwrap();
    let file = home.path().join("rendered.yaml");
    std::fs::write(
        &file,
        format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: kopeo}}\n---\n{default}"),
    )
    .unwrap();
    let (ok, out, err) = run(&kubectl, &["--kubeconfig", kc, "apply", "-f", file.to_str().unwrap()]);
    assert!(ok, "kubectl apply: {out}{err}");
    assert!(
        out.contains("deployment.apps/kopeo created")
            && out.contains("customresourcedefinition.apiextensions.k8s.io/imagecopies.kopeo.dev created"),
        "{out}"
    );
    let (ok, out, err) = run(
        &kubectl,
        &[
            "--kubeconfig",
            kc,
            "get",
            "deployment",
            "-n",
            "kopeo",
            "kopeo",
            "-o",
            "jsonpath={.spec.template.spec.serviceAccountName}",
        ],
    );
    assert!(ok && out == "kopeo", "{out}{err}");
}

/// The README's `helm install` against an API server, then an upgrade and an
/// uninstall, as helm does them (its release records are protobuf-written
/// Secrets).
#[test]
fn helm_install_upgrade_uninstall() {
    let helm = crate::support::tool("HELM", "helm");
    let server = ApiServer::start(Options::default());
    let home = tempdir();
    let kc = server.write_kubeconfig(&home.path().join("kubeconfig"));
    let kc = kc.to_str().unwrap();
    let helm_in = |args: &[&str]| {
        let (ok, out, err) = run(&helm, &[&["--kubeconfig", kc], args].concat());
        assert!(ok, "helm {args:?}: {out}{err}");
        out
    };
    let kubectl = |args: &[&str]| crate::kubectl::kubectl(std::path::Path::new(kc), args);
    let releases = || {
        let (ok, text) = kubectl(&[
            "get",
            "secrets",
            "-n",
            "kopeo",
            "-l",
            "owner=helm,name=kopeo",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}={.metadata.labels.status} {end}",
        ]);
        assert!(ok, "{text}");
        text.trim().to_string()
    };
    helm_in(&[
        "install",
        "kopeo",
        "charts/kopeo",
        "--namespace",
        "kopeo",
        "--create-namespace",
    ]);
    assert_eq!(releases(), "sh.helm.release.v1.kopeo.v1=deployed");
    let (ok, text) = kubectl(&["get", "deployment,serviceaccount,crd", "-A"]);
    assert!(
        ok && text.contains("deployment.apps/kopeo") && text.contains("imagecopies.kopeo.dev"),
        "{text}"
    );
    let listed = helm_in(&["list", "-n", "kopeo"]);
    assert!(listed.contains("deployed"), "{listed}");

    helm_in(&[
        "upgrade",
        "kopeo",
        "charts/kopeo",
        "--namespace",
        "kopeo",
        "--set",
        "concurrency=3",
    ]);
    assert_eq!(
        releases(),
        "sh.helm.release.v1.kopeo.v1=superseded sh.helm.release.v1.kopeo.v2=deployed"
    );
    let (ok, args) = kubectl(&[
        "get",
        "deployment",
        "kopeo",
        "-n",
        "kopeo",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].args}",
    ]);
    assert!(ok && args.contains("--concurrency=3"), "{args}");

    let out = helm_in(&["uninstall", "kopeo", "--namespace", "kopeo"]);
    assert!(out.contains("uninstalled"), "{out}");
    assert_eq!(releases(), "");
    let (ok, text) = kubectl(&["get", "deployment,serviceaccount,service", "-n", "kopeo", "-o", "name"]);
    assert!(ok && !text.contains("kopeo"), "the release's objects are gone: {text}");
    // helm leaves the CRDs of crds/ in place (and so the users' resources).
    let (ok, text) = kubectl(&["get", "crd", "-o", "name"]);
    assert!(ok && text.contains("imagecopies.kopeo.dev"), "{text}");
}

#[test]
fn worker_pods_get_least_privilege_and_the_charts_pod_settings() {
    use crate::support::cluster::{container, helm_template};
    let docs = helm_template(&[
        "--set",
        "workers.pod.nodeSelector.pool=mirror",
        "--set",
        "workers.pod.priorityClassName=batch-low",
    ]);
    let find = |kind: &str, name: &str| {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name}"))
            .clone()
    };
    // A worker reads its ImageSync and reports its shard; nothing else.
    let worker = find("ClusterRole", "kopeo-worker");
    assert_eq!(
        worker["rules"],
        serde_json::json!([
            {"apiGroups": ["kopeo.dev"], "resources": ["imagesyncs"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["kopeo.dev"], "resources": ["imagesyncs/status"], "verbs": ["patch"]}
        ])
    );
    assert!(
        !docs
            .iter()
            .any(|d| d["kind"].as_str().is_some_and(|k| k.ends_with("Binding"))
                && d["roleRef"]["name"] == "kopeo-worker"),
        "the chart binds the worker role nowhere itself"
    );
    // The operator may run Jobs and give their pods that account, and no more.
    let operator = find("ClusterRole", "kopeo");
    let rule = |group: &str, resource: &str| {
        operator["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["apiGroups"][0] == group && r["resources"].as_array().unwrap().iter().any(|x| x == resource))
            .map(|r| r["verbs"].clone())
    };
    assert_eq!(
        rule("batch", "jobs"),
        Some(serde_json::json!(["get", "list", "watch", "create", "patch", "delete"]))
    );
    assert_eq!(rule("", "serviceaccounts"), Some(serde_json::json!(["create"])));
    assert_eq!(
        rule("rbac.authorization.k8s.io", "rolebindings"),
        Some(serde_json::json!(["create"]))
    );
    let deploy = find("Deployment", "kopeo");
    let args: Vec<String> =
        serde_json::from_value(container(&deploy["spec"]["template"]["spec"], "operator")["args"].clone()).unwrap();
    let arg = |flag: &str| {
        args.iter()
            .find_map(|a| a.strip_prefix(&format!("{flag}=")))
            .unwrap_or_else(|| panic!("no {flag}: {args:?}"))
            .to_string()
    };
    assert!(arg("--worker-image").starts_with("kopeo:"), "the operator's own image");
    assert_eq!(arg("--worker-cluster-role"), "kopeo-worker");
    assert_eq!(arg("--worker-service-account"), "kopeo-worker");
    let pod: serde_json::Value = serde_json::from_str(&arg("--worker-pod")).unwrap();
    assert_eq!(pod["nodeSelector"]["pool"], "mirror");
    assert_eq!(pod["priorityClassName"], "batch-low");
    assert_eq!(pod["resources"]["limits"]["memory"], "256Mi");
    // The operator accepts what the chart passes.
    let home = crate::support::tempdir();
    let out = crate::support::kopeo(home.path(), &["operator", "--help"]);
    assert!(out.stdout.contains("--worker-pod"), "{}", out.stdout);
}

/// A user's first day, as close as this machine gets: `helm install` of the
/// chart, the test node starting the chart's operator pod (the real binary
/// with the chart's args, env and volumes, as the chart's ServiceAccount, so
/// the chart's RBAC is what it may do), `kubectl apply` of an ImageCopy, and
/// the copy Ready at the destination.
#[test]
fn the_charts_operator_pod_runs_and_copies_an_image() {
    use crate::support::registry::{Mode, Registry};
    let helm = crate::support::tool("HELM", "helm");
    let home = tempdir();
    let h = home.path();
    let (server, _node) = crate::support::cluster::node_cluster(h, "kopeo");
    let kc = server.write_kubeconfig(&h.join("kubeconfig"));
    let kubectl = |args: &[&str]| crate::kubectl::kubectl(&kc, args);
    let (src, dst) = (Registry::start(Mode::Plain), Registry::start(Mode::Plain));
    crate::registry_copy::seed(&src, h, "app:1", &crate::support::image::Spec::default());
    // The pod listens on the loopback (a free port), not on every address.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let (ok, out, err) = run(
        &helm,
        &[
            "--kubeconfig",
            kc.to_str().unwrap(),
            "install",
            "kopeo",
            "charts/kopeo",
            "--namespace",
            "kopeo",
            "--create-namespace",
            "--set",
            "metrics.bindAddress=127.0.0.1",
            "--set",
            &format!("metrics.port={port}"),
            "--wait",
            "--timeout",
            "120s",
        ],
    );
    let pods = kubectl(&["get", "pods", "-n", "kopeo", "-o", "wide"]).1;
    assert!(ok, "helm install --wait: {out}{err}\n{pods}");
    let (ok, text) = kubectl(&[
        "get",
        "deployment",
        "kopeo",
        "-n",
        "kopeo",
        "-o",
        "jsonpath={.status.readyReplicas}",
    ]);
    assert!(ok && text == "1", "{text}\n{pods}");

    let manifests = h.join("copy.yaml");
    std::fs::write(
        &manifests,
        format!(
            "apiVersion: kopeo.dev/v1alpha1\nkind: RegistryCredential\nmetadata: {{name: src}}\nspec: {{registry: \"{s}\", tls: {{insecure: true}}}}\n---\n\
             apiVersion: kopeo.dev/v1alpha1\nkind: RegistryCredential\nmetadata: {{name: dst}}\nspec: {{registry: \"{d}\", tls: {{insecure: true}}}}\n---\n\
             apiVersion: kopeo.dev/v1alpha1\nkind: ImageCopy\nmetadata: {{name: first-day}}\nspec: {{source: \"docker://{s}/app:1\", destination: \"docker://{d}/mirror/app:1\"}}\n",
            s = src.host,
            d = dst.host
        ),
    )
    .unwrap();
    let (ok, text) = kubectl(&["apply", "-f", manifests.to_str().unwrap()]);
    assert!(ok, "{text}");
    let (ok, text) = kubectl(&["wait", "--for=condition=Ready", "imagecopy/first-day", "--timeout=90s"]);
    let logs = std::fs::read_dir(h.join("node"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| std::fs::read_to_string(e.path().join("operator.log")).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(ok, "{text}\n{logs}");
    assert_eq!(dst.digest(h, "mirror/app:1"), src.digest(h, "app:1"));
    let (ok, sa) = kubectl(&[
        "get",
        "pods",
        "-n",
        "kopeo",
        "-o",
        "jsonpath={.items[0].spec.serviceAccountName}",
    ]);
    assert!(ok && sa == "kopeo", "{sa}");

    // Uninstalling stops the operator: its pod goes, and with it the process.
    let (ok, out, err) = run(
        &helm,
        &[
            "--kubeconfig",
            kc.to_str().unwrap(),
            "uninstall",
            "kopeo",
            "-n",
            "kopeo",
            "--wait",
        ],
    );
    assert!(ok, "{out}{err}");
    let end = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (_, text) = kubectl(&["get", "pods", "-n", "kopeo", "-o", "name"]);
        if text.trim().is_empty() || text.contains("No resources") {
            break;
        }
        assert!(std::time::Instant::now() < end, "pods left: {text}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
