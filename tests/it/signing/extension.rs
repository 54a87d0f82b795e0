//! The registry's own signature store: OpenShift's integrated registry (the
//! test API server's front of a real Distribution) announces
//! `X-Registry-Supports-Signatures` and keeps simple signatures in the image
//! API. kopeo and Debian's skopeo (whose docker transport speaks the
//! extension) write and read them there, not in a lookaside, each verifying
//! the other's by policy, as skopeo's own TestCopyAtomicExtension does.

use super::*;
use crate::atomic::{ADMIN, OpenShift, history, openshift_with};
use kopeo_test_apiserver::openshift::Paths;
use serde_json::{Value, json};

fn signatures_in_the_api(os: &OpenShift, digest: &str) -> Vec<Value> {
    let (code, image) = os.get(&format!("{}/images/{digest}", os.prefix));
    assert_eq!(code, 200, "{image}");
    image["signatures"].as_array().cloned().unwrap_or_default()
}

fn content(sig: &Value) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(sig["content"].as_str().unwrap_or_default())
        .expect("content is base64")
}

#[test]
fn registry_signatures_go_through_its_extension_both_ways_with_skopeo() {
    let t = Setup::new();
    let os = openshift_with(&t.path("kubeconfig"), Paths::Group, Default::default());
    let alice = t.gpg.key("alice@example.com", "", false);
    t.gpg.export("alice@example.com", &t.path("alice.asc"));
    t.gpg.key("bob@example.com", "", false);
    t.gpg.export("bob@example.com", &t.path("bob.asc"));
    // A lookaside is configured: a registry with the extension must not use it.
    let lookaside = t.path("sigstore");
    let regd = t.registries_d(&format!(
        "default-docker:\n  lookaside: file://{0}\n  lookaside-staging: file://{0}\n",
        lookaside.display()
    ));
    let creds = format!("serviceaccount:{ADMIN}");
    let docker = |s: &str| format!("docker://{}/{s}", os.registry);
    let src = t.dir_image("img", false);
    let copy = |tool: &str, extra: &[&str]| {
        let mut args = vec!["--registries.d", regd.as_str()];
        args.extend_from_slice(extra);
        let out = match tool {
            "kopeo" => t.kopeo(&args),
            _ => t.skopeo(&args),
        };
        assert_eq!(out.code, 0, "{tool} {extra:?}: {}", out.stderr);
    };

    // kopeo signs: the signature is created in the image API.
    copy(
        "kopeo",
        &[
            "copy",
            "-q",
            "--insecure-policy",
            "--dest-tls-verify=false",
            "--dest-creds",
            &creds,
            "--sign-by",
            &alice,
            &src,
            &docker("default/app:v1"),
        ],
    );
    let digest = history(&os, "default", "app", "v1")[0].clone();
    let sigs = signatures_in_the_api(&os, &digest);
    assert_eq!(sigs.len(), 1, "{sigs:?}");
    assert_eq!(sigs[0]["type"], "atomic");
    let name = sigs[0]["metadata"]["name"].as_str().unwrap_or_default();
    assert!(
        name.len() == digest.len() + 33 && name.starts_with(&format!("{digest}@")),
        "named DIGEST@32 hex digits: {name}"
    );
    let kopeos = content(&sigs[0]);
    // Carried to another tag of the same image: identical, so not added again.
    copy(
        "kopeo",
        &[
            "copy",
            "-q",
            "--insecure-policy",
            "--tls-verify=false",
            "--src-creds",
            &creds,
            "--dest-creds",
            &creds,
            &docker("default/app:v1"),
            &docker("default/app:v2"),
        ],
    );
    assert_eq!(signatures_in_the_api(&os, &digest).len(), 1);

    // skopeo reads it through the extension and accepts it by policy.
    let trust = |key: &str| {
        let scope = json!({os.registry.clone(): [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": t.s(&format!("{key}.asc"))}]});
        t.policy(&format!("{key}.json"), json!({"docker": scope}))
    };
    let (alice_policy, bob_policy) = (trust("alice"), trust("bob"));
    let s_out = t.s("s-out");
    copy(
        "skopeo",
        &[
            "--policy",
            &alice_policy,
            "copy",
            "--src-tls-verify=false",
            "--src-creds",
            &creds,
            &docker("default/app:v1"),
            &format!("dir:{s_out}"),
        ],
    );
    assert_eq!(std::fs::read(t.path("s-out/signature-1")).unwrap(), kopeos);

    // skopeo signs another stream's tag of the image through the extension
    // (carrying kopeo's signature, which is there already, and adding its own).
    copy(
        "skopeo",
        &[
            "--insecure-policy",
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            &creds,
            "--sign-by",
            &alice,
            &format!("dir:{s_out}"),
            &docker("default/other:v2"),
        ],
    );
    let sigs = signatures_in_the_api(&os, &digest);
    assert_eq!(sigs.len(), 2, "skopeo added one: {sigs:?}");
    let skopeos = content(&sigs[1]);

    // kopeo verifies skopeo's by policy (kopeo's names another identity) and
    // carries both into dir:.
    copy(
        "kopeo",
        &[
            "--policy",
            &alice_policy,
            "copy",
            "-q",
            "--src-tls-verify=false",
            "--src-creds",
            &creds,
            &docker("default/other:v2"),
            &format!("dir:{}", t.s("k-out")),
        ],
    );
    assert_eq!(signature_files(&t.path("k-out")), ["signature-1", "signature-2"]);
    assert_eq!(std::fs::read(t.path("k-out/signature-2")).unwrap(), skopeos);
    let refused = t.kopeo(&[
        "--registries.d",
        &regd,
        "--policy",
        &bob_policy,
        "copy",
        "--src-tls-verify=false",
        "--src-creds",
        &creds,
        &docker("default/other:v2"),
        &format!("dir:{}", t.s("refused")),
    ]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(refused.stderr.contains("Source image rejected"), "{}", refused.stderr);
    assert!(!lookaside.exists(), "nothing went to the lookaside");

    // An image the registry serves but no stream holds (pushed past the
    // front): the extension answers 404, which is an error naming the
    // digest, as upstream — not "unsigned", which a policy might accept.
    let direct = format!("docker://{}/default/stray:v1", os.distribution.host);
    copy(
        "kopeo",
        &[
            "copy",
            "-q",
            "--insecure-policy",
            "--dest-tls-verify=false",
            &src,
            &direct,
        ],
    );
    let out = t.kopeo(&[
        "--registries.d",
        &regd,
        "--insecure-policy",
        "copy",
        "--src-tls-verify=false",
        "--src-creds",
        &creds,
        &docker("default/stray:v1"),
        &format!("dir:{}", t.s("stray")),
    ]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "reading signatures: downloading signatures for {digest} in {}/default/stray",
            os.registry
        )),
        "{}",
        out.stderr
    );
    assert!(!t.path("stray/manifest.json").exists(), "no image that looks complete");
    let removed = t.kopeo(&[
        "--registries.d",
        &regd,
        "--insecure-policy",
        "copy",
        "-q",
        "--remove-signatures",
        "--src-tls-verify=false",
        "--src-creds",
        &creds,
        &docker("default/stray:v1"),
        &format!("dir:{}", t.s("stray")),
    ]);
    assert_eq!(
        removed.code, 0,
        "without signatures nothing asks for them: {}",
        removed.stderr
    );
}
