//! Signatures of registry images: lookasides (simple signing), sigstore attachments, and sync.

use super::*;

#[test]
fn registry_signatures_live_in_the_lookaside_skopeo_reads() {
    let t = Setup::new();
    let alice = t.gpg.key("alice@example.com", "", false);
    t.gpg.export("alice@example.com", &t.path("alice.asc"));
    let reg = Registry::start(Mode::Plain);
    let host = reg.host.clone();
    let lookaside = t.path("sigstore");
    // The deprecated `sigstore:` key, which skopeo 1.9.3 and kopeo both read.
    let regd = t.registries_d(&format!(
        "docker:\n  {host}:\n    sigstore: file://{}\n",
        lookaside.display()
    ));
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
    // An image already at the destination without its signatures gets them
    // when its signed source is copied there (the copy does not stop at
    // "already there").
    let signed_dir = format!("dir:{}", t.s("signed-dir"));
    t.kopeo(&[
        "copy",
        "-q",
        "--insecure-policy",
        "--sign-by",
        &alice,
        "--sign-identity",
        &format!("{host}/ns/late:1"),
        &src,
        &signed_dir,
    ])
    .ok();
    let late = reg.image("ns/late:1");
    t.kopeo(&[
        "--registries.d",
        &regd,
        "copy",
        "-q",
        "--insecure-policy",
        "--dest-tls-verify=false",
        &src,
        &late,
    ])
    .ok();
    let late_sig = lookaside.join(format!(
        "ns/late@sha256={}/signature-1",
        reg.digest(t.home.path(), "ns/late:1").trim_start_matches("sha256:")
    ));
    assert!(!late_sig.exists());
    t.kopeo(&[
        "--registries.d",
        &regd,
        "copy",
        "-q",
        "--insecure-policy",
        "--dest-tls-verify=false",
        &signed_dir,
        &late,
    ])
    .ok();
    assert!(
        late_sig.exists(),
        "the signature was not stored with the image already there"
    );
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
fn sync_judges_every_image_by_the_policy() {
    let t = Setup::new();
    let alice = t.gpg.key("alice@example.com", "", false);
    t.gpg.export("alice@example.com", &t.path("alice.asc"));
    let reg = Registry::start(Mode::Plain);
    let host = reg.host.clone();
    let regd = t.registries_d(&format!("docker:\n  {host}:\n    lookaside: file://{}\n", t.s("sigs")));
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

#[test]
fn sigstore_attachments_are_verified_by_key_and_carried_along() {
    let t = Setup::new();
    let reg = Registry::start(Mode::Plain);
    let host = reg.host.clone();
    for (k, curve) in [("key.pem", "prime256v1"), ("other.pem", "prime256v1")] {
        crate::support::openssl(
            t.home.path(),
            &["ecparam", "-genkey", "-name", curve, "-noout", "-out", k],
        );
        let public = k.replace(".pem", ".pub");
        crate::support::openssl(t.home.path(), &["ec", "-in", k, "-pubout", "-out", &public]);
    }
    let sigs = t.path("lookaside");
    let regd = t.registries_d(&format!(
        "docker:\n  {host}:\n    use-sigstore-attachments: true\n    lookaside: file://{}\n",
        sigs.display()
    ));
    let src = t.dir_image("img", false);
    let s = reg.image("ns/s:1");
    t.kopeo(&[
        "--registries.d",
        &regd,
        "copy",
        "-q",
        "--insecure-policy",
        "--dest-tls-verify=false",
        &src,
        &s,
    ])
    .ok();
    let digest = reg.digest(t.home.path(), "ns/s:1");
    attach_sigstore(
        &t,
        &t.s("key.pem"),
        &reg.image("ns/s"),
        &digest,
        &format!("{host}/ns/s:1"),
        0,
    );
    let policy = |name: &str, key: &str, identity: serde_json::Value| {
        t.policy(
            name,
            serde_json::json!({"docker": {host.clone(): [{"type": "sigstoreSigned", "keyPath": t.s(key), "signedIdentity": identity}]}}),
        )
    };
    let trust = policy("trust.json", "key.pub", serde_json::json!({"type": "matchRepository"}));
    let flags = ["--src-tls-verify=false", "--dest-tls-verify=false"];
    let copy = |p: &str, from: &str, to: &str| {
        let mut a = vec!["--registries.d", regd.as_str(), "--policy", p, "copy", "-q"];
        a.extend(flags);
        a.extend([from, to]);
        t.kopeo(&a)
    };
    // Verified by its key, then copied with its attachment.
    let mirror = reg.image("mirror/s:1");
    copy(&trust, &s, &mirror).ok();
    let raw = reg.raw_manifest(t.home.path(), &format!("mirror/s:{}.sig", digest.replace(':', "-")));
    let m: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let layers = m["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "{raw}");
    assert_eq!(
        layers[0]["mediaType"],
        "application/vnd.dev.cosign.simplesigning.v1+json"
    );
    // An independent check of what kopeo wrote: the payload it attached,
    // fetched from the registry, still verifies with openssl.
    t.openssl_verifies(&host, "mirror/s", &layers[0], "key.pub");
    // Copying again appends nothing: the same signature is not attached twice.
    copy(&trust, &s, &mirror).ok();
    let again = reg.raw_manifest(t.home.path(), &format!("mirror/s:{}.sig", digest.replace(':', "-")));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&again).unwrap()["layers"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Into dir: the signature is stored in containers/image's sigstore blob form, and back.
    let d = format!("dir:{}", t.s("d"));
    copy(&trust, &s, &d).ok();
    let blob = std::fs::read(t.path("d/signature-1")).unwrap();
    assert!(
        blob.starts_with(b"\0sigstore-json\n"),
        "{:?}",
        &blob[..20.min(blob.len())]
    );
    let dir_policy = t.policy(
        "dir.json",
        serde_json::json!({"dir": {t.s("d"): [{"type": "sigstoreSigned", "keyPath": t.s("key.pub"), "signedIdentity": {"type": "exactReference", "dockerReference": format!("{host}/ns/s:1")}}]}}),
    );
    let back = reg.image("back/s:1");
    let mut a = vec![
        "--registries.d",
        regd.as_str(),
        "--policy",
        &dir_policy,
        "copy",
        "-q",
        "--dest-tls-verify=false",
    ];
    a.extend([d.as_str(), back.as_str()]);
    t.kopeo(&a).ok();
    reg.raw_manifest(t.home.path(), &format!("back/s:{}.sig", digest.replace(':', "-")));
    // Refusals: another key, another identity, no signature at all.
    let other = policy(
        "other.json",
        "other.pub",
        serde_json::json!({"type": "matchRepository"}),
    );
    let exact_other = policy(
        "exact.json",
        "key.pub",
        serde_json::json!({"type": "exactReference", "dockerReference": format!("{host}/ns/s:2")}),
    );
    let unsigned = reg.image("ns/unsigned:1");
    t.kopeo(&[
        "copy",
        "-q",
        "--insecure-policy",
        "--dest-tls-verify=false",
        &src,
        &unsigned,
    ])
    .ok();
    let cases = [
        (&other, &s, "cryptographic signature verification failed"),
        (&exact_other, &s, "is not accepted"),
        (&trust, &unsigned, "A signature was required, but no signature exists"),
    ];
    for (i, (p, from, why)) in cases.iter().enumerate() {
        let to = format!("dir:{}", t.s(&format!("refused-{i}")));
        let k = copy(p, from, &to);
        assert_eq!(k.code, 1, "{from}: {}", k.stderr);
        assert!(
            k.stderr.contains("Source image rejected: ") && k.stderr.contains(why),
            "{}",
            k.stderr
        );
        assert!(!t.path(&format!("refused-{i}")).exists());
    }
    // Keyless (Fulcio) requirements are refused, never waved through.
    let keyless = t.policy(
        "keyless.json",
        serde_json::json!({"docker": {host.clone(): [{"type": "sigstoreSigned", "fulcio": {"caPath": "/x", "oidcIssuer": "https://o", "subjectEmail": "a@b"}, "rekorPublicKeyPath": "/r", "signedIdentity": {"type": "matchRepository"}}]}}),
    );
    let k = copy(&keyless, &s, &format!("dir:{}", t.s("keyless")));
    assert!(
        k.code == 1 && k.stderr.contains("not yet supported by kopeo"),
        "{}",
        k.stderr
    );
}
