//! Key providers: a command provider (tests/it/support/keyprovider.py) and
//! a gRPC one (support/kms.rs), each written from ocicrypt's protocol. What
//! kopeo encrypts through them is decrypted independently of kopeo: the
//! provider unwraps the options, openssl checks the HMAC and decrypts
//! AES-256-CTR, and the plaintext must hash to the source layer's digest.

use super::{Keys, blob, holds_an_image, layers, manifest};
use crate::support::image::Spec;
use crate::support::kms;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use std::path::Path;

const SECRET: &str = "kms-secret-canary";
const ANNOTATION: &str = "org.opencontainers.image.enc.keys.provider.testkms";

/// Decrypt every layer of the encrypted layout `dir` without kopeo and
/// check each against the plain layout `plain`.
fn decrypt_independently(k: &Keys, dir: &Path, plain: &Value) {
    let (_, m) = manifest(dir);
    let plain_layers = layers(plain);
    for (i, l) in m["layers"].as_array().unwrap().iter().enumerate() {
        let ann = &l["annotations"];
        let wrapped = B64
            .decode(ann[ANNOTATION].as_str().expect("the provider's annotation"))
            .unwrap();
        let private: Value = serde_json::from_slice(&kms::unwrap(SECRET, &wrapped)).expect("private options JSON");
        let public: Value = serde_json::from_slice(
            &B64.decode(ann["org.opencontainers.image.enc.pubopts"].as_str().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(public["cipher"], "AES_256_CTR_HMAC_SHA256");
        assert_eq!(
            private["digest"], plain_layers[i].1,
            "ocicrypt records the source layer's digest"
        );
        let key = hex::encode(B64.decode(private["symkey"].as_str().unwrap()).unwrap());
        let nonce = hex::encode(B64.decode(private["cipheroptions"]["nonce"].as_str().unwrap()).unwrap());
        let ct = k.path(&format!("ct-{i}"));
        std::fs::write(&ct, blob(dir, l["digest"].as_str().unwrap())).unwrap();
        let ct_s = ct.display().to_string();
        let mac = std::process::Command::new("openssl")
            .args([
                "dgst",
                "-sha256",
                "-binary",
                "-mac",
                "HMAC",
                "-macopt",
                &format!("hexkey:{key}"),
                &ct_s,
            ])
            .output()
            .expect("openssl dgst");
        assert_eq!(
            B64.encode(&mac.stdout),
            public["hmac"].as_str().unwrap(),
            "layer {i}: HMAC over the ciphertext"
        );
        let pt = format!("{ct_s}.plain");
        crate::support::openssl(
            k.home.path(),
            &[
                "enc",
                "-d",
                "-aes-256-ctr",
                "-K",
                &key,
                "-iv",
                &nonce,
                "-in",
                &ct_s,
                "-out",
                &pt,
            ],
        );
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(std::fs::read(&pt).unwrap())));
        assert_eq!(digest, plain_layers[i].1, "layer {i} decrypts to the source layer");
    }
}

