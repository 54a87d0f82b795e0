//! Flags scripts use, each checked by its effect on what is written or
//! sent, read back by skopeo or straight from the files.

use crate::support::image::{Spec, build};
use crate::support::registry::{Mode, Registry};
use crate::support::standin::fake_registry;
use crate::support::{kopeo, skopeo, tempdir};
use sha2::{Digest as _, Sha256};
use std::path::Path;

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// The top manifest of `oci:LAYOUT:TAG` read from disk, and its digest.
fn oci_top(layout: &Path) -> (serde_json::Value, String) {
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let digest = index["manifests"][0]["digest"].as_str().unwrap().to_string();
    let raw = std::fs::read(layout.join("blobs/sha256").join(digest.trim_start_matches("sha256:"))).unwrap();
    assert_eq!(sha256(&raw), digest);
    (serde_json::from_slice(&raw).unwrap(), digest)
}

/// The source list's instance digest for `arch`/`variant`.
fn instance(built: &crate::support::image::Built, arch: &str, variant: Option<&str>) -> String {
    let (list, _) = oci_top(&built.layout);
    list["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["architecture"] == arch && m["platform"]["variant"].as_str() == variant)
        .map(|m| m["digest"].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("no {arch} {variant:?} in {list}"))
}

#[test]
fn override_os_arch_and_variant_choose_the_instance_a_user_asks_for() {
    let home = tempdir();
    let built = build(
        &home.path().join("src"),
        "x",
        &Spec {
            archs: vec!["amd64", "arm/v6", "arm/v7"],
            ..Spec::default()
        },
    );
    let to = home.path().join("out");
    kopeo(
        home.path(),
        &[
            "copy",
            "-q",
            "--override-os",
            "linux",
            "--override-arch",
            "arm",
            "--override-variant",
            "v7",
            &built.reference(),
            &format!("oci:{}:x", to.display()),
        ],
    )
    .ok();
    assert_eq!(oci_top(&to).1, instance(&built, "arm", Some("v7")));
    let r = kopeo(
        home.path(),
        &[
            "copy",
            "--override-os",
            "windows",
            &built.reference(),
            &format!("oci:{}/none:x", home.path().display()),
        ],
    );
    assert_eq!(r.code, 1);
    // logrus quotes the message: `\"` stands for `"`, as in skopeo's output.
    assert!(
        r.stderr
            .replace("\\\"", "\"")
            .contains(r#"no image found in image index for architecture "amd64", variant "", OS "windows""#),
        "{}",
        r.stderr
    );
}

#[test]
fn multi_arch_all_system_and_index_only_write_what_skopeo_writes() {
    let home = tempdir();
    let reg = Registry::start(Mode::Plain);
    let built = build(
        &home.path().join("src"),
        "x",
        &Spec {
            archs: vec!["amd64", "arm64"],
            ..Spec::default()
        },
    );
    let copy = |mode: &str, tag: &str| {
        kopeo(
            home.path(),
            &[
                "copy",
                "-q",
                "--multi-arch",
                mode,
                "--dest-tls-verify=false",
                &built.reference(),
                &reg.image(&format!("app:{tag}")),
            ],
        )
        .ok();
    };
    copy("all", "all");
    assert_eq!(reg.digest(home.path(), "app:all"), built.digest);
    copy("system", "system");
    assert_eq!(reg.digest(home.path(), "app:system"), instance(&built, "amd64", None));
    // index-only: the list alone; its instances are in the repository already.
    let puts = reg.requests("PUT", "/v2/app/manifests/");
    copy("index-only", "index");
    assert_eq!(reg.digest(home.path(), "app:index"), built.digest);
    assert_eq!(
        reg.requests("PUT", "/v2/app/manifests/") - puts,
        1,
        "one manifest written: the list"
    );
}

#[test]
fn command_timeout_stops_a_slow_copy_and_commits_nothing() {
    let home = tempdir();
    let (src, dst) = (Registry::start(Mode::Plain), Registry::start(Mode::Plain));
    crate::registry_copy::seed(
        &src,
        home.path(),
        "big:1",
        &Spec {
            layers: vec![3_000_000],
            ..Spec::default()
        },
    );
    let slow = crate::support::proxy::slow(&src.host, std::time::Duration::from_millis(10));
    let started = std::time::Instant::now();
    let r = kopeo(
        home.path(),
        &[
            "copy",
            "--command-timeout",
            "500ms",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &format!("docker://{slow}/big:1"),
            &dst.image("big:1"),
        ],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("timed out after 500ms"), "{}", r.stderr);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "stopped, not finished"
    );
    assert!(dst.lacks(home.path(), "big:1"), "nothing committed");
}

#[test]
fn image_parallel_copies_bounds_the_layers_in_flight() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let home = tempdir();
    let img = build(
        &home.path().join("src"),
        "x",
        &Spec {
            layers: vec![30_000, 30_000, 30_000, 30_000],
            ..Spec::default()
        },
    );
    for (n, want) in [(1usize, 1usize), (4, 4)] {
        let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (n_, m_) = (now.clone(), most.clone());
        let layers = img.layers.clone();
        let reg = fake_registry(&img.layout, "app", vec!["1"], move |req, _| {
            // Hold each layer download a while, counting how many overlap.
            if req.method == "GET" && layers.iter().any(|l| req.path().ends_with(l.as_str())) {
                let in_flight = n_.fetch_add(1, Ordering::SeqCst) + 1;
                m_.fetch_max(in_flight, Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(300));
                n_.fetch_sub(1, Ordering::SeqCst);
            }
            None
        });
        kopeo(
            home.path(),
            &[
                "copy",
                "-q",
                "--image-parallel-copies",
                &n.to_string(),
                "--src-tls-verify=false",
                &format!("docker://{}/app:1", reg.host),
                &format!("oci:{}/out-{n}:x", home.path().display()),
            ],
        )
        .ok();
        assert_eq!(most.load(Ordering::SeqCst), want, "--image-parallel-copies {n}");
    }
}

