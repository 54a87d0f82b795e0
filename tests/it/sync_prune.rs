//! `sync --prune` and ImageSync `spec.prune`: a 1:1 mirror loses the tags
//! its source lost, and nothing outside the synced scope — other tags,
//! tags naming a manifest another tag still needs, another suffix — is
//! touched. Judged by skopeo's tag lists of the real registry.

use crate::registry_copy::seed;
use crate::support::image::Spec;
use crate::support::registry::{Mode, Registry};
use crate::support::{insecure_credential, kopeo, kopeo_run, tempdir};

fn spec(seed: u64) -> Spec {
    Spec {
        layers: vec![20_000],
        seed,
        ..Spec::default()
    }
}

fn copy(home: &std::path::Path, from: &str, to: &str) {
    kopeo(
        home,
        &[
            "copy",
            "-q",
            "--insecure-policy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            from,
            to,
        ],
    )
    .ok();
}

#[test]
fn prune_deletes_only_the_tags_the_source_lost_within_the_scope() {
    let home = tempdir();
    let h = home.path();
    let (src, dst) = (Registry::start(Mode::Plain), Registry::start(Mode::Plain));
    for (i, t) in ["app:1.0", "app:2.0", "app:dev"].iter().enumerate() {
        seed(&src, h, t, &spec(i as u64 + 1));
    }
    let yaml = h.join("sync.yaml");
    std::fs::write(
        &yaml,
        format!(
            "{}:\n  tls-verify: false\n  images-by-tag-regex:\n    app: ^[0-9]\n",
            src.host
        ),
    )
    .unwrap();
    let dest = format!("{}/mirror", dst.host);
    let sync = |extra: &[&str]| {
        let mut a = vec!["sync", "--src", "yaml", "--dest", "docker", "--dest-tls-verify=false"];
        a.extend_from_slice(extra);
        a.extend_from_slice(&[yaml.to_str().unwrap(), &dest]);
        kopeo(h, &a)
    };
    sync(&[]).ok();
    assert_eq!(dst.tags(h, "mirror/app"), ["1.0", "2.0"]);
    // At the mirror: a tag the source never had (in scope), one outside the
    // scope (the regex does not take it), one in scope naming the manifest
    // of the tag outside it, and one naming 2.0's manifest.
    seed(&dst, h, "mirror/app:0.9", &spec(4));
    seed(&dst, h, "mirror/app:keep-me", &spec(5));
    copy(h, &dst.image("mirror/app:keep-me"), &dst.image("mirror/app:0.8"));
    copy(h, &dst.image("mirror/app:2.0"), &dst.image("mirror/app:0.7"));
    // A list outside the scope, and an in-scope tag naming one of its images.
    seed(
        &dst,
        h,
        "mirror/app:keep-list",
        &Spec {
            archs: vec!["amd64", "arm64"],
            ..spec(6)
        },
    );
    let index: serde_json::Value = serde_json::from_str(&dst.raw_manifest(h, "mirror/app:keep-list")).unwrap();
    let member = index["manifests"][0]["digest"].as_str().unwrap().to_string();
    copy(
        h,
        &format!("{}@{member}", dst.image("mirror/app")),
        &dst.image("mirror/app:0.6"),
    );
    // The source loses 1.0.
    kopeo(h, &["delete", "--tls-verify=false", &src.image("app:1.0")]).ok();

    let planned = sync(&["--prune", "--dry-run"]).ok();
    for t in ["0.9", "1.0"] {
        let line = format!("Would have pruned \\\"docker://{}/mirror/app:{t}\\\"", dst.host);
        assert!(planned.stderr.contains(&line), "{line} in {}", planned.stderr);
    }
    assert!(
        planned.stderr.contains("also tagged \\\"keep-me\\\""),
        "{}",
        planned.stderr
    );
    assert!(planned.stderr.contains("also tagged \\\"2.0\\\""), "{}", planned.stderr);
    assert!(
        planned.stderr.contains("the list tagged \\\"keep-list\\\""),
        "{}",
        planned.stderr
    );
    assert_eq!(
        dst.tags(h, "mirror/app"),
        ["0.6", "0.7", "0.8", "0.9", "1.0", "2.0", "keep-list", "keep-me"],
        "a dry run deletes nothing"
    );

    let out = sync(&["--prune"]).ok();
    assert!(out.stderr.contains("Pruned"), "{}", out.stderr);
    assert_eq!(
        dst.tags(h, "mirror/app"),
        ["0.6", "0.7", "0.8", "2.0", "keep-list", "keep-me"],
        "{}",
        out.stderr
    );
    // Without --prune a sync deletes nothing (the source lost 0.7 and 0.8 too).
    sync(&[]).ok();
    assert_eq!(
        dst.tags(h, "mirror/app"),
        ["0.6", "0.7", "0.8", "2.0", "keep-list", "keep-me"]
    );

    // Into directories: the lost tag's image goes, others stay.
    let dir = h.join("dirs");
    let sync_dir = |extra: &[&str]| {
        let mut a = vec!["sync", "--src", "docker", "--dest", "dir", "--src-tls-verify=false"];
        a.extend_from_slice(extra);
        let repo = format!("{}/app", src.host);
        let d = dir.to_str().unwrap().to_string();
        a.extend_from_slice(&[&repo, &d]);
        kopeo(h, &a).ok()
    };
    sync_dir(&[]);
    copy(
        h,
        &src.image("app:2.0"),
        &format!("dir:{}", dir.join("app:0.1").display()),
    );
    copy(
        h,
        &src.image("app:2.0"),
        &format!("dir:{}", dir.join("other:0.1").display()),
    );
    std::fs::create_dir_all(dir.join("app:stray")).unwrap();
    sync_dir(&["--prune"]);
    let mut left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    // app:stray is no image (no manifest.json): not the sync's, left alone.
    assert_eq!(left, ["app:2.0", "app:dev", "app:stray", "other:0.1"]);
}

