//! Simple signing: kopeo signs and verifies as skopeo does, judged by
//! Debian's skopeo 1.9.3 both ways (standalone, by policy, in `dir:` and in
//! a registry's lookaside), and a signed image is never changed or stripped
//! of its signatures silently.

use crate::support::gpg::GpgHome;
use crate::support::image::{Spec, build};
use crate::support::registry::{Mode, Registry};
use crate::support::{Run, kopeo_env, skopeo_env, tempdir};
use std::path::{Path, PathBuf};

struct Setup {
    home: tempfile::TempDir,
    gpg: GpgHome,
}

impl Setup {
    fn new() -> Setup {
        let home = tempdir();
        let gpg = GpgHome::new(home.path());
        Setup { home, gpg }
    }
    fn path(&self, p: &str) -> PathBuf {
        self.home.path().join(p)
    }
    fn s(&self, p: &str) -> String {
        self.path(p).display().to_string()
    }
    fn kopeo(&self, args: &[&str]) -> Run {
        kopeo_env(self.home.path(), args, None, &[self.gpg.env()])
    }
    fn skopeo(&self, args: &[&str]) -> Run {
        skopeo_env(self.home.path(), args, &[self.gpg.env()])
    }
    /// A `dir:` image made from a generated layout (Docker schema2 with `docker`).
    fn dir_image(&self, name: &str, docker: bool) -> String {
        let img = build(
            &self.path(&format!("{name}-src")),
            name,
            &Spec {
                docker,
                ..Spec::default()
            },
        );
        let dir = format!("dir:{}", self.s(name));
        self.kopeo(&["copy", "-q", "--insecure-policy", &img.reference(), &dir])
            .ok();
        dir
    }
    /// A policy file: reject by default, `scopes` (transport → scope → requirements JSON).
    fn policy(&self, name: &str, transports: serde_json::Value) -> String {
        let p = self.path(name);
        let v = serde_json::json!({"default": [{"type": "reject"}], "transports": transports});
        std::fs::write(&p, v.to_string()).expect("writing policy");
        p.display().to_string()
    }
}

fn signed_by(key_path: &str, identity: serde_json::Value) -> serde_json::Value {
    serde_json::json!([{"type": "signedBy", "keyType": "GPGKeys", "keyPath": key_path, "signedIdentity": identity}])
}

/// A fatal log line's message with logrus's `\"` escapes undone.
fn unquoted(stderr: &str) -> String {
    stderr.replace("\\\"", "\"")
}

fn signature_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.retain(|n| n.contains("signature-"));
    v.sort();
    v
}

