//! ImageCopy's `spec.verify`, through the controller: keys from a ConfigMap,
//! a signed source copied with its sigstore attachment and the verdict in
//! status, an unsigned one stalled with SignatureRejected and nothing written.

use crate::signing::{Setup, attach_sigstore};
use crate::support::cluster::*;
use crate::support::registry::{Mode, Registry};
use kopeo_test_apiserver::{ApiServer, Options};
use serde_json::{Value, json};

#[test]
fn verify_copies_a_signed_source_and_stalls_an_unsigned_one() {
    let t = Setup::new();
    let reg = Registry::start(Mode::Plain);
    let host = reg.host.clone();
    t.ec_keypair("key");
    crate::support::openssl(
        t.home.path(),
        &["ec", "-in", "key.pem", "-pubout", "-outform", "DER", "-out", "key.der"],
    );
    let key_id = format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
            std::fs::read(t.path("key.der")).unwrap()
        ))
    );
    let src = t.dir_image("img", false);
    for repo in ["ns/signed:1", "ns/unsigned:1"] {
        t.kopeo(&[
            "copy",
            "-q",
            "--insecure-policy",
            "--dest-tls-verify=false",
            &src,
            &reg.image(repo),
        ])
        .ok();
    }
    let digest = reg.digest(t.home.path(), "ns/signed:1");
    attach_sigstore(
        &t,
        &t.s("key.pem"),
        &reg.image("ns/signed"),
        &digest,
        &format!("{host}/ns/signed:1"),
        0,
    );
    std::fs::write(t.path("mirror-pass"), "mirror pass\n").unwrap();
    t.kopeo(&[
        "generate-sigstore-key",
        "--output-prefix",
        &t.s("mirror"),
        "--passphrase-file",
        &t.s("mirror-pass"),
    ])
    .ok();
    let server = ApiServer::start(Options::default());
    runtime().block_on(async {
        let client = cluster(&server).await;
        let _operator = start_operator(&client);
        insecure_credentials(&server, &[&host]).await;
        let public = std::fs::read_to_string(t.path("key.pub")).unwrap();
        post(&server, "/api/v1/namespaces/default/configmaps", &json!({"metadata": {"name": "keys"}, "data": {"cosign.pub": public}})).await;
        let copies = kopeo_api(&client, "ImageCopy", "imagecopies");
        for (name, from) in [("signed", "ns/signed:1"), ("unsigned", "ns/unsigned:1")] {
            let spec = json!({"source": reg.image(from), "destination": reg.image(&format!("mirror/{name}:1")),
                "verify": {"keys": {"configMapKeyRef": {"name": "keys", "key": "cosign.pub"}}, "identity": {"type": "matchRepository"}}});
            post(&server, "/apis/kopeo.dev/v1alpha1/namespaces/default/imagecopies",
                &json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "ImageCopy", "metadata": {"name": name}, "spec": spec})).await;
        }
        assert!(wait_ready(&copies, "signed", 400).await, "the signed source was not copied");
        let signed = copies.get("signed").await.unwrap();
        assert_eq!(signed.data["status"]["verifiedBy"], json!([key_id]));
        let reason = |o: &Value, t: &str| {
            o["status"]["conditions"].as_array().and_then(|cs| cs.iter().find(|c| c["type"] == t)).map(|c| (c["status"].clone(), c["reason"].clone()))
        };
        let mut seen = None;
        for _ in 0..400 {
            let o = copies.get("unsigned").await.unwrap();
            seen = reason(&o.data, "Ready");
            if seen.as_ref().is_some_and(|(_, r)| r == "SignatureRejected") {
                assert_eq!(reason(&o.data, "Stalled"), Some((json!("True"), json!("SignatureRejected"))));
                let msg = o.data["status"]["message"].as_str().unwrap_or_default().to_string();
                assert!(msg.contains("A signature was required, but no signature exists"), "{msg}");
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(seen, Some((json!("False"), json!("SignatureRejected"))));
        // A missing key is named, not guessed around.
        let spec = json!({"source": reg.image("ns/signed:1"), "destination": reg.image("mirror/nokey:1"),
            "verify": {"keys": {"secretKeyRef": {"name": "absent", "key": "k"}}}});
        post(&server, "/apis/kopeo.dev/v1alpha1/namespaces/default/imagecopies",
            &json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "ImageCopy", "metadata": {"name": "nokey"}, "spec": spec})).await;
        let mut nokey = None;
        for _ in 0..400 {
            nokey = reason(&copies.get("nokey").await.unwrap().data, "Ready");
            if nokey.as_ref().is_some_and(|(_, r)| r == "VerifyKeysNotFound") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(nokey, Some((json!("False"), json!("VerifyKeysNotFound"))));
        // The key appears: the copy runs at once. A stalled copy is otherwise
        // tried again after a minute at the soonest, so Ready within 20 s
        // means the Secret's (and below, a ConfigMap's) watch requeued it.
        post(&server, "/api/v1/namespaces/default/secrets",
            &json!({"metadata": {"name": "absent"}, "stringData": {"k": public}})).await;
        assert!(wait_ready(&copies, "nokey", 400).await, "{:?}", copies.get("nokey").await.map(|c| c.data));
        let spec = json!({"source": reg.image("ns/signed:1"), "destination": reg.image("mirror/late:1"),
            "verify": {"keys": {"configMapKeyRef": {"name": "late", "key": "cosign.pub"}}}});
        post(&server, "/apis/kopeo.dev/v1alpha1/namespaces/default/imagecopies",
            &json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "ImageCopy", "metadata": {"name": "late"}, "spec": spec})).await;
        let mut late = None;
        for _ in 0..400 {
            late = reason(&copies.get("late").await.unwrap().data, "Ready");
            if late.as_ref().is_some_and(|(_, r)| r == "VerifyKeysNotFound") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(late, Some((json!("False"), json!("VerifyKeysNotFound"))));
        post(&server, "/api/v1/namespaces/default/configmaps", &json!({"metadata": {"name": "late"}, "data": {"cosign.pub": public}})).await;
        assert!(wait_ready(&copies, "late", 400).await, "{:?}", copies.get("late").await.map(|c| c.data));
        // An Event says why the unsigned copy stalled.
        let events: kube::Api<k8s_openapi::api::events::v1::Event> = kube::Api::namespaced(client.clone(), "default");
        let mut found = false;
        for _ in 0..100 {
            let evs = events.list(&Default::default()).await.unwrap();
            found = evs.items.iter().any(|e| e.reason.as_deref() == Some("SignatureRejected"));
            if found {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(found, "no SignatureRejected Event");
        // Verify, then re-sign at the mirror with the mirror's own key (a
        // Secret), for the name the mirror publishes it under.
        let private = std::fs::read_to_string(t.path("mirror.private")).unwrap();
        post(&server, "/api/v1/namespaces/default/secrets",
            &json!({"metadata": {"name": "signer"}, "stringData": {"cosign.key": private, "cosign.password": "mirror pass\n"}})).await;
        let spec = json!({"source": reg.image("ns/signed:1"), "destination": reg.image("mirror/resigned:1"),
            "verify": {"keys": {"configMapKeyRef": {"name": "keys", "key": "cosign.pub"}}, "identity": {"type": "matchRepository"}},
            "sign": {"secretName": "signer", "identity": "public.example.com/app:1"}});
        post(&server, "/apis/kopeo.dev/v1alpha1/namespaces/default/imagecopies",
            &json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "ImageCopy", "metadata": {"name": "resign"}, "spec": spec})).await;
        assert!(wait_ready(&copies, "resign", 400).await, "{:?}", copies.get("resign").await.map(|c| c.data));
    });
    // Two signatures at the mirror: the source's, carried, and the mirror's,
    // which verifies with the mirror's public key for the public name.
    let raw = reg.raw_manifest(
        t.home.path(),
        &format!("mirror/resigned:{}.sig", digest.replace(':', "-")),
    );
    let layers = serde_json::from_str::<Value>(&raw).unwrap()["layers"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(layers, 2, "{raw}");
    let regd = t.registries_d("default-docker:\n  use-sigstore-attachments: true\n");
    let policy = t.policy(
        "mirror-trust.json",
        json!({"docker": {host.clone(): [{"type": "sigstoreSigned", "keyPath": t.s("mirror.pub"),
            "signedIdentity": {"type": "exactReference", "dockerReference": "public.example.com/app:1"}}]}}),
    );
    t.kopeo(&[
        "--registries.d",
        &regd,
        "--policy",
        &policy,
        "copy",
        "-q",
        "--src-tls-verify=false",
        &reg.image("mirror/resigned:1"),
        &format!("dir:{}", t.s("from-mirror")),
    ])
    .ok();
    // The mirror holds the signed image and its attachment; nothing of the unsigned one.
    assert_eq!(reg.digest(t.home.path(), "mirror/signed:1"), digest);
    reg.raw_manifest(
        t.home.path(),
        &format!("mirror/signed:{}.sig", digest.replace(':', "-")),
    );
    assert!(reg.lacks(t.home.path(), "mirror/unsigned:1"));
    assert_eq!(reg.digest(t.home.path(), "mirror/nokey:1"), digest);
}

