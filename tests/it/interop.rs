//! skopeo as an independent oracle: what kopeo writes, skopeo reads to the
//! same digests, and the other way round.

use crate::support::image::{Spec, build};
use crate::support::{kopeo, skopeo, tempdir};

fn skopeo_digest(home: &std::path::Path, image: &str) -> String {
    let out = skopeo(home, &["inspect", "--raw", image]).ok();
    let raw = out.stdout.into_bytes();
    format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&raw))
    )
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
    kopeo(
        home.path(),
        &["copy", "-q", "--all", &img.reference(), &oci],
    )
    .ok();
    kopeo(
        home.path(),
        &["copy", "-q", "--all", &img.reference(), &dir],
    )
    .ok();
    assert_eq!(skopeo_digest(home.path(), &oci), img.digest);
    assert_eq!(skopeo_digest(home.path(), &dir), img.digest);
    // skopeo can copy all of it onwards (it verifies every blob on the way).
    let out = format!("oci:{}:s", home.path().join("s-oci").display());
    skopeo(
        home.path(),
        &["copy", "--all", "--preserve-digests", &dir, &out],
    )
    .ok();
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
