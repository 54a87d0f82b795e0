//! Drop-in parity with skopeo, each as a user moving a script or a private
//! registry over would meet it: self-signed registry certificates, the
//! texts scripts grep for, hidden flag aliases, docker-archive listings and
//! inspect output, sync naming, token endpoint retries.

use crate::support::image::{Spec, build};
use crate::support::registry::{Mode, Registry, make_self_signed_dated};
use crate::support::{kopeo, skopeo, tempdir};

#[test]
fn a_self_signed_registry_certificate_in_the_cert_dir_is_trusted_for_every_command() {
    let home = tempdir();
    let reg = Registry::start(Mode::SelfSigned);
    let certs = reg.cert_dir();
    let certs = certs.to_str().unwrap();
    let img = build(&home.path().join("src"), "x", &Spec::default());
    // Copy to and from the registry, trusting its own certificate.
    kopeo(
        home.path(),
        &[
            "copy",
            "-q",
            "--dest-cert-dir",
            certs,
            &img.reference(),
            &reg.image("app:1"),
        ],
    )
    .ok();
    let back = home.path().join("back");
    kopeo(
        home.path(),
        &[
            "copy",
            "-q",
            "--src-cert-dir",
            certs,
            &reg.image("app:1"),
            &format!("oci:{}:x", back.display()),
        ],
    )
    .ok();
    let d = kopeo(
        home.path(),
        &[
            "inspect",
            "--cert-dir",
            certs,
            "--format",
            "{{.Digest}}",
            &reg.image("app:1"),
        ],
    )
    .ok();
    assert_eq!(d.stdout.trim(), img.digest);
    // skopeo, trusting the same directory, reads what kopeo wrote.
    let s = skopeo(
        home.path(),
        &[
            "inspect",
            "--cert-dir",
            certs,
            "--format",
            "{{.Digest}}",
            &reg.image("app:1"),
        ],
    );
    assert_eq!((s.code, s.stdout.trim()), (0, img.digest.as_str()), "{}", s.stderr);
    let tags = kopeo(home.path(), &["list-tags", "--cert-dir", certs, &reg.image("app")]).ok();
    assert!(tags.stdout.contains("\"1\""), "{}", tags.stdout);
    let login = kopeo(
        home.path(),
        &[
            "login",
            "--cert-dir",
            certs,
            "-u",
            "someone",
            "-p",
            "anything",
            &reg.host,
        ],
    )
    .ok();
    assert!(login.stdout.contains("Login Succeeded!"), "{}", login.stdout);
    kopeo(home.path(), &["delete", "--cert-dir", certs, &reg.image("app:1")]).ok();
    let gone = kopeo(home.path(), &["inspect", "--cert-dir", certs, &reg.image("app:1")]);
    assert_eq!(gone.code, 2, "{}", gone.stderr);
    // Without the directory the certificate is not trusted, and kopeo says why.
    let r = kopeo(home.path(), &["inspect", &reg.image("app:1")]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("tls: failed to verify certificate: x509: certificate signed by unknown authority"),
        "{}",
        r.stderr
    );
}

