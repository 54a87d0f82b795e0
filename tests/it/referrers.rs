//! `--include-referrers`: OCI 1.1 referrers (SBOMs, attestations, their
//! signatures) come along with an image, registry to registry. The
//! referrers at the source are written here as cosign and oras write them
//! to a registry without the referrers API (Distribution 2.8): the
//! artifact manifest by digest, and the `sha256-HEX` tag schema index.
//! What kopeo writes at the destination is read back by skopeo and by
//! plain HTTP.

use crate::support::image::{Spec, build};
use crate::support::registry::{Mode, Registry};
use crate::support::{Run, tempdir};
use sha2::Digest as _;

/// `kopeo copy` (or another subcommand) reaching plain-HTTP registries.
fn kopeo(home: &std::path::Path, args: &[&str]) -> Run {
    let mut all = vec![args[0], "--src-tls-verify=false", "--dest-tls-verify=false"];
    all.extend(&args[1..]);
    crate::support::kopeo(home, &all)
}

fn sha(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(b)))
}

/// A plain-HTTP registry writer, independent of kopeo.
struct Push<'a> {
    host: &'a str,
    repo: &'a str,
}

impl Push<'_> {
    fn blocking<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    fn blob(&self, data: &[u8]) -> serde_json::Value {
        let d = sha(data);
        let url = format!("http://{}/v2/{}/blobs/uploads/", self.host, self.repo);
        let host = self.host.to_string();
        let status = Self::blocking(async {
            let c = reqwest::Client::new();
            let started = c.post(url).send().await.unwrap();
            assert_eq!(started.status().as_u16(), 202, "upload started");
            let location = started.headers()["location"].to_str().unwrap().to_string();
            let mut at = match location.starts_with("http") {
                true => reqwest::Url::parse(&location).unwrap(),
                false => reqwest::Url::parse(&format!("http://{host}{location}")).unwrap(),
            };
            at.query_pairs_mut().append_pair("digest", &d);
            c.put(at)
                .header("content-type", "application/octet-stream")
                .body(data.to_vec())
                .send()
                .await
                .unwrap()
                .status()
        });
        assert_eq!(status.as_u16(), 201, "upload finished");
        serde_json::json!({"digest": d, "size": data.len()})
    }

    fn manifest(&self, reference: &str, mime: &str, body: &[u8]) {
        let url = format!("http://{}/v2/{}/manifests/{reference}", self.host, self.repo);
        let (status, text) = Self::blocking(async {
            let r = reqwest::Client::new()
                .put(url)
                .header("content-type", mime)
                .body(body.to_vec())
                .send()
                .await
                .unwrap();
            (r.status(), r.text().await.unwrap_or_default())
        });
        assert_eq!(status.as_u16(), 201, "manifest {reference}: {text}");
    }

    /// An artifact manifest naming `subject` (digest, size); returns its
    /// bytes after putting it by digest and listing it in the subject's
    /// referrers tag, as a client of a registry without the API does.
    fn referrer(&self, artifact_type: &str, content: &[u8], subject: (&str, usize)) -> Vec<u8> {
        let empty = self.blob(b"{}");
        let layer = self.blob(content);
        let m = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": artifact_type,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty["digest"], "size": 2},
            "layers": [{"mediaType": artifact_type, "digest": layer["digest"], "size": layer["size"]}],
            "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": subject.0, "size": subject.1},
        });
        let bytes = serde_json::to_vec(&m).unwrap();
        let d = sha(&bytes);
        self.manifest(&d, "application/vnd.oci.image.manifest.v1+json", &bytes);
        let tag = subject.0.replace(':', "-");
        let url = format!("http://{}/v2/{}/manifests/{tag}", self.host, self.repo);
        let (status, body) = Self::blocking(async {
            // Distribution hands out an OCI index only to a client that accepts one.
            let r = reqwest::Client::new()
                .get(url)
                .header("accept", "application/vnd.oci.image.index.v1+json")
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
        });
        let mut index: serde_json::Value = match status {
            200 => serde_json::from_slice(&body).unwrap(),
            _ => {
                serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []})
            }
        };
        index["manifests"].as_array_mut().unwrap().push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": d, "size": bytes.len(), "artifactType": artifact_type,
        }));
        self.manifest(
            &tag,
            "application/vnd.oci.image.index.v1+json",
            &serde_json::to_vec(&index).unwrap(),
        );
        bytes
    }
}

/// The digests listed in `repo`'s referrers tag of `subject` at `reg`, read
/// by skopeo; empty when there is no such tag.
fn listed(home: &std::path::Path, reg: &Registry, repo: &str, subject: &str) -> Vec<String> {
    let tag = format!("{repo}:{}", subject.replace(':', "-"));
    if reg.lacks(home, &tag) {
        return vec![];
    }
    let index: serde_json::Value = serde_json::from_str(&reg.raw_manifest(home, &tag)).unwrap();
    let mut out: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["digest"].as_str().unwrap().to_string())
        .collect();
    out.sort();
    out
}

