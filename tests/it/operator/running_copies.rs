//! A running copy or sync: its progress in status, and a spec change,
//! deletion or suspension cancelling it.

use crate::support::cluster::*;
use crate::support::tempdir;
use kopeo_test_apiserver::{ApiServer, Options};
use serde_json::{Value, json};

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
        // Change the spec once the first copy is uploading, not after a guess.
        for _ in 0..500 {
            if dst.requests("POST", "/v2/first/app/blobs/uploads/") > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(dst.requests("POST", "/v2/first/app/blobs/uploads/") > 0, "the first copy started");
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
    assert!(
        dst.lacks(home.path(), "first/app:1"),
        "the cancelled copy left no image at the old destination"
    );
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
            registry_tags(&dst, "d/app").await.is_empty(),
            "a cancelled copy commits nothing"
        );
        operator.abort();
    });
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
        let metrics = opts.metrics.clone();
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
        // Wait for the sync to stop (nothing in flight), then look.
        for _ in 0..250 {
            if metrics.in_flight.get() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(metrics.in_flight.get(), 0, "the suspended sync stopped");
        let copied = registry_tags(&dst, "b/app").await.len();
        assert!(
            (1..8).contains(&copied),
            "the suspended sync stopped part-way: {copied} of 8 copied"
        );
        operator.abort();
    });
}
