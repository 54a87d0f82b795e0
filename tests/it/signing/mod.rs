//! Signatures: kopeo signs and verifies as skopeo does, judged by
//! Debian's skopeo 1.9.3 both ways (standalone, by policy, in `dir:` and in
//! a registry's lookaside), and a signed image is never changed or stripped
//! of its signatures silently.

use crate::support::gpg::GpgHome;
use crate::support::image::{Spec, build};
use crate::support::registry::{Mode, Registry};
use crate::support::{Run, kopeo_env, skopeo_env, tempdir};
use std::path::{Path, PathBuf};

pub(super) struct Setup {
    pub home: tempfile::TempDir,
    pub gpg: GpgHome,
}

impl Setup {
    pub(super) fn new() -> Setup {
        let home = tempdir();
        let gpg = GpgHome::new(home.path());
        Setup { home, gpg }
    }
    pub(super) fn path(&self, p: &str) -> PathBuf {
        self.home.path().join(p)
    }
    pub(super) fn s(&self, p: &str) -> String {
        self.path(p).display().to_string()
    }
    pub(super) fn kopeo(&self, args: &[&str]) -> Run {
        kopeo_env(self.home.path(), args, None, &[self.gpg.env()])
    }
    pub(super) fn skopeo(&self, args: &[&str]) -> Run {
        skopeo_env(self.home.path(), args, &[self.gpg.env()])
    }
    /// A `dir:` image made from a generated layout (Docker schema2 with `docker`).
    pub(super) fn dir_image(&self, name: &str, docker: bool) -> String {
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
    /// A policy file: reject by default, `scopes` (transport → scope → requirements JSON).
    pub(super) fn policy(&self, name: &str, transports: serde_json::Value) -> String {
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

mod policy;
mod registry;
mod sigstore_keys;
mod simple;
