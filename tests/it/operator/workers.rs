//! ImageSync with `spec.workers`: the sync runs as an Indexed Job whose
//! pods are real `kopeo worker` processes (started by the test API
//! server's node, reaching the API over HTTPS as their ServiceAccount,
//! authorized by RBAC), one shard of the repositories each.

use crate::registry_copy::seed;
use crate::support::cluster::{chart_worker_role, cluster, insecure_credentials, node_cluster, post, runtime};
use crate::support::image::Spec;
use crate::support::registry::{Mode, Registry};
use crate::support::tempdir;
use kopeo_test_apiserver::ApiServer;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

pub(super) async fn get(server: &ApiServer, path: &str) -> Value {
    reqwest::get(format!("{}{path}", server.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn patch(server: &ApiServer, path: &str, body: Value) -> u16 {
    reqwest::Client::new()
        .patch(format!("{}{path}", server.url()))
        .header("content-type", "application/merge-patch+json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn wait_for<F: std::future::Future<Output = bool>>(what: &str, secs: u64, mut f: impl FnMut() -> F) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !f().await {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(super) fn ready(o: &Value) -> Option<&str> {
    o["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")?["status"]
        .as_str()
}

/// What a failed wait shows: the ImageSyncs, Jobs and pods, and the workers' logs.
pub(super) async fn dump(server: &ApiServer, node: &kopeo_test_apiserver::node::Node) -> String {
    let mut out = String::new();
    for path in [
        SYNCS,
        "/apis/batch/v1/namespaces/default/jobs",
        "/api/v1/namespaces/default/pods",
    ] {
        for o in get(server, path).await["items"].as_array().into_iter().flatten() {
            out.push_str(&format!("{} {}: {}\n", o["kind"], o["metadata"]["name"], o["status"]));
        }
    }
    for e in std::fs::read_dir(&node.dir).into_iter().flatten().flatten() {
        let log = std::fs::read_to_string(e.path().join("worker.log")).unwrap_or_default();
        out.push_str(&format!("--- {}\n{log}", e.file_name().to_string_lossy()));
    }
    out
}

/// The CRDs, the chart's worker role (the pods can do only that), insecure
/// credentials for `hosts`; a client and the options of an operator whose
/// worker image the node runs.
pub(super) async fn worker_operator(
    server: &ApiServer,
    hosts: &[&String],
) -> (kube::Client, kopeo::operator::controller::OperatorOptions) {
    let client = cluster(server).await;
    post(
        server,
        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        &chart_worker_role(),
    )
    .await;
    insecure_credentials(server, hosts).await;
    let mut opts = crate::support::cluster::operator_options();
    opts.workers.image = Some("registry.example/kopeo:test".into());
    (client, opts)
}

pub(super) const SYNCS: &str = "/apis/kopeo.dev/v1alpha1/namespaces/default/imagesyncs";

/// The most of `times` that fall within any one second.
fn most_in_one_second(times: &[Instant]) -> usize {
    times
        .iter()
        .map(|a| {
            times
                .iter()
                .filter(|b| **b >= *a && b.duration_since(*a) < Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn a_sharded_imagesync_runs_as_an_indexed_job_and_a_killed_shard_copies_only_what_is_missing() {
    let home = tempdir();
    let h = home.path();
    let (src, dst) = (Registry::start(Mode::Plain), Registry::start(Mode::Plain));
    let repos = 40;
    for r in 0..repos {
        let spec = Spec {
            layers: vec![1_000_000],
            seed: 500 + r,
            ..Spec::default()
        };
        seed(&src, h, &format!("team/r{r}:v1"), &spec);
    }
    // A tag the source does not have, in a synced repository: prune deletes it.
    seed(
        &dst,
        h,
        "mirror/r0:old",
        &Spec {
            layers: vec![1_000],
            seed: 499,
            ..Spec::default()
        },
    );
    let seeding_puts = dst.requests("PUT", "/manifests/");
    // 16 KiB per 10 ms and connection: a shard takes seconds, long enough to kill one mid-way.
    let slow = crate::support::proxy::slow(&src.host, Duration::from_millis(10));
    let (server, node) = node_cluster(h, "registry.example/kopeo");
    let rt = runtime();
    rt.block_on(async {
        let (client, mut opts) = worker_operator(&server, &[&slow, &dst.host]).await;
        opts.workers.report_interval = Duration::from_millis(200);
        // A budget for the destination: each of the 4 workers gets a quarter.
        let generous = kopeo::options::rate_limit::RateLimitSettings {
            requests_per_second: Some(1000),
            concurrent_blobs: Some(8),
        };
        opts.budgets.set_limits("flags", [(dst.host.clone(), generous)]);
        let operator = tokio::spawn(kopeo::operator::controller::run(client.clone(), opts));
        let images: serde_json::Map<String, Value> = (0..repos).map(|r| (format!("team/r{r}"), json!([]))).collect();
        post(
            &server,
            SYNCS,
            &json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "ImageSync", "metadata": {"name": "estate"},
            "spec": {"registry": slow, "images": images, "destination": format!("{}/mirror", dst.host),
                     "workers": 4, "concurrency": 2, "interval": "24h", "prune": true}}),
        )
        .await;

        // Kill shard 1's pod once it has copied some of its images but not all.
        let end = Instant::now() + Duration::from_secs(120);
        let killed = loop {
            if Instant::now() > end {
                panic!(
                    "timed out waiting for shard 1 to be part-way:\n{}",
                    dump(&server, &node).await
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            let s = get(&server, &format!("{SYNCS}/estate")).await;
            let shard = &s["status"]["shards"]["1"];
            let (done, seen) = (shard["done"].as_u64().unwrap_or(0), shard["seen"].as_u64().unwrap_or(0));
            // Early enough that the pod is still copying when the kill lands.
            if shard["state"] != "Running" || done == 0 || done * 2 > seen {
                continue;
            }
            let pods = get(
                &server,
                "/api/v1/namespaces/default/pods?labelSelector=batch.kubernetes.io/job-completion-index%3D1",
            )
            .await;
            let Some(pod) = pods["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["status"]["phase"] == "Running")
            else {
                continue;
            };
            let name = pod["metadata"]["name"].as_str().unwrap().to_string();
            let Some(pid) = node.pid("default", &name) else {
                continue;
            };
            let ok = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status()
                .unwrap();
            assert!(ok.success());
            break name;
        };

        wait_for("the ImageSync to be Ready", 180, || {
            let server = &server;
            async move {
                let s = get(server, &format!("{SYNCS}/estate")).await;
                ready(&s).is_some() && s["status"].get("job").is_none()
            }
        })
        .await;
        let s = get(&server, &format!("{SYNCS}/estate")).await;
        let st = &s["status"];
        assert!(
            st["shards"]
                .as_object()
                .unwrap()
                .values()
                .all(|x| x["state"] == "Succeeded"),
            "{st}\n{}",
            dump(&server, &node).await
        );
        assert_eq!(ready(&s), Some("True"), "{st}");
        assert_eq!(st["seen"], repos, "{st}");
        assert_eq!(st["failed"], 0, "{st}");
        let shards = st["shards"].as_object().unwrap();
        assert_eq!(shards.len(), 4, "{st}");
        assert!(shards.values().all(|x| x["state"] == "Succeeded"), "{st}");
        // The retried shard copied only what the killed try had not.
        let copied = st["copied"].as_u64().unwrap();
        let present = st["already_present"]
            .as_u64()
            .or(st["alreadyPresent"].as_u64())
            .unwrap();
        assert_eq!(copied + present, repos, "{st}");
        assert!(present >= 1, "the retry found the killed try's images in place: {st}");
        let job_name = st["lastJob"].as_str().unwrap();
        let job = get(&server, &format!("/apis/batch/v1/namespaces/default/jobs/{job_name}")).await;
        assert_eq!(job["spec"]["completionMode"], "Indexed");
        let args: Vec<String> =
            serde_json::from_value(job["spec"]["template"]["spec"]["containers"][0]["args"].clone()).unwrap();
        let share = format!("{}=250/2", dst.host);
        assert!(
            args.windows(2)
                .any(|w| w[0] == "--registry-rate-limit" && w[1] == share),
            "{args:?}"
        );
        assert_eq!(job["status"]["completedIndexes"], "0-3", "{job}");
        assert_eq!(job["status"]["failed"], 1, "the killed pod, retried: {job}");
        let pod = get(&server, &format!("/api/v1/namespaces/default/pods/{killed}")).await;
        assert_eq!(pod["status"]["phase"], "Failed");
        assert_eq!(
            pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"],
            137
        );
        assert_eq!(pod["spec"]["serviceAccountName"], "kopeo-worker");

        // Every image is at the destination as at the source, each manifest written once.
        for r in 0..repos {
            // As skopeo sync names them (without `scoped`): the last path component.
            let tag = format!("team/r{r}:v1");
            assert_eq!(dst.digest(h, &format!("mirror/r{r}:v1")), src.digest(h, &tag), "{tag}");
        }
        assert_eq!(
            dst.requests("PUT", "/manifests/") - seeding_puts,
            repos as usize,
            "one manifest PUT per image"
        );
        assert_eq!(dst.tags(h, "mirror/r0"), ["v1"], "pruned by the shard that synced r0");
        assert_eq!(st["pruned"], 1, "{st}");

        // Suspending a running sharded sync suspends its Job; deleting the ImageSync deletes the Job.
        post(
            &server,
            SYNCS,
            &json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "ImageSync", "metadata": {"name": "again"},
            "spec": {"registry": slow, "images": images, "destination": format!("{}/again", dst.host),
                     "workers": 4, "workerParallelism": 1, "concurrency": 1, "interval": "24h"}}),
        )
        .await;
        let end = Instant::now() + Duration::from_secs(60);
        let job = loop {
            assert!(Instant::now() < end, "timed out waiting for the second Job");
            tokio::time::sleep(Duration::from_millis(50)).await;
            if let Some(j) = get(&server, &format!("{SYNCS}/again")).await["status"]["job"].as_str() {
                break j.to_string();
            }
        };
        assert_eq!(
            patch(&server, &format!("{SYNCS}/again"), json!({"spec": {"suspend": true}})).await,
            200
        );
        wait_for("the Job to be suspended", 60, || {
            let (server, job) = (&server, &job);
            async move {
                let j = get(server, &format!("/apis/batch/v1/namespaces/default/jobs/{job}")).await;
                j["spec"]["suspend"] == true && j["status"].get("active").is_none()
            }
        })
        .await;
        let del = reqwest::Client::new()
            .delete(format!("{}{SYNCS}/again", server.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(del.status().as_u16(), 200);
        wait_for("the Job to be collected", 60, || {
            let (server, job) = (&server, &job);
            async move {
                let j = get(server, &format!("/apis/batch/v1/namespaces/default/jobs/{job}")).await;
                j["code"] == 404
            }
        })
        .await;
        operator.abort();
    });
}

#[test]
fn sharded_workers_keep_a_source_host_within_its_budget_between_them() {
    let home = tempdir();
    let h = home.path();
    let (src, dst) = (Registry::start(Mode::Plain), Registry::start(Mode::Plain));
    let repos = 8;
    for r in 0..repos {
        let spec = Spec {
            layers: vec![2_000, 3_000],
            seed: 900 + r,
            ..Spec::default()
        };
        seed(&src, h, &format!("team/b{r}:v1"), &spec);
    }
    let (counted, times) = crate::support::proxy::counting(&src.host);
    let (server, node) = node_cluster(h, "registry.example/kopeo");
    let rt = runtime();
    rt.block_on(async {
        let (client, opts) = worker_operator(&server, &[&counted, &dst.host]).await;
        // 4 requests a second to the source for the whole sync: 2 for each of the 2 workers.
        let budget = kopeo::options::rate_limit::RateLimitSettings {
            requests_per_second: Some(4),
            concurrent_blobs: None,
        };
        opts.budgets.set_limits("flags", [(counted.clone(), budget)]);
        let operator = tokio::spawn(kopeo::operator::controller::run(client.clone(), opts));
        let images: serde_json::Map<String, Value> = (0..repos).map(|r| (format!("team/b{r}"), json!([]))).collect();
        post(
            &server,
            SYNCS,
            &json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "ImageSync", "metadata": {"name": "budget"},
            "spec": {"registry": counted, "images": images, "destination": format!("{}/budget", dst.host),
                     "workers": 2, "interval": "24h"}}),
        )
        .await;
        let end = Instant::now() + Duration::from_secs(120);
        loop {
            let s = get(&server, &format!("{SYNCS}/budget")).await;
            if ready(&s).is_some() && s["status"].get("job").is_none() {
                assert_eq!(ready(&s), Some("True"), "{}", dump(&server, &node).await);
                break;
            }
            if Instant::now() > end {
                panic!("timed out:\n{}", dump(&server, &node).await);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        operator.abort();
    });
    // Every request in a second's window, across both workers: each may
    // spend its 2-request burst and then 2 a second; without the budget the
    // sync sends them all within a fraction of a second.
    let t = times.lock().unwrap().clone();
    assert!(t.len() > 30, "{} requests", t.len());
    let most = most_in_one_second(&t);
    assert!(most <= 8, "{most} requests within one second (of {})", t.len());
    for r in 0..repos {
        assert_eq!(
            dst.digest(h, &format!("budget/b{r}:v1")),
            src.digest(h, &format!("team/b{r}:v1"))
        );
    }
}

#[test]
fn a_429_to_one_worker_pauses_the_host_for_every_worker() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    let home = tempdir();
    let h = home.path();
    // Six repositories of different images, three for each of two shards
    // (chosen by the shards' own split once the stand-in's host is known).
    let repos = Arc::new(Mutex::new(std::collections::BTreeMap::new()));
    let at: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let refused_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let blob_gets = Arc::new(AtomicUsize::new(0));
    let (a, r, n) = (at.clone(), refused_at.clone(), blob_gets.clone());
    let fake = crate::support::standin::fake_registry_of(repos.clone(), vec!["v1"], move |req, _| {
        a.lock().unwrap().push(Instant::now());
        if req.method != "GET" || !req.path().contains("/blobs/") {
            return None;
        }
        // The fourth blob download: both workers are copying by then.
        if n.fetch_add(1, Ordering::SeqCst) == 3 {
            *r.lock().unwrap() = Some(Instant::now());
            let body = json!({"errors": [{"code": "TOOMANYREQUESTS", "message": "slow down"}]});
            return Some(crate::support::standin::Reply::json(429, body).with("Retry-After", "4"));
        }
        std::thread::sleep(Duration::from_millis(100));
        None
    });
    let shard = |i| kopeo::sync::shard::Shard::parse(&format!("{i}/2"), None).unwrap();
    let mut names = vec![];
    let (mut per, mut k) = ([0; 2], 0);
    while names.len() < 6 {
        let name = format!("team/c{k}");
        let i = usize::from(!shard(0).owns(&format!("{}/{name}", fake.host)));
        if per[i] < 3 {
            per[i] += 1;
            let spec = Spec {
                layers: vec![2_000, 3_000, 4_000],
                seed: 700 + k,
                ..Spec::default()
            };
            let built = crate::support::image::build(&h.join(format!("layout{k}")), &name, &spec);
            repos.lock().unwrap().insert(name.clone(), h.join(format!("layout{k}")));
            names.push((name, built.digest));
        }
        k += 1;
    }
    let dst = Registry::start(Mode::Plain);
    let (server, node) = node_cluster(h, "registry.example/kopeo");
    let rt = runtime();
    let (status, metrics) = rt.block_on(async {
        let (client, opts) = worker_operator(&server, &[&fake.host, &dst.host]).await;
        // 4 requests a second to the source: 2 for each worker.
        let budget = kopeo::options::rate_limit::RateLimitSettings {
            requests_per_second: Some(4),
            concurrent_blobs: None,
        };
        opts.budgets.set_limits("flags", [(fake.host.clone(), budget)]);
        let metrics = opts.metrics.clone();
        let operator = tokio::spawn(kopeo::operator::controller::run(client.clone(), opts));
        let images: serde_json::Map<String, Value> = names.iter().map(|(n, _)| (n.clone(), json!([]))).collect();
        post(
            &server,
            SYNCS,
            &json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "ImageSync", "metadata": {"name": "told"},
            "spec": {"registry": fake.host, "images": images, "destination": format!("{}/told", dst.host),
                     "workers": 2, "interval": "24h", "retry": {"times": 3}}}),
        )
        .await;
        let end = Instant::now() + Duration::from_secs(120);
        let s = loop {
            let s = get(&server, &format!("{SYNCS}/told")).await;
            if ready(&s).is_some() && s["status"].get("job").is_none() {
                assert_eq!(ready(&s), Some("True"), "{}", dump(&server, &node).await);
                break s;
            }
            if Instant::now() > end {
                panic!("timed out:\n{}", dump(&server, &node).await);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        operator.abort();
        (s, metrics.render())
    });
    let refused = refused_at.lock().unwrap().expect("the 429 was given");
    let t = at.lock().unwrap().clone();
    // The worker told to wait stops at once; the other hears of it through
    // the API (a status write, a watch event) within a second, and then
    // waits out the 4 s too. Requests after the pause show both had work left.
    let during: Vec<Duration> = t
        .iter()
        .filter(|x| **x > refused + Duration::from_secs(1) && **x < refused + Duration::from_secs(4))
        .map(|x| x.duration_since(refused))
        .collect();
    assert!(
        during.is_empty(),
        "requests during the pause, at {during:?} after the 429"
    );
    let after = t.iter().filter(|x| **x >= refused + Duration::from_secs(4)).count();
    assert!(after >= 4, "{after} requests after the pause");
    // Between the two workers the host also stayed within its budget.
    let most = most_in_one_second(&t);
    assert!(most <= 8, "{most} requests within one second");
    for (name, digest) in &names {
        let repo = name.trim_start_matches("team/");
        assert_eq!(&dst.digest(h, &format!("told/{repo}:v1")), digest);
    }
    // The status and the operator's metrics count the shards' throttling.
    let throttled = status["status"]["throttled"].as_array().cloned().unwrap_or_default();
    let host = throttled
        .iter()
        .find(|x| x["host"] == fake.host.as_str())
        .unwrap_or_else(|| panic!("{status}"));
    assert_eq!(host["retryAfter"], 1, "{status}");
    assert!(host["budget"].as_u64().unwrap() > 0, "{status}");
    let line = format!(
        "kopeo_registry_throttled_total{{host=\"{}\",cause=\"retry-after\"}} 1",
        fake.host
    );
    assert!(metrics.lines().any(|l| l == line), "{metrics}");
}

#[test]
fn a_sharded_dry_run_is_planned_by_the_controller_without_a_job() {
    let home = tempdir();
    let h = home.path();
    let (src, dst) = (Registry::start(Mode::Plain), Registry::start(Mode::Plain));
    for r in 0..3 {
        let spec = Spec {
            seed: 500 + r,
            ..Spec::default()
        };
        seed(&src, h, &format!("team/d{r}:v1"), &spec);
    }
    let (server, node) = node_cluster(h, "registry.example/kopeo");
    runtime().block_on(async {
        let (client, opts) = worker_operator(&server, &[&src.host, &dst.host]).await;
        let operator = tokio::spawn(kopeo::operator::controller::run(client, opts));
        let images: serde_json::Map<String, Value> = (0..3).map(|r| (format!("team/d{r}"), json!([]))).collect();
        post(
            &server,
            SYNCS,
            &json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "ImageSync", "metadata": {"name": "plan"},
            "spec": {"registry": src.host, "images": images, "destination": format!("{}/plan", dst.host),
                     "workers": 3, "dryRun": true, "interval": "24h"}}),
        )
        .await;
        let end = Instant::now() + Duration::from_secs(60);
        let s = loop {
            let s = get(&server, &format!("{SYNCS}/plan")).await;
            if s["status"]["plan"].as_array().is_some_and(|p| !p.is_empty()) {
                break s;
            }
            if Instant::now() > end {
                panic!("timed out:\n{}", dump(&server, &node).await);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(s["status"]["plan"].as_array().unwrap().len(), 3, "{s}");
        let jobs = get(&server, "/apis/batch/v1/namespaces/default/jobs").await;
        assert_eq!(jobs["items"].as_array().map(Vec::len), Some(0), "{jobs}");
        operator.abort();
    });
    for r in 0..3 {
        assert!(dst.lacks(h, &format!("plan/d{r}:v1")), "a dry run copied d{r}");
    }
}

#[test]
fn a_shard_that_cannot_plan_says_why_in_its_report() {
    let home = tempdir();
    let h = home.path();
    let dst = Registry::start(Mode::Plain);
    // A loopback port nothing listens on: the shard's tag list cannot be read.
    let gone = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let (server, node) = node_cluster(h, "registry.example/kopeo");
    runtime().block_on(async {
        let (client, opts) = worker_operator(&server, &[&gone, &dst.host]).await;
        let operator = tokio::spawn(kopeo::operator::controller::run(client, opts));
        post(
            &server,
            SYNCS,
            &json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "ImageSync", "metadata": {"name": "gone"},
            "spec": {"registry": gone, "images": {"team/x": []}, "destination": format!("{}/gone", dst.host),
                     "workers": 1, "interval": "24h"}}),
        )
        .await;
        let end = Instant::now() + Duration::from_secs(60);
        let shard = loop {
            let s = get(&server, &format!("{SYNCS}/gone")).await;
            if s["status"]["shards"]["0"]["state"] == "Failed" {
                break s["status"]["shards"]["0"].clone();
            }
            if Instant::now() > end {
                panic!("timed out:\n{}", dump(&server, &node).await);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let f = &shard["failures"][0];
        assert_eq!(f["source"], "planning shard 0", "{shard}");
        assert!(f["reason"].as_str().unwrap().contains(&gone), "{shard}");
        operator.abort();
    });
}

#[test]
fn a_worker_of_a_changed_spec_stops_without_asking_for_a_retry() {
    let home = tempdir();
    let h = home.path();
    let server = ApiServer::start(kopeo_test_apiserver::Options::default());
    runtime().block_on(async {
        cluster(&server).await;
        post(
            &server,
            SYNCS,
            &json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "ImageSync", "metadata": {"name": "moved"},
            "spec": {"registry": "127.0.0.1:1", "images": {"team/x": []}, "destination": "127.0.0.1:1/y", "workers": 1}}),
        )
        .await;
    });
    let kubeconfig = h.join("kubeconfig");
    server.write_kubeconfig(&kubeconfig);
    let args = [
        "worker",
        "image-sync",
        "--namespace",
        "default",
        "--name",
        "moved",
        "--spec-hash",
        "not-this-spec",
        "--job",
        "moved-sync-1",
        "--shards",
        "1",
        "--index",
        "0",
    ];
    let out = crate::support::kopeo_env(h, &args, None, &[("KUBECONFIG", kubeconfig.to_str().unwrap())]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("changed since Job moved-sync-1"), "{}", out.stderr);
}
