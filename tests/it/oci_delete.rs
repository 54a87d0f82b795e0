//! `delete oci:LAYOUT:REF`, as current containers/image deletes: the entry
//! leaves index.json and its blobs go unless another image uses them.
//! skopeo 1.9.3 cannot delete from a layout, so the oracles are skopeo
//! reading what remains and an independent walk of the layout.

use crate::support::image::{Spec, build, ref_names as names};
use crate::support::{kopeo, skopeo, tempdir};
use std::collections::BTreeSet;
use std::path::Path;

/// Every blob file of the layout.
fn blob_files(layout: &Path) -> BTreeSet<String> {
    std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .flatten()
        .map(|e| format!("sha256:{}", e.file_name().to_string_lossy()))
        .filter(|n| !n.contains(".kopeo-"))
        .collect()
}

/// The blobs index.json reaches (manifests, instances, configs, layers).
fn reachable(layout: &Path) -> BTreeSet<String> {
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let mut todo: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap().to_string())
        .collect();
    let mut seen = BTreeSet::new();
    while let Some(d) = todo.pop() {
        if !seen.insert(d.clone()) {
            continue;
        }
        let bytes = std::fs::read(layout.join("blobs/sha256").join(&d[7..])).unwrap_or_default();
        let Ok(m) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            continue;
        };
        for key in ["manifests", "layers"] {
            for child in m[key].as_array().into_iter().flatten() {
                todo.push(child["digest"].as_str().unwrap().to_string());
            }
        }
        if let Some(c) = m["config"]["digest"].as_str() {
            todo.push(c.to_string());
        }
    }
    seen
}

#[test]
fn deleting_from_a_layout_removes_the_entry_and_only_the_blobs_no_other_image_uses() {
    let home = tempdir();
    let layout = home.path().join("layout");
    // Three images sharing a base layer: two single, one multi-platform.
    for (name, seed, archs) in [
        ("a", 1, vec!["amd64"]),
        ("b", 2, vec!["amd64"]),
        ("c", 3, vec!["amd64", "arm64"]),
    ] {
        build(
            &layout,
            name,
            &Spec {
                seed,
                base_seed: Some(5),
                archs,
                ..Spec::default()
            },
        );
    }
    assert_eq!(blob_files(&layout), reachable(&layout));
    let before = blob_files(&layout);
    let target = |n: &str| format!("oci:{}:{n}", layout.display());
    kopeo(home.path(), &["delete", &target("a")]).ok();
    assert_eq!(names(&layout), ["b", "c"]);
    let after = blob_files(&layout);
    assert_eq!(after, reachable(&layout), "exactly what the remaining images use stays");
    assert!(after.len() < before.len(), "a's own blobs went");
    // What is left reads whole, by skopeo and by a copy that checks every digest.
    for n in ["b", "c"] {
        let r = skopeo(home.path(), &["inspect", "--raw", &target(n)]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        kopeo(
            home.path(),
            &[
                "copy",
                "-q",
                "--all",
                &target(n),
                &format!("oci:{}/check:{n}", home.path().display()),
            ],
        )
        .ok();
    }
    // A list goes with its instances; then the last image, and nothing is left.
    kopeo(home.path(), &["delete", &target("c")]).ok();
    assert_eq!(names(&layout), ["b"]);
    assert_eq!(blob_files(&layout), reachable(&layout));
    kopeo(home.path(), &["delete", &target("b")]).ok();
    assert!(names(&layout).is_empty());
    assert!(blob_files(&layout).is_empty(), "no blob outlives the last image");
    // A reference that is not there: skopeo's words, its exit code for a missing image.
    let r = kopeo(home.path(), &["delete", &target("nope")]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("no descriptor found for reference \\\"nope\\\""),
        "{}",
        r.stderr
    );
    let r = kopeo(
        home.path(),
        &["delete", &format!("oci:{}/none:x", home.path().display())],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
}