#[test]
fn an_imagesync_with_prune_counts_what_it_pruned() {
    let home = tempdir();
    let h = home.path();
    let (src, dst) = (Registry::start(Mode::Plain), Registry::start(Mode::Plain));
    seed(&src, h, "app:1", &spec(1));
    seed(&dst, h, "mirror/app:0", &spec(2));
    seed(&dst, h, "dry/app:0", &spec(2));
    let syncs = format!(
        r#"apiVersion: kopeo.dev/v1alpha1
kind: ImageSync
metadata: {{name: mirror, namespace: default}}
spec:
  registry: "{src}"
  images: {{app: []}}
  destination: "{dst}/mirror"
  prune: true
---
apiVersion: kopeo.dev/v1alpha1
kind: ImageSync
metadata: {{name: planned, namespace: default}}
spec:
  registry: "{src}"
  images: {{app: []}}
  destination: "{dst}/dry"
  prune: true
  dryRun: true
"#,
        src = src.host,
        dst = dst.host
    );
    let creds = [
        insecure_credential("src", &src.host, ""),
        insecure_credential("dst", &dst.host, ""),
    ];
    let out = kopeo_run(h, &[creds[0].clone(), creds[1].clone(), syncs]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(dst.tags(h, "mirror/app"), ["1"]);
    assert!(out.stdout.contains("  pruned: 1\n"), "{}", out.stdout);
    assert!(
        out.stdout.contains("1 copied, 0 already present, 1 pruned"),
        "{}",
        out.stdout
    );
    // The dry run lists the prune in its plan and deletes nothing.
    assert!(
        out.stdout.contains("1 images would be copied, 1 tags would be pruned"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(&format!("prune docker://{}/dry/app:0", dst.host)),
        "{}",
        out.stdout
    );
    assert_eq!(dst.tags(h, "dry/app"), ["0"]);
}
