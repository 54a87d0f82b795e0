//! Data loss and escapes, each reproduced as a user would meet it: two
//! processes writing one layout, archives over files that are not theirs,
//! interrupted copies, a registry listing a tag that climbs out of the
//! destination, planted symlinks, presigned URLs in messages.

use crate::support::image::{Spec, build};
use crate::support::standin::{Body, Reply, StandIn, fake_registry};
use crate::support::{kopeo, tempdir};
use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn kopeo_cmd(home: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kopeo"));
    c.args(args)
        .env("HOME", home)
        .env("XDG_RUNTIME_DIR", home.join("run"))
        .env_remove("REGISTRY_AUTH_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Every blob file under `layout/blobs` whose sha256 is not its name.
fn misnamed_blobs(layout: &Path) -> Vec<PathBuf> {
    let dir = layout.join("blobs/sha256");
    std::fs::read_dir(&dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
                .filter(|p| {
                    let data = std::fs::read(p).unwrap();
                    hex::encode(Sha256::digest(&data)) != p.file_name().unwrap().to_string_lossy()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Every name below `dir` that a kopeo temporary file or directory carries.
fn temporaries(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.file_name().unwrap().to_string_lossy().contains(".kopeo-") {
                out.push(p.clone());
            }
            if p.is_dir() {
                stack.push(p);
            }
        }
    }
    out
}

#[test]
fn processes_compressing_into_one_layout_at_once_never_publish_a_blob_under_a_wrong_name() {
    let home = tempdir();
    // Uncompressed source layers: the OCI destination compresses them on the
    // way in, writing each to a temporary name before it knows the digest.
    let imgs: Vec<_> = (0..4)
        .map(|i| {
            build(
                &home.path().join(format!("src{i}")),
                "x",
                &Spec {
                    seed: 700 + i,
                    layers: vec![60_000; 24],
                    uncompressed: true,
                    ..Spec::default()
                },
            )
        })
        .collect();
    for round in 0..8 {
        let layout = home.path().join(format!("layout{round}"));
        let children: Vec<_> = imgs
            .iter()
            .zip(["a", "b", "c", "d"])
            .map(|(img, name)| {
                kopeo_cmd(
                    home.path(),
                    &[
                        "copy",
                        "-q",
                        &img.reference(),
                        &format!("oci:{}:{name}", layout.display()),
                    ],
                )
                .spawn()
                .unwrap()
            })
            .collect();
        for c in children {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }
        assert_eq!(misnamed_blobs(&layout), Vec::<PathBuf>::new(), "round {round}");
        // Both images read back, verified against their digests by skopeo too.
        for name in ["a", "b", "c", "d"] {
            let r = crate::support::skopeo(
                home.path(),
                &[
                    "copy",
                    &format!("oci:{}:{name}", layout.display()),
                    &format!("dir:{}/check{round}{name}", home.path().display()),
                ],
            );
            assert_eq!(r.code, 0, "skopeo reads {name} back: {}", r.stderr);
        }
        assert_eq!(temporaries(&layout), Vec::<PathBuf>::new());
    }
}

#[test]
fn concurrent_copies_into_one_layout_keep_every_tag() {
    let home = tempdir();
    let img = build(&home.path().join("src"), "x", &Spec::default());
    for round in 0..3 {
        let layout = home.path().join(format!("layout{round}"));
        let tags: Vec<String> = (0..8).map(|i| format!("tag{i}")).collect();
        let children: Vec<_> = tags
            .iter()
            .map(|t| {
                kopeo_cmd(
                    home.path(),
                    &["copy", "-q", &img.reference(), &format!("oci:{}:{t}", layout.display())],
                )
                .spawn()
                .unwrap()
            })
            .collect();
        for c in children {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }
        let mut names = crate::support::image::ref_names(&layout);
        names.sort();
        assert_eq!(names, tags, "round {round}: no tag lost");
    }
}

#[test]
fn a_docker_archive_never_replaces_an_existing_file_and_an_oci_archive_only_an_oci_archive() {
    let home = tempdir();
    let img = build(
        &home.path().join("src"),
        "x",
        &Spec {
            tar_layers: true,
            ..Spec::default()
        },
    );
    let precious = home.path().join("precious.tar");
    std::fs::write(&precious, "not an archive, keep me").unwrap();
    let r = kopeo(
        home.path(),
        &[
            "copy",
            "-q",
            &img.reference(),
            &format!("docker-archive:{}", precious.display()),
        ],
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("docker-archive doesn't support modifying existing images"),
        "{}",
        r.stderr
    );
    let r = kopeo(
        home.path(),
        &[
            "copy",
            "-q",
            &img.reference(),
            &format!("oci-archive:{}", precious.display()),
        ],
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("it exists and is not an OCI archive"), "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "not an archive, keep me");
    // An OCI archive is replaced, as skopeo replaces it; an empty file is written.
    let archive = home.path().join("image.tar");
    for _ in 0..2 {
        kopeo(
            home.path(),
            &[
                "copy",
                "-q",
                &img.reference(),
                &format!("oci-archive:{}:x", archive.display()),
            ],
        )
        .ok();
    }
    let empty = home.path().join("empty.tar");
    std::fs::write(&empty, "").unwrap();
    kopeo(
        home.path(),
        &[
            "copy",
            "-q",
            &img.reference(),
            &format!("docker-archive:{}", empty.display()),
        ],
    )
    .ok();
    for (t, p) in [("oci-archive", &archive), ("docker-archive", &empty)] {
        let d = kopeo(
            home.path(),
            &["inspect", "--format", "{{.Digest}}", &format!("{t}:{}", p.display())],
        )
        .ok();
        assert!(d.stdout.starts_with("sha256:"), "{t}: {}", d.stdout);
    }
    // Through a symlink the file it points to is written; the link stays.
    let link = home.path().join("link.tar");
    std::os::unix::fs::symlink(&archive, &link).unwrap();
    kopeo(
        home.path(),
        &[
            "copy",
            "-q",
            &img.reference(),
            &format!("oci-archive:{}:x", link.display()),
        ],
    )
    .ok();
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
}

#[test]
fn archives_stream_into_a_fifo_and_standard_output() {
    use std::os::unix::fs::FileTypeExt as _;
    let home = tempdir();
    let img = build(
        &home.path().join("src"),
        "x",
        &Spec {
            tar_layers: true,
            ..Spec::default()
        },
    );
    let fifo = home.path().join("pipe");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let received = home.path().join("received.tar");
    // The reader gives up after a while, should nothing ever be written into the FIFO.
    let mut reader = Command::new("timeout")
        .args([
            "20",
            "sh",
            "-c",
            "cat \"$0\" > \"$1\"",
            fifo.to_str().unwrap(),
            received.to_str().unwrap(),
        ])
        .spawn()
        .unwrap();
    kopeo(
        home.path(),
        &[
            "copy",
            "-q",
            &img.reference(),
            &format!("docker-archive:{}:app:1", fifo.display()),
        ],
    )
    .ok();
    assert!(
        reader.wait().unwrap().success(),
        "the reader got the archive through the FIFO"
    );
    assert!(
        std::fs::metadata(&fifo).unwrap().file_type().is_fifo(),
        "the FIFO stays a FIFO"
    );
    // What came through the pipe is a docker-archive skopeo reads.
    let r = crate::support::skopeo(
        home.path(),
        &[
            "inspect",
            "--format",
            "{{.Digest}}",
            &format!("docker-archive:{}", received.display()),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    // docker-archive:/dev/stdout writes the archive to standard output.
    let out = kopeo_cmd(
        home.path(),
        &["copy", "-q", &img.reference(), "docker-archive:/dev/stdout"],
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut names = vec![];
    for e in tar::Archive::new(&out.stdout[..]).entries().unwrap() {
        names.push(e.unwrap().path().unwrap().to_string_lossy().into_owned());
    }
    assert!(names.iter().any(|n| n == "manifest.json"), "{names:?}");
    assert!(Path::new("/dev/stdout").exists());
}

/// A copy of an image with `layers` behind a slow proxy, to interrupt mid-way.
fn slow_source(home: &Path) -> (crate::support::registry::Registry, String) {
    use crate::support::registry::{Mode, Registry};
    let reg = Registry::start(Mode::Plain);
    let img = build(
        &home.join("slow-src"),
        "x",
        &Spec {
            seed: 811,
            layers: vec![2_000_000, 1_500_000],
            uncompressed: true,
            ..Spec::default()
        },
    );
    kopeo(
        home,
        &[
            "copy",
            "-q",
            "--dest-tls-verify=false",
            "--dest-oci-accept-uncompressed-layers",
            &img.reference(),
            &reg.image("slow/app:1"),
        ],
    )
    .ok();
    let slow = crate::support::proxy::slow(&reg.host, std::time::Duration::from_millis(20));
    (reg, format!("docker://{slow}/slow/app:1"))
}

/// The bytes in `path`, a file or a directory tree.
fn bytes_below(path: &Path) -> u64 {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::read_dir(path)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| bytes_below(&e.path()))
            .sum(),
        Ok(m) => m.len(),
        Err(_) => 0,
    }
}

/// Start `kopeo copy SRC DEST`, wait until it has written something below `watch`, then signal it.
fn interrupt(home: &Path, src: &str, dest: &str, watch: &Path, signal: &str) -> std::process::ExitStatus {
    let mut child = kopeo_cmd(home, &["copy", "-q", "--src-tls-verify=false", src, dest])
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    // Wait for a layer in flight, not just any temporary: a small config
    // blob's temporary may be renamed into place before the signal lands.
    while temporaries(watch).iter().map(|p| bytes_below(p)).sum::<u64>() < 32 * 1024 {
        assert!(started.elapsed().as_secs() < 30, "the copy never started writing");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the copy ended before it was interrupted"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap()
}

#[test]
fn an_interrupted_copy_cleans_up_and_a_killed_ones_debris_is_collected_by_the_next_write() {
    use std::os::unix::process::ExitStatusExt as _;
    let home = tempdir();
    let (_reg, src) = slow_source(home.path());
    let out = home.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    for (dest, signal, number) in [
        (format!("oci:{}/layout:a", out.display()), "-INT", 2),
        (format!("dir:{}/dir", out.display()), "-TERM", 15),
        (format!("oci-archive:{}/a.tar", out.display()), "-INT", 2),
        (format!("docker-archive:{}/d.tar", out.display()), "-HUP", 1),
    ] {
        let status = interrupt(home.path(), &src, &dest, &out, signal);
        assert_eq!(
            status.signal(),
            Some(number),
            "{dest}: ends by the signal, as skopeo does"
        );
        assert_eq!(temporaries(&out), Vec::<PathBuf>::new(), "{dest}: nothing left behind");
        assert!(!out.join("a.tar").exists() && !out.join("d.tar").exists() && !out.join("dir").exists());
    }
    // SIGKILL leaves debris; the next copy into the same place collects it.
    for dest in [
        format!("oci:{}/layout:a", out.display()),
        format!("dir:{}/dir", out.display()),
    ] {
        let status = interrupt(home.path(), &src, &dest, &out, "-KILL");
        assert_eq!(status.signal(), Some(9));
        assert!(
            !temporaries(&out).is_empty(),
            "a killed copy leaves its temporary files"
        );
        let img = build(&home.path().join("small"), "x", &Spec::default());
        let next = dest.replace(":a", ":b");
        kopeo(home.path(), &["copy", "-q", &img.reference(), &next]).ok();
        assert_eq!(
            temporaries(&out),
            Vec::<PathBuf>::new(),
            "{dest}: the next write collected the debris"
        );
    }
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("layout/index.json")).unwrap()).unwrap();
    assert_eq!(
        index["manifests"].as_array().unwrap().len(),
        1,
        "only the finished image is in the index"
    );
}

#[test]
fn sync_skips_a_registry_tag_that_would_climb_out_of_a_dir_destination() {
    let home = tempdir();
    let img = build(&home.path().join("src"), "x", &Spec::default());
    // A registry whose tag list names a tag that is a path.
    let hostile = fake_registry(
        &img.layout,
        "ns/app",
        vec!["good", "../../../../escape/pwned"],
        |_, _| None,
    );
    let dest = home.path().join("a/b/c/d/mirror");
    let r = kopeo(
        home.path(),
        &[
            "sync",
            "--src",
            "docker",
            "--dest",
            "dir",
            "--scoped",
            "--src-tls-verify=false",
            &format!("{}/ns/app", hostile.host),
            dest.to_str().unwrap(),
        ],
    );
    assert!(r.stderr.contains("invalid tag format"), "{}", r.stderr);
    assert!(
        !home.path().join("a/escape").exists() && !home.path().join("escape").exists(),
        "nothing outside the destination"
    );
    let written: Vec<_> = walk_dirs(home.path())
        .into_iter()
        .filter(|p| p.join("manifest.json").exists())
        .collect();
    assert_eq!(written.len(), 1, "only the good tag is copied: {written:?}");
    assert!(written[0].starts_with(&dest), "{written:?}");
}

fn walk_dirs(p: &Path) -> Vec<PathBuf> {
    let mut out = vec![p.to_path_buf()];
    for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(walk_dirs(&e.path()));
        }
    }
    out
}

#[test]
fn login_never_writes_credentials_through_a_planted_symlink() {
    use crate::support::registry::{Mode, PASSWORD, Registry, USER};
    use std::os::unix::fs::PermissionsExt as _;
    let home = tempdir();
    let reg = Registry::start(Mode::Htpasswd);
    let auth_dir = home.path().join("run/containers");
    std::fs::create_dir_all(&auth_dir).unwrap();
    let victim = home.path().join("victim");
    // Symlinks for every name an earlier kopeo would have used next.
    let me = std::process::id();
    for pid in me..me + 2000 {
        std::os::unix::fs::symlink(&victim, auth_dir.join(format!(".auth.json.{pid}.tmp"))).unwrap();
    }
    kopeo(
        home.path(),
        &["login", "--tls-verify=false", "-u", USER, "-p", PASSWORD, &reg.host],
    )
    .ok();
    assert!(!victim.exists(), "nothing was written through a symlink");
    let auth = auth_dir.join("auth.json");
    let meta = std::fs::symlink_metadata(&auth).unwrap();
    assert!(meta.file_type().is_file());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert!(std::fs::read_to_string(&auth).unwrap().contains(&reg.host));
}

#[test]
fn presigned_blob_urls_never_reach_messages_and_redirects_carry_no_referer() {
    let home = tempdir();
    let img = build(&home.path().join("src"), "x", &Spec::default());
    let secrets = "X-Amz-Credential=AKIDSECRET&X-Amz-Signature=deadbeefsecret";
    // A copy from a registry whose blobs redirect to a presigned URL on `store`.
    let copy_via = |store: &str, debug: bool| {
        let location = format!("http://{store}/bucket/blob?{secrets}");
        let registry = fake_registry(&img.layout, "app", vec!["1"], move |req, _| {
            req.path()
                .contains("/blobs/")
                .then(|| Reply::bytes(307, "").with("Location", &location))
        });
        let source = format!("docker://{}/app:1", registry.host);
        let dest = format!("oci:{}/out:x", home.path().display());
        let mut args = vec!["copy", "--src-tls-verify=false", &source, &dest];
        if debug {
            args.insert(0, "--debug");
        }
        let r = kopeo(home.path(), &args);
        assert_eq!(r.code, 1, "{}", r.stderr);
        for secret in ["AKIDSECRET", "deadbeefsecret", "X-Amz-Signature"] {
            assert!(!r.stderr.contains(secret), "{secret} leaked: {}", r.stderr);
        }
        r
    };
    // A store that breaks off every download, with debug logs on.
    let broken = StandIn::start(|_, _| Reply {
        status: 200,
        headers: vec![],
        body: Body::Short {
            bytes: b"partial".to_vec(),
            declared: 100_000,
        },
    });
    copy_via(&broken.host, true);
    assert!(!broken.seen().is_empty(), "the redirect was followed");
    // A presigned URL where nothing answers.
    copy_via("127.0.0.1:1", false);
    // A store that answers 500: its words reach the user, not the URL's query.
    let store = StandIn::start(|_, _| Reply::bytes(500, "storage unavailable"));
    let r = copy_via(&store.host, false);
    assert!(r.stderr.contains("storage unavailable"), "{}", r.stderr);
    let to_store = store.seen();
    assert!(!to_store.is_empty(), "the redirect was followed");
    for req in to_store {
        assert_eq!(req.header("referer"), None, "no Referer to the redirect target");
        assert_eq!(req.header("authorization"), None, "no credentials to another host");
    }
}

#[test]
fn huge_token_and_error_bodies_are_cut_off() {
    let home = tempdir();
    let server = StandIn::start(|req, me| match req.path() {
        "/v2/" => Reply::json(401, serde_json::json!({})).with(
            "WWW-Authenticate",
            &format!("Bearer realm=\"http://{me}/token\",service=\"test\""),
        ),
        // 50 MiB of token: skopeo stops at 1 MiB.
        "/token" => Reply {
            status: 200,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: Body::Repeat {
                byte: b'a',
                len: 50 << 20,
            },
        },
        _ => Reply::bytes(404, ""),
    });
    let started = std::time::Instant::now();
    let r = kopeo(
        home.path(),
        &[
            "inspect",
            "--tls-verify=false",
            &format!("docker://{}/app:1", server.host),
        ],
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("larger than 1048576 bytes"), "{}", r.stderr);
    assert!(started.elapsed().as_secs() < 30);
    // An endless error body: the message is short and names the status.
    let server = StandIn::start(|req, _| match req.path() {
        "/v2/" => Reply::json(200, serde_json::json!({})),
        _ => Reply {
            status: 500,
            headers: vec![],
            body: Body::Repeat {
                byte: b'x',
                len: 200 << 20,
            },
        },
    });
    let r = kopeo(
        home.path(),
        &[
            "inspect",
            "--tls-verify=false",
            &format!("docker://{}/app:1", server.host),
        ],
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.len() < 4096, "a short message: {} bytes", r.stderr.len());
    assert!(r.stderr.contains("500"), "{}", r.stderr);
}

#[test]
fn oci_ref_names_that_climb_are_refused_and_a_dir_symlink_is_written_through() {
    let home = tempdir();
    let img = build(&home.path().join("src"), "x", &Spec::default());
    for bad in ["a//b", "a/../../etc"] {
        let r = kopeo(
            home.path(),
            &[
                "copy",
                "-q",
                &img.reference(),
                &format!("oci:{}/l:{bad}", home.path().display()),
            ],
        );
        assert_eq!(r.code, 1);
        assert!(r.stderr.contains("invalid image reference"), "{bad}: {}", r.stderr);
    }
    let real = home.path().join("real");
    std::fs::create_dir_all(&real).unwrap();
    let link = home.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    kopeo(
        home.path(),
        &["copy", "-q", &img.reference(), &format!("dir:{}", link.display())],
    )
    .ok();
    assert!(
        std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(),
        "the symlink stays"
    );
    assert!(
        real.join("manifest.json").exists(),
        "the image is where the symlink points"
    );
    // Copying again replaces the image in place, still through the link.
    kopeo(
        home.path(),
        &["copy", "-q", &img.reference(), &format!("dir:{}", link.display())],
    )
    .ok();
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert!(real.join("manifest.json").exists());
    assert_eq!(temporaries(home.path()), Vec::<PathBuf>::new());
}
