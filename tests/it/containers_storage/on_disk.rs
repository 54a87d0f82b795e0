//! The layer directories kopeo writes are the ones containers/storage
//! itself writes: skopeo (containers/storage inside) and kopeo apply the
//! same image to two stores of the same configuration, and every entry of
//! every layer directory — type, mode, owner, device, size, content,
//! symlink target, link count, xattrs, mtime — is compared.

use super::{Member, Store, layer_ids, layer_tar, layout, layout_of};
use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::Path;

/// Layers with every member type, a `./` entry with its own mode, a set-ID
/// file, whiteouts and an opaque directory.
fn every_kind() -> Vec<Vec<u8>> {
    layers(true)
}

/// The same layers, with devices and fifos (`specials`) or without.
fn layers(specials: bool) -> Vec<Vec<u8>> {
    let mut base = vec![Member::Dir("./", 0o711)];
    base.extend(super::base_members());
    if specials {
        base.extend([Member::Fifo("run/pipe", 0o620), Member::CharDevice("dev/null", 1, 3)]);
    }
    vec![
        layer_tar(&base),
        layer_tar(&[
            Member::File("etc/.wh.gone", b"", 0o644, 0),
            Member::Dir("var/cache/", 0o1777),
            Member::File("var/cache/.wh..wh..opq", b"", 0o644, 0),
            Member::File("var/cache/new", b"fresh", 0o2640, 1000),
        ]),
    ]
}

/// One line per entry under `root` (the root itself as `.`).
fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(p) = todo.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        let ft = m.file_type();
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_symlink() {
            "symlink"
        } else if ft.is_char_device() {
            "char"
        } else if ft.is_block_device() {
            "block"
        } else if ft.is_fifo() {
            "fifo"
        } else {
            "file"
        };
        let content = match kind {
            "file" => super::sha(&std::fs::read(&p).unwrap()),
            "symlink" => std::fs::read_link(&p).unwrap().display().to_string(),
            _ => String::new(),
        };
        // A directory's mtime is its own only where the tar names it; a
        // whiteout (0:0 device) carries the time it was made, by either
        // writer (containers/storage does not apply the header's): only its
        // presence compares, not the second it was made in.
        let mtime = if kind == "dir" || (kind == "char" && m.rdev() == 0) {
            0
        } else {
            m.mtime()
        };
        let line = format!(
            "{kind} {:04o} {}:{} rdev={} nlink={} mtime={mtime} {content} {}",
            m.mode() & 0o7777,
            m.uid(),
            m.gid(),
            m.rdev(),
            if kind == "dir" { 0 } else { m.nlink() },
            xattrs(&p)
        );
        let rel = p.strip_prefix(root).unwrap().display().to_string();
        out.insert(if rel.is_empty() { ".".into() } else { rel }, line);
        if kind == "dir" {
            for e in std::fs::read_dir(&p).unwrap() {
                todo.push(e.unwrap().path());
            }
        }
    }
    out
}

/// A tree line without the override xattr's value, and that value.
fn split_override(line: Option<&String>) -> (String, Option<String>) {
    const KEY: &str = "user.containers.override_stat=";
    let Some(line) = line else {
        return (String::new(), None);
    };
    match line.find(KEY) {
        None => (line.clone(), None),
        Some(at) => {
            let rest = &line[at + KEY.len()..];
            let end = rest.find(',').unwrap_or(rest.len());
            let stripped = format!("{}{KEY}{}", &line[..at], &rest[end..]);
            (stripped, Some(rest[..end].to_string()))
        }
    }
}

/// `UID:GID:MODE:TYPE` in the older `UID:GID:0PERM` form.
fn older_override(v: &str) -> Option<String> {
    let mut f = v.split(':');
    let (uid, gid, mode) = (f.next()?, f.next()?, u32::from_str_radix(f.next()?, 8).ok()?);
    Some(format!("{uid}:{gid}:0{:o}", mode & 0o777))
}

