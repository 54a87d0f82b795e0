//! Failures back off: a failed sync is retried on its backoff, not its
//! interval.

use crate::support::cluster::*;
use kopeo_test_apiserver::{ApiServer, Options};
use serde_json::json;

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
        assert_eq!(seen.as_deref(), Some("PlanFailed"), "without its Secret the sync cannot list the source's tags");
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
        assert_eq!(registry_tags(&dst, "mirror/app").await, ["1"]);
        operator.abort();
    });
}
