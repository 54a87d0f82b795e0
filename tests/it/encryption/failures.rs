//! Wrong keys, tampered layers and impossible destinations: a clear error,
//! exit 1, and no image at the destination.

use super::{Keys, blob, holds_an_image, manifest};
use crate::support::image::Spec;
use serde_json::Value;

#[test]
fn flag_misuse_is_refused_as_skopeo_refuses_it() {
    let k = Keys::new();
    let src = k.image("src", Spec::default());
    let dst = k.oci("out");
    let jwe = format!("jwe:{}", k.s("rsa.pub"));
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--encryption-key", &jwe, "--decryption-key", "x"],
            "--encryption-key and --decryption-key cannot be specified together",
        ),
        (
            vec!["--encrypt-layer", "0"],
            "--encrypt-layer can only be used with --encryption-key",
        ),
        (
            vec!["--encryption-key", "nocolon"],
            "Invalid encryption keys: Invalid recipient format",
        ),
        (
            vec!["--encryption-key", "rot13:x"],
            "Invalid encryption keys: Provided protocol not recognized",
        ),
        (
            vec!["--encryption-key", "jwe:/nonexistent.pub"],
            "Invalid encryption keys: Unable to read file: open /nonexistent.pub: no such file or directory",
        ),
        (
            vec!["--decryption-key", "/nonexistent.pem"],
            "Invalid decryption keys: open /nonexistent.pem: no such file or directory",
        ),
        (
            vec!["--encryption-key", &jwe, "--encrypt-layer", "5"],
            "when choosing layers to encrypt, layer index 5 out of range (2 layers exist)",
        ),
        (
            vec!["--encryption-key", &jwe, "--format", "v2s2"],
            "encrypted layers need an OCI manifest",
        ),
    ];
    for (flags, want) in cases {
        let mut args = vec!["copy", "-q"];
        args.extend(flags.iter().copied());
        let r = src.reference();
        args.extend([r.as_str(), dst.as_str()]);
        let out = k.kopeo(&args);
        assert_eq!(out.code, 1, "{flags:?}: {}", out.stderr);
        assert!(out.stderr.contains(want), "{flags:?}: want {want:?} in {}", out.stderr);
        assert!(!out.stderr.contains("panicked"));
        assert!(!holds_an_image(&k.path("out")), "{flags:?} wrote an image");
    }
    // A destination with no OCI manifests refuses rather than write plaintext.
    let archive = format!("docker-archive:{}", k.s("a.tar"));
    let out = k.kopeo(&["copy", "-q", "--encryption-key", &jwe, &src.reference(), &archive]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("encrypted layers need an OCI manifest"),
        "{}",
        out.stderr
    );
    assert!(!k.path("a.tar").exists() || std::fs::metadata(k.path("a.tar")).unwrap().len() == 0);
}

/// Rewrite layer 0 of the encrypted layout `dir` with `edit` applied to
/// its bytes or annotations, keeping every digest consistent, so that only
/// the ciphertext's HMAC can tell.
fn tamper(dir: &std::path::Path, edit: impl Fn(&mut Vec<u8>, &mut Value)) {
    let (_, mut m) = manifest(dir);
    let d0 = m["layers"][0]["digest"].as_str().unwrap().to_string();
    let mut bytes = blob(dir, &d0);
    edit(&mut bytes, &mut m["layers"][0]);
    let (d, n) = crate::support::image::put(dir, &bytes);
    m["layers"][0]["digest"] = d.into();
    m["layers"][0]["size"] = n.into();
    let mb = serde_json::to_vec(&m).unwrap();
    let (md, mn) = crate::support::image::put(dir, &mb);
    let mut index: Value = serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    index["manifests"][0]["digest"] = md.into();
    index["manifests"][0]["size"] = mn.into();
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

#[test]
fn wrong_keys_and_tampered_layers_fail_and_leave_nothing() {
    let k = Keys::new();
    let src = k.image("src", Spec::default());
    let jwe = format!("jwe:{}", k.s("rsa.pub"));
    let enc = k.oci("enc");
    k.kopeo(&["copy", "-q", "--encryption-key", &jwe, &src.reference(), &enc])
        .ok();
    // The EC key is not a recipient.
    let out = k.kopeo(&["copy", "-q", "--decryption-key", &k.s("ec.pem"), &enc, &k.oci("wrong")]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("decrypting layer sha256:"), "{}", out.stderr);
    assert!(out.stderr.contains("no suitable key"), "{}", out.stderr);
    assert!(!holds_an_image(&k.path("wrong")));

    // Ciphertext changed (digests made to match): the HMAC catches it.
    for (name, flip_bytes) in [("tampered-bytes", true), ("tampered-hmac", false)] {
        let copy = k.path(name);
        crate::support::copy_dir(&k.path("enc"), &copy);
        tamper(&copy, |bytes, layer| {
            if flip_bytes {
                let mid = bytes.len() / 2;
                bytes[mid] ^= 0x40;
            } else {
                use base64::Engine as _;
                let b64 = base64::engine::general_purpose::STANDARD;
                let key = "org.opencontainers.image.enc.pubopts";
                let mut pubopts: Value =
                    serde_json::from_slice(&b64.decode(layer["annotations"][key].as_str().unwrap()).unwrap()).unwrap();
                let mut hmac = b64.decode(pubopts["hmac"].as_str().unwrap()).unwrap();
                hmac[0] ^= 1;
                pubopts["hmac"] = b64.encode(hmac).into();
                layer["annotations"][key] = b64.encode(serde_json::to_vec(&pubopts).unwrap()).into();
            }
        });
        let from = format!("oci:{}:latest", copy.display());
        let dest = format!("{name}-out");
        let out = k.kopeo(&["copy", "-q", "--decryption-key", &k.s("rsa.pem"), &from, &k.oci(&dest)]);
        assert_eq!(out.code, 1, "{name}: {}", out.stderr);
        assert!(out.stderr.contains("HMAC"), "{name}: {}", out.stderr);
        assert!(!out.stderr.contains("panicked"));
        assert!(!holds_an_image(&k.path(&dest)), "{name} left an image");
        // Nor does the plaintext of the tampered layer remain as a blob.
        let (_, plain) = manifest(&k.path("src"));
        let d0 = plain["layers"][0]["digest"].as_str().unwrap();
        let hex = d0.strip_prefix("sha256:").unwrap();
        assert!(!k.path(&dest).join("blobs/sha256").join(hex).exists(), "{name}");
        // skopeo agrees the layer is bad.
        let s = k.skopeo(&[
            "copy",
            "-q",
            "--decryption-key",
            &k.s("rsa.pem"),
            &from,
            &k.oci(&format!("{name}-s")),
        ]);
        assert_ne!(s.code, 0, "skopeo accepted {name}");
    }
}
