//! kopeo ↔ skopeo 1.9.3: JWE with RSA and EC keys, several recipients, a
//! chosen layer, zstd layers, a list with `--all`, through a registry.

use super::{Keys, layers, manifest};
use crate::support::image::Spec;
use crate::support::registry::{Mode, Registry};
use serde_json::Value;

const ENC_JWE: &str = "org.opencontainers.image.enc.keys.jwe";
const ENC_PUBOPTS: &str = "org.opencontainers.image.enc.pubopts";

/// Every layer encrypted: `+encrypted` types, both annotations, new digests;
/// the config untouched.
fn assert_encrypted(enc: &Value, plain: &Value, which: &[bool]) {
    assert_eq!(enc["config"], plain["config"], "the config is not encrypted");
    let (e, p) = (layers(enc), layers(plain));
    assert_eq!(e.len(), p.len());
    for (i, ((et, ed), (pt, pd))) in e.iter().zip(&p).enumerate() {
        let ann = &enc["layers"][i]["annotations"];
        if which[i] {
            assert_eq!(et, &format!("{pt}+encrypted"), "layer {i}");
            assert_ne!(ed, pd, "layer {i} bytes changed");
            assert!(
                ann[ENC_JWE].is_string() && ann[ENC_PUBOPTS].is_string(),
                "layer {i}: {ann}"
            );
        } else {
            assert_eq!((et, ed), (pt, pd), "layer {i} is left alone");
            assert!(ann.get(ENC_JWE).is_none());
        }
    }
}

#[test]
fn kopeo_encrypts_for_rsa_and_ec_and_skopeo_decrypts_each_to_the_original() {
    let k = Keys::new();
    let src = k.image("src", Spec::default());
    let (plain_bytes, plain) = manifest(&k.path("src"));
    let enc = k.oci("enc");
    let (jwe_rsa, jwe_ec) = (format!("jwe:{}", k.s("rsa.pub")), format!("jwe:{}", k.s("ec.pub")));
    k.kopeo(&[
        "copy",
        "-q",
        "--encryption-key",
        &jwe_rsa,
        "--encryption-key",
        &jwe_ec,
        &src.reference(),
        &enc,
    ])
    .ok();
    let (_, m) = manifest(&k.path("enc"));
    assert_encrypted(&m, &plain, &[true, true]);
    // Two recipients of one scheme: one JWE, general serialization.
    let jwe = base64_json(m["layers"][0]["annotations"][ENC_JWE].as_str().unwrap());
    assert_eq!(jwe["recipients"].as_array().map(Vec::len), Some(2), "{jwe}");
    for key in ["rsa.pem", "ec.pem"] {
        let out = format!("dec-{key}");
        k.skopeo(&["copy", "-q", "--decryption-key", &k.s(key), &enc, &k.oci(&out)])
            .ok();
        let (_, d) = manifest(&k.path(&out));
        assert_eq!(
            layers(&d),
            layers(&plain),
            "skopeo with {key} gets the original layers back"
        );
        assert_eq!(d["config"], plain["config"]);
    }
    // kopeo's own decryption restores the manifest byte for byte, with
    // the keys in every form ocicrypt reads (and SEC1 PEM, which it doesn't).
    for key in ["rsa.pem", "rsa-pkcs1.pem", "rsa.der", "ec.pem", "ec-sec1.pem", "ec.der"] {
        let out = format!("back-{key}");
        k.kopeo(&["copy", "-q", "--decryption-key", &k.s(key), &enc, &k.oci(&out)])
            .ok();
        assert_eq!(manifest(&k.path(&out)).0, plain_bytes, "{key}");
    }
}

fn base64_json(s: &str) -> Value {
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD.decode(s).expect("base64");
    serde_json::from_slice(&raw).expect("JSON")
}

#[test]
fn skopeo_encrypts_and_kopeo_decrypts_rsa_ec_and_one_chosen_layer() {
    let k = Keys::new();
    let src = k.image(
        "src",
        Spec {
            layers: vec![30_000, 20_000, 10_000],
            ..Spec::default()
        },
    );
    let (plain_bytes, plain) = manifest(&k.path("src"));
    let src_ref = src.reference();
    for (key, public, layer) in [("rsa.pem", "rsa.pub", None), ("ec.pem", "ec.pub", Some("-1"))] {
        let enc = k.oci(&format!("enc-{key}"));
        let jwe = format!("jwe:{}", k.s(public));
        let mut args = vec!["copy", "-q", "--encryption-key", &jwe];
        if let Some(l) = layer {
            args.extend(["--encrypt-layer", l]);
        }
        args.extend([src_ref.as_str(), enc.as_str()]);
        k.skopeo(&args).ok();
        let (_, m) = manifest(&k.path(&format!("enc-{key}")));
        let which = if layer.is_some() {
            vec![false, false, true]
        } else {
            vec![true; 3]
        };
        assert_encrypted(&m, &plain, &which);
        let out = format!("dec-{key}");
        k.kopeo(&["copy", "-q", "--decryption-key", &k.s(key), &enc, &k.oci(&out)])
            .ok();
        assert_eq!(
            manifest(&k.path(&out)).0,
            plain_bytes,
            "kopeo restores skopeo's encryption ({key})"
        );
    }
    // And kopeo's --encrypt-layer as skopeo reads it.
    let enc = k.oci("kenc");
    let jwe = format!("jwe:{}", k.s("ec.pub"));
    k.kopeo(&[
        "copy",
        "-q",
        "--encryption-key",
        &jwe,
        "--encrypt-layer",
        "0,-1",
        &src.reference(),
        &enc,
    ])
    .ok();
    assert_encrypted(&manifest(&k.path("kenc")).1, &plain, &[true, false, true]);
    k.skopeo(&["copy", "-q", "--decryption-key", &k.s("ec.pem"), &enc, &k.oci("sdec")])
        .ok();
    assert_eq!(layers(&manifest(&k.path("sdec")).1), layers(&plain));
}