#[test]
fn other_self_signed_certificates_stay_refused() {
    let home = tempdir();
    let img = build(&home.path().join("src"), "x", &Spec::default());
    // Another registry's self-signed certificate in the directory proves nothing.
    let reg = Registry::start(Mode::SelfSigned);
    let stranger = home.path().join("stranger");
    std::fs::create_dir_all(&stranger).unwrap();
    crate::support::registry::make_self_signed(&stranger);
    let wrong = home.path().join("wrong-dir");
    std::fs::create_dir_all(&wrong).unwrap();
    std::fs::copy(stranger.join("domain.crt"), wrong.join("domain.crt")).unwrap();
    let r = kopeo(
        home.path(),
        &[
            "copy",
            "-q",
            "--dest-cert-dir",
            wrong.to_str().unwrap(),
            &img.reference(),
            &reg.image("app:1"),
        ],
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("x509: certificate signed by unknown authority"),
        "{}",
        r.stderr
    );
    // The registry's own certificate, but expired: refused though it is in the directory.
    let expired = Registry::self_signed_by(|d| make_self_signed_dated(d, "20200101000000Z", "20200102000000Z"));
    let r = kopeo(
        home.path(),
        &[
            "inspect",
            "--cert-dir",
            expired.cert_dir().to_str().unwrap(),
            &expired.image("app:1"),
        ],
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("x509: certificate has expired or is not yet valid"),
        "{}",
        r.stderr
    );
    // Its own certificate reached by a name it does not carry (127.0.0.1, not localhost).
    let by_ip = reg.image("app:1").replace("localhost", "127.0.0.1");
    let r = kopeo(
        home.path(),
        &["inspect", "--cert-dir", reg.cert_dir().to_str().unwrap(), &by_ip],
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("x509: cannot validate certificate for 127.0.0.1 because it doesn't contain any IP SANs"),
        "{}",
        r.stderr
    );
}

use crate::support::registry::{PASSWORD, USER};
use crate::support::standin::{Reply, fake_registry};
use std::path::Path;

