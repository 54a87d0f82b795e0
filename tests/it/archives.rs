//! Archive and daemon transports: the full transport matrix, format and
//! compression conversions, interop with docker and skopeo (hostile archives: hostile.rs).

use crate::support::dockerd::dockerd;
use crate::support::image::{Built, Spec, build};
use crate::support::registry::{Mode, Registry};
use crate::support::{kopeo, skopeo, tempdir};
use std::path::Path;

fn real_image(dir: &Path, docker: bool) -> Built {
    build(
        dir,
        "seed",
        &Spec {
            layers: vec![120_000, 40_000],
            tar_layers: true,
            docker,
            seed: 90,
            ..Spec::default()
        },
    )
}

/// Flags that let any command reach the test registry and daemon.
fn reach(prefix: &str) -> Vec<String> {
    vec![
        format!("--{prefix}tls-verify=false"),
        format!("--{prefix}daemon-host={}", dockerd().host()),
    ]
}

fn copy(home: &Path, extra: &[&str], from: &str, to: &str) -> crate::support::Run {
    let mut a: Vec<String> = vec!["copy".into(), "-q".into()];
    a.extend(extra.iter().map(|s| s.to_string()));
    a.extend(reach("src-"));
    a.extend(reach("dest-"));
    a.push(from.into());
    a.push(to.into());
    kopeo(home, &a.iter().map(String::as_str).collect::<Vec<_>>())
}

fn config(home: &Path, image: &str) -> serde_json::Value {
    let mut a: Vec<String> = vec!["inspect".into(), "--config".into(), "--raw".into()];
    a.extend(reach(""));
    a.push(image.into());
    let out = kopeo(home, &a.iter().map(String::as_str).collect::<Vec<_>>()).ok();
    serde_json::from_str(&out.stdout).expect("config JSON")
}

fn raw_manifest(home: &Path, image: &str) -> String {
    let mut a: Vec<String> = vec!["inspect".into(), "--raw".into()];
    a.extend(reach(""));
    a.push(image.into());
    kopeo(home, &a.iter().map(String::as_str).collect::<Vec<_>>())
        .ok()
        .stdout
}

fn location(home: &Path, reg: &Registry, transport: &str, tag: &str) -> String {
    let p = home.display();
    match transport {
        "docker" => reg.image(&format!("matrix/{tag}:1")),
        "oci" => format!("oci:{p}/oci-{tag}:x"),
        "dir" => format!("dir:{p}/dir-{tag}"),
        "oci-archive" => format!("oci-archive:{p}/{tag}.oci.tar:x"),
        "docker-archive" => format!("docker-archive:{p}/{tag}.docker.tar:matrix/{tag}:1"),
        "docker-daemon" => format!("docker-daemon:kopeo-matrix/{tag}:1"),
        // A private store (never the machine's): overlay, the usual driver.
        "containers-storage" => format!("containers-storage:[overlay@{p}/cs-graph+{p}/cs-run]matrix/{tag}:1"),
        other => panic!("unknown transport {other}"),
    }
}

#[test]
fn every_transport_pair_copies_with_identical_layer_contents() {
    let home = tempdir();
    let reg = Registry::start(Mode::Plain);
    let seed = real_image(&home.path().join("seed"), true);
    let want = config(home.path(), &seed.reference())["rootfs"]["diff_ids"].clone();
    assert_eq!(want.as_array().map(Vec::len), Some(2));
    let transports = [
        "docker",
        "oci",
        "dir",
        "oci-archive",
        "docker-archive",
        "docker-daemon",
        "containers-storage",
    ];
    for t in transports {
        copy(
            home.path(),
            &[],
            &seed.reference(),
            &location(home.path(), &reg, t, &format!("src-{t}")),
        )
        .ok();
    }
    for s in transports {
        for d in transports {
            let from = location(home.path(), &reg, s, &format!("src-{s}"));
            let to = location(home.path(), &reg, d, &format!("{s}-to-{d}"));
            let r = copy(home.path(), &[], &from, &to);
            assert_eq!(r.code, 0, "{s} → {d}: {}", r.stderr);
            let got = config(home.path(), &to)["rootfs"]["diff_ids"].clone();
            assert_eq!(got, want, "{s} → {d}: diff_ids");
            // Decompressing into a docker-archive checks every layer's
            // contents against those diff_ids.
            let check = format!("docker-archive:{}/check-{s}-{d}.tar", home.path().display());
            let r = copy(home.path(), &[], &to, &check);
            assert_eq!(r.code, 0, "{s} → {d} → docker-archive: {}", r.stderr);
        }
    }
}

