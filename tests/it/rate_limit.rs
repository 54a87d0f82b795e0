//! Per-registry request budgets (RegistryCredential `spec.rateLimit`),
//! through `kopeo run`: against a stand-in registry that records when each
//! request came and how many blob downloads it served at once, the budget
//! bounds both, and a 429 with Retry-After pauses every request to the host.
//! Only upper bounds are asserted (a slow machine can only send less).

use crate::support::image::{Spec, build};
use crate::support::registry::{Mode, Registry};
use crate::support::standin::{Reply, fake_registry};
use crate::support::{insecure_credential, kopeo, kopeo_run, tempdir};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Seen {
    at: Mutex<Vec<(Instant, String)>>,
    in_flight: AtomicUsize,
    most: AtomicUsize,
    /// Answer the next blob GET with a 429.
    refuse_next: AtomicBool,
    refused_at: Mutex<Option<Instant>>,
}

/// A stand-in registry serving a 6-layer image as `app:1` (each blob GET
/// taking 150 ms), recording into `seen`; the image's digest.
fn stand_in(h: &std::path::Path, seen: &Arc<Seen>) -> (crate::support::standin::StandIn, String) {
    let built = build(
        &h.join("layout"),
        "app",
        &Spec {
            layers: vec![5_000; 6],
            ..Spec::default()
        },
    );
    let s = seen.clone();
    let fake = fake_registry(&h.join("layout"), "app", vec!["1"], move |req, _| {
        s.at.lock()
            .unwrap()
            .push((Instant::now(), format!("{} {}", req.method, req.path())));
        if !req.path().contains("/blobs/") || req.method != "GET" {
            return None;
        }
        if s.refuse_next.swap(false, Ordering::SeqCst) {
            *s.refused_at.lock().unwrap() = Some(Instant::now());
            let body = serde_json::json!({"errors": [{"code": "TOOMANYREQUESTS", "message": "slow down"}]});
            return Some(Reply::json(429, body).with("Retry-After", "2"));
        }
        let n = s.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        s.most.fetch_max(n, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(150));
        s.in_flight.fetch_sub(1, Ordering::SeqCst);
        None
    });
    (fake, built.digest)
}

#[test]
fn a_rate_limit_bounds_requests_and_downloads_and_a_429_pauses_the_host() {
    let home = tempdir();
    let h = home.path();
    let seen = Arc::new(Seen::default());
    let (fake, digest) = stand_in(h, &seen);
    let dst = Registry::start(Mode::Plain);
    // Without a budget the layers come in parallel.
    kopeo(
        h,
        &[
            "copy",
            "-q",
            "--src-tls-verify=false",
            &format!("docker://{}/app:1", fake.host),
            &format!("dir:{}", h.join("plain").display()),
        ],
    )
    .ok();
    assert!(
        seen.most.load(Ordering::SeqCst) > 2,
        "the baseline downloads in parallel"
    );
    seen.most.store(0, Ordering::SeqCst);
    seen.at.lock().unwrap().clear();
    seen.refuse_next.store(true, Ordering::SeqCst);
    let copy = format!(
        r#"apiVersion: kopeo.dev/v1alpha1
kind: ImageCopy
metadata: {{name: budgeted, namespace: default}}
spec:
  source: docker://{src}/app:1
  destination: docker://{dst}/app:1
  retry: {{times: 3, delay: 100ms}}
"#,
        src = fake.host,
        dst = dst.host
    );
    let budget = ", rateLimit: {requestsPerSecond: 4, concurrentBlobs: 2}";
    let creds = [
        insecure_credential("src", &fake.host, budget),
        insecure_credential("dst", &dst.host, ""),
    ];
    let out = kopeo_run(h, &[creds[0].clone(), creds[1].clone(), copy]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(dst.digest(h, "app:1"), digest);
    assert!(seen.most.load(Ordering::SeqCst) <= 2, "at most two downloads at once");
    let at = seen.at.lock().unwrap().clone();
    assert!(at.len() >= 8, "{at:?}");
    // A token bucket of 4 a second holding a second's worth: no second
    // sees more than 8.
    for (i, (t, _)) in at.iter().enumerate() {
        let within = at[i..]
            .iter()
            .take_while(|(u, _)| *u < *t + Duration::from_secs(1))
            .count();
        assert!(within <= 8, "{within} requests within a second from #{i}: {at:?}");
    }
    // The 429 paused the host: nothing was sent for the next 2 s but what
    // was already on its way.
    let refused = seen.refused_at.lock().unwrap().expect("the 429 was given");
    let during: Vec<_> = at
        .iter()
        .filter(|(t, _)| *t > refused + Duration::from_millis(300) && *t < refused + Duration::from_millis(1700))
        .collect();
    assert!(during.is_empty(), "requests during the pause: {during:?}");
}

#[test]
fn the_operators_flag_sets_a_budget_and_metrics_show_the_throttling() {
    use crate::support::cluster::*;
    let home = tempdir();
    let h = home.path();
    let seen = Arc::new(Seen::default());
    let (fake, digest) = stand_in(h, &seen);
    seen.refuse_next.store(true, Ordering::SeqCst);
    let dst = Registry::start(Mode::Plain);
    let server = kopeo_test_apiserver::ApiServer::start(Default::default());
    let kubeconfig = server.write_kubeconfig(&h.join("kubeconfig"));
    runtime().block_on(async {
        let client = cluster(&server).await;
        insecure_credentials(&server, &[&fake.host, &dst.host]).await;
        // The flag as the chart renders it from its values.
        let values = h.join("values.yaml");
        std::fs::write(&values, format!("registryRateLimits: [\"{}=3/1\"]\n", fake.host)).unwrap();
        let docs = helm_template(&["-f", values.to_str().unwrap()]);
        let pod = &docs.iter().find(|d| d["kind"] == "Deployment").expect("Deployment")["spec"]["template"]["spec"];
        let args = container(pod, "operator")["args"].as_array().unwrap().clone();
        let flag = args
            .iter()
            .filter_map(|a| a.as_str())
            .find(|a| a.starts_with("--registry-rate-limit="))
            .unwrap_or_else(|| panic!("no --registry-rate-limit in {args:?}"))
            .to_string();
        assert_eq!(flag, format!("--registry-rate-limit={}=3/1", fake.host));
        let operator = OperatorProcess::launch(
            h,
            &kubeconfig,
            "budget",
            &["--lease-namespace", "default", &flag],
            &[],
        );
        post(&server, "/apis/kopeo.dev/v1alpha1/namespaces/default/imagecopies",
            &serde_json::json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "ImageCopy", "metadata": {"name": "budgeted"},
                "spec": {"source": format!("docker://{}/app:1", fake.host), "destination": format!("docker://{}/app:1", dst.host),
                         "retry": {"times": 3, "delay": "100ms"}}})).await;
        let copies = kopeo_api(&client, "ImageCopy", "imagecopies");
        assert!(wait_ready(&copies, "budgeted", 600).await, "{:?}", copies.get("budgeted").await.map(|c| c.data));
        assert_eq!(seen.most.load(Ordering::SeqCst), 1, "one download at a time");
        let (_, metrics) = operator.get("/metrics").await;
        let value = |cause: &str| -> u64 {
            let key = format!("kopeo_registry_throttled_total{{host=\"{}\",cause=\"{cause}\"}} ", fake.host);
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(&key))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("no {key} in\n{metrics}"))
        };
        assert!(value("budget") > 0, "{metrics}");
        assert_eq!(value("retry-after"), 1, "{metrics}");
        operator.terminate();
    });
    assert_eq!(dst.digest(h, "app:1"), digest);
}

