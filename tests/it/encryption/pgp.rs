//! OpenPGP recipients (`pgp:NAME` from the GnuPG keyring, or a key file)
//! and exported secret keys, judged by skopeo 1.9.3 (go-crypto) both ways.

use super::{Keys, layers, manifest};
use crate::support::gpg::GpgHome;
use crate::support::image::Spec;

#[test]
fn pgp_recipients_and_secret_keys_interoperate_with_skopeo() {
    let k = Keys::new();
    let gpg = GpgHome::new(k.home.path());
    gpg.encryption_key("alice@example.com", "alice pass");
    gpg.encryption_key("bob@example.com", "");
    gpg.export_secret("alice@example.com", "alice pass", false, &k.path("alice.gpg"));
    gpg.export_secret("bob@example.com", "", true, &k.path("bob.asc"));
    gpg.export_secret("bob@example.com", "", false, &k.path("bob.gpg"));
    gpg.export("bob@example.com", &k.path("bob.pub.asc"));
    let src = k.image("src", Spec::default());
    let (plain_bytes, plain) = manifest(&k.path("src"));
    let env = [gpg.env()];
    // kopeo encrypts to Alice by address (keyring) and Bob by key file.
    let bob_file = format!("pgp:{}", k.s("bob.pub.asc"));
    k.kopeo_env(
        &[
            "copy",
            "-q",
            "--encryption-key",
            "pgp:alice@example.com",
            "--encryption-key",
            &bob_file,
            &src.reference(),
            &k.oci("enc"),
        ],
        &env,
    )
    .ok();
    let (_, m) = manifest(&k.path("enc"));
    assert!(m["layers"][0]["annotations"]["org.opencontainers.image.enc.keys.pgp"].is_string());
    // skopeo 1.9.3's ocicrypt reads no `FILE:PASSWORD` (it opens the whole
    // string as a file) and no armored key ring: it gets Bob's unprotected
    // binary key.
    k.skopeo(&[
        "copy",
        "-q",
        "--decryption-key",
        &k.s("bob.gpg"),
        &k.oci("enc"),
        &k.oci("s-bob"),
    ])
    .ok();
    assert_eq!(
        layers(&manifest(&k.path("s-bob")).1),
        layers(&plain),
        "skopeo with Bob's key"
    );
    for (key, out) in [
        (format!("{}:alice pass", k.s("alice.gpg")), "k-alice"),
        (k.s("bob.asc"), "k-bob"),
    ] {
        k.kopeo(&["copy", "-q", "--decryption-key", &key, &k.oci("enc"), &k.oci(out)])
            .ok();
        assert_eq!(manifest(&k.path(out)).0, plain_bytes, "kopeo with {key}");
    }
    // A wrong password opens nothing, and nothing is written.
    let wrong = format!("{}:not it", k.s("alice.gpg"));
    let r = k.kopeo(&[
        "copy",
        "-q",
        "--decryption-key",
        &wrong,
        &k.oci("enc"),
        &k.oci("k-wrong"),
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("PGP: No suitable key found to unwrap key"),
        "{}",
        r.stderr
    );
    assert!(!super::holds_an_image(&k.path("k-wrong")));
    // skopeo encrypts to Alice from the same keyring; kopeo decrypts.
    crate::support::skopeo_env(
        k.home.path(),
        &[
            "copy",
            "-q",
            "--encryption-key",
            "pgp:alice@example.com",
            &src.reference(),
            &k.oci("s-enc"),
        ],
        &env,
    )
    .ok();
    let key = format!("{}:alice pass", k.s("alice.gpg"));
    k.kopeo(&[
        "copy",
        "-q",
        "--decryption-key",
        &key,
        &k.oci("s-enc"),
        &k.oci("k-from-s"),
    ])
    .ok();
    assert_eq!(manifest(&k.path("k-from-s")).0, plain_bytes);
    // An unknown name is named.
    let r = k.kopeo_env(
        &[
            "copy",
            "-q",
            "--encryption-key",
            "pgp:carol@example.com",
            &src.reference(),
            &k.oci("x"),
        ],
        &env,
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("No key found for the following recipients: carol@example.com"),
        "{}",
        r.stderr
    );
}
