//! Command-line behaviour scripts depend on: exit codes, output formats.

use crate::support::image::{Spec, build};
use crate::support::registry::{Mode, Registry};
use crate::support::{kopeo, tempdir};

#[test]
fn missing_image_exits_2_like_skopeo() {
    let home = tempdir();
    let reg = Registry::start(Mode::Plain);
    let img = build(&home.path().join("l"), "x", &Spec::default());
    kopeo(
        home.path(),
        &[
            "copy",
            "-q",
            "--dest-tls-verify=false",
            &img.reference(),
            &reg.image("app:1"),
        ],
    )
    .ok();
    let tag = kopeo(home.path(), &["inspect", "--tls-verify=false", &reg.image("app:nope")]);
    assert_eq!(tag.code, 2, "{}", tag.stderr);
    assert!(
        tag.stderr.contains("manifest unknown") && tag.stderr.contains("app:nope"),
        "{}",
        tag.stderr
    );
    let repo = kopeo(
        home.path(),
        &[
            "copy",
            "--src-tls-verify=false",
            &reg.image("no/such:1"),
            "dir:/nonexistent/x",
        ],
    );
    assert_eq!(repo.code, 2, "{}", repo.stderr);
    assert!(
        repo.stderr.contains("unknown"),
        "the registry's answer is said: {}",
        repo.stderr
    );
}

#[test]
fn list_tags_prints_repository_and_tags() {
    let home = tempdir();
    let reg = Registry::start(Mode::Plain);
    let img = build(&home.path().join("l"), "x", &Spec::default());
    for t in ["1.0", "latest"] {
        kopeo(
            home.path(),
            &[
                "copy",
                "-q",
                "--dest-tls-verify=false",
                &img.reference(),
                &reg.image(&format!("ns/app:{t}")),
            ],
        )
        .ok();
    }
    let out = kopeo(home.path(), &["list-tags", "--tls-verify=false", &reg.image("ns/app")]).ok();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["Repository"], format!("{}/ns/app", reg.host));
    let mut tags: Vec<String> = serde_json::from_value(v["Tags"].clone()).unwrap();
    tags.sort();
    assert_eq!(tags, ["1.0", "latest"]);
    assert!(
        out.stdout.starts_with("{\n    \"Repository\""),
        "skopeo's 4-space JSON: {}",
        out.stdout
    );
    let tagged = kopeo(
        home.path(),
        &["list-tags", "--tls-verify=false", &reg.image("ns/app:1.0")],
    );
    assert_eq!(tagged.code, 1);
    assert!(
        tagged.stderr.contains("No tag or digest allowed in reference"),
        "skopeo's words: {}",
        tagged.stderr
    );
    let oci = kopeo(home.path(), &["list-tags", "oci:/tmp/x"]);
    assert!(oci.stderr.contains("Unsupported transport"), "{}", oci.stderr);
}

#[test]
fn delete_removes_the_manifest() {
    let home = tempdir();
    let reg = Registry::start(Mode::Plain);
    let img = build(&home.path().join("l"), "x", &Spec::default());
    kopeo(
        home.path(),
        &[
            "copy",
            "-q",
            "--dest-tls-verify=false",
            &img.reference(),
            &reg.image("app:gone"),
        ],
    )
    .ok();
    kopeo(home.path(), &["delete", "--tls-verify=false", &reg.image("app:gone")]).ok();
    assert_eq!(reg.requests("DELETE", &format!("/manifests/{}", img.digest)), 1);
    assert_eq!(
        kopeo(home.path(), &["inspect", "--tls-verify=false", &reg.image("app:gone")]).code,
        2
    );
}

#[test]
fn inspect_formats_and_raw_output() {
    let home = tempdir();
    let img = build(
        &home.path().join("l"),
        "x",
        &Spec {
            archs: vec!["amd64", "arm64"],
            ..Spec::default()
        },
    );
    let r = img.reference();
    let raw = kopeo(home.path(), &["inspect", "--raw", &r]).ok().stdout;
    let file = home.path().join("m.json");
    std::fs::write(&file, &raw).unwrap();
    assert_eq!(
        kopeo(home.path(), &["manifest-digest", file.to_str().unwrap()])
            .ok()
            .stdout
            .trim(),
        img.digest
    );
    let f = kopeo(
        home.path(),
        &[
            "inspect",
            "--format",
            "{{.Os}}/{{.Architecture}} {{len .Layers}} {{index .Labels \"kopeo.test\"}}",
            &r,
        ],
    )
    .ok();
    assert_eq!(f.stdout, "linux/amd64 2 yes\n");
    let env = kopeo(home.path(), &["inspect", "--format", "{{range .Env}}{{.}};{{end}}", &r]).ok();
    assert_eq!(env.stdout, "PATH=/bin;SEED=1;\n");
    let raw_config = kopeo(home.path(), &["inspect", "--config", "--raw", &r]).ok().stdout;
    assert!(raw_config.starts_with("{\"created\""), "{raw_config}");
    let bad = kopeo(home.path(), &["inspect", "--format", "{{.Os", &r]);
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("template: unclosed action"), "{}", bad.stderr);
}

#[test]
fn bad_references_and_unsupported_transports_have_clear_errors() {
    let home = tempdir();
    let upper = kopeo(home.path(), &["inspect", "docker://Example.com/App"]);
    assert_eq!(upper.code, 1);
    assert!(upper.stderr.contains("must be lowercase"), "{}", upper.stderr);
    let none = kopeo(home.path(), &["inspect", "alpine"]);
    assert!(none.stderr.contains("transport:reference"), "{}", none.stderr);
    // A store that is not there: the image is not found, and reading
    // creates no store (never the machine's: a private path).
    let graph = home.path().join("no-store");
    let missing = format!(
        "containers-storage:[vfs@{}+{}/run]app:1",
        graph.display(),
        home.path().display()
    );
    let absent = kopeo(home.path(), &["inspect", &missing]);
    assert_eq!(absent.code, 2, "{}", absent.stderr);
    assert!(
        absent.stderr.contains("does not resolve to an image ID"),
        "{}",
        absent.stderr
    );
    assert!(!graph.exists(), "inspecting created a store");
    let unknown = kopeo(home.path(), &["inspect", "nosuch:reg.example/ns/stream:1"]);
    assert_eq!(unknown.code, 1);
    assert!(unknown.stderr.contains("unknown transport"), "{}", unknown.stderr);
    let v = kopeo(home.path(), &["--version"]).ok();
    assert!(v.stdout.starts_with("kopeo "), "{}", v.stdout);
    let flag = kopeo(home.path(), &["copy", "--no-such-flag", "a", "b"]);
    assert_eq!(flag.code, 1, "usage errors exit 1 as in skopeo");
    assert!(
        flag.stderr.contains("'--no-such-flag'"),
        "the flag is named: {}",
        flag.stderr
    );
}
