//! Signatures: kopeo signs and verifies as skopeo does, judged by
//! Debian's skopeo 1.9.3 both ways (standalone, by policy, in `dir:` and in
//! a registry's lookaside), and a signed image is never changed or stripped
//! of its signatures silently.

use crate::support::gpg::GpgHome;
use crate::support::image::{Spec, build};
use crate::support::registry::{Mode, Registry};
use crate::support::{Run, kopeo_env, skopeo_env, tempdir};
use std::path::{Path, PathBuf};

pub(crate) struct Setup {
    pub home: tempfile::TempDir,
    pub gpg: GpgHome,
}

impl Setup {
    pub(crate) fn new() -> Setup {
        let home = tempdir();
        let gpg = GpgHome::new(home.path());
        Setup { home, gpg }
    }
    pub(crate) fn path(&self, p: &str) -> PathBuf {
        self.home.path().join(p)
    }
    pub(crate) fn s(&self, p: &str) -> String {
        self.path(p).display().to_string()
    }
    pub(crate) fn kopeo(&self, args: &[&str]) -> Run {
        kopeo_env(self.home.path(), args, None, &[self.gpg.env()])
    }
    pub(crate) fn skopeo(&self, args: &[&str]) -> Run {
        skopeo_env(self.home.path(), args, &[self.gpg.env()])
    }
    /// A `dir:` image made from a generated layout (Docker schema2 with `docker`).
    pub(crate) fn dir_image(&self, name: &str, docker: bool) -> String {
        let img = build(
            &self.path(&format!("{name}-src")),
            name,
            &Spec {
                docker,
                ..Spec::default()
            },
        );
        let dir = format!("dir:{}", self.s(name));
        self.kopeo(&["copy", "-q", "--insecure-policy", &img.reference(), &dir])
            .ok();
        dir
    }
    /// An ECDSA P-256 key pair made by openssl: `NAME.pem` and `NAME.pub`.
    pub(crate) fn ec_keypair(&self, name: &str) {
        let (private, public) = (format!("{name}.pem"), format!("{name}.pub"));
        let dir = self.home.path();
        crate::support::openssl(
            dir,
            &["ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out", &private],
        );
        crate::support::openssl(dir, &["ec", "-in", &private, "-pubout", "-out", &public]);
    }
    /// Check with openssl that the attachment `layer` (fetched from
    /// `repo` of the registry at `host`) is a signature by `public` over
    /// its payload; the payload.
    pub(crate) fn openssl_verifies(&self, host: &str, repo: &str, layer: &serde_json::Value, public: &str) -> Vec<u8> {
        use base64::Engine as _;
        let digest = layer["digest"].as_str().expect("a layer digest");
        let payload = crate::support::http_get(&format!("http://{host}/v2/{repo}/blobs/{digest}"));
        let b64 = layer["annotations"]["dev.cosignproject.cosign/signature"]
            .as_str()
            .expect("a signature annotation");
        let sig = base64::engine::general_purpose::STANDARD.decode(b64).expect("base64");
        std::fs::write(self.path("checked.payload"), &payload).expect("payload");
        std::fs::write(self.path("checked.sig"), sig).expect("signature");
        let args = [
            "dgst",
            "-sha256",
            "-verify",
            public,
            "-signature",
            "checked.sig",
            "checked.payload",
        ];
        crate::support::openssl(self.home.path(), &args);
        payload
    }
    /// A registries.d directory holding `yaml`; its path.
    pub(crate) fn registries_d(&self, yaml: &str) -> String {
        let dir = self.path("registries.d");
        std::fs::create_dir_all(&dir).expect("registries.d");
        std::fs::write(dir.join("test.yaml"), yaml).expect("registries.d file");
        dir.display().to_string()
    }
    /// A policy file: reject by default, `scopes` (transport → scope → requirements JSON).
    pub(crate) fn policy(&self, name: &str, transports: serde_json::Value) -> String {
        let p = self.path(name);
        let v = serde_json::json!({"default": [{"type": "reject"}], "transports": transports});
        std::fs::write(&p, v.to_string()).expect("writing policy");
        p.display().to_string()
    }
}

pub(super) fn signed_by(key_path: &str, identity: serde_json::Value) -> serde_json::Value {
    serde_json::json!([{"type": "signedBy", "keyType": "GPGKeys", "keyPath": key_path, "signedIdentity": identity}])
}

/// A fatal log line's message with logrus's `\"` escapes undone.
pub(super) fn unquoted(stderr: &str) -> String {
    stderr.replace("\\\"", "\"")
}

pub(super) fn signature_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.retain(|n| n.contains("signature-"));
    v.sort();
    v
}

mod extension;
mod policy;
mod registry;
mod schema1;
mod sigstore_keys;
mod simple;

/// A sigstore signature made independently of kopeo (openssl's ECDSA over a
/// cosign-format payload), attached with skopeo as cosign attaches it: an
/// OCI manifest `sha256-HEX.sig` with the payload as its one layer.
pub(crate) fn attach_sigstore(t: &Setup, key: &str, repo_ref: &str, digest: &str, identity: &str, n: usize) {
    let dir = t.path(&format!("attach-{n}"));
    let layout = dir.join("layout");
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    let payload = serde_json::json!({
        "critical": {"identity": {"docker-reference": identity}, "image": {"docker-manifest-digest": digest},
                     "type": "cosign container image signature"},
        "optional": null,
    })
    .to_string();
    std::fs::write(dir.join("payload.json"), &payload).unwrap();
    crate::support::openssl(
        &dir,
        &["dgst", "-sha256", "-sign", key, "-out", "sig.der", "payload.json"],
    );
    use base64::Engine as _;
    let sig = base64::engine::general_purpose::STANDARD.encode(std::fs::read(dir.join("sig.der")).unwrap());
    let (pd, ps) = crate::support::image::put(&layout, payload.as_bytes());
    let config = br#"{"architecture":"","os":"","config":{},"rootfs":{"type":"layers","diff_ids":[]}}"#;
    let (cd, cs) = crate::support::image::put(&layout, config);
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
        "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "digest": pd, "size": ps,
                    "annotations": {"dev.cosignproject.cosign/signature": sig}}],
    })
    .to_string();
    let (md, ms) = crate::support::image::put(&layout, manifest.as_bytes());
    std::fs::write(layout.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": md, "size": ms, "annotations": {"org.opencontainers.image.ref.name": "sig"}}]});
    std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
    let tag = format!("{repo_ref}:{}.sig", digest.replace(':', "-"));
    t.skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--preserve-digests",
        &format!("oci:{}:sig", layout.display()),
        &tag,
    ])
    .ok();
}