#[test]
fn daemon_round_trip_and_docker_load_of_kopeo_archives() {
    let home = tempdir();
    let d = dockerd();
    let seed = real_image(&home.path().join("seed"), false);
    copy(
        home.path(),
        &[],
        &seed.reference(),
        "docker-daemon:kopeo-test/roundtrip:1",
    )
    .ok();
    let id = d.docker(&["image", "inspect", "--format", "{{.Id}}", "kopeo-test/roundtrip:1"]);
    assert_eq!(id.code, 0, "{}", id.stderr);
    let want = config(home.path(), &seed.reference());
    let back = format!("oci:{}/back:x", home.path().display());
    copy(home.path(), &[], "docker-daemon:kopeo-test/roundtrip:1", &back).ok();
    assert_eq!(config(home.path(), &back)["rootfs"], want["rootfs"]);
    // By image ID too.
    copy(
        home.path(),
        &[],
        &format!("docker-daemon:{}", id.stdout.trim()),
        &format!("dir:{}/by-id", home.path().display()),
    )
    .ok();
    // An archive kopeo writes is accepted by `docker load`, with every tag.
    let archive = home.path().join("k.tar");
    copy(
        home.path(),
        &["--additional-tag", "kopeo-test/extra:2"],
        &seed.reference(),
        &format!("docker-archive:{}:kopeo-test/loaded:1", archive.display()),
    )
    .ok();
    let load = d.docker(&["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(load.code, 0, "{}", load.stderr);
    for tag in ["kopeo-test/loaded:1", "kopeo-test/extra:2"] {
        assert_eq!(
            d.docker(&["image", "inspect", tag]).code,
            0,
            "{tag} loaded: {}",
            load.stdout
        );
    }
    let missing = kopeo(
        home.path(),
        &[
            "inspect",
            &format!("--daemon-host={}", d.host()),
            "docker-daemon:kopeo-test/absent:1",
        ],
    );
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    assert!(
        missing.stderr.contains("docker daemon has no image"),
        "{}",
        missing.stderr
    );
}

#[test]
fn skopeo_and_kopeo_read_each_others_archives() {
    let home = tempdir();
    let seed = real_image(&home.path().join("seed"), false);
    let s_docker = format!("docker-archive:{}/s.tar:skopeo/made:1", home.path().display());
    skopeo(home.path(), &["copy", &seed.reference(), &s_docker]).ok();
    let want = config(home.path(), &seed.reference())["rootfs"].clone();
    assert_eq!(config(home.path(), &s_docker)["rootfs"], want);
    copy(
        home.path(),
        &[],
        &s_docker,
        &format!("oci:{}/from-skopeo:x", home.path().display()),
    )
    .ok();
    let k_oci = format!("oci-archive:{}/k.oci.tar:k", home.path().display());
    copy(home.path(), &[], &seed.reference(), &k_oci).ok();
    skopeo(
        home.path(),
        &["copy", &k_oci, &format!("dir:{}/by-skopeo", home.path().display())],
    )
    .ok();
    let k_docker = format!("docker-archive:{}/k.docker.tar:kopeo/made:1", home.path().display());
    copy(home.path(), &[], &seed.reference(), &k_docker).ok();
    skopeo(
        home.path(),
        &[
            "copy",
            &k_docker,
            &format!("oci:{}/by-skopeo-2:x", home.path().display()),
        ],
    )
    .ok();
    // What skopeo wrote from kopeo's archives, read from disk without either
    // tool: every blob hashes to its name, and the layers' contents are the seed's.
    let want: Vec<String> = serde_json::from_value(want["diff_ids"].clone()).unwrap();
    let by_skopeo = home.path().join("by-skopeo");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(by_skopeo.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        contents_on_disk(&manifest, |hex| by_skopeo.join(hex)),
        want,
        "oci-archive → dir"
    );
    let layout = home.path().join("by-skopeo-2");
    let blob = |hex: &str| layout.join("blobs/sha256").join(hex);
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let top = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(blob(&top)).unwrap()).unwrap();
    assert_eq!(contents_on_disk(&manifest, blob), want, "docker-archive → oci");
    // And skopeo reads kopeo's copy of skopeo's archive as the seed.
    let from_skopeo = skopeo(
        home.path(),
        &[
            "inspect",
            "--config",
            &format!("oci:{}/from-skopeo:x", home.path().display()),
        ],
    )
    .ok();
    let cfg: serde_json::Value = serde_json::from_str(&from_skopeo.stdout).unwrap();
    assert_eq!(cfg["rootfs"]["diff_ids"], serde_json::json!(want));
}

/// The diff IDs of `manifest`'s layers computed from the blob files (each
/// checked against its digest, gunzipped when gzip), after checking that the
/// config's `rootfs.diff_ids` say the same.
fn contents_on_disk(manifest: &serde_json::Value, path: impl Fn(&str) -> std::path::PathBuf) -> Vec<String> {
    use sha2::{Digest as _, Sha256};
    use std::io::Read as _;
    let read = |digest: &str| {
        let hex = digest.trim_start_matches("sha256:");
        let bytes = std::fs::read(path(hex)).unwrap_or_else(|e| panic!("blob {digest}: {e}"));
        assert_eq!(hex::encode(Sha256::digest(&bytes)), hex, "a blob's name is its digest");
        bytes
    };
    let mut ids = vec![];
    for layer in manifest["layers"].as_array().expect("layers") {
        let bytes = read(layer["digest"].as_str().unwrap());
        let plain = if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut out = vec![];
            flate2::read::GzDecoder::new(&bytes[..])
                .read_to_end(&mut out)
                .expect("gunzip");
            out
        } else {
            bytes
        };
        ids.push(format!("sha256:{}", hex::encode(Sha256::digest(&plain))));
    }
    let config: serde_json::Value =
        serde_json::from_slice(&read(manifest["config"]["digest"].as_str().unwrap())).unwrap();
    assert_eq!(
        config["rootfs"]["diff_ids"],
        serde_json::json!(ids),
        "config and layers agree"
    );
    ids
}

