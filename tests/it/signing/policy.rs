//! policy.json judging `dir:` images and lists; signed images never changed or stripped silently.

use super::*;

#[test]
fn copy_signs_and_the_policy_judges_dir_images_as_skopeo_does() {
    let t = Setup::new();
    let alice = t.gpg.key("alice@example.com", "", false);
    t.gpg.key("bob@example.com", "", false);
    t.gpg.export("alice@example.com", &t.path("alice.asc"));
    let src = t.dir_image("img", false);
    let ident = "registry.example.com/ns/app:1";
    // kopeo signs while copying; the signature lands as dir:'s signature-1.
    let signed = format!("dir:{}", t.s("signed"));
    let out = t
        .kopeo(&[
            "copy",
            "--insecure-policy",
            "--sign-by",
            &alice,
            "--sign-identity",
            ident,
            &src,
            &signed,
        ])
        .ok();
    assert!(out.stdout.contains("Storing signatures"), "{}", out.stdout);
    assert_eq!(signature_files(&t.path("signed")), ["signature-1"]);
    // skopeo signs too, for kopeo to judge: the same image with skopeo's
    // signature as its dir: signature-1 (1.9.3 signs dir: only standalone).
    let s_signed = format!("dir:{}", t.s("s-signed"));
    t.kopeo(&["copy", "-q", "--insecure-policy", &src, &s_signed]).ok();
    let m = t.s("s-signed/manifest.json");
    t.skopeo(&["standalone-sign", &m, ident, &alice, "-o", &t.s("s-signed/signature-1")])
        .ok();

    let exact = serde_json::json!({"type": "exactReference", "dockerReference": ident});
    let policy = t.policy(
        "trust.json",
        serde_json::json!({"dir": {
            t.s("signed"): signed_by(&t.s("alice.asc"), exact.clone()),
            t.s("img"): signed_by(&t.s("alice.asc"), exact.clone()),
        }}),
    );
    // Both judges accept kopeo's signature, and kopeo carries it along.
    t.skopeo(&[
        "--policy",
        &policy,
        "copy",
        &signed,
        &format!("dir:{}", t.s("by-skopeo")),
    ])
    .ok();
    let carried = format!("dir:{}", t.s("by-kopeo"));
    t.kopeo(&["--policy", &policy, "copy", "-q", &signed, &carried]).ok();
    assert_eq!(
        std::fs::read(t.path("by-kopeo/signature-1")).unwrap(),
        std::fs::read(t.path("signed/signature-1")).unwrap()
    );

    // Refusals: unsigned, unknown scope (default reject), wrong identity —
    // exit 1, the upstream words, nothing at the destination.
    let wrong_id = t.policy(
        "wrong-id.json",
        serde_json::json!({"dir": {t.s("signed"): signed_by(&t.s("alice.asc"), serde_json::json!({"type": "exactReference", "dockerReference": "registry.example.com/ns/app:2"}))}}),
    );
    let cases = [
        (
            &policy,
            &src,
            "A signature was required, but no signature exists".to_string(),
        ),
        (
            &policy,
            &s_signed,
            format!("Running image {s_signed} is rejected by policy."),
        ),
        (
            &wrong_id,
            &signed,
            format!("Signature for identity \"{ident}\" is not accepted"),
        ),
    ];
    for (i, (p, image, why)) in cases.iter().enumerate() {
        let out_dir = t.path(&format!("refused-{i}"));
        let k = t.kopeo(&[
            "--policy",
            p,
            "copy",
            "-q",
            image,
            &format!("dir:{}", out_dir.display()),
        ]);
        assert_eq!(k.code, 1, "{image}: {}", k.stderr);
        assert!(
            unquoted(&k.stderr).contains(&format!("Source image rejected: {why}")),
            "{image}: {}",
            k.stderr
        );
        assert!(!out_dir.exists(), "a refused copy wrote {}", out_dir.display());
        let s = t.skopeo(&[
            "--policy",
            p,
            "copy",
            image,
            &format!("dir:{}", t.s(&format!("s-refused-{i}"))),
        ]);
        assert_eq!(s.code, 1, "skopeo accepted {image}");
    }
    // A key the policy does not trust (bob's signature, alice's key).
    let by_bob = format!("dir:{}", t.s("by-bob"));
    t.kopeo(&[
        "copy",
        "-q",
        "--insecure-policy",
        "--sign-by",
        "bob@example.com",
        "--sign-identity",
        ident,
        &src,
        &by_bob,
    ])
    .ok();
    let bob_policy = t.policy(
        "bob.json",
        serde_json::json!({"dir": {t.s("by-bob"): signed_by(&t.s("alice.asc"), exact)}}),
    );
    let k = t.kopeo(&[
        "--policy",
        &bob_policy,
        "copy",
        "-q",
        &by_bob,
        &format!("dir:{}", t.s("x")),
    ]);
    assert!(
        k.code == 1 && k.stderr.contains("Source image rejected: Invalid GPG signature"),
        "{}",
        k.stderr
    );
    assert_eq!(
        t.skopeo(&["--policy", &bob_policy, "copy", &by_bob, &format!("dir:{}", t.s("y"))])
            .code,
        1
    );
    // --remove-signatures copies the image without them.
    t.kopeo(&[
        "--policy",
        &policy,
        "copy",
        "-q",
        "--remove-signatures",
        &signed,
        &format!("dir:{}", t.s("stripped")),
    ])
    .ok();
    assert!(signature_files(&t.path("stripped")).is_empty());
}

