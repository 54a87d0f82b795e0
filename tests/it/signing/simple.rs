//! Standalone signing and verification, judged by skopeo both ways.

use super::*;

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
    // What a signature claims, unverified, printed byte for byte as skopeo does.
    for sig in ["k.sig", "s.sig"] {
        let dump = ["untrusted-signature-dump-without-verification", &t.s(sig)];
        assert_eq!(t.kopeo(&dump).ok().stdout, t.skopeo(&dump).ok().stdout, "{sig}");
    }
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