#[test]
fn a_command_provider_wraps_and_unwraps_as_ocicrypt_asks() {
    let k = Keys::new();
    let src = k.image("src", Spec::default());
    let (plain_bytes, plain) = manifest(&k.path("src"));
    for mode in ["ok", "bytes"] {
        let cfg = kms::cmd_config(k.home.path(), SECRET, mode);
        let env = [("OCICRYPT_KEYPROVIDER_CONFIG", cfg.to_str().unwrap())];
        let (enc, dec) = (format!("enc-{mode}"), format!("dec-{mode}"));
        k.kopeo_env(
            &[
                "copy",
                "-q",
                "--encryption-key",
                "provider:testkms:key-1",
                &src.reference(),
                &k.oci(&enc),
            ],
            &env,
        )
        .ok();
        let (_, m) = manifest(&k.path(&enc));
        assert!(
            m["layers"][0]["annotations"]
                .get("org.opencontainers.image.enc.keys.jwe")
                .is_none()
        );
        decrypt_independently(&k, &k.path(&enc), &plain);
        // ocicrypt's unwrap asks every configured provider whose annotation
        // a layer has, whatever key was named: an unrelated one does.
        for key in ["provider:testkms", &k.s("ec.pem")] {
            std::fs::remove_dir_all(k.path(&dec)).ok();
            k.kopeo_env(
                &["copy", "-q", "--decryption-key", key, &k.oci(&enc), &k.oci(&dec)],
                &env,
            )
            .ok();
            assert_eq!(manifest(&k.path(&dec)).0, plain_bytes, "{mode} {key}");
        }
    }
    // The requests, field for field as ocicrypt's Go structs marshal.
    let log = kms::logged(k.home.path());
    let wrap = log.iter().find(|r| r["op"] == "keywrap").expect("a keywrap request");
    assert_eq!(
        wrap["keywrapparams"]["ec"]["Parameters"]["testkms"][0],
        B64.encode("key-1")
    );
    assert_eq!(
        wrap["keywrapparams"]["ec"]["DecryptConfig"],
        serde_json::json!({"Parameters": {}})
    );
    assert_eq!(
        wrap["keyunwrapparams"],
        serde_json::json!({"dc": null, "annotation": null})
    );
    let unwrap = log
        .iter()
        .find(|r| r["op"] == "keyunwrap")
        .expect("a keyunwrap request");
    assert_eq!(
        unwrap["keyunwrapparams"]["dc"]["Parameters"]["testkms"][0],
        B64.encode("Enabled")
    );
    assert_eq!(
        unwrap["keywrapparams"],
        serde_json::json!({"ec": null, "optsdata": null})
    );
}

#[test]
fn jwe_and_provider_recipients_together_and_skopeo_reads_the_jwe_part() {
    let k = Keys::new();
    let src = k.image("src", Spec::default());
    let (_, plain) = manifest(&k.path("src"));
    let cfg = kms::cmd_config(k.home.path(), SECRET, "ok");
    let env = [("OCICRYPT_KEYPROVIDER_CONFIG", cfg.to_str().unwrap())];
    let jwe = format!("jwe:{}", k.s("rsa.pub"));
    k.kopeo_env(
        &[
            "copy",
            "-q",
            "--encryption-key",
            &jwe,
            "--encryption-key",
            "provider:testkms:k2",
            &src.reference(),
            &k.oci("enc"),
        ],
        &env,
    )
    .ok();
    decrypt_independently(&k, &k.path("enc"), &plain);
    k.skopeo(&[
        "copy",
        "-q",
        "--decryption-key",
        &k.s("rsa.pem"),
        &k.oci("enc"),
        &k.oci("sdec"),
    ])
    .ok();
    assert_eq!(layers(&manifest(&k.path("sdec")).1), layers(&plain));
}

#[test]
fn grpc_providers_on_a_unix_socket_loopback_tcp_and_tls() {
    let k = Keys::new();
    let src = k.image("src", Spec::default());
    let (plain_bytes, plain) = manifest(&k.path("src"));
    let sock = k.path("kms.sock");
    let certs = k.path("grpc-certs");
    std::fs::create_dir_all(&certs).unwrap();
    let tls = serde_json::json!({"root-ca-file": certs.join("ca.crt")});
    for (server, tls) in [
        (kms::grpc_server(SECRET, "testkms", Some(&sock)), None),
        (kms::grpc_server(SECRET, "testkms", None), None),
        (kms::grpc_tls_server(SECRET, "testkms", &certs), Some(tls)),
    ] {
        let cfg = k.path("grpc.json");
        let mut provider = serde_json::json!({"grpc": server.addr});
        if let Some(t) = tls {
            provider["grpc-tls"] = t;
        }
        std::fs::write(
            &cfg,
            serde_json::json!({"key-providers": {"testkms": provider}}).to_string(),
        )
        .unwrap();
        let env = [("OCICRYPT_KEYPROVIDER_CONFIG", cfg.to_str().unwrap())];
        for d in ["enc", "dec"] {
            std::fs::remove_dir_all(k.path(d)).ok();
        }
        k.kopeo_env(
            &[
                "copy",
                "-q",
                "--encryption-key",
                "provider:testkms:g1",
                &src.reference(),
                &k.oci("enc"),
            ],
            &env,
        )
        .ok();
        decrypt_independently(&k, &k.path("enc"), &plain);
        k.kopeo_env(
            &[
                "copy",
                "-q",
                "--decryption-key",
                "provider:testkms",
                &k.oci("enc"),
                &k.oci("dec"),
            ],
            &env,
        )
        .ok();
        assert_eq!(manifest(&k.path("dec")).0, plain_bytes, "{}", server.addr);
        let methods: Vec<String> = server.requests.lock().unwrap().iter().map(|(m, _)| m.clone()).collect();
        assert!(
            methods.contains(&"/keyprovider.KeyProviderService/WrapKey".to_string()),
            "{methods:?}"
        );
        assert!(
            methods.contains(&"/keyprovider.KeyProviderService/UnWrapKey".to_string()),
            "{methods:?}"
        );
    }
}

