//! Layer encryption (ocicrypt's format), judged by Debian's skopeo 1.9.3
//! both ways: what kopeo encrypts skopeo decrypts to the original layers,
//! and the other way round; tampering and wrong keys fail with nothing
//! written.

mod failures;
mod interop;
mod pgp;
mod pkcs7;
mod providers;

use crate::support::image::{Built, Spec, build};
use crate::support::{Run, kopeo, openssl, skopeo, tempdir};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A test's home with keys made by openssl.
pub(crate) struct Keys {
    pub home: tempfile::TempDir,
}

impl Keys {
    /// RSA and EC P-256 pairs: PKCS#8 PEM `rsa.pem`/`ec.pem` (the form
    /// skopeo reads; ocicrypt takes no SEC1 PEM), PKIX `rsa.pub`/`ec.pub`,
    /// and the same private keys as PKCS#1 PEM, SEC1 PEM and PKCS#8 DER.
    pub(crate) fn new() -> Keys {
        let home = tempdir();
        let d = home.path();
        openssl(
            d,
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                "rsa.pem",
            ],
        );
        openssl(d, &["pkey", "-in", "rsa.pem", "-pubout", "-out", "rsa.pub"]);
        openssl(d, &["rsa", "-in", "rsa.pem", "-traditional", "-out", "rsa-pkcs1.pem"]);
        openssl(d, &["pkey", "-in", "rsa.pem", "-outform", "DER", "-out", "rsa.der"]);
        openssl(
            d,
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                "ec.pem",
            ],
        );
        openssl(d, &["pkey", "-in", "ec.pem", "-pubout", "-out", "ec.pub"]);
        openssl(d, &["ec", "-in", "ec.pem", "-out", "ec-sec1.pem"]);
        openssl(d, &["pkey", "-in", "ec.pem", "-outform", "DER", "-out", "ec.der"]);
        Keys { home }
    }
    pub(crate) fn path(&self, p: &str) -> PathBuf {
        self.home.path().join(p)
    }
    pub(crate) fn s(&self, p: &str) -> String {
        self.path(p).display().to_string()
    }
    pub(crate) fn kopeo(&self, args: &[&str]) -> Run {
        kopeo(self.home.path(), &with_policy(args))
    }
    pub(crate) fn kopeo_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        crate::support::kopeo_env(self.home.path(), &with_policy(args), None, env)
    }
    pub(crate) fn skopeo(&self, args: &[&str]) -> Run {
        skopeo(self.home.path(), args)
    }
    /// `oci:HOME/NAME:latest`.
    pub(crate) fn oci(&self, name: &str) -> String {
        format!("oci:{}:latest", self.s(name))
    }
    /// A source image (OCI, real gzip tar layers) in layout `NAME`.
    pub(crate) fn image(&self, name: &str, spec: Spec) -> Built {
        build(
            &self.path(name),
            "latest",
            &Spec {
                tar_layers: true,
                ..spec
            },
        )
    }
}

/// `copy ARGS` with `--insecure-policy` after `copy`.
fn with_policy<'a>(args: &[&'a str]) -> Vec<&'a str> {
    match args.split_first() {
        Some((&"copy", rest)) => [&["copy", "--insecure-policy"][..], rest].concat(),
        _ => args.to_vec(),
    }
}

/// The manifest (bytes and JSON) an OCI layout names `latest` (or its only entry).
pub(crate) fn manifest(layout: &Path) -> (Vec<u8>, Value) {
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).expect("index.json")).expect("index JSON");
    let d = index["manifests"][0]["digest"]
        .as_str()
        .expect("a manifest in index.json");
    let bytes = blob(layout, d);
    let v = serde_json::from_slice(&bytes).expect("manifest JSON");
    (bytes, v)
}

/// A blob of a layout by digest.
pub(crate) fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
    std::fs::read(layout.join("blobs/sha256").join(hex)).expect("blob")
}

/// The `(mediaType, digest)` of each layer of a manifest.
pub(crate) fn layers(m: &Value) -> Vec<(String, String)> {
    m["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| {
            (
                l["mediaType"].as_str().unwrap_or_default().to_string(),
                l["digest"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Whether an OCI layout holds any image (a failed copy must leave none).
pub(crate) fn holds_an_image(layout: &Path) -> bool {
    std::fs::read(layout.join("index.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .is_some_and(|v| v["manifests"].as_array().is_some_and(|a| !a.is_empty()))
}
