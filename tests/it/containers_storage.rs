//! `containers-storage:` against the real thing: stores kopeo writes are
//! read by podman and skopeo (same image ID, same diff IDs, the same tar
//! bytes back), stores skopeo writes are read by kopeo identically, for the
//! vfs and overlay drivers; whiteouts and opaque directories survive both
//! ways; hostile layers write nothing outside the layer; a lock held by
//! another process makes kopeo wait; delete keeps what another image uses.
//! Every store is private (a temp graphroot and runroot, and a private
//! storage.conf named by CONTAINERS_STORAGE_CONF).

use crate::support::image::put;
use crate::support::{Run, finish, require_tool, skopeo_env, tempdir};
use sha2::Digest as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A private store and the environment every tool gets for it.
struct Store {
    _dir: tempfile::TempDir,
    home: PathBuf,
    graph: PathBuf,
    run: PathBuf,
    driver: &'static str,
    conf: PathBuf,
}

impl Store {
    fn new(driver: &'static str) -> Store {
        let dir = tempdir();
        let (graph, run, home) = (
            dir.path().join("graph"),
            dir.path().join("run"),
            dir.path().join("home"),
        );
        std::fs::create_dir_all(&home).unwrap();
        let conf = dir.path().join("storage.conf");
        std::fs::write(
            &conf,
            format!(
                "[storage]\ndriver = \"{driver}\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
                graph.display(),
                run.display()
            ),
        )
        .unwrap();
        Store {
            home,
            graph,
            run,
            driver,
            conf,
            _dir: dir,
        }
    }

    /// `containers-storage:[driver@graph+run:options]name`: a specification
    /// opens the store with these options only (not storage.conf's).
    fn reference_with(&self, options: &str, name: &str) -> String {
        format!(
            "containers-storage:[{}@{}+{}:{options}]{name}",
            self.driver,
            self.graph.display(),
            self.run.display()
        )
    }

    /// `containers-storage:[driver@graph+run]name`.
    fn reference(&self, name: &str) -> String {
        format!(
            "containers-storage:[{}@{}+{}]{name}",
            self.driver,
            self.graph.display(),
            self.run.display()
        )
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![("CONTAINERS_STORAGE_CONF", self.conf.display().to_string())]
    }

    fn kopeo(&self, args: &[&str]) -> Run {
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        crate::support::kopeo_env(&self.home, args, None, &env)
    }

    fn skopeo(&self, args: &[&str]) -> Run {
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        skopeo_env(&self.home, args, &env)
    }

    /// containers/storage's own CLI on this store.
    fn storage_cli(&self, args: &[&str]) -> std::process::Output {
        let bin = require_tool("containers-storage", "containers-storage");
        Command::new(bin)
            .args([
                "-g",
                self.graph.to_str().unwrap(),
                "-R",
                self.run.to_str().unwrap(),
                "-s",
                self.driver,
            ])
            .args(args)
            .env("CONTAINERS_STORAGE_CONF", &self.conf)
            .output()
            .expect("running containers-storage")
    }

    fn podman(&self, args: &[&str]) -> Run {
        let bin = require_tool("podman", "podman");
        finish(
            Command::new(bin)
                .args([
                    "--root",
                    self.graph.to_str().unwrap(),
                    "--runroot",
                    self.run.to_str().unwrap(),
                ])
                .args(["--storage-driver", self.driver])
                .args(args)
                .env("CONTAINERS_STORAGE_CONF", &self.conf)
                .env("HOME", &self.home)
                .output()
                .expect("running podman"),
        )
    }
}

mod on_disk;

/// One layer member.
enum Member<'a> {
    Dir(&'a str, u32),
    File(&'a str, &'a [u8], u32, u64),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
    Fifo(&'a str, u32),
    /// A character device (major, minor).
    CharDevice(&'a str, u32, u32),
}

fn layer_tar(members: &[Member]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for m in members {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_700_000_000);
        match m {
            Member::Dir(name, mode) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*mode);
                h.set_size(0);
                b.append_data(&mut h, name, &[][..]).unwrap();
            }
            Member::File(name, body, mode, uid) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_uid(*uid);
                h.set_gid(*uid);
                h.set_size(body.len() as u64);
                b.append_data(&mut h, name, *body).unwrap();
            }
            Member::Symlink(name, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                h.set_mode(0o777);
                b.append_link(&mut h, name, target).unwrap();
            }
            Member::Hardlink(name, target) => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_size(0);
                h.set_mode(0o644);
                b.append_link(&mut h, name, target).unwrap();
            }
            Member::Fifo(name, mode) => {
                h.set_entry_type(tar::EntryType::Fifo);
                h.set_size(0);
                h.set_mode(*mode);
                b.append_data(&mut h, name, &[][..]).unwrap();
            }
            Member::CharDevice(name, major, minor) => {
                h.set_entry_type(tar::EntryType::Char);
                h.set_size(0);
                h.set_mode(0o666);
                h.set_device_major(*major).unwrap();
                h.set_device_minor(*minor).unwrap();
                b.append_data(&mut h, name, &[][..]).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

fn sha(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(b)))
}

