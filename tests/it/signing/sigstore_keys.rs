//! Sigstore signing with a private key: `generate-sigstore-key` and
//! `--sign-by-sigstore-private-key` / `--sign-by-sigstore`, judged by an
//! independent reader of the key file (tests/it/support/cosign_key.py, from
//! the formats) and by openssl for the keys and signatures.

use super::*;
use crate::support::require_tool;

fn cosign_key(t: &Setup, args: &[&str]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/support/cosign_key.py");
    let out = std::process::Command::new(require_tool("python3", "python3-minimal"))
        .arg(script)
        .args(args)
        .current_dir(t.home.path())
        .output()
        .expect("running python3");
    assert!(
        out.status.success(),
        "cosign_key.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn generated_sigstore_keys_open_elsewhere_and_sign_what_openssl_verifies() {
    let t = Setup::new();
    std::fs::write(t.path("pw"), "sigstore passphrase\n").unwrap();
    let prefix = t.s("mykey");
    let out = t
        .kopeo(&[
            "generate-sigstore-key",
            "--output-prefix",
            &prefix,
            "--passphrase-file",
            &t.s("pw"),
        ])
        .ok();
    assert!(
        out.stdout.contains("mykey.private") && out.stdout.contains("mykey.pub"),
        "{}",
        out.stdout
    );
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(t.path("mykey.private")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // Never over an existing key.
    let again = t.kopeo(&[
        "generate-sigstore-key",
        "--output-prefix",
        &prefix,
        "--passphrase-file",
        &t.s("pw"),
    ]);
    assert!(
        again.code == 1 && again.stderr.contains("Refusing to overwrite existing"),
        "{}",
        again.stderr
    );
    // The independent reader opens the private key with the N every skopeo
    // reads; its public half is the .pub file, as openssl derives it.
    assert_eq!(
        cosign_key(&t, &["decrypt", "mykey.private", "pw", "mykey.der"]),
        "32768"
    );
    crate::support::openssl(
        t.home.path(),
        &[
            "pkey",
            "-inform",
            "DER",
            "-in",
            "mykey.der",
            "-pubout",
            "-out",
            "derived.pub",
        ],
    );
    assert_eq!(
        std::fs::read(t.path("derived.pub")).unwrap(),
        std::fs::read(t.path("mykey.pub")).unwrap()
    );

    // Signing while copying into a registry: the attachment's payload and
    // signature verify with openssl, and name the pushed manifest.
    let reg = Registry::start(Mode::Plain);
    let host = reg.host.clone();
    let regd = t.registries_d("default-docker:\n  use-sigstore-attachments: true\n");
    let src = t.dir_image("img", false);
    let dst = reg.image("ns/app:1");
    let key = t.s("mykey.private");
    let k = t.kopeo(&[
        "--registries.d",
        &regd,
        "copy",
        "--insecure-policy",
        "--dest-tls-verify=false",
        "--sign-by-sigstore-private-key",
        &key,
        "--sign-passphrase-file",
        &t.s("pw"),
        &src,
        &dst,
    ]);
    let k = k.ok();
    assert!(
        k.stdout
            .contains("Creating signature: Signing image using a sigstore signature"),
        "{}",
        k.stdout
    );
    let digest = reg.digest(t.home.path(), "ns/app:1");
    let raw = reg.raw_manifest(t.home.path(), &format!("ns/app:{}.sig", digest.replace(':', "-")));
    let m: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let layer = &m["layers"][0];
    let payload = t.openssl_verifies(&host, "ns/app", layer, "mykey.pub");
    let p: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(p["critical"]["type"], "cosign container image signature");
    assert_eq!(p["critical"]["image"]["docker-manifest-digest"], digest.as_str());
    assert_eq!(
        p["critical"]["identity"]["docker-reference"],
        format!("{host}/ns/app:1")
    );
    // And kopeo's policy accepts it with the public key.
    let trust = t.policy(
        "trust.json",
        serde_json::json!({"docker": {host.clone(): [{"type": "sigstoreSigned", "keyPath": t.s("mykey.pub"), "signedIdentity": {"type": "matchExact"}}]}}),
    );
    t.kopeo(&[
        "--registries.d",
        &regd,
        "--policy",
        &trust,
        "copy",
        "-q",
        "--src-tls-verify=false",
        &dst,
        &format!("dir:{}", t.s("out")),
    ])
    .ok();
    // A wrong passphrase fails before anything is written.
    std::fs::write(t.path("wrong"), "nope\n").unwrap();
    let bad = t.kopeo(&[
        "--registries.d",
        &regd,
        "copy",
        "-q",
        "--insecure-policy",
        "--dest-tls-verify=false",
        "--sign-by-sigstore-private-key",
        &key,
        "--sign-passphrase-file",
        &t.s("wrong"),
        &src,
        &reg.image("ns/never:1"),
    ]);
    assert!(
        bad.code == 1 && bad.stderr.contains("decryption failed"),
        "{}",
        bad.stderr
    );
    assert!(reg.lacks(t.home.path(), "ns/never:1"));
    // Without attachments enabled, signing into a registry is refused up front.
    let off = t.kopeo(&[
        "copy",
        "-q",
        "--insecure-policy",
        "--dest-tls-verify=false",
        "--sign-by-sigstore-private-key",
        &key,
        "--sign-passphrase-file",
        &t.s("pw"),
        &src,
        &reg.image("ns/off:1"),
    ]);
    assert!(
        off.code == 1 && off.stderr.contains("use-sigstore-attachments"),
        "{}",
        off.stderr
    );
    assert!(reg.lacks(t.home.path(), "ns/off:1"));
}

#[test]
fn keys_sealed_elsewhere_with_any_accepted_n_sign_and_parameter_files_work() {
    let t = Setup::new();
    std::fs::write(t.path("pw"), "pw\n").unwrap();
    // A P-256 key from openssl, sealed by the independent writer with N = 2^16.
    crate::support::openssl(
        t.home.path(),
        &["ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out", "ec.pem"],
    );
    crate::support::openssl(
        t.home.path(),
        &[
            "pkcs8", "-topk8", "-nocrypt", "-in", "ec.pem", "-outform", "DER", "-out", "ec.der",
        ],
    );
    crate::support::openssl(t.home.path(), &["ec", "-in", "ec.pem", "-pubout", "-out", "ec.pub"]);
    cosign_key(&t, &["encrypt", "ec.der", "pw", "65536", "n16.private"]);
    cosign_key(&t, &["encrypt", "ec.der", "pw", "16384", "n14.private"]);
    let src = t.dir_image("img", false);
    let ident = "registry.example.com/a:1";
    let d = format!("dir:{}", t.s("signed"));
    t.kopeo(&[
        "copy",
        "-q",
        "--insecure-policy",
        "--sign-by-sigstore-private-key",
        &t.s("n16.private"),
        "--sign-passphrase-file",
        &t.s("pw"),
        "--sign-identity",
        ident,
        &src,
        &d,
    ])
    .ok();
    let blob = std::fs::read(t.path("signed/signature-1")).unwrap();
    assert!(blob.starts_with(b"\0sigstore-json\n"));
    let policy = t.policy(
        "trust.json",
        serde_json::json!({"dir": {t.s("signed"): [{"type": "sigstoreSigned", "keyPath": t.s("ec.pub"), "signedIdentity": {"type": "exactReference", "dockerReference": ident}}]}}),
    );
    t.kopeo(&[
        "--policy",
        &policy,
        "copy",
        "-q",
        &d,
        &format!("dir:{}", t.s("checked")),
    ])
    .ok();
    // N outside what go-securesystemslib accepts is refused.
    let k = t.kopeo(&[
        "copy",
        "-q",
        "--insecure-policy",
        "--sign-by-sigstore-private-key",
        &t.s("n14.private"),
        "--sign-passphrase-file",
        &t.s("pw"),
        "--sign-identity",
        ident,
        &src,
        &format!("dir:{}", t.s("n14")),
    ]);
    assert!(
        k.code == 1 && k.stderr.contains("unsupported scrypt parameters"),
        "{}",
        k.stderr
    );
    // --sign-by-sigstore: a parameter file naming the key and its passphrase file.
    std::fs::write(
        t.path("params.yaml"),
        format!(
            "privateKeyFile: {}\nprivateKeyPassphraseFile: {}\n",
            t.s("n16.private"),
            t.s("pw")
        ),
    )
    .unwrap();
    t.kopeo(&[
        "copy",
        "-q",
        "--insecure-policy",
        "--sign-by-sigstore",
        &t.s("params.yaml"),
        "--sign-identity",
        ident,
        &src,
        &format!("dir:{}", t.s("p")),
    ])
    .ok();
    assert!(t.path("p/signature-1").exists());
    // Fulcio needs its service: refused clearly, not ignored.
    std::fs::write(
        t.path("fulcio.yaml"),
        "fulcio:\n  fulcioURL: https://fulcio.example\n  oidcMode: staticToken\n  oidcIDToken: x\n",
    )
    .unwrap();
    let k = t.kopeo(&[
        "copy",
        "-q",
        "--insecure-policy",
        "--sign-by-sigstore",
        &t.s("fulcio.yaml"),
        &src,
        &format!("dir:{}", t.s("f")),
    ]);
    assert!(
        k.code == 1 && k.stderr.contains("not supported by kopeo"),
        "{}",
        k.stderr
    );
    assert!(!t.path("f").exists());
    // Unknown keys in a parameter file are errors, as upstream's KnownFields.
    std::fs::write(t.path("typo.yaml"), "privateKeyFil: x\n").unwrap();
    let k = t.kopeo(&[
        "copy",
        "-q",
        "--insecure-policy",
        "--sign-by-sigstore",
        &t.s("typo.yaml"),
        &src,
        &format!("dir:{}", t.s("g")),
    ]);
    assert!(k.code == 1 && k.stderr.contains("privateKeyFil"), "{}", k.stderr);
}
