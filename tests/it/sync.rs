//! `kopeo sync` against real registries.

use crate::registry_copy::seed;
use crate::support::image::Spec;
use crate::support::registry::{Mode, Registry};
use crate::support::{kopeo, tempdir};

/// The tags of `repo`, as skopeo lists them (a failure fails the test).
fn tags(reg: &Registry, home: &std::path::Path, repo: &str) -> Vec<String> {
    reg.tags(home, repo)
}

fn spec(seed: u64) -> Spec {
    Spec {
        layers: vec![30_000, 10_000],
        seed,
        ..Spec::default()
    }
}

fn sync_args<'a>(extra: &[&'a str], src: &'a str, dst: &'a str) -> Vec<&'a str> {
    let mut a = vec!["sync", "--src-tls-verify=false", "--dest-tls-verify=false"];
    a.extend_from_slice(extra);
    a.push(src);
    a.push(dst);
    a
}

#[test]
fn yaml_source_with_regex_semver_exclusion_and_scoped_suffix_naming() {
    let home = tempdir();
    let (src, dst) = (Registry::start(Mode::Plain), Registry::start(Mode::Plain));
    for (i, t) in ["app:1.0.0", "app:1.1.0", "app:2.0.0", "app:latest", "app:1.1.0-debug"]
        .iter()
        .enumerate()
    {
        seed(&src, home.path(), t, &spec(i as u64 + 1));
    }
    for (i, t) in ["team/web:v1", "team/web:v2", "team/web:nightly"].iter().enumerate() {
        seed(&src, home.path(), t, &spec(i as u64 + 10));
    }
    let yaml = home.path().join("sync.yaml");
    std::fs::write(
        &yaml,
        format!(
            "{}:\n  tls-verify: false\n  images-by-semver:\n    app: \">= 1.1\"\n  images-by-tag-regex:\n    team/web: ^v\n  exclude-tags: [\"-debug$\", \"^v1$\"]\n",
            src.host
        ),
    )
    .unwrap();
    let dest = format!("{}/mirror", dst.host);
    let out = kopeo(
        home.path(),
        &sync_args(
            &["--src", "yaml", "--dest", "docker", "--scoped", "--append-suffix", "-m"],
            yaml.to_str().unwrap(),
            &dest,
        ),
    )
    .ok();
    assert_eq!(
        tags(&dst, home.path(), &format!("mirror/{}/app", src.host.replace(':', "_"))),
        ["1.1.0-m", "2.0.0-m"],
        "{}",
        out.stderr
    );
    assert_eq!(
        tags(
            &dst,
            home.path(),
            &format!("mirror/{}/team/web", src.host.replace(':', "_"))
        ),
        ["v2-m"]
    );
    assert!(out.stderr.contains("Synced 3 images from 2 sources"), "{}", out.stderr);
    // Unscoped naming keeps only the last path component.
    kopeo(
        home.path(),
        &sync_args(
            &["--src", "docker", "--dest", "docker", "--keep-newest", "2"],
            &format!("{}/team/web", src.host),
            &format!("{}/flat", dst.host),
        ),
    )
    .ok();
    assert_eq!(tags(&dst, home.path(), "flat/web"), ["v1", "v2"]);
}

#[test]
fn yaml_unknown_keys_are_refused_by_name() {
    let home = tempdir();
    let yaml = home.path().join("bad.yaml");
    std::fs::write(&yaml, "127.0.0.1:1:\n  images:\n    a: []\n  tls-verfy: false\n").unwrap();
    let out = kopeo(
        home.path(),
        &sync_args(
            &["--src", "yaml", "--dest", "dir"],
            yaml.to_str().unwrap(),
            "/tmp/never",
        ),
    );
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("tls-verfy"), "{}", out.stderr);
}