/// An OCI layout at `dir` holding `name`: gzip layers of these tars. Returns
/// (reference, config digest, diff IDs).
fn layout(dir: &Path, name: &str, tars: &[Vec<u8>]) -> (String, String, Vec<String>) {
    let layers: Vec<(Vec<u8>, &Vec<u8>, &str)> = tars
        .iter()
        .map(|t| {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut gz, t).unwrap();
            (gz.finish().unwrap(), t, "application/vnd.oci.image.layer.v1.tar+gzip")
        })
        .collect();
    layout_of(dir, name, &layers)
}

/// An OCI layout of layers given as (blob, the tar it holds, media type).
fn layout_of(dir: &Path, name: &str, blobs: &[(Vec<u8>, &Vec<u8>, &str)]) -> (String, String, Vec<String>) {
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let diff_ids: Vec<String> = blobs.iter().map(|(_, t, _)| sha(t)).collect();
    let layers: Vec<serde_json::Value> = blobs
        .iter()
        .map(|(blob, _, media_type)| {
            let (d, n) = put(dir, blob);
            serde_json::json!({"mediaType": media_type, "digest": d, "size": n})
        })
        .collect();
    let config = serde_json::json!({"architecture": "amd64", "os": "linux", "created": "2026-01-02T03:04:05Z",
        "config": {"Env": ["PATH=/usr/bin"]}, "rootfs": {"type": "layers", "diff_ids": diff_ids}});
    let (cd, cn) = put(dir, config.to_string().as_bytes());
    let manifest = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn}, "layers": layers});
    let (md, mn) = put(dir, manifest.to_string().as_bytes());
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": md, "size": mn, "annotations": {"org.opencontainers.image.ref.name": name}}]});
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
    (format!("oci:{}:{name}", dir.display()), cd, diff_ids)
}

/// A base tree: modes, owners, a set-ID file, a symlink, a hardlink.
fn base_members() -> Vec<Member<'static>> {
    vec![
        Member::Dir("etc/", 0o755),
        Member::File("etc/keep", b"kept", 0o644, 0),
        Member::File("etc/gone", b"whited out", 0o600, 0),
        Member::Dir("var/", 0o755),
        Member::Dir("var/cache/", 0o700),
        Member::File("var/cache/old", b"hidden by the opaque dir", 0o644, 1000),
        Member::File("bin/tool", &[7u8; 70_000], 0o4755, 0),
        Member::Symlink("bin/alias", "tool"),
        Member::Hardlink("bin/same", "bin/tool"),
    ]
}

/// Three layers: a base tree (modes, owners, symlink, hardlink), then a
/// layer whiting out a file and making a directory opaque, then a file.
fn three_layers() -> Vec<Vec<u8>> {
    vec![
        layer_tar(&base_members()),
        layer_tar(&[
            Member::File("etc/.wh.gone", b"", 0o644, 0),
            Member::Dir("var/cache/", 0o755),
            Member::File("var/cache/.wh..wh..opq", b"", 0o644, 0),
            Member::File("var/cache/new", b"fresh", 0o640, 1000),
        ]),
        layer_tar(&[Member::File("etc/top", b"top layer", 0o644, 0)]),
    ]
}