#[test]
fn provider_failures_name_the_provider_and_write_nothing() {
    let k = Keys::new();
    let src = k.image("src", Spec::default());
    let ok = kms::cmd_config(k.home.path(), SECRET, "ok");
    let ok_env = [("OCICRYPT_KEYPROVIDER_CONFIG", ok.to_str().unwrap())];
    k.kopeo_env(
        &[
            "copy",
            "-q",
            "--encryption-key",
            "provider:testkms:x",
            &src.reference(),
            &k.oci("enc"),
        ],
        &ok_env,
    )
    .ok();
    for (mode, want) in [
        ("fail", "the KMS refused the request"),
        ("garbage", "Error while unmarshalling"),
        ("hang", "no answer within 1s"),
    ] {
        let cfg = kms::cmd_config(k.home.path(), SECRET, mode);
        let env = [
            ("OCICRYPT_KEYPROVIDER_CONFIG", cfg.to_str().unwrap()),
            ("KOPEO_KEYPROVIDER_TIMEOUT", "1s"),
        ];
        let out_enc = format!("enc-{mode}");
        let r = k.kopeo_env(
            &[
                "copy",
                "-q",
                "--encryption-key",
                "provider:testkms:x",
                &src.reference(),
                &k.oci(&out_enc),
            ],
            &env,
        );
        assert_eq!(r.code, 1, "{mode}: {}", r.stderr);
        assert!(
            r.stderr.contains("key provider testkms") && r.stderr.contains(want),
            "{mode}: {}",
            r.stderr
        );
        assert!(!holds_an_image(&k.path(&out_enc)), "{mode}");
        // The keys are wrapped before any layer moves: no layer was written
        // (the config, copied beside, may be).
        let (_, plain) = manifest(&k.path("src"));
        let config = plain["config"]["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:")
            .to_string();
        let blobs: Vec<String> = std::fs::read_dir(k.path(&out_enc).join("blobs/sha256"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            blobs.iter().all(|b| *b == config),
            "{mode}: a layer was written before the provider failed: {blobs:?}"
        );
        let out_dec = format!("dec-{mode}");
        let r = k.kopeo_env(
            &[
                "copy",
                "-q",
                "--decryption-key",
                "provider:testkms",
                &k.oci("enc"),
                &k.oci(&out_dec),
            ],
            &env,
        );
        assert_eq!(r.code, 1, "{mode}: {}", r.stderr);
        assert!(
            r.stderr.contains("decrypting layer") && r.stderr.contains(want),
            "{mode}: {}",
            r.stderr
        );
        assert!(!holds_an_image(&k.path(&out_dec)), "{mode}");
        assert!(!r.stderr.contains("panicked") && !r.stderr.contains(SECRET));
    }
    let r = k.kopeo_env(
        &[
            "copy",
            "-q",
            "--encryption-key",
            "provider:nokms",
            &src.reference(),
            &k.oci("x"),
        ],
        &ok_env,
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("nokms") && r.stderr.contains("is not configured"),
        "{}",
        r.stderr
    );
}
