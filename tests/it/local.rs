//! Local layouts: `oci:` and `dir:` writes are atomic, several images share
//! one layout, shared blob directories.

use crate::support::image::{Spec, build};
use crate::support::{kopeo, tempdir};

fn corrupt_layer(built: &crate::support::image::Built) -> String {
    let hex = built.layers[0].trim_start_matches("sha256:").to_string();
    let p = built.layout.join("blobs/sha256").join(&hex);
    let mut d = std::fs::read(&p).unwrap();
    d[0] ^= 1;
    std::fs::write(&p, d).unwrap();
    hex
}

#[test]
fn several_images_share_one_oci_layout() {
    let home = tempdir();
    let a = build(
        &home.path().join("src"),
        "a",
        &Spec {
            seed: 1,
            ..Spec::default()
        },
    );
    let b = build(
        &home.path().join("src"),
        "b",
        &Spec {
            seed: 2,
            ..Spec::default()
        },
    );
    let dst = home.path().join("dst");
    for (img, name) in [(&a, "one"), (&b, "two"), (&a, "three")] {
        kopeo(
            home.path(),
            &["copy", "-q", &img.reference(), &format!("oci:{}:{name}", dst.display())],
        )
        .ok();
    }
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(dst.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 3);
    let digest = |n: &str| {
        kopeo(
            home.path(),
            &[
                "inspect",
                "--format",
                "{{.Digest}}",
                &format!("oci:{}:{n}", dst.display()),
            ],
        )
        .ok()
        .stdout
        .trim()
        .to_string()
    };
    assert_eq!(digest("one"), a.digest);
    assert_eq!(digest("two"), b.digest);
    // Re-copying a name replaces its entry instead of adding one.
    kopeo(
        home.path(),
        &["copy", "-q", &b.reference(), &format!("oci:{}:one", dst.display())],
    )
    .ok();
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(dst.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 3);
    assert_eq!(digest("one"), b.digest);
    let ambiguous = kopeo(home.path(), &["inspect", &format!("oci:{}", dst.display())]);
    assert_eq!(ambiguous.code, 1);
    assert!(ambiguous.stderr.contains("more than one image"), "{}", ambiguous.stderr);
    let missing = kopeo(home.path(), &["inspect", &format!("oci:{}:nope", dst.display())]);
    assert_eq!(missing.code, 2, "image not found exits 2: {}", missing.stderr);
    assert!(
        missing.stderr.contains(r#"no descriptor found for reference \"nope\""#),
        "{}",
        missing.stderr
    );
}

#[test]
fn failed_copy_to_oci_leaves_no_new_image() {
    let home = tempdir();
    let good = build(
        &home.path().join("good"),
        "g",
        &Spec {
            seed: 3,
            ..Spec::default()
        },
    );
    let bad = build(
        &home.path().join("bad"),
        "b",
        &Spec {
            seed: 4,
            ..Spec::default()
        },
    );
    corrupt_layer(&bad);
    let dst = home.path().join("dst");
    kopeo(
        home.path(),
        &["copy", "-q", &good.reference(), &format!("oci:{}:kept", dst.display())],
    )
    .ok();
    let before = std::fs::read(dst.join("index.json")).unwrap();
    let mut files_before = walk(&dst);
    files_before.sort();
    let r = kopeo(
        home.path(),
        &["copy", "-q", &bad.reference(), &format!("oci:{}:broken", dst.display())],
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("does not match"),
        "the digest check failed it: {}",
        r.stderr
    );
    assert_eq!(
        std::fs::read(dst.join("index.json")).unwrap(),
        before,
        "index.json unchanged"
    );
    // Whatever the temporaries are called, none is left: a new file may only
    // be a finished blob of the failed image, named by its true digest.
    for p in walk(&dst).into_iter().filter(|p| !files_before.contains(p)) {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name == ".index.json.lock" {
            continue;
        }
        assert_eq!(
            p.parent(),
            Some(dst.join("blobs/sha256").as_path()),
            "left behind: {p:?}"
        );
        use sha2::Digest as _;
        let hex = hex::encode(sha2::Sha256::digest(std::fs::read(&p).unwrap()));
        assert_eq!(hex, name, "left behind, not a verified blob: {p:?}");
    }
}

#[test]
fn failed_copy_to_dir_leaves_the_old_image_untouched() {
    let home = tempdir();
    let good = build(
        &home.path().join("good"),
        "g",
        &Spec {
            seed: 5,
            ..Spec::default()
        },
    );
    let bad = build(
        &home.path().join("bad"),
        "b",
        &Spec {
            seed: 6,
            ..Spec::default()
        },
    );
    corrupt_layer(&bad);
    let fresh = home.path().join("fresh");
    assert_eq!(
        kopeo(
            home.path(),
            &["copy", "-q", &bad.reference(), &format!("dir:{}", fresh.display())]
        )
        .code,
        1
    );
    assert!(!fresh.exists(), "no directory appears for a failed copy");
    let dst = home.path().join("dst");
    kopeo(
        home.path(),
        &["copy", "-q", &good.reference(), &format!("dir:{}", dst.display())],
    )
    .ok();
    let manifest = std::fs::read(dst.join("manifest.json")).unwrap();
    assert_eq!(
        kopeo(
            home.path(),
            &["copy", "-q", &bad.reference(), &format!("dir:{}", dst.display())]
        )
        .code,
        1
    );
    assert_eq!(std::fs::read(dst.join("manifest.json")).unwrap(), manifest);
    assert_eq!(
        std::fs::read_to_string(dst.join("version")).unwrap(),
        "Directory Transport Version: 1.1\n"
    );
    let siblings: Vec<_> = std::fs::read_dir(home.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("kopeo"))
        .collect();
    assert!(siblings.is_empty(), "staging directories removed: {siblings:?}");
}

#[test]
fn dir_destination_refuses_a_non_image_directory() {
    let home = tempdir();
    let img = build(&home.path().join("src"), "x", &Spec::default());
    let dst = home.path().join("precious");
    std::fs::create_dir_all(&dst).unwrap();
    std::fs::write(dst.join("notes.txt"), "keep me").unwrap();
    let r = kopeo(
        home.path(),
        &["copy", "-q", &img.reference(), &format!("dir:{}", dst.display())],
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("refusing to overwrite"), "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(dst.join("notes.txt")).unwrap(), "keep me");
}

#[test]
fn shared_blob_dir_holds_the_blobs() {
    let home = tempdir();
    let img = build(&home.path().join("src"), "x", &Spec::default());
    let shared = home.path().join("shared");
    let dst = home.path().join("dst");
    kopeo(
        home.path(),
        &[
            "copy",
            "-q",
            "--dest-shared-blob-dir",
            shared.to_str().unwrap(),
            &img.reference(),
            &format!("oci:{}:x", dst.display()),
        ],
    )
    .ok();
    for l in &img.layers {
        assert!(shared.join("sha256").join(l.trim_start_matches("sha256:")).exists());
    }
    assert!(
        !dst.join("blobs/sha256")
            .join(img.layers[0].trim_start_matches("sha256:"))
            .exists()
    );
    let d = kopeo(
        home.path(),
        &[
            "inspect",
            "--shared-blob-dir",
            shared.to_str().unwrap(),
            "--format",
            "{{.Digest}}",
            &format!("oci:{}:x", dst.display()),
        ],
    )
    .ok();
    assert_eq!(d.stdout.trim(), img.digest);
}

#[test]
fn example_image_copies_and_inspects() {
    let home = tempdir();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/hello");
    let dst = home.path().join("out");
    kopeo(
        home.path(),
        &[
            "copy",
            "--all",
            &format!("oci:{example}:1.0"),
            &format!("oci:{}:hello", dst.display()),
        ],
    )
    .ok();
    let out = kopeo(
        home.path(),
        &[
            "--override-arch",
            "arm64",
            "inspect",
            &format!("oci:{}:hello", dst.display()),
        ],
    )
    .ok();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["Architecture"], "arm64");
    assert_eq!(v["Labels"]["org.opencontainers.image.title"], "hello");
    assert_eq!(v["Layers"].as_array().unwrap().len(), 2);
}

fn walk(p: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let path = e.path();
            if path.is_dir() {
                out.extend(walk(&path));
            }
            out.push(path);
        }
    }
    out
}

#[test]
fn layers_of_a_few_bytes_copy_to_every_local_destination() {
    // Regression: a layer shorter than the compression sniff (6 bytes)
    // ended its stream early and the copy panicked.
    let home = tempdir();
    let img = build(
        &home.path().join("src"),
        "tiny",
        &Spec {
            layers: vec![3, 1],
            uncompressed: true,
            ..Spec::default()
        },
    );
    let from = format!("oci:{}:tiny", img.layout.display());
    for to in ["oci:{}/oci:x", "dir:{}/dir", "oci-archive:{}/a.tar"] {
        let to = to.replace("{}", &home.path().display().to_string());
        let r = kopeo(home.path(), &["copy", &from, &to]);
        assert!(!r.stderr.contains("panicked"), "{to}: {}", r.stderr);
        assert_eq!(r.code, 0, "{to}: {}", r.stderr);
        let back = home.path().join("back");
        let _ = std::fs::remove_dir_all(&back);
        let r = kopeo(home.path(), &["copy", &to, &format!("dir:{}", back.display())]);
        assert_eq!(r.code, 0, "{to} read back: {}", r.stderr);
    }
}
