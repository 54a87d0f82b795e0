//! The controllers and credentials: a missing, wrong or fixed Secret, and a
//! tag that moves.

use crate::support::cluster::*;
use crate::support::tempdir;
use kopeo_test_apiserver::{ApiServer, Options};
use serde_json::{Value, json};

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
        assert!(registry_tags(&dst, "borrowed/app").await.is_empty());
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
        let planned = registry_tags(&dst, "planned/app").await;
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
