//! skopeo as an independent oracle: what kopeo writes, skopeo reads to the
//! same digests, and the other way round.

use crate::support::image::{Spec, build};
use crate::support::{kopeo, skopeo, tempdir};

fn skopeo_digest(home: &std::path::Path, image: &str) -> String {
    let out = skopeo(home, &["inspect", "--raw", image]).ok();
    let raw = out.stdout.into_bytes();
    format!("sha256:{}", hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&raw)))
}

#[test]
fn skopeo_reads_what_kopeo_writes() {
    let home = tempdir();
    let img = build(
        &home.path().join("src"),
        "x",
        &Spec {
            archs: vec!["amd64", "arm64"],
            ..Spec::default()
        },
    );
    let oci = format!("oci:{}:k", home.path().join("k-oci").display());
    let dir = format!("dir:{}", home.path().join("k-dir").display());
    kopeo(home.path(), &["copy", "-q", "--all", &img.reference(), &oci]).ok();
    kopeo(home.path(), &["copy", "-q", "--all", &img.reference(), &dir]).ok();
    assert_eq!(skopeo_digest(home.path(), &oci), img.digest);
    assert_eq!(skopeo_digest(home.path(), &dir), img.digest);
    // skopeo can copy all of it onwards (it verifies every blob on the way).
    let out = format!("oci:{}:s", home.path().join("s-oci").display());
    skopeo(home.path(), &["copy", "--all", "--preserve-digests", &dir, &out]).ok();
    assert_eq!(skopeo_digest(home.path(), &out), img.digest);
}

#[test]
fn kopeo_reads_what_skopeo_writes() {
    let home = tempdir();
    let img = build(
        &home.path().join("src"),
        "x",
        &Spec {
            archs: vec!["amd64", "arm64"],
            ..Spec::default()
        },
    );
    let s_dir = format!("dir:{}", home.path().join("s-dir").display());
    let s_oci = format!("oci:{}:s", home.path().join("s-oci").display());
    skopeo(home.path(), &["copy", "--all", &img.reference(), &s_dir]).ok();
    skopeo(home.path(), &["copy", "--all", &img.reference(), &s_oci]).ok();
    let from_dir = kopeo(home.path(), &["inspect", "--format", "{{.Digest}}", &s_dir]).ok();
    assert_eq!(from_dir.stdout.trim(), img.digest);
    let s_oci_digest = skopeo_digest(home.path(), &s_oci);
    let from_oci = kopeo(home.path(), &["inspect", "--format", "{{.Digest}}", &s_oci]).ok();
    assert_eq!(from_oci.stdout.trim(), s_oci_digest);
    let back = format!("dir:{}", home.path().join("k-dir").display());
    kopeo(home.path(), &["copy", "-q", "--all", &s_oci, &back]).ok();
    assert_eq!(skopeo_digest(home.path(), &back), s_oci_digest);
}

#[test]
fn docker_list_converted_for_an_oci_layout_is_valid_for_skopeo() {
    let home = tempdir();
    let reg = crate::support::registry::Registry::start(crate::support::registry::Mode::Plain);
    let img = build(
        &home.path().join("src"),
        "x",
        &Spec {
            archs: vec!["amd64", "arm64"],
            docker: true,
            ..Spec::default()
        },
    );
    kopeo(
        home.path(),
        &[
            "copy",
            "-q",
            "--all",
            "--dest-tls-verify=false",
            &img.reference(),
            &reg.image("docker-list:1"),
        ],
    )
    .ok();
    let oci = format!("oci:{}:conv", home.path().join("conv").display());
    kopeo(
        home.path(),
        &[
            "copy",
            "-q",
            "--all",
            "--src-tls-verify=false",
            &reg.image("docker-list:1"),
            &oci,
        ],
    )
    .ok();
    let raw = kopeo(home.path(), &["inspect", "--raw", &oci]).ok().stdout;
    assert!(
        raw.contains("application/vnd.oci.image.index.v1+json") && !raw.contains("vnd.docker"),
        "{raw}"
    );
    // skopeo verifies every manifest and blob digest while copying it on.
    let out = format!("dir:{}", home.path().join("checked").display());
    skopeo(home.path(), &["copy", "--all", "--preserve-digests", &oci, &out]).ok();
    assert_eq!(skopeo_digest(home.path(), &out), skopeo_digest(home.path(), &oci));
    let arm = kopeo(
        home.path(),
        &[
            "--override-arch",
            "arm64",
            "inspect",
            "--format",
            "{{.Architecture}}",
            &oci,
        ],
    )
    .ok();
    assert_eq!(arm.stdout.trim(), "arm64");
}

