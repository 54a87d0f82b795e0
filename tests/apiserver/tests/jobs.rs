//! Jobs and Pods: the job controller and the test node running pods as
//! local processes (needs root for the pods' mount namespaces).

use kopeo_test_apiserver::node::NodeOptions;
use kopeo_test_apiserver::{ApiServer, Options};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::new()
}

fn get(s: &ApiServer, path: &str) -> Value {
    client()
        .get(format!("{}{path}", s.url()))
        .send()
        .unwrap()
        .json()
        .unwrap()
}

fn send(s: &ApiServer, method: reqwest::Method, path: &str, ctype: &str, body: Value) -> (u16, Value) {
    let r = client()
        .request(method, format!("{}{path}", s.url()))
        .header("content-type", ctype)
        .body(body.to_string())
        .send()
        .unwrap();
    let code = r.status().as_u16();
    (code, r.json().unwrap_or(Value::Null))
}

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn condition(job: &Value, t: &str) -> Option<String> {
    job["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == t)
        .map(|c| c["status"].as_str().unwrap_or("").to_string())
}

fn indexed_job(name: &str, script: &str, completions: u32, parallelism: u32, marks: &std::path::Path) -> Value {
    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"completionMode": "Indexed", "completions": completions, "parallelism": parallelism,
            "backoffLimitPerIndex": 1,
            "template": {"spec": {"restartPolicy": "Never",
                "volumes": [{"name": "marks", "hostPath": {"path": marks.to_str().unwrap()}},
                            {"name": "conf", "configMap": {"name": "conf"}}],
                "containers": [{"name": "work", "image": "shell:1",
                    "env": [{"name": "WHO", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                            {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "conf", "key": "greeting"}}}],
                    "args": ["-c", script],
                    "volumeMounts": [{"name": "marks", "mountPath": "/run/marks"},
                                     {"name": "conf", "mountPath": "/run/conf", "readOnly": true}]}]}}}})
}

fn node(s: &ApiServer, dir: &std::path::Path) -> kopeo_test_apiserver::node::Node {
    s.start_node(NodeOptions {
        name: "node-1".into(),
        dir: dir.to_path_buf(),
        images: vec![("shell".into(), "/bin/sh".into())],
        api: None,
    })
}