/// The message part after the last `: ` that both tools share.
fn fatal(stderr: &str) -> String {
    stderr
        .lines()
        .find(|l| l.contains("level=fatal"))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn registry_errors_read_as_skopeo_prints_them() {
    let home = tempdir();
    let reg = Registry::start(Mode::Htpasswd);
    let img = build(&home.path().join("src"), "x", &Spec::default());
    let creds = format!("--dest-creds={USER}:{PASSWORD}");
    kopeo(
        home.path(),
        &[
            "copy",
            "-q",
            "--dest-tls-verify=false",
            &creds,
            &img.reference(),
            &reg.image("app:1"),
        ],
    )
    .ok();
    for extra in [vec![], vec!["--creds=kopeo-user:wrong"], vec!["--creds=nobody:nothing"]] {
        let mut args = vec!["inspect", "--tls-verify=false"];
        args.extend(extra.iter().copied());
        let image = reg.image("app:1");
        args.push(&image);
        let k = kopeo(home.path(), &args);
        let s = skopeo(home.path(), &args);
        assert_eq!((k.code, s.code), (1, 1), "{extra:?}");
        let (k, s) = (fatal(&k.stderr), fatal(&s.stderr));
        for text in [&k, &s] {
            assert!(text.contains("reading manifest 1 in"), "{extra:?}: {text}");
            assert!(
                text.ends_with("unauthorized: authentication required\""),
                "{extra:?}: {text}"
            );
        }
        assert!(!k.contains("authentication required: "), "{k}");
    }
    // A token server refusing the password, as skopeo words it.
    let token = Registry::start(Mode::Token);
    let r = kopeo(
        home.path(),
        &[
            "inspect",
            "--tls-verify=false",
            "--creds=kopeo-user:wrong",
            &token.image("app:1"),
        ],
    );
    assert_eq!(r.code, 1);
    assert!(
        fatal(&r.stderr).contains("unable to retrieve auth token: invalid username/password: "),
        "{}",
        r.stderr
    );
}

#[test]
fn a_list_without_the_hosts_platform_says_so_as_skopeo_does() {
    let home = tempdir();
    for (docker, list) in [(true, "manifest list"), (false, "image index")] {
        let img = build(
            &home.path().join(format!("src-{docker}")),
            "x",
            &Spec {
                archs: vec!["arm64", "ppc64le"],
                docker,
                ..Spec::default()
            },
        );
        let r = kopeo(home.path(), &["--override-arch", "s390x", "inspect", &img.reference()]);
        assert_eq!(r.code, 1);
        let want = format!(
            "Error parsing manifest for image: choosing image instance: no image found in {list} for architecture \"s390x\", variant \"\", OS \"linux\""
        );
        assert!(r.stderr.contains(&want.replace('"', "\\\"")), "{}", r.stderr);
        let r = kopeo(
            home.path(),
            &[
                "--override-arch",
                "s390x",
                "copy",
                "-q",
                &img.reference(),
                &format!("dir:{}/d", home.path().display()),
            ],
        );
        assert_eq!(r.code, 1);
        assert!(
            r.stderr.contains("choosing an image from manifest list oci:"),
            "{}",
            r.stderr
        );
        assert!(
            r.stderr
                .contains(&format!("no image found in {list} for architecture \\\"s390x\\\"")),
            "{}",
            r.stderr
        );
    }
}

#[test]
fn hidden_and_deprecated_flags_skopeo_still_accepts_work() {
    let home = tempdir();
    let src = Registry::start(Mode::Htpasswd);
    let dst = Registry::start(Mode::Htpasswd);
    let img = build(&home.path().join("src"), "x", &Spec::default());
    let dcreds = format!("--dcreds={USER}:{PASSWORD}");
    let screds = format!("--screds={USER}:{PASSWORD}");
    kopeo(
        home.path(),
        &[
            "copy",
            "-q",
            "--dest-tls-verify=false",
            &dcreds,
            &img.reference(),
            &src.image("app:1"),
        ],
    )
    .ok();
    // The deprecated --tls-verify of copy applies to both sides, with skopeo's warning.
    let r = kopeo(
        home.path(),
        &[
            "copy",
            "-q",
            "--tls-verify=false",
            &screds,
            &dcreds,
            &src.image("app:1"),
            &dst.image("app:1"),
        ],
    )
    .ok();
    assert!(
        r.stderr.contains(kopeo::skopeo_texts::DEPRECATED_TLS_VERIFY),
        "{}",
        r.stderr
    );
    let s = skopeo(
        home.path(),
        &[
            "inspect",
            "--tls-verify=false",
            &format!("--creds={USER}:{PASSWORD}"),
            "--format",
            "{{.Digest}}",
            &dst.image("app:1"),
        ],
    );
    assert_eq!((s.code, s.stdout.trim()), (0, img.digest.as_str()), "{}", s.stderr);
    // sync takes them too, and -s/-d.
    let r = kopeo(
        home.path(),
        &[
            "sync",
            "-s",
            "docker",
            "-d",
            "docker",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &screds,
            &dcreds,
            &src.image("app").replace("docker://", ""),
            &format!("{}/synced", dst.host),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Hidden, as in skopeo's help.
    let help = kopeo(home.path(), &["copy", "--help"]).ok();
    for hidden in ["--screds", "--dcreds", "--tls-verify "] {
        assert!(!help.stdout.contains(hidden), "{hidden} is hidden");
    }
    assert!(help.stdout.contains("--src-tls-verify"));
    // -v prints the version; inspect's -n and -f; --manifest-digest.
    assert!(kopeo(home.path(), &["-v"]).ok().stdout.starts_with("kopeo "));
    let d = kopeo(
        home.path(),
        &[
            "inspect",
            "-n",
            "-f",
            "{{.Digest}}",
            "--manifest-digest",
            "sha512",
            &img.reference(),
        ],
    )
    .ok();
    assert!(
        d.stdout.trim().starts_with("sha512:") && d.stdout.trim().len() == 7 + 128,
        "{}",
        d.stdout
    );
    // The global deprecated --tls-verify, with its own warning.
    let r = kopeo(
        home.path(),
        &[
            "--tls-verify=false",
            "inspect",
            &format!("--creds={USER}:{PASSWORD}"),
            "-n",
            &dst.image("app:1"),
        ],
    )
    .ok();
    assert!(
        r.stderr
            .contains("'--tls-verify' is deprecated, please set this on the specific subcommand"),
        "{}",
        r.stderr
    );
    // --require-signed is refused rather than silently ignored.
    let r = kopeo(home.path(), &["--require-signed", "inspect", &img.reference()]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("--require-signed"), "{}", r.stderr);
}

#[test]
fn user_agent_prefix_and_tls_details_apply_to_registry_connections() {
    let home = tempdir();
    let img = build(&home.path().join("src"), "x", &Spec::default());
    let fake = fake_registry(&img.layout, "app", vec!["1"], |_, _| None);
    kopeo(
        home.path(),
        &[
            "--user-agent-prefix",
            "mirror-bot/2",
            "inspect",
            "--tls-verify=false",
            "-n",
            &format!("docker://{}/app:1", fake.host),
        ],
    )
    .ok();
    let agents: Vec<String> = fake
        .seen()
        .iter()
        .filter_map(|r| r.header("user-agent").map(str::to_string))
        .collect();
    assert!(
        !agents.is_empty() && agents.iter().all(|a| a.starts_with("mirror-bot/2 kopeo/")),
        "{agents:?}"
    );
    let reg = Registry::start(Mode::Tls);
    let certs = reg.cert_dir();
    let details = home.path().join("tls.yaml");
    std::fs::write(&details, "minVersion: \"1.3\"\nnamedGroups: [x25519]\n").unwrap();
    let certs = certs.to_str().unwrap();
    kopeo(
        home.path(),
        &[
            "--tls-details",
            details.to_str().unwrap(),
            "copy",
            "-q",
            "--dest-cert-dir",
            certs,
            &img.reference(),
            &reg.image("app:1"),
        ],
    )
    .ok();
    std::fs::write(&details, "cipherSuites: [TLS_RSA_WITH_RC4_128_SHA]\n").unwrap();
    let r = kopeo(
        home.path(),
        &[
            "--tls-details",
            details.to_str().unwrap(),
            "inspect",
            "--cert-dir",
            certs,
            &reg.image("app:1"),
        ],
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("unrecognized TLS cipher suite \\\"TLS_RSA_WITH_RC4_128_SHA\\\""),
        "{}",
        r.stderr
    );
}

/// A docker-archive holding two images: one tagged twice, one untagged.
fn two_image_archive(home: &Path) -> std::path::PathBuf {
    let img = build(
        &home.join("src"),
        "x",
        &Spec {
            tar_layers: true,
            ..Spec::default()
        },
    );
    let single = home.join("single.tar");
    kopeo(
        home,
        &[
            "copy",
            "-q",
            &img.reference(),
            &format!("docker-archive:{}:app:1", single.display()),
        ],
    )
    .ok();
    let out = home.join("two.tar");
    let mut builder = tar::Builder::new(std::fs::File::create(&out).unwrap());
    let mut archive = tar::Archive::new(std::fs::File::open(&single).unwrap());
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().into_owned();
        let mut header = e.header().clone();
        let mut data = vec![];
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        if path.as_os_str() == "manifest.json" {
            let mut m: serde_json::Value = serde_json::from_slice(&data).unwrap();
            let first = m[0].clone();
            m[0]["RepoTags"] = serde_json::json!(["app:1", "example.com/team/app:2"]);
            let mut second = first;
            second["RepoTags"] = serde_json::Value::Null;
            m.as_array_mut().unwrap().push(second);
            data = m.to_string().into_bytes();
            header.set_size(data.len() as u64);
            header.set_cksum();
        }
        builder.append(&header, &data[..]).unwrap();
    }
    builder.finish().unwrap();
    out
}

#[test]
fn list_tags_of_a_docker_archive_compressed_or_not() {
    let home = tempdir();
    let archive = two_image_archive(home.path());
    let k = kopeo(
        home.path(),
        &["list-tags", &format!("docker-archive:{}", archive.display())],
    )
    .ok();
    let v: serde_json::Value = serde_json::from_str(&k.stdout).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"Tags": ["app:1", "example.com/team/app:2", "@1"]})
    );
    let s = skopeo(
        home.path(),
        &["list-tags", &format!("docker-archive:{}", archive.display())],
    );
    assert_eq!(s.code, 0, "{}", s.stderr);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&s.stdout).unwrap(),
        v,
        "as skopeo lists them"
    );
    for (tool, ext) in [("gzip", "gz"), ("xz", "xz"), ("bzip2", "bz2"), ("zstd", "zst")] {
        let packed = home.path().join(format!("two.tar.{ext}"));
        let status = std::process::Command::new(tool)
            .args(["-c", archive.to_str().unwrap()])
            .stdout(std::fs::File::create(&packed).unwrap())
            .status()
            .unwrap();
        assert!(status.success(), "{tool}");
        let k = kopeo(
            home.path(),
            &["list-tags", &format!("docker-archive:{}", packed.display())],
        )
        .ok();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&k.stdout).unwrap(),
            v,
            "{ext}"
        );
        // Copied from, as from the plain archive.
        let d = kopeo(
            home.path(),
            &[
                "inspect",
                "--format",
                "{{.Digest}}",
                &format!("docker-archive:{}:app:1", packed.display()),
            ],
        )
        .ok();
        let plain = kopeo(
            home.path(),
            &[
                "inspect",
                "--format",
                "{{.Digest}}",
                &format!("docker-archive:{}:app:1", archive.display()),
            ],
        )
        .ok();
        assert_eq!(d.stdout, plain.stdout, "{ext}");
    }
}