#[test]
fn standalone_signatures_interoperate_with_skopeo() {
    let t = Setup::new();
    let alice = t.gpg.key("alice@example.com", "", false);
    let bob = t.gpg.key("bob@example.com", "", false);
    let sub = t.gpg.key("sub@example.com", "", true);
    t.dir_image("img", false);
    let manifest = t.s("img/manifest.json");
    let digest = t.kopeo(&["manifest-digest", &manifest]).ok().stdout.trim().to_string();
    let reference = "registry.example.com/ns/app:1";

    // kopeo signs (through gpg), skopeo verifies; and the other way round.
    t.kopeo(&["standalone-sign", &manifest, reference, &alice, "-o", &t.s("k.sig")])
        .ok();
    let out = t
        .skopeo(&["standalone-verify", &manifest, reference, &alice, &t.s("k.sig")])
        .ok();
    assert!(out.stdout.contains(&digest), "{}", out.stdout);
    t.skopeo(&["standalone-sign", &manifest, reference, &alice, "-o", &t.s("s.sig")])
        .ok();
    let out = t
        .kopeo(&["standalone-verify", &manifest, reference, &alice, &t.s("s.sig")])
        .ok();
    assert_eq!(
        out.stdout,
        format!("Signature verified using fingerprint {alice}, digest {digest}\n")
    );
    // Keys from a file instead of the keyring, "any" of them.
    t.gpg.export("alice@example.com", &t.path("alice.asc"));
    let out = t
        .kopeo(&[
            "standalone-verify",
            "--public-key-file",
            &t.s("alice.asc"),
            &manifest,
            reference,
            "any",
            &t.s("s.sig"),
        ])
        .ok();
    assert!(out.stdout.contains(&alice));
    let any = t.kopeo(&["standalone-verify", &manifest, reference, "any", &t.s("s.sig")]);
    assert_eq!(any.code, 1);
    assert!(
        any.stderr
            .contains("Cannot use any fingerprint without a public key file"),
        "{}",
        any.stderr
    );

    // A signing subkey's signature counts for its primary key, as current
    // containers/image maps it (1.9.3 predates that: it knows the subkey).
    t.kopeo(&[
        "standalone-sign",
        &manifest,
        reference,
        "sub@example.com",
        "-o",
        &t.s("sub.sig"),
    ])
    .ok();
    let out = t
        .kopeo(&["standalone-verify", &manifest, reference, &sub, &t.s("sub.sig")])
        .ok();
    assert!(out.stdout.contains(&sub), "{}", out.stdout);
    let subkey = t.gpg.subkey_fingerprint("sub@example.com");
    t.skopeo(&["standalone-verify", &manifest, reference, &subkey, &t.s("sub.sig")])
        .ok();

    // Refusals, each naming what is wrong; skopeo refuses the same.
    let cases: [(&str, &str, &str, &str); 3] = [
        ("registry.example.com/ns/app:2", &alice, "k.sig", "does not match"),
        (reference, &bob, "k.sig", "is not accepted"),
        (reference, &alice, "img/manifest.json", "Invalid GPG signature"),
    ];
    for (r, key, sig, why) in cases {
        let k = t.kopeo(&["standalone-verify", &manifest, r, key, &t.s(sig)]);
        assert_eq!(k.code, 1, "{r} {key} {sig}");
        assert!(
            k.stderr.contains("Error verifying signature: ") && k.stderr.contains(why),
            "{}",
            k.stderr
        );
        assert!(!k.stderr.contains("panicked"));
        assert_ne!(
            t.skopeo(&["standalone-verify", &manifest, r, key, &t.s(sig)]).code,
            0,
            "skopeo accepted {r} {key} {sig}"
        );
    }
    // A signature over another manifest (one byte changed).
    let other = t.path("other.json");
    let mut m = std::fs::read(&manifest).unwrap();
    m.push(b'\n');
    std::fs::write(&other, m).unwrap();
    let k = t.kopeo(&[
        "standalone-verify",
        other.to_str().unwrap(),
        reference,
        &alice,
        &t.s("k.sig"),
    ]);
    assert!(
        k.code == 1 && k.stderr.contains("Signature for docker digest"),
        "{}",
        k.stderr
    );
    // A tampered signature.
    let mut sig = std::fs::read(t.path("k.sig")).unwrap();
    let n = sig.len() - 20;
    sig[n] ^= 0x55;
    std::fs::write(t.path("bad.sig"), sig).unwrap();
    let k = t.kopeo(&["standalone-verify", &manifest, reference, &alice, &t.s("bad.sig")]);
    assert_eq!(k.code, 1, "{}", k.stderr);
    assert_ne!(
        t.skopeo(&["standalone-verify", &manifest, reference, &alice, &t.s("bad.sig")])
            .code,
        0
    );
}

