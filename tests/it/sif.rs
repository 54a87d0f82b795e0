//! `sif:` (read only): SIF files made here from the format's description
//! (a squashfs from mksquashfs in a SIF container) read by kopeo exactly as
//! skopeo reads them: the same manifest, config and layer bytes.

use crate::support::{kopeo, kopeo_env, require_tool, skopeo, tempdir};
use sha2::Digest as _;
use std::path::Path;
use std::process::Command;

/// A SIF file at `out` holding `rootfs` as its primary system partition and
/// `deffile` as its definition file (sylabs/sif's layout, little-endian).
fn make_sif(rootfs: &Path, deffile: Option<&str>, out: &Path) {
    let squash = out.with_extension("squashfs");
    let st = Command::new(require_tool("mksquashfs", "squashfs-tools"))
        .args([rootfs.as_os_str(), squash.as_os_str()])
        .args(["-noappend", "-quiet", "-no-progress"])
        .status()
        .expect("mksquashfs");
    assert!(st.success());
    let squash = std::fs::read(&squash).unwrap();
    let def = deffile.unwrap_or("").as_bytes().to_vec();
    let mut objects: Vec<(i32, Vec<u8>, Vec<u8>)> = vec![];
    if deffile.is_some() {
        objects.push((0x4001, def, vec![]));
    }
    let mut extra = vec![];
    extra.extend(1i32.to_le_bytes()); // squashfs
    extra.extend(2i32.to_le_bytes()); // primary system partition
    extra.extend(b"02\0"); // amd64
    objects.push((0x4004, squash, extra));
    let (header_len, descr_len) = (128usize, 585usize);
    let descr_off = header_len;
    let mut data_off = descr_off + objects.len() * descr_len;
    data_off = data_off.div_ceil(4096) * 4096;
    let mut descriptors = vec![];
    let mut data = vec![];
    let times = 1_700_000_000i64;
    for (i, (kind, body, extra)) in objects.iter().enumerate() {
        let offset = data_off + data.len();
        let mut d = vec![];
        d.extend(kind.to_le_bytes());
        d.push(1); // used
        d.extend((i as u32 + 1).to_le_bytes());
        d.extend((0xf000_0001u32).to_le_bytes());
        d.extend(0u32.to_le_bytes());
        d.extend((offset as i64).to_le_bytes());
        d.extend((body.len() as i64).to_le_bytes());
        d.extend((body.len() as i64).to_le_bytes());
        d.extend(times.to_le_bytes());
        d.extend(times.to_le_bytes());
        d.extend(0i64.to_le_bytes());
        d.extend(0i64.to_le_bytes());
        d.extend([0u8; 128]);
        let mut e = extra.clone();
        e.resize(384, 0);
        d.extend(e);
        assert_eq!(d.len(), descr_len);
        descriptors.extend(d);
        data.extend(body);
        data.resize(data.len().div_ceil(4096) * 4096, 0);
    }
    let mut h = vec![];
    let mut launch = b"#!/usr/bin/env run-singularity\n".to_vec();
    launch.resize(32, 0);
    h.extend(launch);
    h.extend(b"SIF_MAGIC\0");
    h.extend(b"01\0");
    h.extend(b"02\0");
    h.extend([0x5a; 16]); // the UUID
    h.extend(times.to_le_bytes());
    h.extend((times + 60).to_le_bytes());
    h.extend(0i64.to_le_bytes()); // free descriptors
    h.extend((objects.len() as i64).to_le_bytes());
    h.extend((descr_off as i64).to_le_bytes());
    h.extend(((objects.len() * descr_len) as i64).to_le_bytes());
    h.extend((data_off as i64).to_le_bytes());
    h.extend((data.len() as i64).to_le_bytes());
    assert_eq!(h.len(), header_len);
    let mut file = h;
    file.extend(descriptors);
    file.resize(data_off, 0);
    file.extend(data);
    std::fs::write(out, file).unwrap();
}

fn rootfs(dir: &Path) {
    std::fs::create_dir_all(dir.join("etc")).unwrap();
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::write(dir.join("etc/os-release"), "NAME=test\n").unwrap();
    std::fs::write(dir.join("bin/tool"), vec![9u8; 30_000]).unwrap();
    std::os::unix::fs::symlink("tool", dir.join("bin/alias")).unwrap();
}

fn raw(home: &Path, tool: &str, reference: &str, what: &[&str]) -> String {
    let mut args = vec!["inspect"];
    args.extend_from_slice(what);
    args.push(reference);
    let out = match tool {
        "kopeo" => kopeo(home, &args),
        _ => skopeo(home, &args),
    };
    out.ok().stdout
}