#[test]
fn kopeo_copies_registry_images_skopeo_pushed_and_keeps_their_digests() {
    // Manifests another client wrote (an OCI index with --all, and a Docker
    // schema2 image skopeo converted itself): kopeo reads and copies them
    // byte for byte.
    use crate::support::registry::{Mode, Registry};
    let home = tempdir();
    let (a, b) = (Registry::start(Mode::Plain), Registry::start(Mode::Plain));
    let img = build(
        &home.path().join("src"),
        "x",
        &Spec {
            archs: vec!["amd64", "arm64"],
            ..Spec::default()
        },
    );
    let single = build(
        &home.path().join("single"),
        "x",
        &Spec {
            seed: 5,
            ..Spec::default()
        },
    );
    skopeo(
        home.path(),
        &[
            "copy",
            "--all",
            "--dest-tls-verify=false",
            &img.reference(),
            &a.image("by-skopeo:list"),
        ],
    )
    .ok();
    skopeo(
        home.path(),
        &[
            "copy",
            "--format",
            "v2s2",
            "--dest-tls-verify=false",
            &single.reference(),
            &a.image("by-skopeo:v2s2"),
        ],
    )
    .ok();
    assert!(
        a.raw_manifest(home.path(), "by-skopeo:v2s2")
            .contains("application/vnd.docker.distribution.manifest.v2+json")
    );
    for tag in ["list", "v2s2"] {
        let pushed = a.digest(home.path(), &format!("by-skopeo:{tag}"));
        let raw = kopeo(
            home.path(),
            &[
                "inspect",
                "--raw",
                "--tls-verify=false",
                &a.image(&format!("by-skopeo:{tag}")),
            ],
        )
        .ok();
        assert_eq!(
            format!(
                "sha256:{}",
                hex::encode(<sha2::Sha256 as sha2::Digest>::digest(raw.stdout.as_bytes()))
            ),
            pushed,
            "kopeo reads skopeo's bytes ({tag})"
        );
        kopeo(
            home.path(),
            &[
                "copy",
                "-q",
                "--all",
                "--src-tls-verify=false",
                "--dest-tls-verify=false",
                &a.image(&format!("by-skopeo:{tag}")),
                &b.image(&format!("mirror:{tag}")),
            ],
        )
        .ok();
        assert_eq!(b.digest(home.path(), &format!("mirror:{tag}")), pushed, "{tag}");
    }
}

#[test]
fn docker_pulls_what_kopeo_pushed_to_a_registry() {
    // Docker's own client as the reader: a pull from a loopback registry
    // (docker treats 127.0.0.0/8 as insecure, so plain HTTP is allowed).
    use crate::support::registry::{Mode, Registry};
    let home = tempdir();
    let d = crate::support::dockerd::dockerd();
    let reg = Registry::start(Mode::Plain);
    let img = build(
        &home.path().join("src"),
        "x",
        &Spec {
            tar_layers: true,
            seed: 77,
            ..Spec::default()
        },
    );
    kopeo(
        home.path(),
        &[
            "copy",
            "-q",
            "--dest-tls-verify=false",
            &img.reference(),
            &reg.image("pulled/app:1"),
        ],
    )
    .ok();
    let name = format!("{}/pulled/app:1", reg.host);
    let pull = d.docker(&["pull", &name]);
    assert_eq!(pull.code, 0, "{}", pull.stderr);
    assert!(
        pull.stdout.contains(&img.digest),
        "docker reports the digest kopeo wrote: {}",
        pull.stdout
    );
    let id = d.docker(&["image", "inspect", "--format", "{{.Id}}", &name]).ok();
    let config = kopeo(home.path(), &["inspect", "--config", "--raw", &img.reference()]).ok();
    assert_eq!(
        id.stdout.trim(),
        format!(
            "sha256:{}",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(config.stdout.as_bytes()))
        ),
        "the image's ID is its config's digest"
    );
    d.docker(&["image", "rm", &name]).ok();
}