#[test]
fn signed_images_are_neither_changed_nor_stripped_silently() {
    let t = Setup::new();
    let alice = t.gpg.key("alice@example.com", "", false);
    let src = t.dir_image("img", true);
    let signed = format!("dir:{}", t.s("signed"));
    t.kopeo(&[
        "copy",
        "-q",
        "--insecure-policy",
        "--sign-by",
        &alice,
        "--sign-identity",
        "example.com/a:1",
        &src,
        &signed,
    ])
    .ok();
    let oci = t.path("layout");
    let k = t.kopeo(&[
        "copy",
        "-q",
        "--insecure-policy",
        &signed,
        &format!("oci:{}:x", oci.display()),
    ]);
    assert_eq!(k.code, 1);
    assert!(
        k.stderr.contains("Can not copy signatures to oci:")
            && k.stderr.contains("Pushing signatures for OCI images is not supported"),
        "{}",
        k.stderr
    );
    assert!(
        !oci.join("index.json").exists()
            || !std::fs::read_to_string(oci.join("index.json"))
                .unwrap()
                .contains("\"x\"")
    );
    let arch = t.path("a.tar");
    let k = t.kopeo(&[
        "copy",
        "-q",
        "--insecure-policy",
        &signed,
        &format!("docker-archive:{}", arch.display()),
    ]);
    assert!(
        k.code == 1
            && k.stderr
                .contains("Storing signatures for docker tar files is not supported"),
        "{}",
        k.stderr
    );
    // Converting the manifest would break the signature.
    for flags in [vec!["--format", "oci"], vec!["--dest-compress-format", "zstd"]] {
        let out = t.path("converted");
        let mut a = vec!["copy", "-q", "--insecure-policy"];
        a.extend(&flags);
        let d = format!("dir:{}", out.display());
        a.extend([signed.as_str(), d.as_str()]);
        let k = t.kopeo(&a);
        assert_eq!(k.code, 1, "{flags:?}");
        assert!(
            k.stderr.contains("Would invalidate signatures") && k.stderr.contains("--remove-signatures"),
            "{}",
            k.stderr
        );
        assert!(!out.exists());
    }
    // Told to drop them, it converts.
    t.kopeo(&[
        "copy",
        "-q",
        "--insecure-policy",
        "--remove-signatures",
        "--format",
        "oci",
        &signed,
        &format!("oci:{}:x", oci.display()),
    ])
    .ok();
    // Signing a destination that keeps no signatures fails before anything is written.
    let k = t.kopeo(&[
        "copy",
        "-q",
        "--insecure-policy",
        "--sign-by",
        &alice,
        &src,
        &format!("oci:{}:y", oci.display()),
    ]);
    assert!(
        k.code == 1 && k.stderr.contains("Pushing signatures for OCI images is not supported"),
        "{}",
        k.stderr
    );
    let k = t.kopeo(&[
        "copy",
        "-q",
        "--insecure-policy",
        "--sign-by",
        &alice,
        &src,
        &format!("dir:{}", t.s("noident")),
    ]);
    assert!(
        k.code == 1
            && k.stderr
                .contains("Cannot determine canonical Docker reference for destination"),
        "{}",
        k.stderr
    );
    assert!(!t.path("noident").exists());
}