/// `name=value` for every xattr, sorted.
fn xattrs(p: &Path) -> String {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    let mut names = vec![0u8; 4096];
    // SAFETY: a NUL-terminated path and a buffer of its length.
    let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if n <= 0 {
        return String::new();
    }
    let mut all: Vec<String> = names[..n as usize]
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .map(|name| {
            let cname = std::ffi::CString::new(name).unwrap();
            let mut v = vec![0u8; 4096];
            // SAFETY: NUL-terminated strings and a buffer of its length.
            let len = unsafe { libc::lgetxattr(c.as_ptr(), cname.as_ptr(), v.as_mut_ptr().cast(), v.len()) };
            v.truncate(len.max(0) as usize);
            format!("{}={}", String::from_utf8_lossy(name), String::from_utf8_lossy(&v))
        })
        .collect();
    all.sort();
    all.join(",")
}

fn layer_dir(s: &Store, id: &str) -> std::path::PathBuf {
    match s.driver {
        "vfs" => s.graph.join("vfs/dir").join(id),
        _ => s.graph.join("overlay").join(id).join("diff"),
    }
}

/// Both tools write `driver` stores opened with these options; returns
/// kopeo's store and the layer IDs.
fn same_layers_as_containers_storage(driver: &'static str, options: &str) -> (Store, Vec<String>) {
    same_layers_of(driver, options, &every_kind())
}

fn same_layers_of(driver: &'static str, options: &str, layers: &[Vec<u8>]) -> (Store, Vec<String>) {
    let (theirs, ours) = (Store::new(driver), Store::new(driver));
    let (reference, ..) = layout(&theirs.home.join("src"), "v1", layers);
    theirs
        .skopeo(&[
            "copy",
            "-q",
            &reference,
            &theirs.reference_with(options, "localhost/t:v1"),
        ])
        .ok();
    ours.kopeo(&[
        "copy",
        "-q",
        &reference,
        &ours.reference_with(options, "localhost/t:v1"),
    ])
    .ok();
    let ids = layer_ids(&theirs);
    assert_eq!(ids, layer_ids(&ours), "the same layer IDs");
    let mut differences = vec![];
    for id in &ids {
        let (a, b) = (tree(&layer_dir(&theirs, id)), tree(&layer_dir(&ours, id)));
        let paths: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
        for path in paths {
            let (a_line, a_stat) = split_override(a.get(path));
            let (b_line, b_stat) = split_override(b.get(path));
            // Debian's containers/storage writes the override xattr in its
            // older form, `UID:GID:0PERM` (no set-ID bits, no type); current
            // upstream's `UID:GID:MODE:TYPE` must agree on owner and
            // permissions wherever both describe the same entry (the root and
            // hardlinked inodes are described differently by the two).
            let same_stat = match (&a_stat, &b_stat) {
                (Some(old), Some(new)) if path != "." && !b_line.contains("nlink=2") => {
                    older_override(new).as_deref() == Some(old.as_str())
                }
                (x, y) => x.is_some() == y.is_some(),
            };
            if a_line != b_line || !same_stat {
                differences.push(format!(
                    "layer {id} {path}:\n  containers/storage: {:?}\n  kopeo:              {:?}",
                    a.get(path),
                    b.get(path)
                ));
            }
        }
    }
    assert!(
        differences.is_empty(),
        "{driver} {options:?}:\n{}",
        differences.join("\n")
    );
    (ours, ids)
}

#[test]
fn vfs_layer_directories_are_the_ones_containers_storage_writes() {
    same_layers_as_containers_storage("vfs", "vfs.ignore_chown_errors=false");
}

#[test]
fn overlay_layer_directories_are_the_ones_containers_storage_writes() {
    same_layers_as_containers_storage("overlay", "overlay.ignore_chown_errors=false");
}

