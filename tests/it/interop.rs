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