#[test]
fn a_docker_archive_is_presented_as_skopeo_presents_it() {
    let home = tempdir();
    let archive = two_image_archive(home.path());
    let reference = format!("docker-archive:{}:app:1", archive.display());
    let k = kopeo(home.path(), &["inspect", "--raw", &reference]).ok();
    let s = skopeo(home.path(), &["inspect", "--raw", &reference]);
    assert_eq!(s.code, 0, "{}", s.stderr);
    assert_eq!(k.stdout, s.stdout, "the raw manifest, byte for byte");
    let digest = |out: &str| serde_json::from_str::<serde_json::Value>(out).unwrap()["Digest"].clone();
    let k = kopeo(home.path(), &["inspect", &reference]).ok();
    let s = skopeo(home.path(), &["inspect", &reference]);
    assert_eq!(digest(&k.stdout), digest(&s.stdout));
    // The layers are uncompressed whatever their media type says: a registry
    // still gets them compressed, a layout correctly converted.
    let reg = Registry::start(Mode::Plain);
    kopeo(
        home.path(),
        &["copy", "-q", "--dest-tls-verify=false", &reference, &reg.image("app:1")],
    )
    .ok();
    let raw = kopeo(
        home.path(),
        &["inspect", "--raw", "--tls-verify=false", &reg.image("app:1")],
    )
    .ok();
    let m: serde_json::Value = serde_json::from_str(&raw.stdout).unwrap();
    for l in m["layers"].as_array().unwrap() {
        assert_eq!(l["mediaType"], "application/vnd.docker.image.rootfs.diff.tar.gzip");
        let url = format!("http://{}/v2/app/blobs/{}", reg.host, l["digest"].as_str().unwrap());
        let body = crate::support::http_get(&url);
        assert_eq!(&body[..2], &[0x1f, 0x8b], "the registry holds gzip bytes");
    }
    let layout = home.path().join("layout");
    kopeo(
        home.path(),
        &["copy", "-q", &reference, &format!("oci:{}:x", layout.display())],
    )
    .ok();
    let back = home.path().join("back.tar");
    let s = skopeo(
        home.path(),
        &[
            "copy",
            &format!("oci:{}:x", layout.display()),
            &format!("docker-archive:{}:app:1", back.display()),
        ],
    );
    assert_eq!(s.code, 0, "skopeo reads the converted layout: {}", s.stderr);
    // Through dir: (which keeps the manifest as it is) and back.
    let dir = home.path().join("dir");
    kopeo(
        home.path(),
        &["copy", "-q", &reference, &format!("dir:{}", dir.display())],
    )
    .ok();
    assert_eq!(
        std::fs::read_to_string(dir.join("manifest.json")).unwrap(),
        kopeo(home.path(), &["inspect", "--raw", &reference]).ok().stdout
    );
    kopeo(
        home.path(),
        &[
            "copy",
            "-q",
            &format!("dir:{}", dir.display()),
            &format!("docker-archive:{}/again.tar", home.path().display()),
        ],
    )
    .ok();
}