#[test]
fn docker_to_dir_and_back_and_a_second_run_transfers_nothing() {
    let home = tempdir();
    let (src, dst) = (Registry::start(Mode::Plain), Registry::start(Mode::Plain));
    for (i, t) in ["lib/a:1", "lib/a:2"].iter().enumerate() {
        seed(&src, home.path(), t, &spec(i as u64 + 20));
    }
    let dir = home.path().join("mirror");
    kopeo(
        home.path(),
        &sync_args(
            &["--src", "docker", "--dest", "dir"],
            &format!("{}/lib/a", src.host),
            dir.to_str().unwrap(),
        ),
    )
    .ok();
    assert!(dir.join("a:1/manifest.json").exists() && dir.join("a:2/manifest.json").exists());
    kopeo(
        home.path(),
        &sync_args(
            &["--src", "dir", "--dest", "docker"],
            dir.to_str().unwrap(),
            &format!("{}/back", dst.host),
        ),
    )
    .ok();
    assert_eq!(tags(&dst, home.path(), "back/a"), ["1", "2"]);
    // Re-run docker→docker twice: the second run only asks HEADs.
    let (from, to) = (format!("{}/lib/a", src.host), format!("{}/copy", dst.host));
    kopeo(
        home.path(),
        &sync_args(&["--src", "docker", "--dest", "docker"], &from, &to),
    )
    .ok();
    let (puts, src_gets) = (dst.requests("PUT", "/v2/copy/"), src.requests("GET", "/manifests/"));
    let report = home.path().join("report.json");
    let again = kopeo(
        home.path(),
        &sync_args(
            &[
                "--src",
                "docker",
                "--dest",
                "docker",
                "--report",
                report.to_str().unwrap(),
            ],
            &from,
            &to,
        ),
    )
    .ok();
    assert_eq!(
        dst.requests("PUT", "/v2/copy/"),
        puts,
        "nothing uploaded on the no-op run"
    );
    assert_eq!(
        src.requests("GET", "/manifests/"),
        src_gets,
        "no manifest GET (pull) on the no-op run"
    );
    assert!(
        again
            .stderr
            .contains("Synced 0 images from 1 sources (2 already present)"),
        "{}",
        again.stderr
    );
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert!(r["images"].as_array().unwrap().iter().all(|i| i["action"] == "skipped"));
}

