//! PKCS#7 recipients (X.509 certificates), judged by skopeo 1.9.3 both
//! ways; and kopeo reads what OpenSSL's `cms -encrypt` writes.

use super::{Keys, holds_an_image, layers, manifest};
use crate::support::image::Spec;
use crate::support::openssl;

fn cert(k: &Keys, name: &str) {
    let (key, crt) = (format!("{name}.key"), format!("{name}.crt"));
    let subj = format!("/CN={name}");
    openssl(
        k.home.path(),
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &crt, "-subj", &subj, "-days",
            "30",
        ],
    );
}

#[test]
fn pkcs7_recipients_interoperate_with_skopeo() {
    let k = Keys::new();
    cert(&k, "a");
    cert(&k, "b");
    let src = k.image("src", Spec::default());
    let (plain_bytes, plain) = manifest(&k.path("src"));
    let (to_a, to_b) = (format!("pkcs7:{}", k.s("a.crt")), format!("pkcs7:{}", k.s("b.crt")));
    k.kopeo(&[
        "copy",
        "-q",
        "--encryption-key",
        &to_a,
        "--encryption-key",
        &to_b,
        &src.reference(),
        &k.oci("enc"),
    ])
    .ok();
    let (_, m) = manifest(&k.path("enc"));
    assert!(m["layers"][0]["annotations"]["org.opencontainers.image.enc.keys.pkcs7"].is_string());
    // skopeo wants the key and its certificate.
    for who in ["a", "b"] {
        let out = format!("s-{who}");
        let (key, crt) = (k.s(&format!("{who}.key")), k.s(&format!("{who}.crt")));
        k.skopeo(&[
            "copy",
            "-q",
            "--decryption-key",
            &key,
            "--decryption-key",
            &crt,
            &k.oci("enc"),
            &k.oci(&out),
        ])
        .ok();
        assert_eq!(layers(&manifest(&k.path(&out)).1), layers(&plain), "skopeo as {who}");
    }
    // skopeo encrypts; kopeo decrypts with the key and certificate, or the key alone.
    k.skopeo(&[
        "copy",
        "-q",
        "--encryption-key",
        &to_a,
        &src.reference(),
        &k.oci("s-enc"),
    ])
    .ok();
    for (n, keys) in [(1, vec![k.s("a.key"), k.s("a.crt")]), (2, vec![k.s("a.key")])] {
        let out = format!("k-{n}");
        let mut args = vec!["copy", "-q"];
        for key in &keys {
            args.extend(["--decryption-key", key.as_str()]);
        }
        let (from, to) = (k.oci("s-enc"), k.oci(&out));
        args.extend([from.as_str(), to.as_str()]);
        k.kopeo(&args).ok();
        assert_eq!(manifest(&k.path(&out)).0, plain_bytes, "{keys:?}");
    }
    // Another recipient's key (with its certificate) opens nothing.
    let r = k.kopeo(&[
        "copy",
        "-q",
        "--decryption-key",
        &k.s("b.key"),
        "--decryption-key",
        &k.s("b.crt"),
        &k.oci("s-enc"),
        &k.oci("k-wrong"),
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("PKCS7: No suitable private key found for decryption"),
        "{}",
        r.stderr
    );
    assert!(!holds_an_image(&k.path("k-wrong")));
    let r = k.kopeo(&[
        "copy",
        "-q",
        "--encryption-key",
        &format!("pkcs7:{}", k.s("rsa.pub")),
        &src.reference(),
        &k.oci("x"),
    ]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("Invalid encryption keys: File provided is not an x509 cert"),
        "{}",
        r.stderr
    );
}

#[test]
fn openssl_cms_envelopes_are_read() {
    let k = Keys::new();
    cert(&k, "a");
    std::fs::write(k.path("opts.json"), br#"{"symkey":"x"}"#).unwrap();
    // (With AES-GCM OpenSSL writes AuthEnvelopedData, which Go's pkcs7 does not read either.)
    for (alg, keyopt) in [
        ("-aes256", None),
        ("-aes128", None),
        ("-aes256", Some("rsa_padding_mode:oaep")),
    ] {
        let mut args = vec![
            "cms",
            "-encrypt",
            "-binary",
            alg,
            "-in",
            "opts.json",
            "-outform",
            "DER",
            "-out",
            "env.der",
            "-recip",
            "a.crt",
        ];
        if let Some(o) = keyopt {
            args.extend(["-keyopt", o]);
        }
        openssl(k.home.path(), &args);
        let key = kopeo::encryption::keys::parse_private(&std::fs::read(k.path("a.key")).unwrap(), None)
            .unwrap()
            .expect("an RSA key");
        let c = kopeo::encryption::pkcs7::Certificate::parse(&std::fs::read(k.path("a.crt")).unwrap()).unwrap();
        let env = std::fs::read(k.path("env.der")).unwrap();
        let plain = kopeo::encryption::pkcs7::unwrap(&env, &[key], &[c]).expect(alg);
        assert_eq!(plain.as_slice(), br#"{"symkey":"x"}"#, "{alg} {keyopt:?}");
    }
}