/// Rewrite the single-image layout `layout`'s config with the fields a
/// Docker engine writes and OCI has not; its digest and the manifest's follow.
fn add_docker_config_fields(layout: &Path) {
    use sha2::{Digest as _, Sha256};
    let blob = |d: &str| layout.join("blobs/sha256").join(d.trim_start_matches("sha256:"));
    let put = |data: &[u8]| {
        let d = format!("sha256:{}", hex::encode(Sha256::digest(data)));
        std::fs::write(blob(&d), data).unwrap();
        d
    };
    let index_path = layout.join("index.json");
    let mut index: serde_json::Value = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap())
            .unwrap();
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob(manifest["config"]["digest"].as_str().unwrap())).unwrap()).unwrap();
    config["container"] = "3f2a".into();
    config["docker_version"] = "20.10.24".into();
    config["container_config"] =
        serde_json::json!({"Hostname": "3f2a", "Cmd": ["/bin/sh", "-c", "#(nop) CMD [\"sh\"]"]});
    config["config"]["Hostname"] = "".into();
    config["config"]["Cmd"] = serde_json::json!(["sh"]);
    config["config"]["ExposedPorts"] = serde_json::json!({"8080/tcp": {}});
    config["history"] = serde_json::json!([{"created": "2026-01-02T03:04:05.100000000Z", "created_by": "/bin/sh -c #(nop) ADD file", "empty_layer": false}]);
    let config = config.to_string().into_bytes();
    manifest["config"]["digest"] = put(&config).into();
    manifest["config"]["size"] = config.len().into();
    let manifest = manifest.to_string().into_bytes();
    index["manifests"][0]["digest"] = put(&manifest).into();
    index["manifests"][0]["size"] = manifest.len().into();
    std::fs::write(&index_path, index.to_string()).unwrap();
}