#[test]
fn zstd_layers_a_list_and_a_registry_round_trip() {
    let k = Keys::new();
    let reg = Registry::start(Mode::Plain);
    let src = k.image(
        "src",
        Spec {
            archs: vec!["amd64", "arm64"],
            ..Spec::default()
        },
    );
    let dest = reg.image("enc/list:v1");
    let jwe = format!("jwe:{}", k.s("rsa.pub"));
    k.kopeo(&[
        "copy",
        "-q",
        "--all",
        "--dest-tls-verify=false",
        "--dest-compress-format",
        "zstd",
        "--encryption-key",
        &jwe,
        &src.reference(),
        &dest,
    ])
    .ok();
    // skopeo reads the encrypted list from the registry and decrypts every instance.
    k.skopeo(&[
        "copy",
        "-q",
        "--all",
        "--src-tls-verify=false",
        "--decryption-key",
        &k.s("rsa.pem"),
        &dest,
        &k.oci("dec"),
    ])
    .ok();
    let index: Value = serde_json::from_slice(&std::fs::read(k.path("dec/index.json")).unwrap()).unwrap();
    let list = super::blob(&k.path("dec"), index["manifests"][0]["digest"].as_str().unwrap());
    let list: Value = serde_json::from_slice(&list).unwrap();
    assert_eq!(list["mediaType"], "application/vnd.oci.image.index.v1+json");
    let instances = list["manifests"].as_array().unwrap();
    assert_eq!(instances.len(), 2);
    for i in instances {
        let m: Value = serde_json::from_slice(&super::blob(&k.path("dec"), i["digest"].as_str().unwrap())).unwrap();
        for (t, _) in layers(&m) {
            assert_eq!(t, "application/vnd.oci.image.layer.v1.tar+zstd", "decrypted zstd layer");
        }
    }
    // The registry holds an OCI index of encrypted zstd layers (read by skopeo).
    let raw = |r: &str| -> Value {
        let out = k.skopeo(&["inspect", "--raw", "--tls-verify=false", r]).ok();
        serde_json::from_str(&out.stdout).expect("manifest JSON")
    };
    let top = raw(&dest);
    assert_eq!(top["mediaType"], "application/vnd.oci.image.index.v1+json");
    let first = top["manifests"][0]["digest"].as_str().unwrap();
    let m = raw(&format!("docker://{}/enc/list@{first}", reg.host));
    assert_eq!(
        m["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd+encrypted"
    );
}

#[test]
fn an_encrypted_copy_made_before_is_recognised_and_not_made_again() {
    let k = Keys::new();
    let src = k.image("src", Spec::default());
    let enc = k.oci("enc");
    let (rsa, ec) = (format!("jwe:{}", k.s("rsa.pub")), format!("jwe:{}", k.s("ec.pub")));
    let entries = |k: &Keys| crate::support::image::ref_names(&k.path("enc")).len();
    k.kopeo(&["copy", "-q", "--encryption-key", &rsa, &src.reference(), &enc])
        .ok();
    let first = manifest(&k.path("enc")).0;
    let m: Value = serde_json::from_slice(&first).unwrap();
    assert!(m["annotations"]["dev.kopeo.encrypted-from"].is_string(), "{m}");
    // The same source for the same recipient: nothing is encrypted again.
    k.kopeo(&["copy", "-q", "--encryption-key", &rsa, &src.reference(), &enc])
        .ok();
    assert_eq!(manifest(&k.path("enc")).0, first, "re-encrypted an unchanged image");
    assert_eq!(entries(&k), 1);
    // Another recipient set: encrypted anew.
    k.kopeo(&[
        "copy",
        "-q",
        "--encryption-key",
        &rsa,
        "--encryption-key",
        &ec,
        &src.reference(),
        &enc,
    ])
    .ok();
    let second = manifest(&k.path("enc")).0;
    assert_ne!(second, first);
    // A changed source: encrypted anew.
    let other = k.image(
        "src2",
        Spec {
            seed: 9,
            ..Spec::default()
        },
    );
    k.kopeo(&[
        "copy",
        "-q",
        "--encryption-key",
        &rsa,
        "--encryption-key",
        &ec,
        &other.reference(),
        &enc,
    ])
    .ok();
    assert_ne!(manifest(&k.path("enc")).0, second);
    // The marker goes when the image is decrypted (the original again, byte for byte).
    k.kopeo(&["copy", "-q", "--decryption-key", &k.s("rsa.pem"), &enc, &k.oci("dec")])
        .ok();
    assert_eq!(manifest(&k.path("dec")).0, manifest(&k.path("src2")).0);
}
