//! What kopeo promises under hostile input: archives, layouts, compressed
//! layers and registries built to break a copier. Each case fails with exit
//! 1 and a message naming what is wrong, never panics, writes nothing
//! outside its destination, and leaves no destination that looks complete.

use crate::support::image::{Built, Spec, build, put};
use crate::support::standin::{Body, Reply, fake_registry};
use crate::support::{Run, kopeo, require_tool, tempdir};
use std::path::Path;

/// The run failed as a refusal should: exit 1, `expect` in the message, no panic.
#[track_caller]
fn refused(case: &str, r: &Run, expect: &str) {
    assert_eq!(r.code, 1, "{case}: exit code\n{}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{case}: panicked\n{}", r.stderr);
    assert!(
        r.stderr.contains(expect),
        "{case}: expected {expect:?} in\n{}",
        r.stderr
    );
}

/// Nothing that looks like a finished image at a `dir:` or `oci:` destination.
#[track_caller]
fn nothing_complete(case: &str, dest: &Path) {
    assert!(
        !dest.join("manifest.json").exists(),
        "{case}: a dir: manifest was written"
    );
    let index = std::fs::read_to_string(dest.join("index.json")).unwrap_or_default();
    assert!(!index.contains("ref.name"), "{case}: a tag was written: {index}");
}