#[test]
fn an_indexed_job_runs_every_index_and_retries_a_failed_one_within_its_limit() {
    let s = ApiServer::start(Options {
        controllers: true,
        ..Default::default()
    });
    let tmp = std::env::temp_dir().join(format!("kopeo-jobs-{}", std::process::id()));
    let marks = tmp.join("marks");
    std::fs::create_dir_all(&marks).unwrap();
    let _node = node(&s, &tmp.join("node"));
    let (code, _) = send(
        &s,
        reqwest::Method::POST,
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "conf"}, "data": {"greeting": "hello", "file": "in a file"}}),
    );
    assert_eq!(code, 201);
    // Index 1 fails its first try; every index records what it saw.
    let script = "set -e; f=/run/marks/$JOB_COMPLETION_INDEX; \
        if [ $JOB_COMPLETION_INDEX = 1 ] && [ ! -e $f.tried ]; then touch $f.tried; exit 3; fi; \
        echo \"$GREETING $(cat /run/conf/file) $WHO $(hostname)\" > $f; ! touch /run/conf/x 2>/dev/null";
    let (code, body) = send(
        &s,
        reqwest::Method::POST,
        "/apis/batch/v1/namespaces/default/jobs",
        "application/json",
        indexed_job("work", script, 3, 2, &marks),
    );
    assert_eq!(code, 201, "{body}");
    assert_eq!(
        body["spec"]["backoffLimit"],
        i32::MAX as i64,
        "defaulted as with backoffLimitPerIndex"
    );
    let uid = body["metadata"]["uid"].as_str().unwrap().to_string();
    assert_eq!(
        body["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
        uid.as_str()
    );

    // At most `parallelism` pods run at once.
    let mut most = 0;
    wait_for("the Job to complete", 60, || {
        let pods = get(&s, "/api/v1/namespaces/default/pods");
        let running = pods["items"]
            .as_array()
            .unwrap_or_else(|| panic!("{pods}"))
            .iter()
            .filter(|p| p["status"]["phase"] == "Running")
            .count();
        most = most.max(running);
        condition(&get(&s, "/apis/batch/v1/namespaces/default/jobs/work"), "Complete").as_deref() == Some("True")
    });
    assert!(most <= 2, "{most} pods ran at once");
    let job = get(&s, "/apis/batch/v1/namespaces/default/jobs/work");
    assert_eq!(job["status"]["succeeded"], 3, "{job}");
    assert_eq!(job["status"]["failed"], 1, "{job}");
    assert_eq!(job["status"]["completedIndexes"], "0-2");
    assert_eq!(job["status"]["failedIndexes"], "");
    assert_eq!(condition(&job, "SuccessCriteriaMet").as_deref(), Some("True"));
    for i in 0..3 {
        let seen = std::fs::read_to_string(marks.join(i.to_string())).unwrap();
        assert!(seen.starts_with(&format!("hello in a file work-{i}-")), "{seen}");
        assert!(
            seen.trim_end().ends_with(&format!(" work-{i}")),
            "the hostname is JOB-INDEX: {seen}"
        );
    }
    // The pods: counted (no tracking finalizer left), the retry carrying the failure count.
    let pods = get(
        &s,
        "/api/v1/namespaces/default/pods?labelSelector=batch.kubernetes.io/job-completion-index%3D1",
    );
    let pods = pods["items"].as_array().unwrap();
    assert_eq!(pods.len(), 2);
    assert!(
        pods.iter().all(|p| p["metadata"].get("finalizers").is_none()),
        "{pods:?}"
    );
    let failed = pods.iter().find(|p| p["status"]["phase"] == "Failed").unwrap();
    assert_eq!(
        failed["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"],
        3
    );
    let retry = pods.iter().find(|p| p["status"]["phase"] == "Succeeded").unwrap();
    assert_eq!(
        retry["metadata"]["annotations"]["batch.kubernetes.io/job-index-failure-count"],
        "1"
    );

    // Deleting the Job collects its pods.
    let (code, _) = send(
        &s,
        reqwest::Method::DELETE,
        "/apis/batch/v1/namespaces/default/jobs/work",
        "application/json",
        json!({}),
    );
    assert_eq!(code, 200);
    wait_for("the pods to go", 20, || {
        get(&s, "/api/v1/namespaces/default/pods")["items"]
            .as_array()
            .unwrap()
            .is_empty()
    });
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn suspending_a_job_stops_its_pods_and_an_index_past_its_limit_fails_the_job() {
    let s = ApiServer::start(Options {
        controllers: true,
        ..Default::default()
    });
    let tmp = std::env::temp_dir().join(format!("kopeo-jobs-s-{}", std::process::id()));
    let marks = tmp.join("marks");
    std::fs::create_dir_all(&marks).unwrap();
    let node = node(&s, &tmp.join("node"));
    send(
        &s,
        reqwest::Method::POST,
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "conf"}, "data": {"greeting": "hi", "file": "f"}}),
    );
    let (code, _) = send(
        &s,
        reqwest::Method::POST,
        "/apis/batch/v1/namespaces/default/jobs",
        "application/json",
        indexed_job(
            "sleepy",
            "echo started; trap 'echo got TERM > /run/marks/term; exit 143' TERM; sleep 60 & wait",
            1,
            1,
            &marks,
        ),
    );
    assert_eq!(code, 201);
    let mut pod = String::new();
    wait_for("the pod to run", 20, || {
        let pods = get(&s, "/api/v1/namespaces/default/pods");
        match pods["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["status"]["phase"] == "Running")
        {
            Some(p) => {
                pod = p["metadata"]["name"].as_str().unwrap().to_string();
                true
            }
            None => false,
        }
    });
    assert!(node.pid("default", &pod).is_some());
    // Stopped once its TERM trap is set.
    let log = node.log_path("default", &pod, "work");
    wait_for("the script to start", 20, || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("started"))
    });
    let (code, _) = send(
        &s,
        reqwest::Method::PATCH,
        "/apis/batch/v1/namespaces/default/jobs/sleepy",
        "application/merge-patch+json",
        json!({"spec": {"suspend": true}}),
    );
    assert_eq!(code, 200);
    wait_for("the Job to be suspended with no pod running", 20, || {
        let job = get(&s, "/apis/batch/v1/namespaces/default/jobs/sleepy");
        condition(&job, "Suspended").as_deref() == Some("True")
            && job["status"].get("active").is_none()
            && job["status"]["terminating"] == 0
    });
    assert_eq!(
        std::fs::read_to_string(marks.join("term")).unwrap().trim(),
        "got TERM",
        "SIGTERM first"
    );
    assert!(node.pid("default", &pod).is_none());

    // An index that fails more often than backoffLimitPerIndex fails the Job.
    send(
        &s,
        reqwest::Method::POST,
        "/apis/batch/v1/namespaces/default/jobs",
        "application/json",
        indexed_job("doomed", "exit 1", 1, 1, &marks),
    );
    wait_for("the Job to fail", 40, || {
        condition(&get(&s, "/apis/batch/v1/namespaces/default/jobs/doomed"), "Failed").as_deref() == Some("True")
    });
    let job = get(&s, "/apis/batch/v1/namespaces/default/jobs/doomed");
    assert_eq!(job["status"]["failed"], 2, "{job}");
    assert_eq!(job["status"]["failedIndexes"], "0");
    let failed = job["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Failed")
        .cloned()
        .unwrap();
    assert_eq!(failed["reason"], "FailedIndexes");
    // A Job a real server refuses (with parallelism set, completions are not defaulted).
    let (code, body) = send(
        &s,
        reqwest::Method::POST,
        "/apis/batch/v1/namespaces/default/jobs",
        "application/json",
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "bad"},
            "spec": {"completionMode": "Indexed", "parallelism": 2, "template": {"spec": {"containers": [{"name": "c", "image": "shell"}]}}}}),
    );
    assert_eq!(code, 422);
    let msg = body["message"].as_str().unwrap();
    assert!(msg.contains("spec.completions: Required value"), "{msg}");
    let _ = std::fs::remove_dir_all(&tmp);
}