fn json(run: &Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

/// What kopeo writes, podman lists with the config's ID and diff IDs, and
/// skopeo reads back byte for byte; the top layer's tree has the whiteouts
/// applied (vfs) or kept as overlayfs keeps them (overlay).
fn kopeo_writes_podman_and_skopeo_read(driver: &'static str) {
    let s = Store::new(driver);
    let src = s.home.join("src");
    let (reference, config, diff_ids) = layout(&src, "v1", &three_layers());
    let dst = s.reference("localhost/kopeo/test:v1");
    s.kopeo(&["copy", "-q", &reference, &dst]).ok();

    let images = json(&s.podman(&["images", "--format", "json"]).ok());
    let id = config.trim_start_matches("sha256:");
    assert_eq!(images[0]["Id"], id, "{images}");
    assert_eq!(images[0]["Names"][0], "localhost/kopeo/test:v1");
    let inspect = json(&s.podman(&["image", "inspect", id]).ok());
    assert_eq!(inspect[0]["RootFS"]["Layers"], serde_json::json!(diff_ids), "{inspect}");

    // skopeo reads the layers back: the very tars that went in.
    let out = s.home.join("back");
    s.skopeo(&["copy", &dst, &format!("dir:{}", out.display())]).ok();
    for d in &diff_ids {
        let hex = d.trim_start_matches("sha256:");
        let bytes = std::fs::read(out.join(hex)).unwrap_or_else(|e| panic!("layer {d} not read back: {e}"));
        assert_eq!(sha(&bytes), *d);
    }
    // containers/storage itself reassembles each layer from its tar-split
    // and files: the very tars again.
    let listed = s.storage_cli(&["layers", "--json"]);
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(3), "{listed}");
    for l in listed.as_array().unwrap() {
        let id = l["id"].as_str().unwrap();
        let diff = s.storage_cli(&["diff", "-u", id]);
        assert!(diff.status.success(), "{}", String::from_utf8_lossy(&diff.stderr));
        assert!(
            diff_ids.contains(&sha(&diff.stdout)),
            "layer {id} reassembles to other bytes"
        );
    }

    // The tree: what a container would see.
    let tops = s.graph.join(format!("{driver}-layers/layers.json"));
    let layers: serde_json::Value = serde_json::from_slice(&std::fs::read(tops).unwrap()).unwrap();
    let by_parent = |p: Option<&str>| {
        layers
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["parent"].as_str() == p)
            .map(|l| l["id"].as_str().unwrap().to_string())
            .unwrap()
    };
    let l1 = by_parent(None);
    let l2 = by_parent(Some(&l1));
    assert_eq!(l1, diff_ids[0].trim_start_matches("sha256:"));
    match driver {
        "vfs" => {
            let root = s.graph.join("vfs/dir").join(&l2);
            assert!(root.join("etc/keep").exists());
            assert!(!root.join("etc/gone").exists(), "the whiteout removed it");
            assert!(!root.join("var/cache/old").exists(), "the opaque directory hid it");
            assert_eq!(std::fs::read(root.join("var/cache/new")).unwrap(), b"fresh");
        }
        _ => {
            use std::os::unix::fs::{FileTypeExt, MetadataExt};
            let diff = s.graph.join("overlay").join(&l2).join("diff");
            let w = std::fs::symlink_metadata(diff.join("etc/gone")).unwrap();
            assert!(w.file_type().is_char_device() && w.rdev() == 0, "a 0:0 whiteout device");
            let mut v = [0u8; 4];
            let path = std::ffi::CString::new(diff.join("var/cache").to_str().unwrap()).unwrap();
            // SAFETY: NUL-terminated strings and a buffer of its length.
            let n = unsafe {
                libc::lgetxattr(
                    path.as_ptr(),
                    c"trusted.overlay.opaque".as_ptr(),
                    v.as_mut_ptr().cast(),
                    v.len(),
                )
            };
            assert_eq!(n, 1, "opaque xattr on var/cache");
            assert_eq!(v[0], b'y');
            let lower = std::fs::read_to_string(s.graph.join("overlay").join(&l2).join("lower")).unwrap();
            let link1 = std::fs::read_to_string(s.graph.join("overlay").join(&l1).join("link")).unwrap();
            assert_eq!(lower, format!("l/{link1}"));
        }
    }
}

#[test]
fn kopeo_writes_vfs_stores_that_podman_and_skopeo_read() {
    kopeo_writes_podman_and_skopeo_read("vfs");
}

#[test]
fn kopeo_writes_overlay_stores_that_podman_and_skopeo_read() {
    kopeo_writes_podman_and_skopeo_read("overlay");
}