#[test]
fn a_force_mask_stores_the_real_owner_mode_and_type_in_the_override_xattr_as_containers_storage_does() {
    // Debian's containers/storage (skopeo 1.9) wants a mount program beside
    // a force mask; current upstream wants one only for container layers.
    let fuse = crate::support::require_tool("fuse-overlayfs", "fuse-overlayfs");
    for mask in ["shared", "0750"] {
        same_layers_of(
            "overlay",
            &format!("overlay.mount_program={fuse},overlay.force_mask={mask}"),
            &layers(false),
        );
    }
    // That containers/storage puts the xattr on a fifo it creates, which
    // Linux refuses for user. xattrs; current upstream stores devices and
    // fifos as regular files carrying their type in the xattr instead.
    let (s, ids) = {
        let s = Store::new("overlay");
        let (reference, ..) = layout(&s.home.join("src"), "v1", &every_kind());
        s.kopeo(&[
            "copy",
            "-q",
            &reference,
            &s.reference_with("overlay.force_mask=0700", "localhost/t:v1"),
        ])
        .ok();
        let ids = layer_ids(&s);
        (s, ids)
    };
    let base = ids
        .iter()
        .map(|id| tree(&layer_dir(&s, id)))
        .find(|t| t.contains_key("dev/null"))
        .expect("the base layer");
    let line = |p: &str| base[p].clone();
    assert!(
        line("dev/null").starts_with("file 0700 0:0 rdev=0"),
        "{}",
        line("dev/null")
    );
    assert!(line("dev/null").ends_with("user.containers.override_stat=0:0:0666:char-1-3"));
    assert!(line("run/pipe").ends_with("user.containers.override_stat=0:0:0620:pipe"));
    assert!(line("bin/tool").ends_with("user.containers.override_stat=0:0:4755:file"));
    assert!(
        line(".").ends_with("user.containers.override_stat=0:0:0711:dir"),
        "{}",
        line(".")
    );
    assert!(line("bin/alias").starts_with("symlink") && !line("bin/alias").contains("override_stat"));
    // And it reads back byte for byte: the tar-split keeps what the files lost.
    let out = s.home.join("back");
    s.skopeo(&[
        "copy",
        &s.reference("localhost/t:v1"),
        &format!("dir:{}", out.display()),
    ])
    .ok();
    for t in every_kind() {
        let d = super::sha(&t);
        assert_eq!(std::fs::read(out.join(d.trim_start_matches("sha256:"))).unwrap(), t);
    }
}

#[test]
fn behind_a_mount_program_whiteouts_stay_aufs_files_as_containers_storage_keeps_them() {
    let fuse = crate::support::require_tool("fuse-overlayfs", "fuse-overlayfs");
    same_layers_as_containers_storage("overlay", &format!("overlay.mount_program={fuse}"));
}

/// `tool -c` of `data` (xz, bzip2: Debian's own compressors).
fn compressed(tool: &str, data: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let bin = crate::support::require_tool(tool, if tool == "xz" { "xz-utils" } else { "bzip2" });
    let mut child = std::process::Command::new(bin)
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    out.stdout
}

#[test]
fn xz_and_bzip2_layers_are_applied_and_recorded_as_containers_storage_does() {
    let tars = layers(false);
    let blobs = [
        (
            compressed("xz", &tars[0]),
            &tars[0],
            "application/vnd.oci.image.layer.v1.tar",
        ),
        (
            compressed("bzip2", &tars[1]),
            &tars[1],
            "application/vnd.oci.image.layer.v1.tar",
        ),
    ];
    let (theirs, ours) = (Store::new("overlay"), Store::new("overlay"));
    let (reference, ..) = layout_of(&theirs.home.join("src"), "v1", &blobs);
    theirs
        .skopeo(&["copy", "-q", &reference, &theirs.reference("localhost/t:v1")])
        .ok();
    ours.kopeo(&["copy", "-q", &reference, &ours.reference("localhost/t:v1")])
        .ok();
    let ids = layer_ids(&theirs);
    assert_eq!(ids, layer_ids(&ours));
    for id in &ids {
        assert_eq!(tree(&layer_dir(&theirs, id)), tree(&layer_dir(&ours, id)), "layer {id}");
    }
    // The layer records agree on what matters: digests, sizes, the compression code.
    let records = |s: &Store| -> Vec<serde_json::Value> {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(s.graph.join("overlay-layers/layers.json")).unwrap()).unwrap();
        let mut out: Vec<serde_json::Value> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                serde_json::json!([
                    l["id"],
                    l["compressed-diff-digest"],
                    l["compressed-size"],
                    l["diff-digest"],
                    l["diff-size"],
                    l["compression"]
                ])
            })
            .collect();
        out.sort_by_key(|v| v.to_string());
        out
    };
    assert_eq!(records(&theirs), records(&ours));
}