struct World {
    home: tempfile::TempDir,
    src: Registry,
    dst: Registry,
    image: String,
    image_size: usize,
    sbom: String,
    sbom_sig: String,
    attestation: String,
}

/// An image at `src/app:1` with an SBOM (signed: a referrer of the SBOM)
/// and an attestation attached.
fn world() -> World {
    let home = tempdir();
    let (src, dst) = (Registry::start(Mode::Plain), Registry::start(Mode::Plain));
    let built = build(&home.path().join("layout"), "app", &Spec::default());
    kopeo(
        home.path(),
        &["copy", "-q", &built.reference(), &format!("{}:1", src.image("app"))],
    )
    .ok();
    let raw = src.raw_manifest(home.path(), "app:1");
    let (image, image_size) = (sha(raw.as_bytes()), raw.len());
    let push = Push {
        host: &src.host,
        repo: "app",
    };
    let sbom = push.referrer(
        "application/spdx+json",
        br#"{"spdxVersion":"SPDX-2.3"}"#,
        (&image, image_size),
    );
    let sbom_sig = push.referrer(
        "application/vnd.dev.cosign.artifact.sig.v1+json",
        b"signature of the sbom",
        (&sha(&sbom), sbom.len()),
    );
    let attestation = push.referrer(
        "application/vnd.in-toto+json",
        br#"{"_type":"statement"}"#,
        (&image, image_size),
    );
    World {
        home,
        src,
        dst,
        image,
        image_size,
        sbom: sha(&sbom),
        sbom_sig: sha(&sbom_sig),
        attestation: sha(&attestation),
    }
}

/// `kopeo copy --include-referrers` of `src/app:1` to `to`.
fn mirror(w: &World, to: &str) {
    let from = format!("{}:1", w.src.image("app"));
    kopeo(w.home.path(), &["copy", "-q", "--include-referrers", &from, to]).ok();
}

/// `kopeo run` on `resources` with credentials reaching both registries.
fn run_with_credentials(w: &World, resources: String) -> Run {
    use crate::support::{insecure_credential, kopeo_run};
    let creds = [
        insecure_credential("src", &w.src.host, ""),
        insecure_credential("dst", &w.dst.host, ""),
    ];
    kopeo_run(w.home.path(), &[creds[0].clone(), creds[1].clone(), resources])
}

/// These digests, sorted (as `listed` gives them).
fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn referrers_and_their_referrers_come_along_by_the_tag_schema_and_read_back_byte_for_byte() {
    let w = world();
    let home = w.home.path();
    let to = format!("{}:1", w.dst.image("mirror/app"));
    mirror(&w, &to);
    assert_eq!(
        w.dst.digest(home, "mirror/app:1"),
        w.image,
        "the image keeps its digest"
    );
    let direct = sorted(vec![w.sbom.clone(), w.attestation.clone()]);
    assert_eq!(listed(home, &w.dst, "mirror/app", &w.image), direct);
    assert_eq!(listed(home, &w.dst, "mirror/app", &w.sbom), vec![w.sbom_sig.clone()]);
    // Each referrer is the very manifest the source has, and its blobs are there.
    for d in [&w.sbom, &w.sbom_sig, &w.attestation] {
        let ours = w.dst.raw_manifest(home, &format!("mirror/app@{d}"));
        assert_eq!(ours, w.src.raw_manifest(home, &format!("app@{d}")));
        let m: serde_json::Value = serde_json::from_str(&ours).unwrap();
        let layer = m["layers"][0]["digest"].as_str().unwrap();
        let blob = crate::support::http_get(&format!("http://{}/v2/mirror/app/blobs/{layer}", w.dst.host));
        assert_eq!(sha(&blob), layer);
    }

    // Copied again after a new referrer appeared: the image is unchanged,
    // the new one comes, and none is listed twice.
    let push = Push {
        host: &w.src.host,
        repo: "app",
    };
    let vex = sha(&push.referrer("application/vex+json", b"{}", (&w.image, w.image_size)));
    mirror(&w, &to);
    let now = sorted(vec![w.sbom.clone(), w.attestation.clone(), vex]);
    assert_eq!(listed(home, &w.dst, "mirror/app", &w.image), now);
    assert_eq!(listed(home, &w.dst, "mirror/app", &w.sbom), vec![w.sbom_sig]);
}

