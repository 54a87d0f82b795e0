//! The fuzz targets' corpora and every input that ever crashed one, replayed
//! on stable Rust in the ordinary test run: a regression shows here without
//! fuzzing (fuzz/README.md says how to fuzz and where crashes go).

use std::path::Path;

#[test]
fn every_fuzz_corpus_and_regression_replays_without_a_panic() {
    // Unoptimised, the deepest inputs (regexes and YAML nested to the
    // libraries' own limits) need more than a test thread's 2 MiB of stack;
    // the release build replays them in 2 MiB (measured), as a tokio worker has.
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(replay_all)
        .expect("spawning the replay thread")
        .join()
        .expect("the replay thread");
}

fn replay_all() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for (name, target) in kopeo::fuzzing::TARGETS {
        let mut replayed = 0;
        for kind in ["corpus", "regressions"] {
            let Ok(dir) = std::fs::read_dir(root.join(kind).join(name)) else {
                continue;
            };
            let mut inputs: Vec<_> = dir.flatten().map(|e| e.path()).collect();
            inputs.sort();
            for input in inputs {
                let data = std::fs::read(&input).unwrap();
                let outcome = std::panic::catch_unwind(|| target(&data));
                assert!(outcome.is_ok(), "{name}: {} panics", input.display());
                replayed += 1;
            }
        }
        assert!(
            replayed > 0,
            "fuzz target {name} has no corpus under fuzz/corpus/{name}"
        );
    }
}

/// The `encryption` target's seeds, made from the keys in fuzz/testdata:
/// written into a temporary directory and checked to open with the test
/// keys (copy them to fuzz/corpus/encryption to renew the seeds).
#[test]
fn encryption_seeds_open_with_the_test_keys() {
    use kopeo::encryption::{jwe, keys, pgp, pkcs7};
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let dir = crate::support::tempdir();
    let out = dir.path().to_path_buf();
    let testdata = |f: &str| std::fs::read(root.join("testdata").join(f)).unwrap();
    let opts = br#"{"symkey":"BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=","digest":"sha256:00","cipheroptions":{"nonce":"AQEBAQEBAQEBAQEBAQEBAQ=="}}"#;
    let rsa = keys::parse_public(&testdata("encryption-rsa.pub")).unwrap();
    let ec = keys::parse_public(&testdata("encryption-ec.pub")).unwrap();
    let cert = pkcs7::Certificate::parse(&testdata("encryption-rsa.crt")).unwrap();
    let pgp_pub = pgp::read_public(&testdata("encryption-pgp.pub")).unwrap();
    let seeds: Vec<(&str, Vec<u8>)> = vec![
        ("jwe-rsa", jwe::wrap(std::slice::from_ref(&rsa), opts).unwrap()),
        ("jwe-ec", jwe::wrap(std::slice::from_ref(&ec), opts).unwrap()),
        ("jwe-both", jwe::wrap(&[rsa, ec], opts).unwrap()),
        ("pkcs7", pkcs7::wrap(&[cert], opts).unwrap()),
        ("pgp", pgp::wrap(&pgp_pub, opts).unwrap()),
        ("private-options", opts.to_vec()),
        (
            "public-options",
            br#"{"cipher":"AES_256_CTR_HMAC_SHA256","hmac":"AAAA","cipheroptions":{}}"#.to_vec(),
        ),
        ("answer-base64", br#"{"keywrapresults":{"annotation":"AQID"}}"#.to_vec()),
        ("answer-bytes", br#"{"keyunwrapresults":{"optsdata":[1,2,3]}}"#.to_vec()),
        ("rsa-pub", testdata("encryption-rsa.pub")),
        ("ec-pem", testdata("encryption-ec.pem")),
        ("cert", testdata("encryption-rsa.crt")),
        ("jwk", br#"{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}"#.to_vec()),
    ];
    let rsa_key = keys::parse_private(&testdata("encryption-rsa.pem"), None)
        .unwrap()
        .unwrap();
    let ec_key = keys::parse_private(&testdata("encryption-ec.pem"), None)
        .unwrap()
        .unwrap();
    let pgp_key = pgp::SecretKey::parse(&testdata("encryption-pgp.key"), None).unwrap();
    let get = |n: &str| seeds.iter().find(|(s, _)| *s == n).unwrap().1.clone();
    assert_eq!(
        jwe::unwrap(&get("jwe-ec"), std::slice::from_ref(&ec_key))
            .unwrap()
            .as_slice(),
        opts
    );
    assert_eq!(
        pkcs7::unwrap(&get("pkcs7"), std::slice::from_ref(&rsa_key), &[])
            .unwrap()
            .as_slice(),
        opts
    );
    assert_eq!(pgp::unwrap(&get("pgp"), &[pgp_key]).unwrap().as_slice(), opts);
    assert_eq!(jwe::unwrap(&get("jwe-both"), &[rsa_key]).unwrap().as_slice(), opts);
    for (name, data) in seeds {
        std::fs::write(out.join(name), data).unwrap();
    }
}
