//! `tarball:` (read only): filesystem tarballs as an image, byte for byte
//! as containers/image builds it; skopeo is the oracle.

use crate::support::{kopeo, skopeo, tempdir};
use sha2::Digest as _;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// A filesystem tarball of a few files.
fn fs_tar(seed: u8) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, body) in [("etc/hello", vec![seed; 300]), ("bin/tool", vec![seed ^ 0x55; 5000])] {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o755);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        b.append_data(&mut h, name, &body[..]).unwrap();
    }
    b.into_inner().unwrap()
}

/// Write `data` to `path`, dated with nanoseconds (Go writes them all).
fn dated(path: &Path, data: &[u8], nanos: u32) {
    std::fs::write(path, data).unwrap();
    let t = SystemTime::UNIX_EPOCH + Duration::new(1_741_064_767, nanos);
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

#[test]
fn tarball_images_are_what_skopeo_builds_from_the_same_files() {
    let home = tempdir();
    let dir = home.path();
    let plain = fs_tar(1);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &fs_tar(2)).unwrap();
    dated(&dir.join("a.tar"), &plain, 123_456_789);
    dated(&dir.join("b.tar.gz"), &gz.finish().unwrap(), 500_000_000);
    let src = format!(
        "tarball:{}:{}",
        dir.join("a.tar").display(),
        dir.join("b.tar.gz").display()
    );
    // dir: keeps layers as they are, so both copies hold the source's own manifest.
    kopeo(
        dir,
        &["copy", "-q", &src, &format!("dir:{}", dir.join("ours").display())],
    )
    .ok();
    let theirs = skopeo(
        dir,
        &["copy", "-q", &src, &format!("dir:{}", dir.join("theirs").display())],
    );
    assert_eq!(theirs.code, 0, "{}", theirs.stderr);
    let read = |d: &str, f: &str| std::fs::read(dir.join(d).join(f)).unwrap();
    assert_eq!(
        String::from_utf8(read("ours", "manifest.json")).unwrap(),
        String::from_utf8(read("theirs", "manifest.json")).unwrap(),
        "the same manifest, byte for byte"
    );
    let manifest: serde_json::Value = serde_json::from_slice(&read("ours", "manifest.json")).unwrap();
    let config_hex = &manifest["config"]["digest"].as_str().unwrap()[7..];
    assert_eq!(read("ours", config_hex), read("theirs", config_hex));
    let config: serde_json::Value = serde_json::from_slice(&read("ours", config_hex)).unwrap();
    assert_eq!(config["history"][0]["created"], "2025-03-04T05:06:07.123456789Z");
    assert_eq!(config["created"], "2025-03-04T05:06:07.5Z", "the newest file's date");
    assert_eq!(
        manifest["layers"][1]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    // inspect reads it as skopeo does (`--config` output differs by version:
    // current image-spec leaves an empty `config` out, 1.9.3 prints `{}`).
    let ours = kopeo(dir, &["inspect", "--raw", &src]).ok();
    let theirs = skopeo(dir, &["inspect", "--raw", &src]);
    assert_eq!(ours.stdout.trim(), theirs.stdout.trim());
    let ours = kopeo(dir, &["inspect", "--config", "--raw", &src]).ok();
    assert_eq!(ours.stdout.as_bytes(), &read("theirs", config_hex)[..]);
    // zstd: as current containers/image labels it (skopeo 1.9.3 predates that).
    let zst = zstd::encode_all(&fs_tar(3)[..], 3).unwrap();
    dated(&dir.join("c.tar.zst"), &zst, 0);
    let zsrc = format!("tarball:{}", dir.join("c.tar.zst").display());
    let r = kopeo(dir, &["inspect", "--raw", &zsrc]).ok();
    let m: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        m["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    let r = kopeo(dir, &["inspect", "--config", &zsrc]).ok();
    let c: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let diff_id = format!("sha256:{}", hex::encode(sha2::Sha256::digest(fs_tar(3))));
    assert_eq!(c["rootfs"]["diff_ids"][0], diff_id.as_str());
    assert_eq!(c["created"], "2025-03-04T05:06:07Z");
    // bzip2: upstream labels it gzip (an image no runtime unpacks); refused.
    let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
    std::io::Write::write_all(&mut bz, &fs_tar(4)).unwrap();
    dated(&dir.join("d.tar.bz2"), &bz.finish().unwrap(), 0);
    let r = kopeo(
        dir,
        &["inspect", &format!("tarball:{}", dir.join("d.tar.bz2").display())],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("a bzip2-compressed layer cannot be written"),
        "{}",
        r.stderr
    );
    // Standard input is a layer too.
    let r = crate::support::kopeo_with_stdin(
        dir,
        &[
            "copy",
            "-q",
            "tarball:-",
            &format!("oci:{}:stdin", dir.join("layout").display()),
        ],
        Some(std::str::from_utf8(&plain).unwrap_or_default()),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Read only, and a missing file is a bad reference (exit 1).
    let r = kopeo(
        dir,
        &["copy", &src, &format!("tarball:{}", dir.join("out.tar").display())],
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains(r#"\"tarball:\" locations can only be read from, not written to"#),
        "{}",
        r.stderr
    );
    let r = kopeo(
        dir,
        &["inspect", &format!("tarball:{}", dir.join("none.tar").display())],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("No such file or directory"), "{}", r.stderr);
}
