//! An operator watching some namespaces reads and writes only there.

use crate::support::cluster::*;
use crate::support::tempdir;
use kopeo_test_apiserver::{ApiServer, Options};
use serde_json::{Value, json};

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
        // Not a timing guess: the audit log below shows the operator never
        // asked for anything in team-b.
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