/// What skopeo writes, kopeo inspects as skopeo does and copies out as
/// skopeo does: the same manifest (uncompressed layers), the same bytes.
fn skopeo_writes_kopeo_reads(driver: &'static str) {
    let s = Store::new(driver);
    let (reference, _, diff_ids) = layout(&s.home.join("src"), "v1", &three_layers());
    let stored = s.reference("localhost/by/skopeo:v1");
    s.skopeo(&["copy", "-q", &reference, &stored]).ok();

    assert_eq!(
        s.kopeo(&["inspect", "--raw", &stored]).ok().stdout,
        s.skopeo(&["inspect", "--raw", &stored]).ok().stdout
    );
    let mut ours = json(&s.kopeo(&["inspect", &stored]).ok());
    let mut theirs = json(&s.skopeo(&["inspect", &stored]).ok());
    for v in [&mut ours, &mut theirs] {
        // Debian's skopeo 1.9 predates LayersData; neither lists tags here.
        v.as_object_mut().unwrap().remove("RepoTags");
        v.as_object_mut().unwrap().remove("LayersData");
    }
    assert_eq!(ours, theirs);
    assert_eq!(
        json(&s.kopeo(&["inspect", "--config", &stored]).ok()),
        json(&s.skopeo(&["inspect", "--config", &stored]).ok())
    );

    let (a, b) = (s.home.join("by-kopeo"), s.home.join("by-skopeo"));
    s.kopeo(&["copy", "-q", &stored, &format!("dir:{}", a.display())]).ok();
    s.skopeo(&["copy", "-q", &stored, &format!("dir:{}", b.display())]).ok();
    let read = |p: &Path| -> serde_json::Value { serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap() };
    let (ma, mb) = (read(&a.join("manifest.json")), read(&b.join("manifest.json")));
    assert_eq!(ma["config"], mb["config"]);
    let layers = |m: &serde_json::Value| -> Vec<(String, u64)> {
        m["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| (l["digest"].as_str().unwrap().to_string(), l["size"].as_u64().unwrap()))
            .collect()
    };
    assert_eq!(layers(&ma), layers(&mb));
    // Uncompressed bytes under the uncompressed type, as current
    // containers/image labels them (Debian's skopeo 1.9 still says +gzip).
    assert!(
        ma["layers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["mediaType"] == "application/vnd.oci.image.layer.v1.tar"),
        "{ma}"
    );
    for d in &diff_ids {
        let hex = d.trim_start_matches("sha256:");
        assert_eq!(std::fs::read(a.join(hex)).unwrap(), std::fs::read(b.join(hex)).unwrap());
    }
    // By ID too, and a missing image is "not found" (exit 2) with upstream's text.
    let id = json(&s.podman(&["images", "--format", "json"]).ok())[0]["Id"]
        .as_str()
        .unwrap()
        .to_string();
    s.kopeo(&["inspect", &s.reference(&id[..12])]).ok();
    let missing = s.kopeo(&["inspect", &s.reference("localhost/none:v1")]);
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    assert!(
        missing.stderr.contains("does not resolve to an image ID"),
        "{}",
        missing.stderr
    );
}

#[test]
fn skopeo_writes_vfs_stores_that_kopeo_reads_identically() {
    skopeo_writes_kopeo_reads("vfs");
}

#[test]
fn skopeo_writes_overlay_stores_that_kopeo_reads_identically() {
    skopeo_writes_kopeo_reads("overlay");
}

fn layer_ids(s: &Store) -> Vec<String> {
    let p = s.graph.join(format!("{}-layers/layers.json", s.driver));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
    let mut ids: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

#[test]
fn delete_removes_the_image_and_only_the_layers_no_other_image_uses() {
    let s = Store::new("vfs");
    let base = layer_tar(&[Member::File("etc/base", b"shared", 0o644, 0)]);
    let a = layer_tar(&[Member::File("etc/a", b"only in a", 0o644, 0)]);
    let b = layer_tar(&[Member::File("etc/b", b"only in b", 0o644, 0)]);
    let (ra, _, da) = layout(&s.home.join("a"), "a", &[base.clone(), a]);
    let (rb, _, _) = layout(&s.home.join("b"), "b", &[base, b]);
    s.kopeo(&["copy", "-q", &ra, &s.reference("localhost/a:1")]).ok();
    s.kopeo(&["copy", "-q", &rb, &s.reference("localhost/b:1")]).ok();
    assert_eq!(layer_ids(&s).len(), 3, "the base layer is stored once");
    s.kopeo(&["delete", &s.reference("localhost/a:1")]).ok();
    let images = json(&s.podman(&["images", "--format", "json"]).ok());
    assert_eq!(images.as_array().map(Vec::len), Some(1), "{images}");
    assert_eq!(images[0]["Names"][0], "localhost/b:1");
    let left = layer_ids(&s);
    assert_eq!(left.len(), 2);
    assert!(
        left.contains(&da[0].trim_start_matches("sha256:").to_string()),
        "the shared base stays"
    );
    // The survivor reads back whole (skopeo as the reader).
    s.skopeo(&[
        "copy",
        &s.reference("localhost/b:1"),
        &format!("dir:{}", s.home.join("b-out").display()),
    ])
    .ok();
    let gone = s.kopeo(&["delete", &s.reference("localhost/a:1")]);
    assert_ne!(gone.code, 0);
    assert!(
        gone.stderr.contains("does not resolve to an image ID"),
        "{}",
        gone.stderr
    );
}

#[test]
fn a_second_name_joins_the_image_a_recopy_adds_no_layer_and_a_name_moves_between_images() {
    let s = Store::new("overlay");
    let (r1, c1, _) = layout(&s.home.join("one"), "v", &three_layers());
    s.kopeo(&["copy", "-q", &r1, &s.reference("localhost/x:1")]).ok();
    let before = layer_ids(&s);
    s.kopeo(&["copy", "-q", &r1, &s.reference("localhost/x:2")]).ok();
    s.kopeo(&["copy", "-q", &r1, &s.reference("localhost/x:1")]).ok();
    assert_eq!(layer_ids(&s), before, "no layer written twice");
    let images = json(&s.podman(&["images", "--format", "json"]).ok());
    let ids: std::collections::BTreeSet<&str> = images
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["Id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1, "one image (podman lists it once per name): {images}");
    let mut names: Vec<String> = serde_json::from_value(images[0]["Names"].clone()).unwrap();
    names.sort();
    assert_eq!(names, ["localhost/x:1", "localhost/x:2"]);
    // Another image takes the name x:2 away from the first.
    let other = layer_tar(&[Member::File("etc/other", b"other", 0o644, 0)]);
    let (r2, c2, _) = layout(&s.home.join("two"), "v", &[other]);
    s.kopeo(&["copy", "-q", &r2, &s.reference("localhost/x:2")]).ok();
    let inspect = |id: &str| json(&s.podman(&["image", "inspect", id]).ok())[0]["RepoTags"].clone();
    assert_eq!(
        inspect(c1.trim_start_matches("sha256:")),
        serde_json::json!(["localhost/x:1"])
    );
    assert_eq!(
        inspect(c2.trim_start_matches("sha256:")),
        serde_json::json!(["localhost/x:2"])
    );
}

/// An OCI index of amd64 and arm64 images whose base layer is shared.
fn two_platform_list(s: &Store) -> crate::support::image::Built {
    crate::support::image::build(
        &s.home.join("list"),
        "l",
        &crate::support::image::Spec {
            archs: vec!["amd64", "arm64"],
            tar_layers: true,
            ..Default::default()
        },
    )
}

#[test]
fn copying_all_of_a_list_is_refused_with_upstreams_message() {
    let s = Store::new("vfs");
    let img = two_platform_list(&s);
    let out = s.kopeo(&["copy", "--all", &img.reference(), &s.reference("localhost/list:1")]);
    assert_eq!(out.code, 1);
    assert!(
        // logrus quotes the message, escaping its quotes.
        out.stderr.contains(
            r#"copying multiple images: destination transport \"containers-storage\" does not support copying multiple images as a group"#
        ),
        "{}",
        out.stderr
    );
    // Without --all, the host's instance goes in.
    s.kopeo(&["copy", "-q", &img.reference(), &s.reference("localhost/list:1")])
        .ok();
    assert_eq!(
        json(&s.podman(&["images", "--format", "json"]).ok())
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

#[test]
fn a_writer_holding_the_store_lock_makes_kopeo_wait_then_commit() {
    let s = Store::new("vfs");
    let (r, _, _) = layout(&s.home.join("src"), "v", &three_layers());
    // podman creates the store's files; then another process holds layers.lock.
    s.podman(&["images"]).ok();
    let lock = s.graph.join("vfs-layers/layers.lock");
    let released = s.home.join("released");
    let script = format!(
        "import fcntl,time,sys\nf=open({:?},'r+')\nfcntl.lockf(f,fcntl.LOCK_EX)\nprint('locked',flush=True)\ntime.sleep(2)\nopen({:?},'w').write(str(time.time()))\nfcntl.lockf(f,fcntl.LOCK_UN)\n",
        lock.display().to_string(),
        released.display().to_string()
    );
    let mut holder = Command::new("python3")
        .args(["-c", &script])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(holder.stdout.take().unwrap()), &mut line).unwrap();
    assert_eq!(line.trim(), "locked");
    s.kopeo(&["copy", "-q", &r, &s.reference("localhost/waited:1")]).ok();
    assert!(holder.wait().unwrap().success());
    let released_at: f64 = std::fs::read_to_string(&released).unwrap().parse().unwrap();
    let written = std::fs::metadata(s.graph.join("vfs-layers/layers.json"))
        .unwrap()
        .modified()
        .unwrap();
    let written = written.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!(
        written >= released_at,
        "layers.json was rewritten while another process held its lock"
    );
    assert_eq!(
        json(&s.podman(&["images", "--format", "json"]).ok())[0]["Names"][0],
        "localhost/waited:1"
    );
}

#[test]
fn hostile_layers_write_nothing_outside_and_leave_no_image() {
    let s = Store::new("vfs");
    let outside = s.home.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    // A symlink to a host directory, then a file "through" it: as in a
    // chroot, it lands inside the layer, not in the host directory.
    let through = layer_tar(&[
        Member::Symlink("evil", outside.to_str().unwrap()),
        Member::File("evil/pwned", b"x", 0o644, 0),
    ]);
    let (r, _, _) = layout(&s.home.join("through"), "v", &[through]);
    s.kopeo(&["copy", "-q", &r, &s.reference("localhost/through:1")]).ok();
    assert!(!outside.join("pwned").exists(), "written through a symlink to the host");
    for (name, members) in [
        // Renamed to `../../escaped` below: the tar crate refuses to write it.
        ("dotdot", vec![Member::File("xx/xx/escaped", b"x", 0o644, 0)]),
        ("hardlink", vec![Member::Hardlink("h", "../../../../etc/passwd")]),
        (
            "duplicate",
            vec![Member::File("a", b"1", 0o644, 0), Member::File("./a", b"2", 0o644, 0)],
        ),
    ] {
        let mut tar = layer_tar(&members);
        if name == "dotdot" {
            let n = b"../../escaped";
            tar[..n.len()].copy_from_slice(n);
            let block = &mut tar[..512];
            block[148..156].fill(b' ');
            let sum: u32 = block.iter().map(|&b| b as u32).sum();
            block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        }
        let (r, _, _) = layout(&s.home.join(name), "v", &[tar]);
        let out = s.kopeo(&["copy", "-q", &r, &s.reference(&format!("localhost/{name}:1"))]);
        assert_eq!(out.code, 1, "{name}: {}", out.stderr);
        assert!(out.stderr.contains("malformed layer"), "{name}: {}", out.stderr);
        assert!(!out.stderr.contains("panicked"), "{name}: {}", out.stderr);
    }
    assert!(!s.home.join("escaped").exists() && !s.graph.join("escaped").exists());
    let images = json(&s.podman(&["images", "--format", "json"]).ok());
    assert_eq!(
        images.as_array().map(Vec::len),
        Some(1),
        "only the first image: {images}"
    );
    let staging = std::fs::read_dir(s.graph.join("tmp")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(staging, 0, "staging directories are removed");
}

#[test]
fn a_layer_left_incomplete_by_a_killed_writer_is_redone_by_the_next_copy() {
    let s = Store::new("vfs");
    let (r, _, diff_ids) = layout(&s.home.join("src"), "v", &three_layers());
    let dst = s.reference("localhost/redo:1");
    s.kopeo(&["copy", "-q", &r, &dst]).ok();
    // What a SIGKILL during the top layer leaves: no image record, the top
    // layer flagged incomplete and half its files.
    let images = s.graph.join("vfs-images/images.json");
    std::fs::write(&images, "[]").unwrap();
    let lj = s.graph.join("vfs-layers/layers.json");
    let mut layers: serde_json::Value = serde_json::from_slice(&std::fs::read(&lj).unwrap()).unwrap();
    let top = layers
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|l| l["diff-digest"] == diff_ids[2])
        .unwrap();
    top["flags"] = serde_json::json!({"incomplete": true});
    let top_id = top["id"].as_str().unwrap().to_string();
    std::fs::write(&lj, serde_json::to_vec(&layers).unwrap()).unwrap();
    std::fs::remove_file(s.graph.join("vfs/dir").join(&top_id).join("etc/top")).unwrap();
    // podman still reads the store; the next copy completes it.
    s.podman(&["images"]).ok();
    s.kopeo(&["copy", "-q", &r, &dst]).ok();
    assert_eq!(
        std::fs::read(s.graph.join("vfs/dir").join(&top_id).join("etc/top")).unwrap(),
        b"top layer"
    );
    let out = s.home.join("out");
    s.skopeo(&["copy", &dst, &format!("dir:{}", out.display())]).ok();
    let top_tar = std::fs::read(out.join(diff_ids[2].trim_start_matches("sha256:"))).unwrap();
    assert_eq!(sha(&top_tar), diff_ids[2]);
}

#[test]
fn a_copy_out_of_storage_to_a_registry_compresses_the_layers() {
    let s = Store::new("vfs");
    let (r, _, diff_ids) = layout(&s.home.join("src"), "v", &three_layers());
    let stored = s.reference("localhost/out:1");
    s.kopeo(&["copy", "-q", &r, &stored]).ok();
    let reg = crate::support::registry::Registry::start(crate::support::registry::Mode::Plain);
    let to = reg.image("from/storage:1");
    s.kopeo(&["copy", "-q", "--dest-tls-verify=false", &stored, &to]).ok();
    let m = json(&s.skopeo(&["inspect", "--raw", "--tls-verify=false", &to]).ok());
    let layers = m["layers"].as_array().unwrap();
    assert!(
        layers
            .iter()
            .all(|l| l["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"),
        "{m}"
    );
    let c = json(&s.skopeo(&["inspect", "--config", "--tls-verify=false", &to]).ok());
    assert_eq!(c["rootfs"]["diff_ids"], serde_json::json!(diff_ids));
}

#[test]
fn signatures_made_on_the_way_in_are_kept_as_containers_image_keeps_them() {
    let s = Store::new("vfs");
    let gpg = crate::support::gpg::GpgHome::new(&s.home);
    let fpr = gpg.key("signer@example.com", "", false);
    let (r, _, _) = layout(&s.home.join("src"), "v", &three_layers());
    let dst = s.reference("localhost/signed:1");
    let mut env = s.env();
    env.push(("GNUPGHOME", gpg.dir.display().to_string()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    crate::support::kopeo_env(&s.home, &["copy", "-q", "--sign-by", &fpr, &r, &dst], None, &env).ok();
    let id = json(&s.podman(&["images", "--format", "json"]).ok())[0]["Id"]
        .as_str()
        .unwrap()
        .to_string();
    // containers/storage's CLI reads the data back: the signature, and the
    // manifest it signs, which skopeo verifies.
    let data = |key: &str| {
        let out = s.storage_cli(&["get-image-data", &id, key]);
        assert!(out.status.success(), "{key}: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    };
    let (sig, manifest) = (s.home.join("sig"), s.home.join("manifest.json"));
    std::fs::write(&sig, data("signatures")).unwrap();
    std::fs::write(&manifest, data("manifest")).unwrap();
    let meta = s.storage_cli(&["metadata", "-q", &id]);
    let meta = String::from_utf8_lossy(&meta.stdout).to_string();
    let sizes: serde_json::Value = serde_json::from_str(meta.trim()).unwrap_or_else(|e| panic!("{e}: {meta}"));
    assert_eq!(
        sizes["signature-sizes"],
        serde_json::json!([std::fs::metadata(&sig).unwrap().len()])
    );
    let verified = crate::support::skopeo_env(
        &s.home,
        &[
            "standalone-verify",
            manifest.to_str().unwrap(),
            "localhost/signed:1",
            &fpr,
            sig.to_str().unwrap(),
        ],
        &[gpg.env()],
    )
    .ok();
    assert!(verified.stdout.contains("Signature verified"), "{}", verified.stdout);
    // Out of storage the manifest changes (uncompressed layers): as upstream,
    // that needs --remove-signatures.
    let out = format!("dir:{}", s.home.join("out").display());
    let refused = s.kopeo(&["copy", "-q", &dst, &out]);
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains("Would invalidate signatures"),
        "{}",
        refused.stderr
    );
    s.kopeo(&["copy", "-q", "--remove-signatures", &dst, &out]).ok();
}

#[test]
fn every_layer_tar_fuzz_seed_applies_and_reads_back_byte_for_byte() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/layer_tar");
    let mut n = 0;
    for seed in ["tree", "whiteouts", "longnames", "pax", "ustar", "symlink-through"] {
        let data = std::fs::read(seeds.join(seed)).unwrap();
        for overlay in [false, true] {
            let dir = tempdir();
            let root = dir.path().join("root");
            std::fs::create_dir(&root).unwrap();
            let back = kopeo::transport::containers_storage::apply_and_reassemble(&data, &root, overlay)
                .unwrap_or_else(|e| panic!("{seed} (overlay {overlay}): {e}"));
            assert!(back == data, "{seed} (overlay {overlay}) reads back as other bytes");
            n += 1;
        }
    }
    assert_eq!(n, 12);
}

#[test]
fn a_copy_sigkilled_while_applying_a_layer_leaves_a_store_podman_reads_and_a_rerun_completes() {
    let s = Store::new("overlay");
    // Many small files: applying the layer takes long enough to be caught.
    let files: Vec<(String, Vec<u8>)> = (0..3000)
        .map(|i| (format!("data/d{}/f{i}", i % 30), crate::support::image::noise(4096, i)))
        .collect();
    let big = layer_tar(
        &files
            .iter()
            .map(|(n, b)| Member::File(n, b, 0o644, 0))
            .collect::<Vec<_>>(),
    );
    let small = layer_tar(&[Member::File("etc/top", b"top", 0o644, 0)]);
    let (r, _, diff_ids) = layout(&s.home.join("src"), "v", &[big, small]);
    let dst = s.reference("localhost/killed:1");
    let layers_json = s.graph.join("overlay-layers/layers.json");
    let mut caught = false;
    for _attempt in 0..5 {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kopeo"));
        cmd.args(["copy", "-q", &r, &dst])
            .env("HOME", &s.home)
            .env("CONTAINERS_STORAGE_CONF", &s.conf)
            .stderr(std::process::Stdio::null());
        let mut child = cmd.spawn().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            if std::fs::read_to_string(&layers_json).is_ok_and(|j| j.contains("\"incomplete\":true")) {
                child.kill().unwrap();
                caught = true;
                break;
            }
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let _ = child.wait();
        if caught {
            break;
        }
        // Finished before it was caught: start again from an empty store.
        s.kopeo(&["delete", &dst]).ok();
    }
    assert!(caught, "kopeo was never caught applying a layer");
    // podman and skopeo read the store as it is (no image yet).
    let images = json(&s.podman(&["images", "--format", "json"]).ok());
    assert_eq!(images.as_array().map(Vec::len), Some(0), "{images}");
    // The next copy completes it, and every layer reads back as it went in.
    s.kopeo(&["copy", "-q", &r, &dst]).ok();
    let inspect = json(&s.podman(&["image", "inspect", "localhost/killed:1"]).ok());
    assert_eq!(inspect[0]["RootFS"]["Layers"], serde_json::json!(diff_ids));
    let listed: serde_json::Value = serde_json::from_slice(&s.storage_cli(&["layers", "--json"]).stdout).unwrap();
    for l in listed.as_array().unwrap() {
        assert!(l["flags"]["incomplete"].is_null(), "{l}");
        let diff = s.storage_cli(&["diff", "-u", l["id"].as_str().unwrap()]);
        assert!(
            diff_ids.contains(&sha(&diff.stdout)),
            "a layer reads back as other bytes"
        );
    }
    let staging = std::fs::read_dir(s.graph.join("tmp")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(staging, 0, "the killed copy's staging directory was swept");
}

#[test]
fn two_architectures_of_one_list_share_their_base_layer_in_the_store() {
    let s = Store::new("vfs");
    let img = two_platform_list(&s);
    for arch in ["amd64", "arm64"] {
        s.kopeo(&[
            "--override-arch",
            arch,
            "copy",
            "-q",
            &img.reference(),
            &s.reference(&format!("localhost/multi:{arch}")),
        ])
        .ok();
    }
    let images = json(&s.podman(&["images", "--format", "json"]).ok());
    let archs: std::collections::BTreeSet<String> = images
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let id = i["Id"].as_str().unwrap();
            json(&s.podman(&["image", "inspect", id]).ok())[0]["Architecture"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(archs.into_iter().collect::<Vec<_>>(), ["amd64", "arm64"]);
    // Two layers each, the base one stored once.
    assert_eq!(layer_ids(&s).len(), 3);
}

/// `kopeo ARGS` as the unprivileged user `nobody` (65534), as a rootless
/// podman user runs it: no capabilities, so no chown to other owners.
fn kopeo_as_nobody(s: &Store, args: &[&str]) -> Run {
    let setpriv = require_tool("setpriv", "util-linux");
    finish(
        Command::new(setpriv)
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"])
            .arg(env!("CARGO_BIN_EXE_kopeo"))
            .args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", &s.home)
            .env("XDG_RUNTIME_DIR", &s.run)
            .env("CONTAINERS_STORAGE_CONF", &s.conf)
            .output()
            .expect("running kopeo as nobody"),
    )
}

/// Hand the store's directories to `nobody`, and let it reach them.
fn give_to_nobody(s: &Store) {
    use std::os::unix::fs::PermissionsExt as _;
    let top = s.home.parent().unwrap();
    std::fs::set_permissions(top, std::fs::Permissions::from_mode(0o755)).unwrap();
    for d in [&s.graph, &s.run] {
        std::fs::create_dir_all(d).unwrap();
    }
    for d in [&s.home, &s.graph, &s.run] {
        let status = Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(d)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

/// As `nobody`, copy the three-layer image into a fresh `driver` store:
/// refused until ignore_chown_errors is set, then podman and skopeo read it.
fn rootless_copy(driver: &'static str) -> (Store, Vec<String>) {
    let s = Store::new(driver);
    let (reference, config, diff_ids) = layout(&s.home.join("src"), "v1", &three_layers());
    give_to_nobody(&s);
    let dst = s.reference("localhost/rootless:v1");
    // Members owned by uid 1000: without ignore_chown_errors a user who may
    // not chown is refused, naming the file and the option, and no image appears.
    let refused = kopeo_as_nobody(&s, &["copy", "-q", &reference, &dst]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(refused.stderr.contains("ignore_chown_errors"), "{}", refused.stderr);
    assert!(!refused.stderr.contains("panicked"), "{}", refused.stderr);
    let images = s.podman(&["images", "-q"]).ok();
    assert_eq!(images.stdout.trim(), "", "no image after the refusal");
    // podman ran as root and made its directories root's: give them back.
    give_to_nobody(&s);

    let told = s.reference_with(&format!("{driver}.ignore_chown_errors=true"), "localhost/rootless:v1");
    kopeo_as_nobody(&s, &["copy", "-q", &reference, &told]).ok();
    // podman (as root) lists it; skopeo reads the layers back byte for byte:
    // the tar-split keeps the owners the files could not get.
    let images = json(&s.podman(&["images", "--format", "json"]).ok());
    assert_eq!(images[0]["Id"], config.trim_start_matches("sha256:"), "{images}");
    let out = s.home.join("back");
    s.skopeo(&["copy", &dst, &format!("dir:{}", out.display())]).ok();
    for d in &diff_ids {
        let bytes = std::fs::read(out.join(d.trim_start_matches("sha256:"))).unwrap();
        assert_eq!(sha(&bytes), *d, "layer read back");
    }
    (s, diff_ids)
}

#[test]
fn rootless_kopeo_writes_user_xattrs_and_squashes_owners_only_when_told() {
    let (s, diff_ids) = rootless_copy("overlay");
    // On disk: owned by the user, the opaque directory marked with the
    // `user.` xattr (a rootless user cannot set `trusted.`), whiteouts as
    // 0:0 devices (unprivileged since Linux 5.8).
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let layers: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.graph.join("overlay-layers/layers.json")).unwrap()).unwrap();
    let second = layers
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["diff-digest"] == diff_ids[1])
        .and_then(|l| l["id"].as_str())
        .unwrap()
        .to_string();
    let diff = s.graph.join("overlay").join(&second).join("diff");
    use std::os::unix::fs::PermissionsExt as _;
    let root_mode = std::fs::metadata(&diff).unwrap().permissions().mode() & 0o7777;
    assert_eq!(root_mode, 0o555, "diff/ gets its mode back once filled");
    let new = std::fs::symlink_metadata(diff.join("var/cache/new")).unwrap();
    assert_eq!((new.uid(), new.gid()), (65534, 65534), "squashed to the user");
    let w = std::fs::symlink_metadata(diff.join("etc/gone")).unwrap();
    assert!(w.file_type().is_char_device() && w.rdev() == 0, "a 0:0 whiteout device");
    let xattr = |name: &std::ffi::CStr| {
        let mut v = [0u8; 4];
        let path = std::ffi::CString::new(diff.join("var/cache").to_str().unwrap()).unwrap();
        // SAFETY: NUL-terminated strings and a buffer of its length.
        let n = unsafe { libc::lgetxattr(path.as_ptr(), name.as_ptr(), v.as_mut_ptr().cast(), v.len()) };
        (n == 1).then_some(v[0])
    };
    assert_eq!(xattr(c"user.overlay.opaque"), Some(b'y'), "opaque by user. xattr");
    assert_eq!(xattr(c"trusted.overlay.opaque"), None);
}

#[test]
fn rootless_kopeo_fills_vfs_layers_whose_roots_are_read_only() {
    // vfs copies the parent's tree (root 0555) for each layer: a non-root
    // writer must still fill it, and the root gets its mode back after.
    use std::os::unix::fs::PermissionsExt as _;
    let (s, _) = rootless_copy("vfs");
    for e in std::fs::read_dir(s.graph.join("vfs/dir")).unwrap() {
        let mode = e.unwrap().metadata().unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o555, "a layer root keeps containers/storage's mode");
    }
}
