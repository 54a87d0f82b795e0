//! Each kind of failure is retried by exactly one layer: a registry that
//! keeps failing costs `--retry-times` + 1 attempts, not their square.

use crate::support::image::{Spec, build};
use crate::support::standin::{Reply, StandIn, fake_registry};
use crate::support::{kopeo, tempdir};
use std::collections::HashMap;

/// How often each path was requested with `method`.
fn counts(server: &StandIn, method: &str, needle: &str) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for r in server
        .seen()
        .iter()
        .filter(|r| r.method == method && r.path().contains(needle))
    {
        *out.entry(r.path().to_string()).or_insert(0) += 1;
    }
    out
}

#[test]
fn a_source_that_always_fails_is_asked_retry_times_plus_one_times() {
    let home = tempdir();
    let img = build(&home.path().join("src"), "x", &Spec::default());
    for retries in [0usize, 2] {
        let blobs = fake_registry(&img.layout, "app", vec!["1"], |req, _| {
            req.path().contains("/blobs/").then(|| Reply::bytes(503, "unavailable"))
        });
        let r = kopeo(
            home.path(),
            &[
                "copy",
                "-q",
                "--src-tls-verify=false",
                "--retry-times",
                &retries.to_string(),
                "--retry-delay",
                "1ms",
                &format!("docker://{}/app:1", blobs.host),
                &format!("oci:{}/out{retries}:x", home.path().display()),
            ],
        );
        assert_eq!(r.code, 1);
        assert!(r.stderr.contains("503"), "{}", r.stderr);
        let per_blob = counts(&blobs, "GET", "/blobs/");
        assert!(!per_blob.is_empty());
        assert_eq!(
            per_blob.values().max(),
            Some(&(retries + 1)),
            "attempts per blob: {per_blob:?}"
        );
        let manifests = fake_registry(&img.layout, "app", vec!["1"], |req, _| {
            req.path()
                .contains("/manifests/")
                .then(|| Reply::bytes(503, "unavailable"))
        });
        let r = kopeo(
            home.path(),
            &[
                "inspect",
                "--tls-verify=false",
                "--retry-times",
                &retries.to_string(),
                "--retry-delay",
                "1ms",
                &format!("docker://{}/app:1", manifests.host),
            ],
        );
        assert_eq!(r.code, 1);
        assert_eq!(
            counts(&manifests, "GET", "/manifests/").values().sum::<usize>(),
            retries + 1
        );
    }
}

#[test]
fn a_destination_that_always_refuses_uploads_is_sent_each_blob_retry_times_plus_one_times() {
    let home = tempdir();
    let img = build(&home.path().join("src"), "x", &Spec::default());
    let dest = StandIn::start(|req, _| match (req.method.as_str(), req.path()) {
        (_, "/v2/") => Reply::json(200, serde_json::json!({})),
        ("HEAD", _) => Reply::bytes(404, ""),
        ("POST", p) if p.ends_with("/blobs/uploads/") => {
            Reply::bytes(202, "").with("Location", "/v2/app/blobs/uploads/session")
        }
        ("PUT", p) if p.contains("/blobs/uploads/") => Reply::bytes(503, "storage full, try later"),
        _ => Reply::json(
            404,
            serde_json::json!({"errors": [{"code": "UNKNOWN", "message": "no"}]}),
        ),
    });
    let r = kopeo(
        home.path(),
        &[
            "copy",
            "-q",
            "--dest-tls-verify=false",
            "--retry-times",
            "2",
            "--retry-delay",
            "1ms",
            "--image-parallel-copies",
            "1",
            &img.reference(),
            &format!("docker://{}/app:1", dest.host),
        ],
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("storage full, try later"), "{}", r.stderr);
    let puts: Vec<String> = dest
        .seen()
        .iter()
        .filter(|q| q.method == "PUT")
        .map(|q| q.target.split("digest=").nth(1).unwrap_or("").to_string())
        .collect();
    // One blob at a time: the first is sent three times, then the copy stops.
    assert_eq!(puts.len(), 3, "{puts:?}");
    assert!(puts.iter().all(|d| *d == puts[0]), "{puts:?}");
}