#[test]
fn passphrases_go_to_gpg_and_a_wrong_one_is_bad_passphrase() {
    let t = Setup::new();
    let carol = t.gpg.key("carol@example.com", "right horse battery", false);
    let manifest = {
        t.dir_image("img", false);
        t.s("img/manifest.json")
    };
    std::fs::write(t.path("right"), "right horse battery\nsecond line ignored\n").unwrap();
    std::fs::write(t.path("wrong"), "wrong\n").unwrap();
    let args = |pf: &str| {
        vec![
            "standalone-sign".to_string(),
            "--passphrase-file".into(),
            t.s(pf),
            manifest.clone(),
            "example.com/a:1".into(),
            carol.clone(),
            "-o".into(),
            t.s("c.sig"),
        ]
    };
    let run = |pf: &str| {
        let a = args(pf);
        t.kopeo(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let bad = run("wrong");
    assert_eq!(bad.code, 1);
    assert!(
        bad.stderr.contains("Error creating signature: Bad passphrase"),
        "{}",
        bad.stderr
    );
    assert!(!t.path("c.sig").exists(), "a failed signing wrote a signature");
    run("right").ok();
    t.skopeo(&["standalone-verify", &manifest, "example.com/a:1", &carol, &t.s("c.sig")])
        .ok();
    // The passphrase is never printed, even with --debug.
    let mut a = args("wrong");
    a.insert(0, "--debug".into());
    let dbg = t.kopeo(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        !dbg.stderr.contains("wrong\n") && !dbg.stderr.contains("right horse"),
        "{}",
        dbg.stderr
    );
    let missing = t.kopeo(&[
        "standalone-sign",
        &manifest,
        "example.com/a:1",
        "nobody@example.com",
        "-o",
        &t.s("n.sig"),
    ]);
    assert!(
        missing.code == 1 && missing.stderr.contains("not found"),
        "{}",
        missing.stderr
    );
}

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
fn registry_signatures_live_in_the_lookaside_skopeo_reads() {
    let t = Setup::new();
    let alice = t.gpg.key("alice@example.com", "", false);
    t.gpg.export("alice@example.com", &t.path("alice.asc"));
    let reg = Registry::start(Mode::Plain);
    let host = reg
        .image("")
        .trim_start_matches("docker://")
        .trim_end_matches('/')
        .to_string();
    let lookaside = t.path("sigstore");
    let regd = t.path("registries.d");
    std::fs::create_dir_all(&regd).unwrap();
    // The deprecated `sigstore:` key, which skopeo 1.9.3 and kopeo both read.
    std::fs::write(
        regd.join("test.yaml"),
        format!("docker:\n  {host}:\n    sigstore: file://{}\n", lookaside.display()),
    )
    .unwrap();
    let regd = regd.display().to_string();
    let src = t.dir_image("img", false);
    let a = reg.image("ns/a:1");
    t.kopeo(&[
        "--registries.d",
        &regd,
        "copy",
        "-q",
        "--insecure-policy",
        "--dest-tls-verify=false",
        "--sign-by",
        &alice,
        &src,
        &a,
    ])
    .ok();
    // Where upstream puts it: BASE/repo@sha256=HEX/signature-1.
    let digest = reg.digest(t.home.path(), "ns/a:1");
    let hex = digest.trim_start_matches("sha256:");
    let sig_path = lookaside.join(format!("ns/a@sha256={hex}/signature-1"));
    assert!(sig_path.exists(), "no signature at {}", sig_path.display());
    let policy = t.policy(
        "trust.json",
        serde_json::json!({"docker": {format!("{host}/ns"): [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": t.s("alice.asc")}]}}),
    );
    // skopeo verifies it by policy (signedIdentity: the default, matchRepoDigestOrExact).
    t.skopeo(&[
        "--registries.d",
        &regd,
        "--policy",
        &policy,
        "copy",
        "--src-tls-verify=false",
        &a,
        &format!("dir:{}", t.s("s-out")),
    ])
    .ok();
    // skopeo signs into the lookaside, kopeo verifies and carries it to another repository.
    let b = reg.image("ns/b:1");
    t.skopeo(&[
        "--registries.d",
        &regd,
        "copy",
        "--dest-tls-verify=false",
        "--sign-by",
        &alice,
        &src,
        &b,
    ])
    .ok();
    let c = reg.image("ns/c:1");
    let k = t.kopeo(&[
        "--registries.d",
        &regd,
        "--policy",
        &policy,
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &b,
        &c,
    ]);
    let k = k.ok();
    assert!(k.stdout.contains("Storing signatures"), "{}", k.stdout);
    let b_sig = lookaside.join(format!("ns/b@sha256={hex}/signature-1"));
    let c_sig = lookaside.join(format!("ns/c@sha256={hex}/signature-1"));
    assert_eq!(std::fs::read(&b_sig).unwrap(), std::fs::read(&c_sig).unwrap());
    // A signature names ns/b's reference: the same image under ns/c is not
    // accepted by an exact-identity rule (kopeo and skopeo agree).
    let strict = t.policy(
        "strict.json",
        serde_json::json!({"docker": {format!("{host}/ns"): [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": t.s("alice.asc"), "signedIdentity": {"type": "matchExact"}}]}}),
    );
    let k = t.kopeo(&[
        "--registries.d",
        &regd,
        "--policy",
        &strict,
        "copy",
        "-q",
        "--src-tls-verify=false",
        &c,
        &format!("dir:{}", t.s("k-c")),
    ]);
    assert!(
        k.code == 1 && unquoted(&k.stderr).contains("is not accepted"),
        "{}",
        k.stderr
    );
    let s = t.skopeo(&[
        "--registries.d",
        &regd,
        "--policy",
        &strict,
        "copy",
        "--src-tls-verify=false",
        &c,
        &format!("dir:{}", t.s("s-c")),
    ]);
    assert_eq!(s.code, 1);
    // An unsigned repository under the signed-only scope is refused before any blob is read.
    let u = reg.image("ns/unsigned:1");
    t.kopeo(&[
        "--registries.d",
        &regd,
        "copy",
        "-q",
        "--insecure-policy",
        "--dest-tls-verify=false",
        &src,
        &u,
    ])
    .ok();
    let before = reg.requests("GET", "/blobs/");
    let k = t.kopeo(&[
        "--registries.d",
        &regd,
        "--policy",
        &policy,
        "copy",
        "-q",
        "--src-tls-verify=false",
        &u,
        &format!("dir:{}", t.s("u")),
    ]);
    assert!(
        k.code == 1 && k.stderr.contains("A signature was required, but no signature exists"),
        "{}",
        k.stderr
    );
    assert_eq!(
        reg.requests("GET", "/blobs/"),
        before,
        "a refused image's blobs were read"
    );
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

#[test]
fn sync_judges_every_image_by_the_policy() {
    let t = Setup::new();
    let alice = t.gpg.key("alice@example.com", "", false);
    t.gpg.export("alice@example.com", &t.path("alice.asc"));
    let reg = Registry::start(Mode::Plain);
    let host = reg
        .image("")
        .trim_start_matches("docker://")
        .trim_end_matches('/')
        .to_string();
    let regd = t.path("registries.d");
    std::fs::create_dir_all(&regd).unwrap();
    std::fs::write(
        regd.join("t.yaml"),
        format!("docker:\n  {host}:\n    lookaside: file://{}\n", t.s("sigs")),
    )
    .unwrap();
    let regd = regd.display().to_string();
    let src = t.dir_image("img", false);
    for (tag, sign) in [("signed", true), ("unsigned", false)] {
        let mut a = vec![
            "--registries.d",
            &regd,
            "copy",
            "-q",
            "--insecure-policy",
            "--dest-tls-verify=false",
        ];
        if sign {
            a.extend(["--sign-by", alice.as_str()]);
        }
        let dst = reg.image(&format!("app:{tag}"));
        a.extend([src.as_str(), dst.as_str()]);
        t.kopeo(&a).ok();
    }
    let policy = t.policy(
        "trust.json",
        serde_json::json!({"docker": {host.clone(): [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": t.s("alice.asc")}]}}),
    );
    let out = t.path("mirror");
    let k = t.kopeo(&[
        "--registries.d",
        &regd,
        "--policy",
        &policy,
        "sync",
        "--src",
        "docker",
        "--dest",
        "dir",
        "--src-tls-verify=false",
        "--keep-going",
        &format!("{host}/app"),
        out.to_str().unwrap(),
    ]);
    // Both tags are one manifest, so the lookaside holds the signature for
    // both; it names app:signed, which app:unsigned is not (as skopeo's
    // own system test expects of the same case).
    assert_eq!(k.code, 1, "{}", k.stderr);
    let want = format!("Source image rejected: Signature for identity \"{host}/app:signed\" is not accepted");
    assert!(unquoted(&k.stderr).contains(&want), "{}", k.stderr);
    assert!(out.join("app:signed/signature-1").exists());
    assert!(!out.join("app:unsigned").exists());
}