#[test]
fn inspect_config_prints_the_oci_form_as_skopeo_does() {
    let home = tempdir();
    let img = build(
        &home.path().join("src"),
        "x",
        &Spec {
            docker: true,
            tar_layers: true,
            ..Spec::default()
        },
    );
    add_docker_config_fields(&img.layout);
    // A docker-archive, as `docker save` would hold this image.
    let archive = home.path().join("saved.tar");
    kopeo(
        home.path(),
        &[
            "copy",
            "-q",
            &img.reference(),
            &format!("docker-archive:{}:app:1", archive.display()),
        ],
    )
    .ok();
    let reference = format!("docker-archive:{}", archive.display());
    let k = kopeo(home.path(), &["inspect", "--config", &reference]).ok();
    let s = skopeo(home.path(), &["inspect", "--config", &reference]);
    assert_eq!(s.code, 0, "{}", s.stderr);
    assert_eq!(k.stdout, s.stdout);
    for docker_only in ["container_config", "docker_version", "\"container\"", "Hostname"] {
        assert!(!k.stdout.contains(docker_only), "{docker_only}: {}", k.stdout);
    }
    assert!(
        k.stdout.contains("\"created\": \"2026-01-02T03:04:05.1Z\""),
        "Go's time form: {}",
        k.stdout
    );
    let raw = kopeo(home.path(), &["inspect", "--config", "--raw", &reference]).ok();
    let rawv: serde_json::Value = serde_json::from_str(&raw.stdout).unwrap();
    assert!(
        rawv.get("container_config").is_some(),
        "--raw keeps the Docker fields: {}",
        raw.stdout
    );
}