#[test]
fn sif_images_are_what_skopeo_reads_from_the_same_file() {
    let home = tempdir();
    let dir = home.path();
    for (name, def) in [
        ("plain", None),
        (
            "runscript",
            Some("Bootstrap: scratch\n%environment\n  export GREETING=hi\n%runscript\n  echo \"$GREETING\"\n"),
        ),
    ] {
        let root = dir.join(format!("{name}-root"));
        rootfs(&root);
        let sif = dir.join(format!("{name}.sif"));
        make_sif(&root, def, &sif);
        let reference = format!("sif:{}", sif.display());
        // GNU tar's PAX headers carry the unpacked files' atime and ctime,
        // so no two conversions (skopeo's included) give the same layer
        // bytes. Compared: the layers' members, and the manifest and config
        // byte for byte once the other's layer digest is put in.
        let (a, b) = (dir.join(format!("{name}-k")), dir.join(format!("{name}-s")));
        let started = unix_now();
        kopeo(dir, &["copy", "-q", &reference, &format!("dir:{}", a.display())]).ok();
        skopeo(dir, &["copy", "-q", &reference, &format!("dir:{}", b.display())]).ok();
        let manifest = |d: &Path| -> (String, serde_json::Value) {
            let t = std::fs::read_to_string(d.join("manifest.json")).unwrap();
            let v = serde_json::from_str(&t).unwrap();
            (t, v)
        };
        let ((mk, vk), (ms, vs)) = (manifest(&a), manifest(&b));
        let hex = |v: &serde_json::Value, p: &str| {
            v.pointer(p)
                .and_then(|d| d.as_str())
                .unwrap()
                .trim_start_matches("sha256:")
                .to_string()
        };
        let (lk, ls) = (hex(&vk, "/layers/0/digest"), hex(&vs, "/layers/0/digest"));
        let (ck, cs) = (hex(&vk, "/config/digest"), hex(&vs, "/config/digest"));
        let config_k = std::fs::read_to_string(a.join(&ck)).unwrap();
        let config_s = std::fs::read_to_string(b.join(&cs)).unwrap();
        assert_eq!(config_k, config_s.replace(&ls, &lk), "{name}: the config");
        assert_eq!(mk, ms.replace(&ls, &lk).replace(&cs, &ck), "{name}: the manifest");
        assert_eq!(
            members(&a.join(&lk), started),
            members(&b.join(&ls), started),
            "{name}: the layer's members"
        );
        // kopeo's inspect reads the same (converted anew: another layer digest).
        let inspected: serde_json::Value =
            serde_json::from_str(&raw(dir, "kopeo", &reference, &["--raw", "--config"])).unwrap();
        assert_eq!(
            inspected["config"],
            serde_json::from_str::<serde_json::Value>(&config_k).unwrap()["config"]
        );
        let config: serde_json::Value = serde_json::from_str(&config_k).unwrap();
        let cmd = if def.is_some() { "/podman/runscript" } else { "bash" };
        assert_eq!(config["config"]["Cmd"], serde_json::json!([cmd]));
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A layer's members as tar lists them (no PAX times): path, type, mode,
/// owner, size, mtime, link target and a digest of the content. What the
/// conversion itself writes (`/podman/`, as containers/image does) has the
/// time it was written: checked to lie between `started` and now, then shown
/// as "now" so that two conversions a second apart compare equal.
fn members(tar: &Path, started: u64) -> Vec<String> {
    let mut a = tar::Archive::new(std::fs::File::open(tar).unwrap());
    let mut out = vec![];
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let h = e.header().clone();
        let mut body = vec![];
        std::io::Read::read_to_end(&mut e, &mut body).unwrap();
        let path = e.path().unwrap().display().to_string();
        let mtime = h.mtime().unwrap();
        let mtime = if path.starts_with("./podman/") {
            assert!(
                (started..=unix_now()).contains(&mtime),
                "{path}: written at {mtime}, not during the conversion (from {started})"
            );
            "now".to_string()
        } else {
            mtime.to_string()
        };
        out.push(format!(
            "{} {:?} {:o} {}:{} {} {} {:?} {}",
            path,
            h.entry_type(),
            h.mode().unwrap(),
            h.uid().unwrap(),
            h.gid().unwrap(),
            h.size().unwrap(),
            mtime,
            e.link_name().unwrap(),
            hex::encode(sha2::Sha256::digest(&body))
        ));
    }
    assert!(out.len() >= 5, "{out:?}");
    out
}

#[test]
fn sif_errors_name_what_is_wrong() {
    let home = tempdir();
    let dir = home.path();
    let bad = dir.join("bad.sif");
    std::fs::write(&bad, vec![0u8; 4096]).unwrap();
    let out = kopeo(dir, &["inspect", &format!("sif:{}", bad.display())]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("loading SIF file"), "{}", out.stderr);
    let root = dir.join("root");
    rootfs(&root);
    let sif = dir.join("ok.sif");
    make_sif(&root, None, &sif);
    let empty = dir.join("empty-path");
    std::fs::create_dir_all(&empty).unwrap();
    let out = kopeo_env(
        dir,
        &["inspect", &format!("sif:{}", sif.display())],
        None,
        &[("PATH", empty.to_str().unwrap())],
    );
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("fakeroot"), "{}", out.stderr);
    let out = kopeo(
        dir,
        &[
            "copy",
            "-q",
            &format!("sif:{}", sif.display()),
            &format!("sif:{}/other.sif", dir.display()),
        ],
    );
    assert!(out.stderr.contains("can only be read from"), "{}", out.stderr);
    let out = kopeo(dir, &["delete", &format!("sif:{}", sif.display())]);
    assert!(
        out.stderr.contains("Deleting images not implemented for sif"),
        "{}",
        out.stderr
    );
}
