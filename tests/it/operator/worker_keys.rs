//! Sharded ImageSyncs with keys and certificates: the Job mounts the
//! Secrets and ConfigMaps that `verify`, `sign`, `encryption` and
//! `decryption` name, and those of the RegistryCredentials' CA and client
//! certificates; the worker pods find them there as the in-process sync
//! finds them through the API — a signed source verified and re-signed, an
//! unsigned one refused, a mirror encrypted and decrypted back, a registry
//! that wants a client certificate reached, all in worker pods.

use super::workers::{SYNCS, dump, get, ready, worker_operator};
use crate::encryption::Keys;
use crate::signing::{Setup, attach_sigstore};
use crate::support::cluster::{node_cluster, post, runtime};
use crate::support::image::Spec;
use crate::support::registry::{Mode, Registry};
use kopeo_test_apiserver::ApiServer;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Post the ImageSync `name` and wait until its sync ended; its status.
async fn sync(server: &ApiServer, node: &kopeo_test_apiserver::node::Node, name: &str, spec: Value) -> Value {
    post(
        server,
        SYNCS,
        &json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "ImageSync", "metadata": {"name": name}, "spec": spec}),
    )
    .await;
    let end = Instant::now() + Duration::from_secs(180);
    loop {
        let s = get(server, &format!("{SYNCS}/{name}")).await;
        if ready(&s).is_some() && s["status"].get("job").is_none() && s["status"].get("lastJob").is_some() {
            return s["status"].clone();
        }
        if Instant::now() > end {
            panic!("timed out:\n{}", dump(server, node).await);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn worker_pods_verify_and_sign_with_keys_from_the_namespace() {
    let t = Setup::new();
    let reg = Registry::start(Mode::Plain);
    let host = reg.host.clone();
    t.ec_keypair("key");
    let (src, other) = (t.dir_image("img", true), t.dir_image("other", false));
    for (from, to) in [
        (&src, "team/app:signed"),
        (&other, "team/app:unsigned"),
        (&src, "team/web:signed"),
    ] {
        t.kopeo(&[
            "copy",
            "-q",
            "--insecure-policy",
            "--dest-tls-verify=false",
            from,
            &reg.image(to),
        ])
        .ok();
    }
    let digest = reg.digest(t.home.path(), "team/app:signed");
    for repo in ["team/app", "team/web"] {
        attach_sigstore(
            &t,
            &t.s("key.pem"),
            &reg.image(repo),
            &digest,
            &format!("{host}/{repo}:signed"),
            0,
        );
    }
    std::fs::write(t.path("pass"), "p\n").unwrap();
    t.kopeo(&[
        "generate-sigstore-key",
        "--output-prefix",
        &t.s("mirror"),
        "--passphrase-file",
        &t.s("pass"),
    ])
    .ok();
    let (server, node) = node_cluster(t.home.path(), "registry.example/kopeo");
    let st = runtime().block_on(async {
        let (client, opts) = worker_operator(&server, &[&host]).await;
        let operator = tokio::spawn(kopeo::operator::controller::run(client, opts));
        let public = std::fs::read_to_string(t.path("key.pub")).unwrap();
        let private = std::fs::read_to_string(t.path("mirror.private")).unwrap();
        post(&server, "/api/v1/namespaces/default/configmaps", &json!({"metadata": {"name": "keys"}, "data": {"cosign.pub": public}})).await;
        post(&server, "/api/v1/namespaces/default/secrets",
            &json!({"metadata": {"name": "signer"}, "stringData": {"cosign.key": private, "cosign.password": "p"}})).await;
        let spec = json!({"registry": host, "images": {"team/app": ["signed", "unsigned"], "team/web": ["signed"]},
            "destination": format!("{host}/mirror"), "workers": 2, "keepGoing": true, "interval": "24h",
            "verify": {"keys": {"configMapKeyRef": {"name": "keys", "key": "cosign.pub"}}, "identity": {"type": "matchRepository"}},
            "sign": {"secretName": "signer"}});
        let st = sync(&server, &node, "mirror", spec).await;
        operator.abort();
        st
    });
    assert_eq!(
        (st["copied"].as_u64(), st["failed"].as_u64()),
        (Some(2), Some(1)),
        "{st}"
    );
    let failure = &st["failures"][0];
    assert!(
        failure["source"].as_str().unwrap().ends_with("team/app:unsigned"),
        "{st}"
    );
    assert!(
        failure["reason"].as_str().unwrap().contains("A signature was required"),
        "{st}"
    );
    assert!(reg.lacks(t.home.path(), "mirror/app:unsigned"));
    // Each copy carries the source's signature and the mirror's own, which
    // verifies with the mirror's public key.
    let regd = t.registries_d("default-docker:\n  use-sigstore-attachments: true\n");
    let policy = t.policy(
        "mirror-trust.json",
        json!({"docker": {format!("{host}/mirror"): [{"type": "sigstoreSigned", "keyPath": t.s("mirror.pub"),
            "signedIdentity": {"type": "matchRepository"}}]}}),
    );
    for repo in ["app", "web"] {
        assert_eq!(reg.digest(t.home.path(), &format!("mirror/{repo}:signed")), digest);
        let raw = reg.raw_manifest(
            t.home.path(),
            &format!("mirror/{repo}:{}.sig", digest.replace(':', "-")),
        );
        let sigs = serde_json::from_str::<Value>(&raw).unwrap()["layers"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(sigs.len(), 2, "{raw}");
        // Independently of kopeo: openssl verifies the worker's signature
        // with the mirror's public key, over a payload naming the mirror.
        let payload = t.openssl_verifies(&host, &format!("mirror/{repo}"), &sigs[1], "mirror.pub");
        let payload: Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(
            payload["critical"]["identity"]["docker-reference"],
            format!("{host}/mirror/{repo}:signed"),
            "{payload}"
        );
        t.kopeo(&[
            "--registries.d",
            &regd,
            "--policy",
            &policy,
            "copy",
            "-q",
            "--src-tls-verify=false",
            &reg.image(&format!("mirror/{repo}:signed")),
            &format!("dir:{}", t.s(&format!("from-{repo}"))),
        ])
        .ok();
    }
}

#[test]
fn worker_pods_encrypt_and_decrypt_with_keys_from_the_namespace() {
    let k = Keys::new();
    let reg = Registry::start(Mode::Plain);
    let host = reg.host.clone();
    for (repo, seed) in [("team/a", 1), ("team/b", 2), ("team/c", 3)] {
        let src = k.image(
            &format!("src-{seed}"),
            Spec {
                seed,
                ..Spec::default()
            },
        );
        k.kopeo(&[
            "copy",
            "-q",
            "--dest-tls-verify=false",
            &src.reference(),
            &reg.image(&format!("{repo}:1")),
        ])
        .ok();
    }
    let (server, node) = node_cluster(k.home.path(), "registry.example/kopeo");
    runtime().block_on(async {
        let (client, opts) = worker_operator(&server, &[&host]).await;
        let operator = tokio::spawn(kopeo::operator::controller::run(client, opts));
        let public = std::fs::read_to_string(k.path("ec.pub")).unwrap();
        let private = std::fs::read_to_string(k.path("ec.pem")).unwrap();
        post(&server, "/api/v1/namespaces/default/configmaps", &json!({"metadata": {"name": "recipients"}, "data": {"ec.pub": public}})).await;
        post(&server, "/api/v1/namespaces/default/secrets", &json!({"metadata": {"name": "private"}, "stringData": {"ec.pem": private}})).await;
        let images = json!({"team/a": ["1"], "team/b": ["1"], "team/c": ["1"]});
        let spec = json!({"registry": host, "images": images, "destination": format!("{host}/enc"), "workers": 2,
            "interval": "24h", "encryption": {"recipients": [{"configMapKeyRef": {"name": "recipients", "key": "ec.pub"}}]}});
        let st = sync(&server, &node, "enc", spec).await;
        assert_eq!((st["copied"].as_u64(), st["failed"].as_u64()), (Some(3), Some(0)), "{st}");
        let images = json!({"enc/a": ["1"], "enc/b": ["1"], "enc/c": ["1"]});
        let spec = json!({"registry": host, "images": images, "destination": format!("{host}/dec"), "workers": 2,
            "interval": "24h", "decryption": {"keys": [{"secretKeyRef": {"name": "private", "key": "ec.pem"}}]}});
        let st = sync(&server, &node, "dec", spec).await;
        assert_eq!((st["copied"].as_u64(), st["failed"].as_u64()), (Some(3), Some(0)), "{st}");
        // A key that is not there is named in the status, as in-process.
        let spec = json!({"registry": host, "images": {"enc/a": ["1"]}, "destination": format!("{host}/nokey"), "workers": 1,
            "interval": "24h", "decryption": {"keys": [{"secretKeyRef": {"name": "absent", "key": "ec.pem"}}]}});
        let st = sync(&server, &node, "nokey", spec).await;
        let reason = st["failures"][0]["reason"].as_str().unwrap_or_default().to_string();
        assert!(reason.contains("\"absent\" not found"), "{st}");
        // Key providers run beside the operator, not in worker pods: refused by name.
        let spec = json!({"registry": host, "images": {"team/a": ["1"]}, "destination": format!("{host}/prov"), "workers": 1,
            "encryption": {"recipients": [{"provider": {"name": "testkms"}}]}});
        post(
            &server,
            SYNCS,
            &json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "ImageSync", "metadata": {"name": "prov"}, "spec": spec}),
        )
        .await;
        let end = Instant::now() + Duration::from_secs(30);
        let cond = loop {
            let s = get(&server, &format!("{SYNCS}/prov")).await;
            let c = s["status"]["conditions"].as_array().and_then(|cs| cs.iter().find(|c| c["type"] == "Ready").cloned());
            if let Some(c) = c {
                break c;
            }
            assert!(Instant::now() < end, "{s}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!((cond["status"].as_str(), cond["reason"].as_str()), (Some("False"), Some("InvalidSpec")), "{cond}");
        assert!(cond["message"].as_str().unwrap().contains("key providers in spec.encryption.recipients"), "{cond}");
        operator.abort();
    });
    for repo in ["a", "b", "c"] {
        let m: Value = serde_json::from_str(&reg.raw_manifest(k.home.path(), &format!("enc/{repo}:1"))).unwrap();
        let encrypted = m["layers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["mediaType"].as_str().unwrap().ends_with("+encrypted"));
        assert!(encrypted, "{m}");
        // skopeo, an independent reader of the JWE envelopes the workers
        // wrote, decrypts each layer back to the source's.
        let out = format!("skopeo-{repo}");
        let from = reg.image(&format!("enc/{repo}:1"));
        let key = k.s("ec.pem");
        k.skopeo(&[
            "copy",
            "-q",
            "--src-tls-verify=false",
            "--decryption-key",
            &key,
            &from,
            &k.oci(&out),
        ])
        .ok();
        let source: Value = serde_json::from_str(&reg.raw_manifest(k.home.path(), &format!("team/{repo}:1"))).unwrap();
        assert_eq!(
            crate::encryption::layers(&crate::encryption::manifest(&k.path(&out)).1),
            crate::encryption::layers(&source),
            "{repo}"
        );
        assert_eq!(
            reg.digest(k.home.path(), &format!("dec/{repo}:1")),
            reg.digest(k.home.path(), &format!("team/{repo}:1")),
            "{repo}"
        );
    }
    assert!(reg.lacks(k.home.path(), "nokey/a:1"));
}

#[test]
fn worker_pods_reach_a_registry_with_the_credentials_ca_and_client_certificate() {
    let home = crate::support::tempdir();
    let h = home.path();
    let (src, dst) = (Registry::start(Mode::MutualTls), Registry::start(Mode::Plain));
    let mut digests = vec![];
    for r in 0..4 {
        let spec = Spec {
            seed: 600 + r,
            ..Spec::default()
        };
        digests.push(crate::registry_copy::seed(&src, h, &format!("team/m{r}:v1"), &spec).digest);
    }
    let pem = |f: &str| std::fs::read_to_string(src.client_cert_dir().join(f)).unwrap();
    let (server, node) = node_cluster(h, "registry.example/kopeo");
    let st = runtime().block_on(async {
        let (client, opts) = worker_operator(&server, &[&dst.host]).await;
        let operator = tokio::spawn(kopeo::operator::controller::run(client, opts));
        post(
            &server,
            "/api/v1/namespaces/default/secrets",
            &json!({"metadata": {"name": "reg-ca"}, "stringData": {"ca.crt": pem("ca.crt")}}),
        )
        .await;
        post(
            &server,
            "/api/v1/namespaces/default/secrets",
            &json!({"metadata": {"name": "reg-client"}, "type": "kubernetes.io/tls",
                    "stringData": {"tls.crt": pem("client.cert"), "tls.key": pem("client.key")}}),
        )
        .await;
        post(
            &server,
            "/apis/kopeo.dev/v1alpha1/namespaces/default/registrycredentials",
            &json!({"metadata": {"name": "mtls"}, "spec": {"registry": src.host,
                    "tls": {"caSecretRef": {"name": "reg-ca"}, "clientCertSecretRef": {"name": "reg-client"}}}}),
        )
        .await;
        let images: serde_json::Map<String, Value> = (0..4).map(|r| (format!("team/m{r}"), json!([]))).collect();
        let spec = json!({"registry": src.host, "images": images, "destination": format!("{}/mtls", dst.host),
            "workers": 2, "interval": "24h"});
        let st = sync(&server, &node, "mtls", spec).await;
        operator.abort();
        st
    });
    assert_eq!(
        (st["copied"].as_u64(), st["failed"].as_u64()),
        (Some(4), Some(0)),
        "{st}"
    );
    for (r, d) in digests.iter().enumerate() {
        assert_eq!(&dst.digest(h, &format!("mtls/m{r}:v1")), d);
    }
}