#[test]
fn format_and_compression_conversions_keep_layer_contents() {
    let home = tempdir();
    let reg = Registry::start(Mode::Plain);
    let seed = real_image(&home.path().join("seed"), true);
    let want = config(home.path(), &seed.reference())["rootfs"].clone();
    let p = home.path().display();
    // v2s2 → OCI → v2s2.
    let oci = format!("oci:{p}/conv:x");
    copy(home.path(), &[], &seed.reference(), &oci).ok();
    // Every descriptor converted, as skopeo reads the result.
    let m: serde_json::Value =
        serde_json::from_str(&skopeo(home.path(), &["inspect", "--raw", &oci]).ok().stdout).unwrap();
    assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json", "{m}");
    assert_eq!(
        m["config"]["mediaType"], "application/vnd.oci.image.config.v1+json",
        "{m}"
    );
    let layers = m["layers"].as_array().unwrap();
    assert!(
        !layers.is_empty()
            && layers
                .iter()
                .all(|l| l["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"),
        "{m}"
    );
    let back = reg.image("conv:v2s2");
    copy(home.path(), &["--format", "v2s2"], &oci, &back).ok();
    let raw = raw_manifest(home.path(), &back);
    assert!(
        raw.contains("application/vnd.docker.distribution.manifest.v2+json") && !raw.contains("vnd.oci"),
        "{raw}"
    );
    assert_eq!(config(home.path(), &back)["rootfs"], want);
    // gzip → zstd → gzip.
    let z = format!("oci:{p}/zstd:x");
    copy(home.path(), &["--dest-compress-format", "zstd"], &seed.reference(), &z).ok();
    let raw = raw_manifest(home.path(), &z);
    assert_eq!(raw.matches("tar+zstd").count(), 2, "{raw}");
    let g = format!("dir:{p}/gzip-again");
    copy(home.path(), &["--dest-compress-format", "gzip"], &z, &g).ok();
    let raw = raw_manifest(home.path(), &g);
    assert_eq!(raw.matches("tar+gzip").count(), 2, "{raw}");
    assert_eq!(config(home.path(), &g)["rootfs"], want);
    copy(home.path(), &[], &g, &format!("docker-archive:{p}/verify.tar")).ok();
    // Decompressed into dir:, then compressed on the way to a registry.
    let plain = format!("dir:{p}/plain");
    copy(home.path(), &["--dest-decompress"], &seed.reference(), &plain).ok();
    assert!(raw_manifest(home.path(), &plain).contains("rootfs.diff.tar\""));
    copy(home.path(), &[], &plain, &reg.image("from-plain:1")).ok();
    assert!(raw_manifest(home.path(), &reg.image("from-plain:1")).contains("diff.tar.gzip"));
    // Digests cannot be preserved through a compression change.
    let r = copy(
        home.path(),
        &["--dest-compress-format", "zstd", "--preserve-digests"],
        &seed.reference(),
        &format!("oci:{p}/nope:x"),
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("--preserve-digests"), "{}", r.stderr);
}

#[test]
fn schema1_images_are_read_and_converted_to_schema2() {
    use crate::support::image::tar_layer;
    let home = tempdir();
    let dir = home.path().join("s1");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("version"), "Directory Transport Version: 1.1\n").unwrap();
    let put = |data: &[u8]| {
        let d = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(data));
        std::fs::write(dir.join(&d), data).unwrap();
        format!("sha256:{d}")
    };
    let (base_gz, base_diff) = tar_layer("base.bin", &crate::support::image::noise(50_000, 1));
    let (top_gz, top_diff) = tar_layer("top.bin", &crate::support::image::noise(20_000, 2));
    let (empty_gz, _) = tar_layer("empty", b"");
    let (base, top, empty) = (put(&base_gz), put(&top_gz), put(&empty_gz));
    let v1 = |id: &str, parent: Option<&str>, extra: serde_json::Value| {
        let mut v = serde_json::json!({"id": id, "created": "2020-01-01T00:00:00Z", "container_config": {"Cmd": ["/bin/sh", "-c", format!("step {id}")]}});
        if let Some(p) = parent {
            v["parent"] = p.into();
        }
        if let (Some(o), serde_json::Value::Object(e)) = (v.as_object_mut(), extra) {
            o.extend(e);
        }
        serde_json::json!({"v1Compatibility": v.to_string()})
    };
    let manifest = serde_json::json!({
        "schemaVersion": 1, "name": "legacy/app", "tag": "1", "architecture": "amd64",
        "fsLayers": [{"blobSum": top}, {"blobSum": empty}, {"blobSum": base}],
        "history": [
            v1("c", Some("b"), serde_json::json!({"architecture": "amd64", "os": "linux", "config": {"Env": ["A=1"]}})),
            v1("b", Some("a"), serde_json::json!({"throwaway": true})),
            v1("a", None, serde_json::json!({})),
        ],
    });
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
    let src = format!("dir:{}", dir.display());
    let out = format!("oci:{}/converted:x", home.path().display());
    copy(home.path(), &[], &src, &out).ok();
    let cfg = config(home.path(), &out);
    assert_eq!(cfg["rootfs"]["diff_ids"], serde_json::json!([base_diff, top_diff]));
    assert_eq!(cfg["config"]["Env"], serde_json::json!(["A=1"]));
    assert_eq!(cfg["history"].as_array().unwrap().len(), 3);
    assert_eq!(cfg["history"][1]["empty_layer"], true);
    assert!(cfg.get("id").is_none() && cfg.get("parent").is_none());
    copy(
        home.path(),
        &[],
        &out,
        &format!("docker-archive:{}/s1-check.tar", home.path().display()),
    )
    .ok();
    let r = copy(
        home.path(),
        &["--preserve-digests"],
        &src,
        &format!("dir:{}/never", home.path().display()),
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("schema1"), "{}", r.stderr);
    // Encryption of a schema1 image is refused, never written in plaintext.
    crate::support::openssl(
        home.path(),
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "k.pem",
        ],
    );
    crate::support::openssl(home.path(), &["pkey", "-in", "k.pem", "-pubout", "-out", "k.pub"]);
    let key = format!("jwe:{}/k.pub", home.path().display());
    let r = copy(
        home.path(),
        &["--encryption-key", &key],
        &src,
        &format!("oci:{}/enc:x", home.path().display()),
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("Docker schema1 image, whose layers kopeo does not encrypt"),
        "{}",
        r.stderr
    );
    assert!(
        !home.path().join("enc/index.json").exists()
            || !std::fs::read_to_string(home.path().join("enc/index.json"))
                .unwrap()
                .contains("digest")
    );
}

