//! Copies that involve registries.

use crate::support::image::{Spec, build};
use crate::support::proxy::DropProxy;
use crate::support::registry::{Mode, Registry};
use crate::support::{kopeo, tempdir};

/// Push a generated image to `reg` as `repo:tag` with kopeo.
pub fn seed(reg: &Registry, home: &std::path::Path, repo_tag: &str, spec: &Spec) -> crate::support::image::Built {
    let built = build(
        &home.join(format!("seed-{}-{}", repo_tag.replace([':', '/'], "-"), spec.seed)),
        "src",
        spec,
    );
    let mut args = vec!["copy".to_string(), "-q".into(), "--all".into()];
    args.extend(reg.flags("dest-"));
    args.push(built.reference());
    args.push(reg.image(repo_tag));
    kopeo(home, &args.iter().map(String::as_str).collect::<Vec<_>>()).ok();
    built
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn copy_args(src: &Registry, dst: &Registry, from: &str, to: &str, extra: &[&str]) -> Vec<String> {
    let mut a = vec!["copy".to_string()];
    a.extend(extra.iter().map(|s| s.to_string()));
    a.extend(src.flags("src-"));
    a.extend(dst.flags("dest-"));
    a.push(from.to_string());
    a.push(to.to_string());
    a
}

#[test]
fn copy_within_one_registry_mounts_blobs_instead_of_uploading() {
    let home = tempdir();
    let reg = Registry::start(Mode::Plain);
    let built = seed(&reg, home.path(), "team/src:v1", &Spec::default());
    let puts_before = reg.requests("PUT", "/blobs/uploads/");
    let run = kopeo(
        home.path(),
        &args(&copy_args(
            &reg,
            &reg,
            &reg.image("team/src:v1"),
            &reg.image("other/dst:v1"),
            &[],
        )),
    )
    .ok();
    assert_eq!(
        reg.digest(home.path(), "other/dst:v1"),
        built.digest,
        "digest preserved"
    );
    assert_eq!(
        reg.requests("PUT", "/blobs/uploads/"),
        puts_before,
        "no blob was uploaded:\n{}",
        run.stdout
    );
    assert!(
        reg.requests("POST", "mount=sha256") >= 3,
        "layers and config were mounted"
    );
}

#[test]
fn a_layer_of_tens_of_megabytes_streams_through_intact() {
    // Larger than any buffer or chunk kopeo uses, as real base layers are.
    let home = tempdir();
    let (a, b) = (Registry::start(Mode::Plain), Registry::start(Mode::Plain));
    let built = seed(
        &a,
        home.path(),
        "big:1",
        &Spec {
            layers: vec![24_000_000, 1_000],
            ..Spec::default()
        },
    );
    kopeo(
        home.path(),
        &args(&copy_args(&a, &b, &a.image("big:1"), &b.image("big:1"), &["-q"])),
    )
    .ok();
    assert_eq!(b.digest(home.path(), "big:1"), built.digest);
    // The registry holds the layer's exact bytes (hashed from its storage).
    let hex = built.layers[0].trim_start_matches("sha256:");
    let stored = std::fs::read(b.dir.path().join(format!(
        "storage/docker/registry/v2/blobs/sha256/{}/{hex}/data",
        &hex[..2]
    )))
    .unwrap();
    use sha2::Digest as _;
    assert_eq!(hex::encode(sha2::Sha256::digest(&stored)), hex);
    assert!(stored.len() > 24_000_000);
}

#[test]
fn a_refused_mount_of_a_blob_the_destination_has_uploads_nothing() {
    // A registry may refuse a cross-repository mount (202: "upload
    // instead") for a blob the destination repository holds already;
    // kopeo mounts first, so it must still notice the blob is there.
    let home = tempdir();
    let img = build(&home.path().join("src"), "x", &Spec::default());
    let blobs = img.layout.join("blobs/sha256");
    let reg = crate::support::standin::fake_registry(&img.layout, "app", vec!["1"], move |req, me| {
        use crate::support::standin::Reply;
        let path = req.path();
        if req.method == "POST" && path == "/v2/mirror/blobs/uploads/" {
            return Some(Reply::bytes(202, "").with("Location", &format!("http://{me}/v2/mirror/blobs/uploads/u1")));
        }
        if req.method == "HEAD" {
            if let Some(d) = path.strip_prefix("/v2/mirror/blobs/sha256:") {
                let len = std::fs::metadata(blobs.join(d)).map(|m| m.len()).unwrap_or(0);
                return Some(
                    Reply::bytes(200, "")
                        .with("Content-Length", &len.to_string())
                        .with("Docker-Content-Digest", &format!("sha256:{d}")),
                );
            }
            if path.starts_with("/v2/mirror/manifests/") {
                return Some(Reply::bytes(404, ""));
            }
        }
        if req.method == "PUT" && path == "/v2/mirror/manifests/1" {
            return Some(Reply::bytes(201, ""));
        }
        None
    });
    kopeo(
        home.path(),
        &[
            "copy",
            "-q",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &format!("docker://{}/app:1", reg.host),
            &format!("docker://{}/mirror:1", reg.host),
        ],
    )
    .ok();
    let seen = reg.seen();
    let mounts = seen
        .iter()
        .filter(|r| r.method == "POST" && r.target.contains("mount=sha256"))
        .count();
    assert_eq!(mounts, 3, "config and both layers were offered as mounts: {seen:?}");
    let uploads: Vec<_> = seen
        .iter()
        .filter(|r| (r.method == "PUT" || r.method == "PATCH") && r.path().contains("/blobs/"))
        .collect();
    assert!(uploads.is_empty(), "no blob was sent: {uploads:?}");
    assert_eq!(
        seen.iter()
            .filter(|r| r.method == "PUT" && r.path() == "/v2/mirror/manifests/1")
            .count(),
        1
    );
}

#[test]
fn copy_between_registries_preserves_digests_and_recopy_skips_blobs() {
    let home = tempdir();
    let (a, b) = (Registry::start(Mode::Plain), Registry::start(Mode::Plain));
    let built = seed(
        &a,
        home.path(),
        "app:1",
        &Spec {
            docker: true,
            ..Spec::default()
        },
    );
    kopeo(
        home.path(),
        &args(&copy_args(
            &a,
            &b,
            &a.image("app:1"),
            &b.image("mirror/app:1"),
            &["--digestfile", &home.path().join("d").to_string_lossy()],
        )),
    )
    .ok();
    assert_eq!(b.digest(home.path(), "mirror/app:1"), built.digest);
    assert_eq!(std::fs::read_to_string(home.path().join("d")).unwrap(), built.digest);
    let uploads = b.requests("PUT", "/blobs/uploads/");
    assert_eq!(uploads, 3);
    let again = kopeo(
        home.path(),
        &args(&copy_args(&a, &b, &a.image("app:1"), &b.image("mirror/app:2"), &[])),
    )
    .ok();
    assert_eq!(
        b.requests("PUT", "/blobs/uploads/"),
        uploads,
        "second copy uploaded nothing"
    );
    assert_eq!(
        again.stdout.matches("skipped: already exists").count(),
        3,
        "{}",
        again.stdout
    );
}

#[test]
fn registry_to_oci_and_dir_and_back_keeps_digests() {
    let home = tempdir();
    let reg = Registry::start(Mode::Plain);
    let built = seed(&reg, home.path(), "app:1", &Spec::default());
    let oci = format!("oci:{}:v1", home.path().join("layout").display());
    let dir = format!("dir:{}", home.path().join("dir").display());
    let src = reg.image("app:1");
    let mut a = vec!["copy".into()];
    a.extend(reg.flags("src-"));
    let with = |base: &Vec<String>, x: &str, y: &str| -> Vec<String> {
        let mut v = base.clone();
        v.push(x.into());
        v.push(y.into());
        v
    };
    kopeo(home.path(), &args(&with(&a, &src, &oci))).ok();
    kopeo(home.path(), &args(&with(&a, &src, &dir))).ok();
    for local in [&oci, &dir] {
        let d = kopeo(home.path(), &["inspect", "--format", "{{.Digest}}", local]).ok();
        assert_eq!(d.stdout.trim(), built.digest, "{local}");
    }
    let mut b = vec!["copy".into()];
    b.extend(reg.flags("dest-"));
    kopeo(home.path(), &args(&with(&b, &oci, &reg.image("from-oci:1")))).ok();
    kopeo(home.path(), &args(&with(&b, &dir, &reg.image("from-dir:1")))).ok();
    assert_eq!(reg.digest(home.path(), "from-oci:1"), built.digest);
    assert_eq!(reg.digest(home.path(), "from-dir:1"), built.digest);
}

#[test]
fn multi_arch_all_copies_every_instance_and_default_picks_one() {
    let home = tempdir();
    let (a, b) = (Registry::start(Mode::Plain), Registry::start(Mode::Plain));
    let built = seed(
        &a,
        home.path(),
        "multi:1",
        &Spec {
            archs: vec!["amd64", "arm64"],
            ..Spec::default()
        },
    );
    kopeo(
        home.path(),
        &args(&copy_args(
            &a,
            &b,
            &a.image("multi:1"),
            &b.image("multi:all"),
            &["--all"],
        )),
    )
    .ok();
    assert_eq!(
        b.digest(home.path(), "multi:all"),
        built.digest,
        "list digest preserved"
    );
    for arch in ["amd64", "arm64"] {
        let mut i = vec![
            "--override-arch".to_string(),
            arch.into(),
            "inspect".into(),
            "--format".into(),
            "{{.Architecture}}".into(),
        ];
        i.extend(b.flags(""));
        i.push(b.image("multi:all"));
        assert_eq!(kopeo(home.path(), &args(&i)).ok().stdout.trim(), arch);
    }
    kopeo(
        home.path(),
        &args(&copy_args(
            &a,
            &b,
            &a.image("multi:1"),
            &b.image("multi:arm"),
            &["--override-arch", "arm64"],
        )),
    )
    .ok();
    let mut raw = vec!["inspect".to_string(), "--raw".into()];
    raw.extend(b.flags(""));
    raw.push(b.image("multi:arm"));
    let m = kopeo(home.path(), &args(&raw)).ok().stdout;
    assert!(
        m.contains("\"layers\"") && !m.contains("\"manifests\""),
        "a single image, not a list: {m}"
    );
    let mut cfg = vec!["inspect".to_string(), "--config".into()];
    cfg.extend(b.flags(""));
    cfg.push(b.image("multi:arm"));
    assert!(kopeo(home.path(), &args(&cfg)).ok().stdout.contains("\"arm64\""));
}

#[test]
fn a_copy_without_all_over_a_whole_list_replaces_it_with_one_instance() {
    // The destination holds the very list the source has; a copy of one
    // platform still writes that one image, as skopeo does: "already
    // there" must compare with what the copy would write.
    let home = tempdir();
    let (a, b) = (Registry::start(Mode::Plain), Registry::start(Mode::Plain));
    let built = seed(
        &a,
        home.path(),
        "multi:1",
        &Spec {
            archs: vec!["amd64", "arm64"],
            ..Spec::default()
        },
    );
    let to = b.image("multi:x");
    kopeo(
        home.path(),
        &args(&copy_args(&a, &b, &a.image("multi:1"), &to, &["--all"])),
    )
    .ok();
    let raw = |home: &std::path::Path| {
        crate::support::skopeo(home, &["inspect", "--raw", "--tls-verify=false", &to])
            .ok()
            .stdout
    };
    assert!(raw(home.path()).contains("\"manifests\""), "the whole list first");
    let again = kopeo(
        home.path(),
        &args(&copy_args(
            &a,
            &b,
            &a.image("multi:1"),
            &to,
            &["--override-arch", "arm64"],
        )),
    )
    .ok();
    assert!(again.stderr.is_empty(), "{}", again.stderr);
    let m: serde_json::Value = serde_json::from_str(&raw(home.path())).unwrap();
    assert!(
        m.get("manifests").is_none() && m["layers"].is_array(),
        "one image now: {m}"
    );
    assert_ne!(b.digest(home.path(), "multi:x"), built.digest);
}

#[test]
fn preserve_digests_refuses_a_needed_conversion() {
    let home = tempdir();
    let reg = Registry::start(Mode::Plain);
    seed(
        &reg,
        home.path(),
        "docker:1",
        &Spec {
            docker: true,
            ..Spec::default()
        },
    );
    let oci = format!("oci:{}:x", home.path().join("layout").display());
    let mut a = vec!["copy".to_string(), "--preserve-digests".into()];
    a.extend(reg.flags("src-"));
    a.push(reg.image("docker:1"));
    a.push(oci.clone());
    let r = kopeo(home.path(), &args(&a));
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("--preserve-digests"), "{}", r.stderr);
    assert!(!home.path().join("layout/index.json").exists(), "nothing committed");
    // Without the flag the copy converts to OCI, which an oci: layout requires.
    a.remove(1);
    kopeo(home.path(), &args(&a)).ok();
    let raw = kopeo(home.path(), &["inspect", "--raw", &oci]).ok().stdout;
    assert!(raw.contains("application/vnd.oci.image.manifest.v1+json"), "{raw}");
}