#[test]
fn pings_and_token_requests_spend_the_same_budget() {
    let home = tempdir();
    let h = home.path();
    let built = build(
        &h.join("layout"),
        "app",
        &Spec {
            layers: vec![3_000; 2],
            ..Spec::default()
        },
    );
    let at: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
    let seen = at.clone();
    let host = Arc::new(Mutex::new(String::new()));
    let realm_host = host.clone();
    let fake = fake_registry(&h.join("layout"), "app", vec!["1"], move |req, _| {
        seen.lock()
            .unwrap()
            .push((Instant::now(), format!("{} {}", req.method, req.path())));
        let challenge = format!(
            "Bearer realm=\"http://{}/token\",service=\"stand-in\"",
            realm_host.lock().unwrap()
        );
        if req.path() == "/token" {
            return Some(Reply::json(200, serde_json::json!({"token": "t0k", "expires_in": 300})));
        }
        if req.header("authorization") != Some("Bearer t0k") {
            let body = serde_json::json!({"errors": [{"code": "UNAUTHORIZED", "message": "token needed"}]});
            return Some(Reply::json(401, body).with("WWW-Authenticate", &challenge));
        }
        None
    });
    *host.lock().unwrap() = fake.host.clone();
    let dst = Registry::start(Mode::Plain);
    let copy = format!(
        "apiVersion: kopeo.dev/v1alpha1\nkind: ImageCopy\nmetadata: {{name: budgeted, namespace: default}}\n\
         spec: {{source: 'docker://{}/app:1', destination: 'docker://{}/app:1'}}\n",
        fake.host, dst.host
    );
    let creds = [
        insecure_credential("src", &fake.host, ", rateLimit: {requestsPerSecond: 1}"),
        insecure_credential("dst", &dst.host, ""),
    ];
    let out = kopeo_run(h, &[creds[0].clone(), creds[1].clone(), copy]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(dst.digest(h, "app:1"), built.digest);
    let at = at.lock().unwrap().clone();
    assert!(
        at.iter().any(|(_, r)| r == "GET /v2/") && at.iter().any(|(_, r)| r == "GET /token"),
        "{at:?}"
    );
    // One a second, a second's worth in a burst: no second sees more than
    // two, the ping and the token request included.
    for (i, (t, _)) in at.iter().enumerate() {
        let within = at[i..]
            .iter()
            .take_while(|(u, _)| *u < *t + Duration::from_secs(1))
            .count();
        assert!(within <= 2, "{within} requests within a second from #{i}: {at:?}");
    }
}