/// The operator image, built offline by the test daemon: the same layout as
/// the repository's Dockerfile (binary in /usr/local/bin, non-root user,
/// `operator` by default), assembled FROM scratch from this build and the
/// shared libraries it links, because no base image can be pulled here.
#[test]
fn operator_image_builds_and_runs() {
    let d = dockerd();
    let home = tempdir();
    let ctx = home.path().join("ctx");
    let bin = env!("CARGO_BIN_EXE_kopeo");
    std::fs::create_dir_all(ctx.join("rootfs/usr/local/bin")).unwrap();
    std::fs::copy(bin, ctx.join("rootfs/usr/local/bin/kopeo")).unwrap();
    let ldd = std::process::Command::new("ldd").arg(bin).output().expect("ldd");
    for lib in String::from_utf8_lossy(&ldd.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
    {
        let target = ctx.join("rootfs").join(lib.trim_start_matches('/'));
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(lib, &target).unwrap();
    }
    let dockerfile = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).unwrap();
    assert!(dockerfile.contains("USER 65532:65532") && dockerfile.contains("CMD [\"operator\"]"));
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY rootfs/ /\nUSER 65532:65532\nENTRYPOINT [\"/usr/local/bin/kopeo\"]\nCMD [\"operator\"]\n",
    )
    .unwrap();
    let build = d.docker(&["build", "-q", "-t", "kopeo-test/operator:dev", ctx.to_str().unwrap()]);
    assert_eq!(build.code, 0, "{}", build.stderr);
    let user = d
        .docker(&[
            "image",
            "inspect",
            "--format",
            "{{.Config.User}} {{json .Config.Cmd}}",
            "kopeo-test/operator:dev",
        ])
        .ok();
    assert_eq!(user.stdout.trim(), "65532:65532 [\"operator\"]");
    let run = d
        .docker(&[
            "run",
            "--rm",
            "--network",
            "none",
            "--read-only",
            "kopeo-test/operator:dev",
            "--version",
        ])
        .ok();
    assert!(run.stdout.starts_with("kopeo "), "{}", run.stdout);
}
