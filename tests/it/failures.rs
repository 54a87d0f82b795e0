//! Failure paths a user meets: each says what is wrong in the words a
//! script expects, exits as skopeo does, and writes nothing.

use crate::registry_copy::seed;
use crate::support::image::{Spec, build};
use crate::support::registry::{Mode, Registry};
use crate::support::{kopeo, skopeo, tempdir};

#[test]
fn delete_of_an_image_that_is_not_there_says_so_and_exits_1_as_skopeo_does() {
    let home = tempdir();
    let reg = Registry::start(Mode::Plain);
    seed(&reg, home.path(), "app:1", &Spec::default());
    for (image, name) in [
        (reg.image("app:nope"), format!("{}/app:nope", reg.host)),
        (reg.image("nothere:1"), format!("{}/nothere:1", reg.host)),
    ] {
        let ours = kopeo(home.path(), &["delete", "--tls-verify=false", &image]);
        let theirs = skopeo(home.path(), &["delete", "--tls-verify=false", &image]);
        assert_eq!((ours.code, theirs.code), (1, 1), "{}\n{}", ours.stderr, theirs.stderr);
        let text =
            format!("Unable to delete {name}. Image may not exist or is not stored with a v2 Schema in a v2 registry");
        assert!(theirs.stderr.contains(&text), "skopeo's words: {}", theirs.stderr);
        assert!(ours.stderr.contains(&text), "{}", ours.stderr);
    }
    assert_eq!(reg.requests("DELETE", "/manifests/"), 0, "nothing was deleted");
    reg.digest(home.path(), "app:1");
}

#[test]
fn manifest_digest_of_a_missing_file_names_the_file() {
    let home = tempdir();
    let missing = home.path().join("none.json");
    let r = kopeo(home.path(), &["manifest-digest", missing.to_str().unwrap()]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains(&format!(
            "reading manifest from {}: No such file or directory",
            missing.display()
        )),
        "{}",
        r.stderr
    );
    assert!(r.stdout.is_empty(), "no digest printed: {}", r.stdout);
}

#[test]
fn logout_of_a_registry_never_logged_into_says_not_logged_into() {
    let home = tempdir();
    let r = kopeo(home.path(), &["logout", "127.0.0.1:1"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("not logged into 127.0.0.1:1"), "{}", r.stderr);
    let r = kopeo(home.path(), &["logout"]);
    assert_eq!(r.code, 1, "a registry or --all is needed");
    assert!(r.stderr.contains("--all"), "{}", r.stderr);
}

#[test]
fn an_unreachable_docker_daemon_is_reported_in_dockers_words() {
    let home = tempdir();
    let socket = home.path().join("no-daemon.sock");
    let host = format!("unix://{}", socket.display());
    let img = build(&home.path().join("l"), "x", &Spec::default());
    let text = format!("Cannot connect to the Docker daemon at {host}. Is the docker daemon running?");
    let read = kopeo(
        home.path(),
        &[
            "inspect",
            &format!("--daemon-host={host}"),
            "docker-daemon:kopeo-test/x:1",
        ],
    );
    assert_eq!(read.code, 1, "{}", read.stderr);
    assert!(read.stderr.contains(&text), "{}", read.stderr);
    let write = kopeo(
        home.path(),
        &[
            "copy",
            &format!("--dest-daemon-host={host}"),
            &img.reference(),
            "docker-daemon:kopeo-test/x:1",
        ],
    );
    assert_eq!(write.code, 1, "{}", write.stderr);
    assert!(write.stderr.contains(&text), "{}", write.stderr);
}

#[test]
fn archive_destinations_that_fail_leave_nothing_at_the_path() {
    let home = tempdir();
    let good = build(&home.path().join("good"), "x", &Spec::default());
    let bad = build(
        &home.path().join("bad"),
        "x",
        &Spec {
            seed: 7,
            ..Spec::default()
        },
    );
    let victim = bad.layers[1].trim_start_matches("sha256:").to_string();
    let path = bad.layout.join("blobs/sha256").join(&victim);
    let mut data = std::fs::read(&path).unwrap();
    data[5] ^= 0xff;
    std::fs::write(&path, data).unwrap();
    for transport in ["oci-archive", "docker-archive"] {
        // A directory that does not exist: the path is named.
        let nowhere = home.path().join("missing-dir/x.tar");
        let r = kopeo(
            home.path(),
            &["copy", &good.reference(), &format!("{transport}:{}", nowhere.display())],
        );
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert!(
            r.stderr.contains(&nowhere.display().to_string()) && r.stderr.contains("No such file or directory"),
            "{}",
            r.stderr
        );
        // A source that turns out corrupt mid-copy: no archive appears, not
        // even a partial one, and nothing else is left in the directory.
        let out = home.path().join(format!("out-{transport}"));
        std::fs::create_dir(&out).unwrap();
        let target = out.join("x.tar");
        let r = kopeo(
            home.path(),
            &["copy", &bad.reference(), &format!("{transport}:{}", target.display())],
        );
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert!(
            r.stderr.contains(&victim) && r.stderr.contains("does not match"),
            "{}",
            r.stderr
        );
        let left: Vec<_> = std::fs::read_dir(&out).unwrap().flatten().map(|e| e.path()).collect();
        assert!(left.is_empty(), "{transport}: left behind {left:?}");
    }
}