#[test]
fn malformed_policies_are_refused_naming_what_is_wrong() {
    let t = Setup::new();
    let src = t.dir_image("img", false);
    let cases = [
        (r#"{"transports":{}}"#, "Default policy is missing"),
        (
            r#"{"default":[{"type":"insecureAcceptAnything"}],"extra":1}"#,
            "Unknown key \"extra\"",
        ),
        (
            r#"{"default":[]}"#,
            "List of verification policy requirements must not be empty",
        ),
        (
            r#"{"default":[{"type":"nope"}]}"#,
            "Unknown policy requirement type \"nope\"",
        ),
        (r#"{"default":[{"type":"reject","x":1}]}"#, "Unknown key \"x\""),
        (
            r#"{"default":[{"type":"signedBy","keyType":"GPGKeys"}]}"#,
            "Exactly one of keyPath, keyPaths and keyData must be specified, none of them present",
        ),
        (
            r#"{"default":[{"type":"signedBy","keyType":"X","keyPath":"/k"}]}"#,
            "Unrecognized keyType value \"X\"",
        ),
        (
            r#"{"default":[{"type":"insecureAcceptAnything"}],"default":[]}"#,
            "Duplicate key \"default\"",
        ),
        (
            r#"{"default":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","signedIdentity":{"type":"exactReference","dockerReference":"a/b"}}]}"#,
            "contains neither a tag nor digest",
        ),
        (
            r#"{"default":[{"type":"reject"}],"transports":{"dir":{"relative/path":[{"type":"reject"}]}}}"#,
            "Unknown key \"relative/path\"",
        ),
    ];
    for (i, (json, why)) in cases.iter().enumerate() {
        let p = t.path(&format!("p{i}.json"));
        std::fs::write(&p, json).unwrap();
        let k = t.kopeo(&[
            "--policy",
            p.to_str().unwrap(),
            "copy",
            "-q",
            &src,
            &format!("dir:{}", t.s("out")),
        ]);
        assert_eq!(k.code, 1, "{json}");
        assert!(
            k.stderr.contains("Error loading trust policy: invalid policy in") && unquoted(&k.stderr).contains(why),
            "{json}: {}",
            k.stderr
        );
        assert!(!t.path("out").exists());
    }
    let k = t.kopeo(&[
        "--policy",
        &t.s("missing.json"),
        "copy",
        "-q",
        &src,
        &format!("dir:{}", t.s("out")),
    ]);
    assert!(k.code == 1 && k.stderr.contains("missing.json"), "{}", k.stderr);
}

#[test]
fn lists_carry_a_signature_per_instance_and_one_for_the_list() {
    let t = Setup::new();
    let alice = t.gpg.key("alice@example.com", "", false);
    t.gpg.export("alice@example.com", &t.path("alice.asc"));
    let img = build(
        &t.path("src"),
        "multi",
        &Spec {
            archs: vec!["amd64", "arm64"],
            ..Spec::default()
        },
    );
    let ident = "registry.example.com/ns/multi:1";
    let signed = format!("dir:{}", t.s("signed"));
    t.kopeo(&[
        "copy",
        "-q",
        "--insecure-policy",
        "--all",
        "--sign-by",
        &alice,
        "--sign-identity",
        ident,
        &img.reference(),
        &signed,
    ])
    .ok();
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(t.path("signed/manifest.json")).unwrap()).unwrap();
    let mut want: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{}.signature-1",
                m["digest"].as_str().unwrap().trim_start_matches("sha256:")
            )
        })
        .collect();
    want.push("signature-1".into());
    want.sort();
    assert_eq!(signature_files(&t.path("signed")), want);
    // skopeo judges every instance by its own signature, as kopeo does.
    let exact = serde_json::json!({"type": "exactReference", "dockerReference": ident});
    let trust = |name: &str, dir: &str| {
        t.policy(
            name,
            serde_json::json!({"dir": {t.s(dir): signed_by(&t.s("alice.asc"), exact.clone())}}),
        )
    };
    let policy = trust("trust.json", "signed");
    t.skopeo(&[
        "--policy",
        &policy,
        "copy",
        "--all",
        &signed,
        &format!("dir:{}", t.s("s-all")),
    ])
    .ok();
    t.kopeo(&[
        "--policy",
        &policy,
        "copy",
        "-q",
        "--all",
        &signed,
        &format!("dir:{}", t.s("k-all")),
    ])
    .ok();
    assert_eq!(signature_files(&t.path("k-all")), want);
    // One platform out of the list: its instance's signature becomes the image's.
    let one = format!("dir:{}", t.s("one"));
    t.kopeo(&[
        "--policy",
        &policy,
        "--override-arch",
        "arm64",
        "copy",
        "-q",
        &signed,
        &one,
    ])
    .ok();
    assert_eq!(signature_files(&t.path("one")), ["signature-1"]);
    let one_policy = trust("one.json", "one");
    t.skopeo(&["--policy", &one_policy, "copy", &one, &format!("dir:{}", t.s("s-one"))])
        .ok();
    // An instance without its signature is refused, whole list and all.
    std::fs::remove_file(t.path("signed").join(&want[0])).unwrap();
    let k = t.kopeo(&[
        "--policy",
        &policy,
        "copy",
        "-q",
        "--all",
        &signed,
        &format!("dir:{}", t.s("refused")),
    ]);
    assert!(
        k.code == 1 && k.stderr.contains("A signature was required, but no signature exists"),
        "{}",
        k.stderr
    );
    assert!(!t.path("refused").exists());
}