#[test]
fn an_artifact_type_filter_takes_those_referrers_and_what_refers_to_them() {
    let w = world();
    let home = w.home.path();
    kopeo(
        home,
        &[
            "copy",
            "-q",
            "--include-referrers",
            "--referrers-artifact-type",
            "application/spdx+json",
            &format!("{}:1", w.src.image("app")),
            &format!("{}:1", w.dst.image("app")),
        ],
    )
    .ok();
    assert_eq!(listed(home, &w.dst, "app", &w.image), vec![w.sbom.clone()]);
    assert_eq!(listed(home, &w.dst, "app", &w.sbom), vec![w.sbom_sig]);
    assert!(
        w.dst.lacks(home, &format!("app@{}", w.attestation)),
        "the attestation stays behind"
    );
}

#[test]
fn sync_carries_referrers_too() {
    let w = world();
    let home = w.home.path();
    kopeo(
        home,
        &[
            "sync",
            "--src",
            "docker",
            "--dest",
            "docker",
            "--include-referrers",
            &format!("{}/app", w.src.host),
            &format!("{}/synced", w.dst.host),
        ],
    )
    .ok();
    let direct = sorted(vec![w.sbom.clone(), w.attestation.clone()]);
    assert_eq!(listed(home, &w.dst, "synced/app", &w.image), direct);
}

#[test]
fn referrers_are_refused_where_they_cannot_be_kept_or_would_dangle() {
    let w = world();
    let home = w.home.path();
    let from = format!("{}:1", w.src.image("app"));
    // An OCI layout keeps no referrers here: refused before anything is written.
    let layout = home.join("out");
    let r = kopeo(
        home,
        &[
            "copy",
            "--include-referrers",
            &from,
            &format!("oci:{}:x", layout.display()),
        ],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("keeps no OCI referrers"), "{}", r.stderr);
    assert!(!layout.join("index.json").exists(), "nothing written");
    // Converting the manifest would change the digest the referrers name.
    let r = kopeo(
        home,
        &[
            "copy",
            "--include-referrers",
            "--format",
            "v2s2",
            &from,
            &format!("{}:1", w.dst.image("conv")),
        ],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("its referrers name that digest"), "{}", r.stderr);
    assert!(w.dst.lacks(home, "conv:1"));
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
}

#[test]
fn an_imagecopy_with_spec_referrers_carries_them_through_kopeo_run() {
    let w = world();
    let home = w.home.path();
    let copy = format!(
        r#"apiVersion: kopeo.dev/v1alpha1
kind: ImageCopy
metadata: {{name: mirror, namespace: default}}
spec:
  source: docker://{src}/app:1
  destination: docker://{dst}/op/app:1
  referrers: {{artifactTypes: [application/vnd.in-toto+json]}}
"#,
        src = w.src.host,
        dst = w.dst.host
    );
    let out = run_with_credentials(&w, copy);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("Ready"), "{}", out.stdout);
    assert_eq!(w.dst.digest(home, "op/app:1"), w.image);
    assert_eq!(listed(home, &w.dst, "op/app", &w.image), vec![w.attestation]);
}

#[test]
fn signatures_referrers_carries_the_signature_referrers_and_remove_refuses_to_carry_them() {
    let w = world();
    let home = w.home.path();
    // A cosign v3 signature: a sigstore bundle referring to the image.
    let push = Push {
        host: &w.src.host,
        repo: "app",
    };
    let bundle = push.referrer(
        "application/vnd.dev.sigstore.bundle.v0.3+json",
        br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}"#,
        (&w.image, w.image_size),
    );
    let copies = format!(
        r#"apiVersion: kopeo.dev/v1alpha1
kind: ImageCopy
metadata: {{name: signed, namespace: default}}
spec:
  source: docker://{src}/app:1
  destination: docker://{dst}/sig/app:1
  signatures: referrers
---
apiVersion: kopeo.dev/v1alpha1
kind: ImageCopy
metadata: {{name: contradicted, namespace: default}}
spec:
  source: docker://{src}/app:1
  destination: docker://{dst}/none/app:1
  signatures: remove
  referrers: {{}}
"#,
        src = w.src.host,
        dst = w.dst.host
    );
    let out = run_with_credentials(&w, copies);
    assert_eq!(out.code, 1, "one resource is refused\n{}\n{}", out.stdout, out.stderr);
    // Only the signature referrer came along: not the SBOM, not the attestation.
    assert_eq!(w.dst.digest(home, "sig/app:1"), w.image);
    assert_eq!(listed(home, &w.dst, "sig/app", &w.image), vec![sha(&bundle)]);
    let all = format!("{}\n{}", out.stdout, out.stderr);
    assert!(
        all.contains("signatures: remove contradicts referrers, which would carry signature referrers"),
        "{all}"
    );
    assert!(w.dst.lacks(home, "none/app:1"));
}
