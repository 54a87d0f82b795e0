//! `atomic:` in the operator: an ImageCopy reaches OpenShift's image API and
//! integrated registry with the token its namespace's RegistryCredential
//! holds, never with the operator's own (which here could read everything).

use crate::atomic::{ADMIN, OpenShift, history, openshift_with};
use crate::support::cluster::{OperatorProcess, crd_documents};
use crate::support::image::{Spec, build};
use crate::support::{kopeo_env, tempdir};
use kopeo_test_apiserver::Options;
use kopeo_test_apiserver::authz::User;
use kopeo_test_apiserver::openshift::Paths;
use serde_json::{Value, json};
use std::time::Duration;

const TENANT_TOKEN: &str = "team-a-pipeline-token";

#[track_caller]
fn created(os: &OpenShift, path: &str, body: Value) {
    let (code, answer) = os.post(path, body);
    assert!((200..300).contains(&code), "POST {path}: {code} {answer}");
}

/// The Ready condition of ImageCopy `ns/name` once it has one that is not
/// Unknown (`None` after a minute).
fn settled(os: &OpenShift, ns: &str, name: &str) -> Option<Value> {
    for _ in 0..600 {
        let (_, copy) = os.get(&format!("/apis/kopeo.dev/v1alpha1/namespaces/{ns}/imagecopies/{name}"));
        let ready = copy["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
            .cloned();
        if let Some(r) = ready.filter(|r| r["status"] != "Unknown") {
            return Some(r);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

#[test]
fn an_imagecopy_uses_its_namespaces_openshift_token_and_gets_only_what_that_token_may() {
    let home = tempdir();
    let audit = home.path().join("audit.log");
    let os = openshift_with(
        &home.path().join("kubeconfig"),
        Paths::Group,
        Options {
            users: vec![(
                TENANT_TOKEN.into(),
                User {
                    name: "system:serviceaccount:team-a:pipeline".into(),
                    groups: vec!["system:serviceaccounts".into()],
                },
            )],
            rbac: true,
            audit_log: Some(audit.clone()),
            ..Default::default()
        },
    );
    for crd in crd_documents() {
        created(&os, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd);
    }
    for ns in ["team-a", "team-b", "team-c"] {
        created(&os, "/api/v1/namespaces", json!({"metadata": {"name": ns}}));
    }
    // The tenant may pull and push image streams in its own namespace only,
    // as OpenShift's system:image-puller/pusher roles allow.
    created(
        &os,
        "/apis/rbac.authorization.k8s.io/v1/namespaces/team-a/roles",
        json!({"metadata": {"name": "images"}, "rules": [{"apiGroups": ["image.openshift.io"],
            "resources": ["imagestreams", "imagestreams/layers", "imagestreamimages", "imagestreammappings", "imagestreamtags"],
            "verbs": ["get", "list", "create", "update"]}]}),
    );
    created(
        &os,
        "/apis/rbac.authorization.k8s.io/v1/namespaces/team-a/rolebindings",
        json!({"metadata": {"name": "images"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "images"},
            "subjects": [{"kind": "ServiceAccount", "name": "pipeline", "namespace": "team-a"}]}),
    );
    // Images in both tenants' streams, pushed by the administrator.
    let img = build(&home.path().join("img"), "app", &Spec::default());
    let kc = os.kubeconfig.display().to_string();
    for stream in ["team-a/src:1", "team-b/private:1"] {
        let pushed = kopeo_env(
            home.path(),
            &[
                "copy",
                "-q",
                "--insecure-policy",
                "--dest-tls-verify=false",
                &img.reference(),
                &os.atomic(stream),
            ],
            None,
            &[("KUBECONFIG", &kc)],
        );
        assert_eq!(pushed.code, 0, "{}", pushed.stderr);
    }
    // team-a's credential for the integrated registry: its pipeline's token.
    created(
        &os,
        "/api/v1/namespaces/team-a/secrets",
        json!({"metadata": {"name": "openshift"}, "stringData": {"username": "serviceaccount", "password": TENANT_TOKEN}}),
    );
    for ns in ["team-a", "team-c"] {
        let secret = if ns == "team-a" {
            json!({"secretRef": {"name": "openshift"}})
        } else {
            json!({})
        };
        let mut spec = json!({"registry": os.registry, "tls": {"insecure": true}});
        if let (Some(o), Some(extra)) = (spec.as_object_mut(), secret.as_object()) {
            o.extend(extra.clone());
        }
        created(
            &os,
            &format!("/apis/kopeo.dev/v1alpha1/namespaces/{ns}/registrycredentials"),
            json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "RegistryCredential", "metadata": {"name": "openshift"}, "spec": spec}),
        );
    }
    let before = std::fs::read_to_string(&audit).unwrap_or_default().lines().count();
    // The operator runs as the cluster's administrator.
    let operator = OperatorProcess::start(home.path(), &os.kubeconfig, "atomic");
    let copy = |ns: &str, name: &str, src: &str, dst: &str| {
        created(
            &os,
            &format!("/apis/kopeo.dev/v1alpha1/namespaces/{ns}/imagecopies"),
            json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "ImageCopy", "metadata": {"name": name},
                "spec": {"source": os.atomic(src), "destination": os.atomic(dst)}}),
        )
    };
    copy("team-a", "own", "team-a/src:1", "team-a/dst:1");
    copy("team-a", "steal", "team-b/private:1", "team-a/stolen:1");
    copy("team-c", "anonymous", "team-a/src:1", "team-c/dst:1");

    // Settled first: the test's own image API reads below go as the administrator.
    let own = settled(&os, "team-a", "own").expect("the own copy settles");
    let steal = settled(&os, "team-a", "steal").expect("the stealing copy settles");
    let anonymous = settled(&os, "team-c", "anonymous").expect("the copy without a token settles");
    // Every image API request the operator made went as the tenant.
    let log = std::fs::read_to_string(&audit).unwrap_or_default();
    let image_api: Vec<Value> = log
        .lines()
        .skip(before)
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| {
            e["requestURI"]
                .as_str()
                .is_some_and(|u| u.contains("image.openshift.io"))
        })
        .collect();
    assert!(!image_api.is_empty(), "the operator used the image API");
    for e in &image_api {
        assert_eq!(
            e["user"]["username"], "system:serviceaccount:team-a:pipeline",
            "never the operator's own token: {e}"
        );
    }
    assert_eq!(own["status"], "True", "{own}");
    assert_eq!(history(&os, "team-a", "dst", "1"), std::slice::from_ref(&img.digest));
    assert_eq!(steal["status"], "False", "{steal}");
    let said = steal["message"].as_str().unwrap_or_default();
    assert!(
        said.contains("cannot get resource \"imagestreams\"") && said.contains("team-b"),
        "the API's refusal of the tenant's token: {steal}"
    );
    let (code, _) = os.get(&format!("{}/namespaces/team-a/imagestreams/stolen", os.prefix));
    assert_eq!(code, 404, "nothing was written for the refused copy");
    assert_eq!(anonymous["status"], "False", "{anonymous}");
    assert!(
        anonymous["message"].as_str().unwrap_or_default().contains(&os.registry),
        "names the host it has no token for: {anonymous}"
    );

    drop(operator);
    let logged = std::fs::read_to_string(home.path().join("atomic.log")).unwrap_or_default();
    assert!(
        !logged.contains(TENANT_TOKEN) && !logged.contains(ADMIN),
        "no token is logged"
    );
}