#[test]
fn corrupt_blob_fails_the_copy_and_leaves_no_tag() {
    let home = tempdir();
    let reg = Registry::start(Mode::Plain);
    let built = build(&home.path().join("layout"), "bad", &Spec::default());
    let victim = built.layers[1].trim_start_matches("sha256:").to_string();
    let path = home.path().join("layout/blobs/sha256").join(&victim);
    let mut data = std::fs::read(&path).unwrap();
    data[10] ^= 0xff;
    std::fs::write(&path, data).unwrap();
    let mut a = vec!["copy".to_string()];
    a.extend(reg.flags("dest-"));
    a.push(built.reference());
    a.push(reg.image("bad:1"));
    let r = kopeo(home.path(), &args(&a));
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains(&victim) && r.stderr.contains("does not match"),
        "{}",
        r.stderr
    );
    assert!(reg.lacks(home.path(), "bad:1"), "no tag was written");
}

#[test]
fn dropped_connection_mid_blob_is_resumed() {
    let home = tempdir();
    let (a, b) = (Registry::start(Mode::Plain), Registry::start(Mode::Plain));
    let built = seed(
        &a,
        home.path(),
        "big:1",
        &Spec {
            layers: vec![3_000_000, 100_000],
            ..Spec::default()
        },
    );
    let hex = built.layers[0].trim_start_matches("sha256:");
    // Cut the first download and its first resumption, 1 MB in each time.
    let proxy = DropProxy::start(&a.host, hex, 2, 1_000_000);
    let src = format!("docker://{}/big:1", proxy.host);
    let mut args_v = vec![
        "copy".to_string(),
        "--retry-times=2".into(),
        "--retry-delay=100ms".into(),
        "--src-tls-verify=false".into(),
    ];
    args_v.extend(b.flags("dest-"));
    args_v.push(src);
    args_v.push(b.image("big:1"));
    let r = kopeo(home.path(), &args(&args_v)).ok();
    assert_eq!(
        proxy.cut.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "the proxy cut the download twice: {}",
        r.stderr
    );
    assert_eq!(b.digest(home.path(), "big:1"), built.digest);
    assert!(a.requests("GET", hex) >= 3, "resumed with new requests");
}