#[test]
fn dest_compress_level_sets_how_hard_layers_are_compressed() {
    use std::io::Read as _;
    let home = tempdir();
    let size = 2_000_000;
    let built = build(
        &home.path().join("src"),
        "x",
        &Spec {
            layers: vec![size],
            uncompressed: true,
            compressible: true,
            ..Spec::default()
        },
    );
    let mut sizes = vec![];
    for (format, level) in [("gzip", "0"), ("gzip", "9"), ("zstd", "1"), ("zstd", "19")] {
        let out = home.path().join(format!("{format}-{level}"));
        kopeo(
            home.path(),
            &[
                "copy",
                "-q",
                "--dest-compress",
                "--dest-compress-format",
                format,
                "--dest-compress-level",
                level,
                &built.reference(),
                &format!("oci:{}:x", out.display()),
            ],
        )
        .ok();
        let (manifest, _) = oci_top(&out);
        let layer = &manifest["layers"][0];
        let bytes = std::fs::read(
            out.join("blobs/sha256")
                .join(layer["digest"].as_str().unwrap().trim_start_matches("sha256:")),
        )
        .unwrap();
        assert_eq!(sha256(&bytes), layer["digest"].as_str().unwrap());
        let mut plain = vec![];
        match format {
            "gzip" => flate2::read::GzDecoder::new(&bytes[..])
                .read_to_end(&mut plain)
                .unwrap(),
            _ => zstd::stream::read::Decoder::new(&bytes[..])
                .unwrap()
                .read_to_end(&mut plain)
                .unwrap(),
        };
        assert_eq!(sha256(&plain), built.layers[0], "{format} {level} keeps the contents");
        sizes.push(bytes.len());
    }
    assert!(sizes[0] >= size, "gzip level 0 stores: {sizes:?}");
    assert!(sizes[1] * 2 < size, "gzip level 9 compresses: {sizes:?}");
    assert!(sizes[3] < sizes[2], "zstd 19 is smaller than zstd 1: {sizes:?}");
    let r = kopeo(
        home.path(),
        &[
            "copy",
            "--dest-compress-format",
            "gzip",
            "--dest-compress-level",
            "10",
            &built.reference(),
            &format!("oci:{}/never:x", home.path().display()),
        ],
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("compression level"), "{}", r.stderr);
}

/// One docker-archive holding two different images (kopeo writes one per
/// file; `docker save` of two images writes such a file): the archive and
/// each image's config digest.
fn archive_of_two(home: &Path) -> (std::path::PathBuf, Vec<String>) {
    let mut manifest = vec![];
    let out = home.join("two.tar");
    let mut builder = tar::Builder::new(std::fs::File::create(&out).unwrap());
    let mut seen = std::collections::HashSet::new();
    for seed in [61, 62] {
        let img = build(
            &home.join(format!("src-{seed}")),
            "x",
            &Spec {
                tar_layers: true,
                seed,
                ..Spec::default()
            },
        );
        let single = home.join(format!("one-{seed}.tar"));
        kopeo(
            home,
            &[
                "copy",
                "-q",
                &img.reference(),
                &format!("docker-archive:{}", single.display()),
            ],
        )
        .ok();
        let mut archive = tar::Archive::new(std::fs::File::open(&single).unwrap());
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let mut data = vec![];
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            if path == "manifest.json" {
                let m: serde_json::Value = serde_json::from_slice(&data).unwrap();
                manifest.push(m[0].clone());
            } else if path != "repositories" && seen.insert(path) {
                builder.append(&e.header().clone(), &data[..]).unwrap();
            }
        }
    }
    let data = serde_json::to_vec(&manifest).unwrap();
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder.append_data(&mut header, "manifest.json", &data[..]).unwrap();
    builder.finish().unwrap();
    let configs = manifest
        .iter()
        .map(|m| format!("sha256:{}", m["Config"].as_str().unwrap().trim_end_matches(".json")))
        .collect();
    (out, configs)
}

#[test]
fn docker_archive_at_n_reads_the_nth_image_as_skopeo_does() {
    let home = tempdir();
    let (archive, configs) = archive_of_two(home.path());
    assert_ne!(configs[0], configs[1]);
    for (n, want) in configs.iter().enumerate() {
        let source = format!("docker-archive:{}:@{n}", archive.display());
        let out = home.path().join(format!("at-{n}"));
        kopeo(
            home.path(),
            &["copy", "-q", &source, &format!("oci:{}:x", out.display())],
        )
        .ok();
        let (manifest, _) = oci_top(&out);
        // The config's bytes are the archive's (Docker's config, unconverted).
        let config = std::fs::read(
            out.join("blobs/sha256").join(
                manifest["config"]["digest"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("sha256:"),
            ),
        )
        .unwrap();
        assert_eq!(&sha256(&config), want, "@{n}");
        let theirs = skopeo(home.path(), &["inspect", "--config", "--raw", &source]).ok();
        assert_eq!(
            &sha256(theirs.stdout.as_bytes()),
            want,
            "skopeo reads @{n} as the same image"
        );
    }
    let r = kopeo(
        home.path(),
        &["inspect", &format!("docker-archive:{}:@2", archive.display())],
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("Invalid source index @2, only 2 manifest items available"),
        "{}",
        r.stderr
    );
}