/// A tar member with any name, link and type, written byte by byte (the tar
/// crate rightly refuses to build hostile names).
fn member(out: &mut Vec<u8>, name: &str, kind: tar::EntryType, link: &str, data: &[u8]) {
    let mut h = tar::Header::new_old();
    {
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(kind);
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

fn archive(members: &[(&str, tar::EntryType, &str, &[u8])]) -> Vec<u8> {
    let mut out = vec![];
    for (n, k, l, d) in members {
        member(&mut out, n, *k, l, d);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// A header claiming `size` bytes of data that never follow.
fn lying_header(name: &str, kind: tar::EntryType, size: u64) -> Vec<u8> {
    let mut h = tar::Header::new_ustar();
    h.set_path(name).unwrap();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_entry_type(kind);
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(&[0u8; 4096]);
    out
}

#[test]
fn hostile_archives_are_refused_with_a_clear_error() {
    use tar::EntryType::{Link, Regular, Symlink, XHeader};
    let home = tempdir();
    let outside = home.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let manifest = br#"[{"Config":"c.json","RepoTags":["x:1"],"Layers":["l.tar"]}]"#;
    let escaping = br#"[{"Config":"../../../etc/passwd","RepoTags":["x:1"],"Layers":["/etc/passwd"]}]"#;
    let layers = format!(
        r#"[{{"Config":"c.json","RepoTags":["x:1"],"Layers":[{}]}}]"#,
        vec![r#""l.tar""#; 100_000].join(",")
    );
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let outside_link = outside.to_string_lossy().into_owned();
    // (case, archive, what the docker-archive error says)
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "traversal",
            archive(&[("../evil", Regular, "", b"x"), ("manifest.json", Regular, "", manifest)]),
            "member ../evil points outside the archive",
        ),
        (
            "absolute",
            archive(&[("/etc/evil", Regular, "", b"x")]),
            "outside the archive",
        ),
        (
            "symlink-out",
            archive(&[("l.tar", Symlink, "../../etc/passwd", b"")]),
            "link l.tar points outside the archive",
        ),
        (
            "hardlink-out",
            archive(&[("l.tar", Link, "/etc/passwd", b"")]),
            "link l.tar points outside the archive",
        ),
        (
            // A directory link, then a file "inside" it: extracting would write through.
            "written-through-a-link",
            archive(&[
                ("d", Symlink, &outside_link, b""),
                ("d/planted", Regular, "", b"x"),
                ("manifest.json", Regular, "", manifest),
            ]),
            "link d points outside the archive",
        ),
        (
            "member-climbing-in-blobs",
            archive(&[
                ("blobs/sha256/../../../x", Regular, "", b"x"),
                ("manifest.json", Regular, "", manifest),
            ]),
            "points outside the archive",
        ),
        (
            "references-outside",
            archive(&[
                ("manifest.json", Regular, "", escaping),
                ("c.json", Regular, "", config),
            ]),
            "../../../etc/passwd is missing from the archive",
        ),
        (
            "duplicate-manifest",
            archive(&[
                ("manifest.json", Regular, "", manifest),
                ("manifest.json", Regular, "", manifest),
            ]),
            "member manifest.json appears more than once",
        ),
        (
            "not-json",
            archive(&[
                ("manifest.json", Regular, "", b"not json"),
                ("c.json", Regular, "", config),
            ]),
            "manifest.json: expected ident at line 1 column 2",
        ),
        (
            "100000-layers",
            archive(&[
                ("manifest.json", Regular, "", layers.as_bytes()),
                ("c.json", Regular, "", config),
                ("l.tar", Regular, "", b"layer"),
            ]),
            "config lists 0 layers, manifest.json 100000",
        ),
        (
            "declared-4-GiB",
            lying_header("manifest.json", Regular, 4 << 30),
            "member manifest.json is truncated",
        ),
        (
            // A PAX header announcing 4 GiB of attributes: never read into memory.
            "huge-pax-header",
            lying_header("PaxHeader", XHeader, 4 << 30),
            "corrupt or truncated",
        ),
        (
            "missing-member",
            archive(&[("manifest.json", Regular, "", manifest)]),
            "c.json is missing from the archive",
        ),
        (
            "dangling-link",
            archive(&[
                ("manifest.json", Regular, "", manifest),
                ("l.tar", Symlink, "nowhere.tar", b""),
            ]),
            "not a file in the archive",
        ),
    ];
    for (name, bytes, expect) in cases {
        let path = home.path().join(format!("{name}.tar"));
        std::fs::write(&path, bytes).unwrap();
        for t in ["docker-archive", "oci-archive"] {
            let case = format!("{name} via {t}");
            let dest = home.path().join(format!("out-{name}-{t}"));
            let r = kopeo(
                home.path(),
                &[
                    "copy",
                    &format!("{t}:{}", path.display()),
                    &format!("dir:{}", dest.display()),
                ],
            );
            // oci-archive reads index.json first: only the tar-level refusals are shared.
            let shared = !matches!(
                name,
                "references-outside" | "not-json" | "100000-layers" | "missing-member"
            );
            refused(&case, &r, if t == "docker-archive" || shared { expect } else { "" });
            nothing_complete(&case, &dest);
            let r = kopeo(home.path(), &["inspect", &format!("{t}:{}", path.display())]);
            refused(&case, &r, "");
        }
    }
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "nothing written outside"
    );
    assert!(!home.path().parent().unwrap().join("evil").exists());
    assert!(!home.path().parent().unwrap().join("x").exists());
    // Truncated: a valid archive cut short inside a member.
    let seed = build(&home.path().join("seed"), "seed", &Spec::default());
    let good = home.path().join("good.tar");
    kopeo(
        home.path(),
        &[
            "copy",
            "-q",
            &seed.reference(),
            &format!("docker-archive:{}", good.display()),
        ],
    )
    .ok();
    let bytes = std::fs::read(&good).unwrap();
    let cut = home.path().join("cut.tar");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let dest = home.path().join("never");
    let r = kopeo(
        home.path(),
        &[
            "copy",
            &format!("docker-archive:{}", cut.display()),
            &format!("oci:{}:x", dest.display()),
        ],
    );
    refused("truncated", &r, "is truncated");
    nothing_complete("truncated", &dest);
    // An oversized JSON member is refused before it is read.
    let big = vec![b' '; 65 << 20];
    let huge = home.path().join("huge.tar");
    std::fs::write(&huge, archive(&[("manifest.json", Regular, "", &big)])).unwrap();
    let r = kopeo(home.path(), &["inspect", &format!("docker-archive:{}", huge.display())]);
    refused("oversized manifest.json", &r, "more than the 67108864 allowed");
}

/// Replace the manifest of `built` (a single image) with what `edit` makes of
/// it, stored under its own digest, and point the tag at it.
fn rewrite_manifest(built: &Built, edit: impl FnOnce(&mut serde_json::Value)) {
    let index_path = built.layout.join("index.json");
    let mut index: serde_json::Value = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let hex = index["manifests"][0]["digest"].as_str().unwrap()[7..].to_string();
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(built.layout.join("blobs/sha256").join(hex)).unwrap()).unwrap();
    edit(&mut m);
    let (d, n) = put(&built.layout, m.to_string().as_bytes());
    index["manifests"][0]["digest"] = d.into();
    index["manifests"][0]["size"] = n.into();
    std::fs::write(&index_path, index.to_string()).unwrap();
}

#[test]
fn hostile_layouts_are_refused_before_anything_is_committed() {
    let home = tempdir();
    let layer = |m: &mut serde_json::Value, key: &str, v: serde_json::Value| m["layers"][0][key] = v;
    type Edit = Box<dyn Fn(&Built)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "unknown-algorithm",
            Box::new(move |b| rewrite_manifest(b, |m| layer(m, "digest", "sha999:abcd".into()))),
            "unsupported digest algorithm",
        ),
        (
            "bad-hex",
            Box::new(move |b| rewrite_manifest(b, |m| layer(m, "digest", format!("sha256:{}", "z".repeat(64)).into()))),
            "wrong length or non-lowercase-hex",
        ),
        (
            "climbing-digest",
            Box::new(move |b| rewrite_manifest(b, |m| layer(m, "digest", "sha256:../../../../etc/passwd".into()))),
            "sha256:../../../../etc/passwd",
        ),
        (
            "negative-size",
            Box::new(move |b| rewrite_manifest(b, |m| layer(m, "size", (-5).into()))),
            "descriptor size -5 is negative",
        ),
        (
            "absurd-size",
            Box::new(move |b| rewrite_manifest(b, |m| layer(m, "size", (1u64 << 62).into()))),
            "not 4611686018427387904",
        ),
        (
            "bytes-not-the-digest",
            Box::new(|b| {
                let hex = &b.layers[1][7..];
                std::fs::write(b.layout.join("blobs/sha256").join(hex), vec![7u8; 50_000]).unwrap();
            }),
            "does not match its digest or size",
        ),
        (
            // The descriptor says image manifest; the blob is an index.
            "media-type-mismatch",
            Box::new(|b| {
                rewrite_manifest(
                    b,
                    |m| *m = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []}),
                )
            }),
            "missing field `config`",
        ),
        (
            "50-MiB-manifest",
            Box::new(|b| rewrite_manifest(b, |m| m["annotations"] = serde_json::json!({"x": "y".repeat(50 << 20)}))),
            "is larger than 4194304 bytes",
        ),
        (
            // index.json names a blob whose bytes have another digest (the only way to
            // build an index that contains itself).
            "self-containing-index",
            Box::new(|b| {
                let fake = format!("sha256:{}", "ab".repeat(32));
                let list = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                    "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json", "digest": fake, "size": 300,
                    "platform": {"os": "linux", "architecture": "amd64"}}]});
                let mut bytes = list.to_string().into_bytes();
                bytes.resize(300, b' ');
                std::fs::write(b.layout.join("blobs/sha256").join("ab".repeat(32)), bytes).unwrap();
                let index = serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json",
                    "digest": fake, "size": 300, "annotations": {"org.opencontainers.image.ref.name": "t"}}]});
                std::fs::write(b.layout.join("index.json"), index.to_string()).unwrap();
            }),
            "does not match its digest",
        ),
        (
            "nested-indexes",
            Box::new(|b| {
                let index_path = b.layout.join("index.json");
                let index: serde_json::Value = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
                let mut cur = index["manifests"][0].clone();
                cur.as_object_mut().unwrap().remove("annotations");
                for _ in 0..200 {
                    cur["platform"] = serde_json::json!({"os": "linux", "architecture": "amd64"});
                    let list = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [cur]});
                    let (d, n) = put(&b.layout, list.to_string().as_bytes());
                    cur = serde_json::json!({"mediaType": "application/vnd.oci.image.index.v1+json", "digest": d, "size": n});
                }
                cur["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": "t"});
                std::fs::write(
                    &index_path,
                    serde_json::json!({"schemaVersion": 2, "manifests": [cur]}).to_string(),
                )
                .unwrap();
            }),
            "nested manifest list",
        ),
    ];
    for (name, edit, expect) in cases {
        let built = build(&home.path().join(name), "t", &Spec::default());
        edit(&built);
        let src = format!("oci:{}:t", built.layout.display());
        let dir = home.path().join(format!("{name}-dir"));
        let oci = home.path().join(format!("{name}-oci"));
        let r = kopeo(home.path(), &["copy", &src, &format!("dir:{}", dir.display())]);
        refused(name, &r, expect);
        nothing_complete(name, &dir);
        let r = kopeo(
            home.path(),
            &["copy", "--all", &src, &format!("oci:{}:t", oci.display())],
        );
        refused(name, &r, expect);
        nothing_complete(name, &oci);
    }
}