#[test]
fn sync_scoped_into_a_directory_keeps_host_and_port() {
    let home = tempdir();
    let reg = Registry::start(Mode::Plain);
    let img = build(&home.path().join("src"), "x", &Spec::default());
    kopeo(
        home.path(),
        &[
            "copy",
            "-q",
            "--dest-tls-verify=false",
            &img.reference(),
            &reg.image("ns/repo:1"),
        ],
    )
    .ok();
    let dest = home.path().join("out");
    let source = format!("{}/ns/repo", reg.host);
    let dry = kopeo(
        home.path(),
        &[
            "sync",
            "--src",
            "docker",
            "--dest",
            "dir",
            "--scoped",
            "--dry-run",
            "--src-tls-verify=false",
            &source,
            dest.to_str().unwrap(),
        ],
    )
    .ok();
    let want = dest.join(format!("{}/ns/repo:1", reg.host));
    assert!(
        dry.stderr.contains(&format!("dir:{}", want.display())),
        "{}",
        dry.stderr
    );
    kopeo(
        home.path(),
        &[
            "sync",
            "--src",
            "docker",
            "--dest",
            "dir",
            "--scoped",
            "--src-tls-verify=false",
            &source,
            dest.to_str().unwrap(),
        ],
    )
    .ok();
    assert!(want.join("manifest.json").exists(), "{}", want.display());
    let s = skopeo(
        home.path(),
        &[
            "sync",
            "--src",
            "docker",
            "--dest",
            "dir",
            "--scoped",
            "--src-tls-verify=false",
            &source,
            home.path().join("skopeo-out").to_str().unwrap(),
        ],
    );
    assert_eq!(s.code, 0, "{}", s.stderr);
    assert!(
        home.path()
            .join("skopeo-out")
            .join(format!("{}/ns/repo:1/manifest.json", reg.host))
            .exists(),
        "skopeo writes the same path"
    );
}

#[test]
fn token_endpoint_failures_are_retried_like_any_request() {
    let home = tempdir();
    let img = build(&home.path().join("src"), "x", &Spec::default());
    let failures = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(2));
    let left = failures.clone();
    let fake = fake_registry(&img.layout, "app", vec!["1"], move |req, me| {
        use std::sync::atomic::Ordering;
        if req.path() == "/token" {
            if left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return Some(Reply::bytes(503, "token service warming up"));
            }
            return Some(Reply::json(
                200,
                serde_json::json!({"token": "granted", "expires_in": 300}),
            ));
        }
        (req.header("authorization") != Some("Bearer granted")).then(|| {
            Reply::json(
                401,
                serde_json::json!({"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}),
            )
            .with(
                "WWW-Authenticate",
                &format!("Bearer realm=\"http://{me}/token\",service=\"fake\""),
            )
        })
    });
    let image = format!("docker://{}/app:1", fake.host);
    let r = kopeo(
        home.path(),
        &[
            "inspect",
            "--tls-verify=false",
            "-n",
            "--retry-times",
            "1",
            "--retry-delay",
            "10ms",
            &image,
        ],
    );
    assert_eq!(r.code, 1, "two failures, one retry: {}", r.stderr);
    assert!(r.stderr.contains("token service warming up"), "{}", r.stderr);
    failures.store(2, std::sync::atomic::Ordering::SeqCst);
    let before = fake.seen().iter().filter(|q| q.path() == "/token").count();
    let out = home.path().join("out");
    kopeo(
        home.path(),
        &[
            "copy",
            "-q",
            "--src-tls-verify=false",
            "--retry-times",
            "2",
            "--retry-delay",
            "10ms",
            &image,
            &format!("oci:{}:x", out.display()),
        ],
    )
    .ok();
    let tokens = fake.seen().iter().filter(|q| q.path() == "/token").count() - before;
    assert_eq!(tokens, 3, "two failed token requests, then one that succeeded");
    let d = kopeo(
        home.path(),
        &[
            "inspect",
            "--format",
            "{{.Digest}}",
            &format!("oci:{}:x", out.display()),
        ],
    )
    .ok();
    assert_eq!(d.stdout.trim(), img.digest);
}
