//! Signed Docker schema1 manifests: their digest is that of the payload
//! without the JWS signatures, as registries and containers/image compute
//! it. The manifests are Distribution's own (its schema1 compatibility signs
//! them with its libtrust key); skopeo 1.9.3 and the registry's
//! Docker-Content-Digest judge kopeo's digests and signatures.

use super::*;

const SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// GET `url` accepting only signed schema1: the body and Docker-Content-Digest.
fn get_schema1(url: &str) -> (Vec<u8>, String) {
    crate::support::cluster::runtime().block_on(async {
        let r = reqwest::Client::new()
            .get(url)
            .header("accept", SIGNED)
            .send()
            .await
            .expect("GET");
        assert_eq!(r.status().as_u16(), 200, "GET {url}");
        let digest = r.headers()["docker-content-digest"].to_str().unwrap().to_string();
        (r.bytes().await.unwrap().to_vec(), digest)
    })
}

/// PUT a signed schema1 manifest as `repo:tag`.
fn put_schema1(host: &str, repo: &str, tag: &str, body: &[u8]) {
    crate::support::cluster::runtime().block_on(async {
        let r = reqwest::Client::new()
            .put(format!("http://{host}/v2/{repo}/manifests/{tag}"))
            .header("content-type", SIGNED)
            .body(body.to_vec())
            .send()
            .await
            .expect("PUT");
        assert_eq!(r.status().as_u16(), 201, "PUT {repo}:{tag}");
    })
}

#[test]
fn signed_schema1_digests_are_their_payloads_for_digests_signatures_and_policies() {
    let t = Setup::new();
    let alice = t.gpg.key("alice@example.com", "", false);
    t.gpg.export("alice@example.com", &t.path("alice.asc"));
    let reg = Registry::start(Mode::Schema1);
    let host = reg.host.clone();
    std::fs::write(t.path("f"), "hi\n").unwrap();
    let tar = std::process::Command::new("tar")
        .current_dir(t.home.path())
        .args(["cf", "layer.tar", "f"])
        .status()
        .unwrap();
    assert!(tar.success());
    t.kopeo(&[
        "copy",
        "-q",
        "--insecure-policy",
        "--dest-tls-verify=false",
        "--format",
        "v2s2",
        &format!("tarball:{}", t.s("layer.tar")),
        &format!("docker://{host}/app:v2"),
    ])
    .ok();
    // Distribution signs a schema1 rendering; pushed back, it is stored.
    let (signed, digest) = get_schema1(&format!("http://{host}/v2/app/manifests/v2"));
    assert!(String::from_utf8_lossy(&signed).contains("\"signatures\""));
    put_schema1(&host, "app", "s1", &signed);
    let manifest = t.s("schema1.json");
    std::fs::write(&manifest, &signed).unwrap();

    // The digest: kopeo's is skopeo's and the registry's.
    let mine = t.kopeo(&["manifest-digest", &manifest]).ok().stdout;
    assert_eq!(mine.trim(), digest);
    assert_eq!(t.skopeo(&["manifest-digest", &manifest]).ok().stdout, mine);
    // Fetched by that digest (the registry signs anew on every GET: other
    // bytes, the same payload), the manifest checks out.
    let by_digest = format!("docker://{host}/app@{digest}");
    let raw = t
        .kopeo(&["inspect", "--raw", "--tls-verify=false", &by_digest])
        .ok()
        .stdout;
    assert!(raw.contains("\"signatures\""), "{raw}");
    let inspected = |run: crate::support::Run| -> serde_json::Value { serde_json::from_str(&run.ok().stdout).unwrap() };
    let source = format!("docker://{host}/app:s1");
    let k = inspected(t.kopeo(&["inspect", "--tls-verify=false", &source]));
    let s = inspected(t.skopeo(&["inspect", "--tls-verify=false", &source]));
    assert_eq!(k["Digest"], serde_json::json!(digest));
    for field in [
        "Digest",
        "Tag",
        "Created",
        "Architecture",
        "Os",
        "Layers",
        "Labels",
        "Env",
    ] {
        assert_eq!(k[field], s[field], "{field}");
    }
    // LayersData is newer than skopeo 1.9.3: schema1 knows no type or size.
    assert_eq!(
        k["LayersData"],
        serde_json::json!([{"MIMEType": "", "Digest": k["Layers"][0], "Size": -1, "Annotations": null}])
    );
    // No config blob; the converted config has unknown diff_ids.
    let config = ["inspect", "--config", "--tls-verify=false", source.as_str()];
    let (k, s) = (inspected(t.kopeo(&config)), inspected(t.skopeo(&config)));
    assert_eq!((&k["rootfs"], &k["history"]), (&s["rootfs"], &s["history"]));
    assert_eq!(k["rootfs"]["diff_ids"], serde_json::json!([""]));
    let raw_config = ["inspect", "--raw", "--config", "--tls-verify=false", source.as_str()];
    assert_eq!(t.kopeo(&raw_config).ok().stdout, "");
    assert_eq!(t.skopeo(&raw_config).ok().stdout, "");

    // Simple signatures name that digest: each tool verifies the other's.
    let identity = format!("{host}/app:s1");
    t.kopeo(&["standalone-sign", &manifest, &identity, &alice, "-o", &t.s("k.sig")])
        .ok();
    let out = t
        .skopeo(&["standalone-verify", &manifest, &identity, &alice, &t.s("k.sig")])
        .ok();
    assert!(out.stdout.contains(&digest), "{}", out.stdout);
    t.skopeo(&["standalone-sign", &manifest, &identity, &alice, "-o", &t.s("s.sig")])
        .ok();
    let out = t
        .kopeo(&["standalone-verify", &manifest, &identity, &alice, &t.s("s.sig")])
        .ok();
    assert_eq!(
        out.stdout,
        format!("Signature verified using fingerprint {alice}, digest {digest}\n")
    );

    // A policy judging the registry image: its lookaside signature (made by
    // skopeo) names the payload's digest, not that of the bytes fetched.
    let lookaside = t.path("sigstore");
    let hex = digest.trim_start_matches("sha256:");
    let dir = lookaside.join(format!("app@sha256={hex}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(t.path("s.sig"), dir.join("signature-1")).unwrap();
    let regd = t.registries_d(&format!(
        "default-docker:\n  lookaside: file://{}\n",
        lookaside.display()
    ));
    let policy = t.policy(
        "trust.json",
        serde_json::json!({"docker": {host.clone(): [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": t.s("alice.asc")}]}}),
    );
    for (tool, out) in [("kopeo", "k-out"), ("skopeo", "s-out")] {
        let args = [
            "--registries.d",
            &regd,
            "--policy",
            &policy,
            "copy",
            "--remove-signatures",
            "--src-tls-verify=false",
            &source,
            &format!("dir:{}", t.s(out)),
        ];
        let run = if tool == "kopeo" {
            t.kopeo(&args)
        } else {
            t.skopeo(&args)
        };
        assert_eq!(run.code, 0, "{tool} accepts the signed schema1 image: {}", run.stderr);
    }
    // A broken signature block is named, as libtrust names it.
    let broken = String::from_utf8_lossy(&signed).replace("\"protected\": \"", "\"protected\": \"!");
    std::fs::write(t.path("broken.json"), broken).unwrap();
    let out = t.kopeo(&["manifest-digest", &t.s("broken.json")]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("computing digest: base64 decode error"),
        "{}",
        out.stderr
    );
}