#[test]
fn keep_going_copies_the_rest_and_reports_the_broken_image() {
    let home = tempdir();
    let (src, dst) = (Registry::start(Mode::Plain), Registry::start(Mode::Plain));
    let good1 = seed(&src, home.path(), "r/img:good1", &spec(30));
    let broken = seed(&src, home.path(), "r/img:broken", &spec(31));
    seed(&src, home.path(), "r/img:good2", &spec(32));
    // Remove one blob of the broken image from the registry's storage.
    let hex = broken.layers[1].trim_start_matches("sha256:");
    let data = src.dir.path().join(format!(
        "storage/docker/registry/v2/blobs/sha256/{}/{hex}/data",
        &hex[..2]
    ));
    std::fs::remove_file(&data).unwrap();
    let report = home.path().join("report.json");
    let out = kopeo(
        home.path(),
        &sync_args(
            &[
                "--src",
                "docker",
                "--dest",
                "docker",
                "--keep-going",
                "--report",
                report.to_str().unwrap(),
            ],
            &format!("{}/r/img", src.host),
            &dst.host,
        ),
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(tags(&dst, home.path(), "img"), ["good1", "good2"]);
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let failed: Vec<_> = r["images"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["action"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1);
    assert!(failed[0]["source"].as_str().unwrap().ends_with(":broken"));
    assert!(
        failed[0]["error"].as_str().unwrap().contains(hex),
        "{}",
        failed[0]["error"]
    );
    let ok = r["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["source"].as_str().unwrap().ends_with(":good1"))
        .unwrap();
    assert_eq!(ok["digest"], good1.digest);
    assert!(out.stderr.contains("Sync failed"), "{}", out.stderr);
}

#[test]
fn dry_run_changes_nothing_and_skip_existing_keeps_moved_tags() {
    let home = tempdir();
    let (src, dst) = (Registry::start(Mode::Plain), Registry::start(Mode::Plain));
    seed(&src, home.path(), "d/app:1", &spec(40));
    let dry = kopeo(
        home.path(),
        &sync_args(
            &["--src", "docker", "--dest", "docker", "--dry-run"],
            &format!("{}/d/app", src.host),
            &dst.host,
        ),
    )
    .ok();
    assert!(dry.stderr.contains("Would have copied image ref 1/1"), "{}", dry.stderr);
    assert_eq!(dst.requests("PUT", "/v2/"), 0);
    assert!(dst.lacks_repo("app"), "a dry run writes nothing");
    kopeo(
        home.path(),
        &sync_args(
            &["--src", "docker", "--dest", "docker"],
            &format!("{}/d/app", src.host),
            &dst.host,
        ),
    )
    .ok();
    let first = dst.digest(home.path(), "app:1");
    // The tag moves at the source.
    let moved = seed(&src, home.path(), "d/app:1", &spec(41));
    kopeo(
        home.path(),
        &sync_args(
            &["--src", "docker", "--dest", "docker", "--skip-existing"],
            &format!("{}/d/app", src.host),
            &dst.host,
        ),
    )
    .ok();
    let after_skip = dst.digest(home.path(), "app:1");
    assert_eq!(after_skip, first, "--skip-existing left the tag alone");
    kopeo(
        home.path(),
        &sync_args(
            &["--src", "docker", "--dest", "docker"],
            &format!("{}/d/app", src.host),
            &dst.host,
        ),
    )
    .ok();
    let after = dst.digest(home.path(), "app:1");
    assert_eq!(after.trim(), moved.digest, "without it the moved tag is copied again");
}

#[test]
fn catalog_source_takes_every_repository_under_a_prefix() {
    let home = tempdir();
    let (src, dst) = (Registry::start(Mode::Plain), Registry::start(Mode::Plain));
    for (i, t) in ["team/a:1", "team/b:1", "other/c:1"].iter().enumerate() {
        seed(&src, home.path(), t, &spec(50 + i as u64));
    }
    let digests = home.path().join("digests");
    kopeo(
        home.path(),
        &sync_args(
            &[
                "--src",
                "docker",
                "--dest",
                "docker",
                "--catalog",
                "--scoped",
                "--parallel-images",
                "2",
                "--digestfile",
                digests.to_str().unwrap(),
            ],
            &format!("{}/team", src.host),
            &format!("{}/m", dst.host),
        ),
    )
    .ok();
    assert_eq!(
        tags(&dst, home.path(), &format!("m/{}/team/a", src.host.replace(':', "_"))),
        ["1"]
    );
    assert_eq!(
        tags(&dst, home.path(), &format!("m/{}/team/b", src.host.replace(':', "_"))),
        ["1"]
    );
    assert!(dst.lacks_repo(&format!("m/{}/other/c", src.host.replace(':', "_"))));
    let lines = std::fs::read_to_string(&digests).unwrap();
    assert_eq!(lines.lines().count(), 2);
    assert!(
        lines
            .lines()
            .all(|l| l.starts_with("sha256:") && l.contains(" docker://")),
        "{lines}"
    );
}

#[test]
fn parallel_images_sharing_a_base_layer_sync_cleanly() {
    let home = tempdir();
    let (src, dst) = (Registry::start(Mode::Plain), Registry::start(Mode::Plain));
    for t in 0..8u64 {
        seed(
            &src,
            home.path(),
            &format!("shared/app:t{t}"),
            &Spec {
                base_seed: Some(99),
                ..spec(60 + t)
            },
        );
    }
    let out = kopeo(
        home.path(),
        &sync_args(
            &["--src", "docker", "--dest", "docker", "--parallel-images", "4"],
            &format!("{}/shared/app", src.host),
            &dst.host,
        ),
    )
    .ok();
    assert_eq!(tags(&dst, home.path(), "app").len(), 8, "{}", out.stderr);
    // The shared base layer went up once; the others waited and found it.
    assert_eq!(
        dst.requests("PUT", "/v2/app/blobs/uploads/"),
        1 + 8 * 2,
        "{}",
        dst.log().lines().filter(|l| l.contains("PUT")).count()
    );
}

#[test]
fn platform_subset_copies_only_the_chosen_instances() {
    let home = tempdir();
    let (src, dst) = (Registry::start(Mode::Plain), Registry::start(Mode::Plain));
    seed(
        &src,
        home.path(),
        "multi/app:1",
        &Spec {
            archs: vec!["amd64", "arm64", "s390x"],
            ..spec(70)
        },
    );
    let run = |extra: &[&str]| {
        let mut a = vec![
            "--src",
            "docker",
            "--dest",
            "docker",
            "--platform",
            "linux/arm64,linux/s390x",
        ];
        a.extend_from_slice(extra);
        kopeo(
            home.path(),
            &sync_args(&a, &format!("{}/multi/app", src.host), &dst.host),
        )
        .ok()
    };
    run(&[]);
    let raw = kopeo(
        home.path(),
        &["inspect", "--raw", "--tls-verify=false", &dst.image("app:1")],
    )
    .ok()
    .stdout;
    let index: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let archs: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(archs, ["arm64", "s390x"]);
    let again = run(&[]);
    assert!(
        again.stderr.contains("(1 already present)"),
        "the reduced list is recognised: {}",
        again.stderr
    );
    let bad = kopeo(
        home.path(),
        &[
            "copy",
            "--platform",
            "linux",
            "--src-tls-verify=false",
            &src.image("multi/app:1"),
            "dir:/tmp/never-written",
        ],
    );
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("os/arch"), "{}", bad.stderr);
}

#[test]
fn yaml_credentials_reach_an_authenticating_source() {
    use crate::support::registry::{PASSWORD, USER};
    let home = tempdir();
    let (src, dst) = (Registry::start(Mode::Htpasswd), Registry::start(Mode::Plain));
    let img = crate::support::image::build(&home.path().join("l"), "x", &spec(80));
    kopeo(
        home.path(),
        &[
            "copy",
            "-q",
            "--dest-tls-verify=false",
            &format!("--dest-creds={USER}:{PASSWORD}"),
            &img.reference(),
            &src.image("private/app:1"),
        ],
    )
    .ok();
    let yaml = home.path().join("s.yaml");
    std::fs::write(&yaml, format!("{}:\n  tls-verify: false\n  credentials:\n    username: {USER}\n    password: {PASSWORD}\n  images:\n    private/app: [\"1\"]\n", src.host)).unwrap();
    kopeo(
        home.path(),
        &[
            "sync",
            "--src",
            "yaml",
            "--dest",
            "docker",
            "--dest-tls-verify=false",
            yaml.to_str().unwrap(),
            &dst.host,
        ],
    )
    .ok();
    assert_eq!(tags(&dst, home.path(), "app"), ["1"]);
    std::fs::write(
        &yaml,
        format!(
            "{}:\n  tls-verify: false\n  images:\n    private/app: [\"1\"]\n",
            src.host
        ),
    )
    .unwrap();
    let anon = kopeo(
        home.path(),
        &[
            "sync",
            "--src",
            "yaml",
            "--dest",
            "docker",
            "--dest-tls-verify=false",
            yaml.to_str().unwrap(),
            &format!("{}/other", dst.host),
        ],
    );
    assert_eq!(anon.code, 1, "without the credentials the source refuses");
    assert!(
        anon.stderr.contains("unauthorized: authentication required"),
        "{}",
        anon.stderr
    );
}

#[test]
fn a_sync_into_an_empty_mirror_sends_per_image_what_an_ideal_client_sends() {
    // Per image: the manifest GET, one HEAD per distinct blob, the uploads
    // and one manifest PUT; per repository one tag list at the destination
    // (instead of a manifest HEAD on each side per image). A second run
    // finds every image present with a HEAD each and uploads nothing.
    let home = tempdir();
    let (src, dst) = (Registry::start(Mode::Plain), Registry::start(Mode::Plain));
    for (i, tag) in ["1", "2", "3"].iter().enumerate() {
        seed(
            &src,
            home.path(),
            &format!("team/app:{tag}"),
            &Spec {
                layers: vec![40_000, 10_000],
                seed: 90 + i as u64,
                base_seed: Some(9),
                ..Spec::default()
            },
        );
    }
    let run = || {
        kopeo(
            home.path(),
            &sync_args(
                &["--src", "docker", "--dest", "docker"],
                &format!("{}/team/app", src.host),
                &format!("{}/m", dst.host),
            ),
        )
        .ok()
    };
    let (src_gets, src_heads) = (
        src.requests("GET", "/v2/team/app/manifests/"),
        src.requests("HEAD", "/v2/team/app/manifests/"),
    );
    run();
    assert_eq!(
        src.requests("GET", "/v2/team/app/manifests/") - src_gets,
        3,
        "one manifest GET an image"
    );
    assert_eq!(
        src.requests("HEAD", "/v2/team/app/manifests/") - src_heads,
        0,
        "no source HEAD for an absent image"
    );
    assert_eq!(
        dst.requests("GET", "/v2/m/app/tags/list"),
        1,
        "one tag list for the repository"
    );
    assert_eq!(
        dst.requests("HEAD", "/manifests/"),
        0,
        "no destination HEAD for an absent image"
    );
    // The shared base layer is checked once, not once per image.
    assert_eq!(
        dst.requests("HEAD", "/v2/m/app/blobs/"),
        7,
        "1 base + 3 layers + 3 configs"
    );
    assert_eq!(dst.requests("PUT", "/v2/m/app/blobs/uploads/"), 7);
    assert_eq!(dst.requests("PUT", "/v2/m/app/manifests/"), 3);
    assert_eq!(tags(&dst, home.path(), "m/app"), ["1", "2", "3"]);
    for tag in ["1", "2", "3"] {
        assert_eq!(
            dst.digest(home.path(), &format!("m/app:{tag}")),
            src.digest(home.path(), &format!("team/app:{tag}"))
        );
    }
    run();
    assert_eq!(
        dst.requests("PUT", "/v2/m/app/blobs/uploads/"),
        7,
        "nothing uploaded again"
    );
    assert_eq!(
        dst.requests("HEAD", "/v2/m/app/manifests/"),
        3,
        "present images: a HEAD each"
    );
}