#[test]
fn kopeo_run_syncs_only_what_verify_accepts_with_keys_from_a_secret() {
    let t = Setup::new();
    let reg = Registry::start(Mode::Plain);
    let host = reg.host.clone();
    t.ec_keypair("key");
    let src = t.dir_image("img", true);
    let other = t.dir_image("other", false);
    t.kopeo(&[
        "copy",
        "-q",
        "--insecure-policy",
        "--dest-tls-verify=false",
        &src,
        &reg.image("team/app:signed"),
    ])
    .ok();
    t.kopeo(&[
        "copy",
        "-q",
        "--insecure-policy",
        "--dest-tls-verify=false",
        &other,
        &reg.image("team/app:unsigned"),
    ])
    .ok();
    let digest = reg.digest(t.home.path(), "team/app:signed");
    attach_sigstore(
        &t,
        &t.s("key.pem"),
        &reg.image("team/app"),
        &digest,
        &format!("{host}/team/app:signed"),
        0,
    );
    let public: String = std::fs::read_to_string(t.path("key.pub")).unwrap();
    let indented: String = public.lines().map(|l| format!("    {l}\n")).collect();
    std::fs::write(t.path("pass"), "p\n").unwrap();
    t.kopeo(&[
        "generate-sigstore-key",
        "--output-prefix",
        &t.s("mirror"),
        "--passphrase-file",
        &t.s("pass"),
    ])
    .ok();
    let private: String = std::fs::read_to_string(t.path("mirror.private")).unwrap();
    let private: String = private.lines().map(|l| format!("    {l}\n")).collect();
    let manifests = format!(
        r#"apiVersion: v1
kind: Secret
metadata: {{name: keys, namespace: default}}
stringData:
  cosign.pub: |
{indented}---
apiVersion: v1
kind: Secret
metadata: {{name: signer, namespace: default}}
stringData:
  cosign.password: p
  cosign.key: |
{private}---
apiVersion: kopeo.dev/v1alpha1
kind: RegistryCredential
metadata: {{name: reg, namespace: default}}
spec: {{registry: "{host}", tls: {{insecure: true}}}}
---
apiVersion: kopeo.dev/v1alpha1
kind: ImageSync
metadata: {{name: mirror, namespace: default}}
spec:
  registry: "{host}"
  images: {{team/app: [signed, unsigned]}}
  destination: "{host}/mirror"
  keepGoing: true
  verify:
    keys: {{secretKeyRef: {{name: keys, key: cosign.pub}}}}
    identity: {{type: matchRepository}}
  sign: {{secretName: signer}}
"#
    );
    let file = t.path("sync.yaml");
    std::fs::write(&file, manifests).unwrap();
    let out = crate::support::kopeo(t.home.path(), &["run", "-f", file.to_str().unwrap()]);
    assert_eq!(out.code, 1, "not every resource is Ready: {}", out.stdout);
    let doc: Value = out
        .stdout
        .split("---\n")
        .filter_map(|d| serde_yaml_ng::from_str::<Value>(d).ok())
        .find(|d| d["kind"] == "ImageSync")
        .unwrap();
    let st = &doc["status"];
    assert_eq!(
        (st["copied"].as_u64(), st["failed"].as_u64()),
        (Some(1), Some(1)),
        "{st}"
    );
    let ready = st["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(ready["reason"], "SignatureRejected", "{st}");
    assert!(
        st["failures"][0]["source"]
            .as_str()
            .unwrap()
            .ends_with("team/app:unsigned"),
        "{st}"
    );
    assert_eq!(reg.digest(t.home.path(), "mirror/app:signed"), digest);
    // The source's signature carried, and the mirror's own added.
    let raw = reg.raw_manifest(t.home.path(), &format!("mirror/app:{}.sig", digest.replace(':', "-")));
    assert_eq!(
        serde_json::from_str::<Value>(&raw).unwrap()["layers"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "{raw}"
    );
    assert!(reg.lacks(t.home.path(), "mirror/app:unsigned"));
}

#[test]
fn kopeo_run_signs_with_an_exported_openpgp_key_and_gpgme_verifies() {
    let t = Setup::new();
    t.gpg.key("alice@example.com", "alice pass", false);
    t.gpg.key("sub@example.com", "", true);
    t.gpg.export("alice@example.com", &t.path("alice.asc"));
    t.gpg.export("sub@example.com", &t.path("sub.asc"));
    let export = |email: &str, pass: &str| {
        String::from_utf8(t.gpg.gpg(&[
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            pass,
            "--armor",
            "--export-secret-keys",
            email,
        ]))
        .unwrap()
    };
    let indent = |s: String| s.lines().map(|l| format!("    {l}\n")).collect::<String>();
    let (alice, sub) = (
        indent(export("alice@example.com", "alice pass")),
        indent(export("sub@example.com", "")),
    );
    t.dir_image("img", false);
    let ident = "registry.example.com/app:1";
    let copy = |name: &str, secret: &str| {
        format!(
            "apiVersion: kopeo.dev/v1alpha1\nkind: ImageCopy\nmetadata: {{name: {name}, namespace: default}}\nspec: {{source: \"dir:{}\", destination: \"dir:{}\", sign: {{secretName: {secret}, identity: \"{ident}\"}}}}\n",
            t.s("img"),
            t.s(name)
        )
    };
    let manifests = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: alice, namespace: default}}\nstringData:\n  cosign.password: alice pass\n  cosign.key: |\n{alice}---\napiVersion: v1\nkind: Secret\nmetadata: {{name: wrong, namespace: default}}\nstringData:\n  cosign.password: not it\n  cosign.key: |\n{alice}---\napiVersion: v1\nkind: Secret\nmetadata: {{name: sub, namespace: default}}\nstringData:\n  cosign.password: \"\"\n  cosign.key: |\n{sub}---\n{}---\n{}---\n{}",
        copy("by-alice", "alice"),
        copy("by-sub", "sub"),
        copy("by-wrong", "wrong"),
    );
    std::fs::write(t.path("m.yaml"), manifests).unwrap();
    let out = crate::support::kopeo(t.home.path(), &["run", "-f", t.s("m.yaml").as_str()]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    let doc = |name: &str| -> Value {
        out.stdout
            .split("---\n")
            .filter_map(|d| serde_yaml_ng::from_str::<Value>(d).ok())
            .find(|d| d["metadata"]["name"] == name)
            .unwrap()
    };
    let reason = |name: &str| doc(name)["status"]["conditions"][0]["reason"].clone();
    assert_eq!(
        (reason("by-alice"), reason("by-sub"), reason("by-wrong")),
        (json!("Copied"), json!("Copied"), json!("SigningKeyInvalid"))
    );
    assert!(
        !out.stdout.contains("alice pass") && !out.stdout.contains("PRIVATE KEY"),
        "a secret in the status"
    );
    assert!(!t.path("by-wrong").exists());
    // Debian's skopeo (gpgme) judges the in-process signatures: by policy
    // for the primary key's; the signing subkey's by that subkey (1.9.3
    // predates mapping subkeys to their primary in policies).
    let policy = t.policy(
        "by-alice.json",
        json!({"dir": {t.s("by-alice"): [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": t.s("alice.asc"),
            "signedIdentity": {"type": "exactReference", "dockerReference": ident}}]}}),
    );
    t.skopeo(&[
        "--policy",
        &policy,
        "copy",
        &format!("dir:{}", t.s("by-alice")),
        &format!("dir:{}", t.s("alice-checked")),
    ])
    .ok();
    let subkey = t.gpg.subkey_fingerprint("sub@example.com");
    t.skopeo(&[
        "standalone-verify",
        &t.s("by-sub/manifest.json"),
        ident,
        &subkey,
        &t.s("by-sub/signature-1"),
    ])
    .ok();
}