#[test]
fn tls_registry_needs_its_ca_or_tls_verify_false() {
    let home = tempdir();
    let reg = Registry::start(Mode::Tls);
    let built = build(&home.path().join("layout"), "x", &Spec::default());
    let with_ca = kopeo(
        home.path(),
        &[
            "copy",
            "-q",
            &format!("--dest-cert-dir={}", reg.cert_dir().display()),
            &built.reference(),
            &reg.image("tls:1"),
        ],
    )
    .ok();
    assert!(with_ca.stdout.is_empty(), "-q prints nothing: {}", with_ca.stdout);
    let without = kopeo(home.path(), &["inspect", &reg.image("tls:1")]);
    assert_eq!(without.code, 1);
    // kopeo's own words (Go's, as skopeo prints them), not a library's log line.
    assert!(
        without
            .stderr
            .contains("tls: failed to verify certificate: x509: certificate signed by unknown authority"),
        "{}",
        without.stderr
    );
    let insecure = kopeo(
        home.path(),
        &[
            "inspect",
            "--tls-verify=false",
            "--format",
            "{{.Digest}}",
            &reg.image("tls:1"),
        ],
    )
    .ok();
    assert_eq!(insecure.stdout.trim(), built.digest);
}

#[test]
fn client_certificates_from_cert_dir_are_presented() {
    let home = tempdir();
    let reg = Registry::start(Mode::MutualTls);
    let built = build(&home.path().join("layout"), "x", &Spec::default());
    let mut a = vec!["copy".to_string(), "-q".into()];
    a.extend(reg.flags("dest-"));
    a.push(built.reference());
    a.push(reg.image("mtls:1"));
    kopeo(home.path(), &args(&a)).ok();
    let ca_only = kopeo(
        home.path(),
        &[
            "inspect",
            &format!("--cert-dir={}", reg.cert_dir().display()),
            &reg.image("mtls:1"),
        ],
    );
    assert_eq!(
        ca_only.code, 1,
        "without a client certificate the registry refuses: {}",
        ca_only.stdout
    );
    let with = kopeo(
        home.path(),
        &[
            "inspect",
            "--format",
            "{{.Digest}}",
            &format!("--cert-dir={}", reg.client_cert_dir().display()),
            &reg.image("mtls:1"),
        ],
    )
    .ok();
    assert_eq!(with.stdout.trim(), built.digest);
    let lonely = home.path().join("lonely");
    std::fs::create_dir_all(&lonely).unwrap();
    std::fs::copy(reg.client_cert_dir().join("client.key"), lonely.join("client.key")).unwrap();
    let bad = kopeo(
        home.path(),
        &[
            "inspect",
            &format!("--cert-dir={}", lonely.display()),
            &reg.image("mtls:1"),
        ],
    );
    assert!(bad.stderr.contains("missing client certificate"), "{}", bad.stderr);
}

#[test]
fn tag_listing_follows_link_pagination() {
    let home = tempdir();
    let server = crate::support::paging::PagingServer::start("paged", &["a", "b", "c", "d", "e"], 2);
    let out = kopeo(
        home.path(),
        &[
            "list-tags",
            "--tls-verify=false",
            &format!("docker://{}/paged", server.host),
        ],
    )
    .ok();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["Tags"], serde_json::json!(["a", "b", "c", "d", "e"]));
    assert_eq!(
        server.pages_served.load(std::sync::atomic::Ordering::SeqCst),
        3,
        "three pages were fetched"
    );
    let missing = kopeo(
        home.path(),
        &[
            "list-tags",
            "--tls-verify=false",
            &format!("docker://{}/other", server.host),
        ],
    );
    assert_eq!(missing.code, 2, "unknown repository exits 2: {}", missing.stderr);
    assert!(missing.stderr.contains("name unknown"), "{}", missing.stderr);
}