/// Peak resident memory of `kopeo ARGS`, in KiB (GNU time's `%M`).
fn peak_rss(home: &Path, args: &[&str]) -> (Run, u64) {
    let time = require_tool("time", "time");
    let report = home.join("rss");
    let mut full = vec!["-f", "%M", "-o", report.to_str().unwrap(), env!("CARGO_BIN_EXE_kopeo")];
    full.extend_from_slice(args);
    let out = std::process::Command::new(time)
        .args(&full)
        .env("HOME", home)
        .output()
        .unwrap();
    let rss = std::fs::read_to_string(&report)
        .unwrap()
        .trim()
        .lines()
        .last()
        .unwrap()
        .parse()
        .unwrap();
    (crate::support::finish(out), rss)
}

#[test]
fn decompression_bombs_stay_in_bounded_memory() {
    use sha2::Digest as _;
    let home = tempdir();
    let built = build(&home.path().join("bomb"), "t", &Spec::default());
    // 1 GiB of zeros in a tar member, gzipped to about a megabyte, streamed
    // (the test holds neither the tar nor its expansion).
    let mut h = tar::Header::new_gnu();
    h.set_path("zeros").unwrap();
    h.set_size(1 << 30);
    h.set_mode(0o644);
    h.set_cksum();
    let mut hasher = sha2::Sha256::new();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let mut feed = |bytes: &[u8]| {
        hasher.update(bytes);
        std::io::Write::write_all(&mut gz, bytes).unwrap();
    };
    feed(h.as_bytes());
    let mib = vec![0u8; 1 << 20];
    for _ in 0..1024 {
        feed(&mib);
    }
    feed(&[0u8; 1024]);
    let raw_len = 512 + (1u64 << 30) + 1024;
    let diff_id = format!("sha256:{}", hex::encode(hasher.finalize()));
    let gz = gz.finish().unwrap();
    assert!(gz.len() < 2 << 20, "a bomb: {} bytes", gz.len());
    let (d, n) = put(&built.layout, &gz);
    let config = serde_json::json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [diff_id]}});
    let (cd, cn) = put(&built.layout, config.to_string().as_bytes());
    rewrite_manifest(&built, |m| {
        m["config"]["digest"] = cd.into();
        m["config"]["size"] = cn.into();
        m["layers"] =
            serde_json::json!([{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": n}]);
    });
    let src = format!("oci:{}:t", built.layout.display());
    let dest = home.path().join("expanded");
    let (r, rss) = peak_rss(
        home.path(),
        &[
            "copy",
            "-q",
            "--dest-decompress",
            &src,
            &format!("dir:{}", dest.display()),
        ],
    );
    let r = r.ok();
    assert!(!r.stderr.contains("panicked"));
    let expanded = dest.join(&diff_id[7..]);
    assert_eq!(std::fs::metadata(&expanded).unwrap().len(), raw_len);
    std::fs::remove_file(&expanded).unwrap();
    // Before streaming in bounded steps this peaked at ~270 MiB.
    assert!(rss < 128 * 1024, "peak RSS {rss} KiB expanding 1 MiB into 1 GiB");
    // A zstd frame asking for a 2 GiB window is refused, not allocated.
    let zstd_bin = require_tool("zstd", "zstd");
    let zeros = home.path().join("zeros");
    std::fs::File::create(&zeros).unwrap().set_len(1 << 30).unwrap();
    let zst = home.path().join("zeros.zst");
    let out = std::process::Command::new(zstd_bin)
        .args(["-q", "-f", "--long=31", "-3"])
        .arg(&zeros)
        .arg("-o")
        .arg(&zst)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::remove_file(&zeros).unwrap();
    let (d, n) = put(&built.layout, &std::fs::read(&zst).unwrap());
    rewrite_manifest(&built, |m| {
        m["layers"] =
            serde_json::json!([{"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd", "digest": d, "size": n}]);
    });
    let dest = home.path().join("window");
    let (r, rss) = peak_rss(
        home.path(),
        &["copy", "--dest-decompress", &src, &format!("dir:{}", dest.display())],
    );
    refused("zstd window", &r, "zstd frame needs a window larger than 128 MiB");
    nothing_complete("zstd window", &dest);
    assert!(rss < 128 * 1024, "peak RSS {rss} KiB refusing a 2 GiB window");
}

#[test]
fn registries_that_lie_get_a_clear_error_and_nothing_is_committed() {
    let home = tempdir();
    let built = build(&home.path().join("src"), "t", &Spec::default());
    let layer = built.layers[1].clone();
    let top = built.digest.clone();
    type Lie = Box<dyn Fn(&crate::support::standin::Request, &str) -> Option<Reply> + Send + Sync>;
    let blob_path = move |d: &str| format!("/blobs/{d}");
    let cases: Vec<(&str, Lie, &[&str], &str)> = vec![
        (
            "body-cut-short",
            {
                let l = layer.clone();
                Box::new(move |req, _| {
                    req.path().ends_with(&blob_path(&l)).then(|| Reply {
                        status: 200,
                        headers: vec![],
                        body: Body::Short {
                            bytes: vec![1; 1000],
                            declared: 50_000,
                        },
                    })
                })
            },
            &[],
            "the registry closed the connection after 1000 bytes of the 50000 it announced",
        ),
        (
            // Content-Length says less than the blob: what arrives is short.
            "content-length-too-small",
            {
                let l = layer.clone();
                Box::new(move |req, _| {
                    req.path().ends_with(&format!("/blobs/{l}")).then(|| Reply {
                        status: 200,
                        headers: vec![],
                        body: Body::Overlong {
                            bytes: vec![1; 50_000],
                            declared: 20_000,
                        },
                    })
                })
            },
            &[],
            "(20000 bytes, not",
        ),
        (
            "blob-longer-than-its-size",
            {
                let l = layer.clone();
                Box::new(move |req, _| {
                    req.path()
                        .ends_with(&format!("/blobs/{l}"))
                        .then(|| Reply::bytes(200, vec![1; 80_000]))
                })
            },
            &[],
            "does not match its digest or size",
        ),
        (
            "endless-manifest",
            Box::new(|req, _| {
                req.path().contains("/manifests/").then(|| Reply {
                    status: 200,
                    headers: vec![(
                        "Content-Type".into(),
                        "application/vnd.oci.image.manifest.v1+json".into(),
                    )],
                    body: Body::Repeat {
                        byte: b' ',
                        len: 1 << 40,
                    },
                })
            }),
            &[],
            "manifest is larger than 4194304 bytes",
        ),
        (
            "manifest-not-its-digest",
            Box::new(|req, _| {
                req.path().contains("/manifests/sha256:").then(|| {
                    Reply::bytes(200, br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#.to_vec())
                        .with("Content-Type", "application/vnd.oci.image.manifest.v1+json")
                })
            }),
            &[],
            "does not match the expected",
        ),
        (
            "redirect-loop",
            Box::new(|req, me| {
                req.path()
                    .contains("/blobs/")
                    .then(|| Reply::bytes(307, "").with("Location", &format!("http://{me}{}x", req.path())))
            }),
            &[],
            "too many redirects",
        ),
        (
            "garbage-challenge",
            Box::new(|req, _| {
                (req.path() == "/v2/").then(|| {
                    Reply::json(401, serde_json::json!({}))
                        .with("WWW-Authenticate", r#"Bearer realm=",,,==" garbage,, =scope="""#)
                })
            }),
            &[],
            "invalid realm",
        ),
        (
            "answer-that-never-ends",
            Box::new(|req, _| {
                req.path().contains("/manifests/").then(|| Reply {
                    status: 200,
                    headers: vec![],
                    body: Body::Stall { declared: 1000 },
                })
            }),
            &["--command-timeout", "2s"],
            "command timed out after 2s",
        ),
    ];
    for (name, lie, global, expect) in cases {
        let server = fake_registry(&built.layout, "app", vec!["t"], lie);
        let dest = home.path().join(format!("{name}-out"));
        let by_digest = format!("docker://{}/app@{top}", server.host);
        let mut args: Vec<&str> = global.to_vec();
        args.extend(["copy", "--src-tls-verify=false", "--retry-times", "0", &by_digest]);
        let dir = format!("oci:{}:t", dest.display());
        args.push(&dir);
        let r = kopeo(home.path(), &args);
        refused(name, &r, expect);
        nothing_complete(name, &dest);
    }
    // Without --command-timeout, the read time-out stops a registry that stalls.
    let server = fake_registry(&built.layout, "app", vec!["t"], |req, _| {
        req.path().contains("/blobs/").then(|| Reply {
            status: 200,
            headers: vec![],
            body: Body::Stall { declared: 1000 },
        })
    });
    let dest = home.path().join("stalled");
    let r = crate::support::kopeo_env(
        home.path(),
        &[
            "copy",
            "--src-tls-verify=false",
            "--retry-times",
            "0",
            &format!("docker://{}/app:t", server.host),
            &format!("oci:{}:t", dest.display()),
        ],
        None,
        &[("KOPEO_READ_TIMEOUT", "1")],
    );
    refused(
        "stalled blob",
        &r,
        "the registry sent nothing for 1 s (KOPEO_READ_TIMEOUT)",
    );
    nothing_complete("stalled blob", &dest);
}

#[test]
fn a_full_disk_fails_the_copy_cleanly_at_every_local_destination() {
    let unshare = require_tool("unshare", "util-linux");
    let home = tempdir();
    let built = build(
        &home.path().join("src"),
        "t",
        &Spec {
            layers: vec![400_000, 300_000],
            ..Spec::default()
        },
    );
    let src = built.reference();
    let disk = home.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    for (name, dest) in [
        ("oci", "oci:DISK/layout:t"),
        ("dir", "dir:DISK/d"),
        ("oci-archive", "oci-archive:DISK/a.tar:t"),
        ("docker-archive", "docker-archive:DISK/a.tar:x:1"),
    ] {
        let dest = dest.replace("DISK", &disk.to_string_lossy());
        // A 256 KiB tmpfs in a private mount namespace (it vanishes with the
        // namespace, so the script reports what the copy left on it).
        let script = r#"mount -t tmpfs -o size=256k tmpfs "$1" || exit 99
"$2" copy -q "$3" "$4"; echo "rc=$?"
find "$1" -mindepth 1 | sort; cat "$1/layout/index.json" 2>/dev/null; exit 0"#;
        let out = std::process::Command::new(&unshare)
            .args(["--user", "--map-root-user", "--mount", "sh", "-c", script, "sh"])
            .arg(&disk)
            .arg(env!("CARGO_BIN_EXE_kopeo"))
            .args([&src, &dest])
            .env("HOME", home.path())
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert!(
            out.status.success(),
            "{name}: mounting a tmpfs in a user namespace failed: {stderr}"
        );
        assert!(
            stdout.contains("rc=1"),
            "{name}: the copy must fail\n{stdout}\n{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        assert!(stderr.contains("No space left on device"), "{name}: {stderr}");
        assert!(!stdout.contains(".tmp"), "{name}: temporary files left\n{stdout}");
        assert!(
            !stdout.contains("manifest.json"),
            "{name}: a dir: image looks complete\n{stdout}"
        );
        assert!(!stdout.contains("ref.name"), "{name}: a tag was written\n{stdout}");
        assert!(
            !stdout.contains("a.tar\n"),
            "{name}: an archive looks complete\n{stdout}"
        );
    }
}
