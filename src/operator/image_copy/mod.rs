//! ImageCopy: copy one image, and copy it again when the source tag moves.

pub(crate) mod controller;
pub mod reconcile;

use crate::operator::condition::Condition;
use crate::options::CopySettings;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Copy `source` to `destination` (`transport:reference` strings, as for `kopeo copy`).
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kopeo.dev",
    version = "v1alpha1",
    kind = "ImageCopy",
    namespaced,
    status = "ImageCopyStatus",
    shortname = "icp",
    category = "kopeo",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Source","type":"string","jsonPath":".spec.source"}"#,
    printcolumn = r#"{"name":"Destination","type":"string","jsonPath":".spec.destination"}"#,
    printcolumn = r#"{"name":"Digest","type":"string","priority":1,"jsonPath":".status.destinationDigest"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.source != self.destination", "message": "source and destination must differ"}
]))]
pub struct ImageCopySpec {
    /// The image to copy, e.g. `docker://registry.example/app:1.0`.
    #[schemars(
        length(min = 1),
        regex(
            pattern = r"^(docker|atomic|oci|oci-archive|dir|docker-archive|docker-daemon|containers-storage|sif|tarball):.+"
        )
    )]
    pub source: String,
    /// Where to copy it, e.g. `docker://mirror.example/app:1.0` (`sif:` and
    /// `tarball:` are read-only).
    #[schemars(
        length(min = 1),
        regex(pattern = r"^(docker|atomic|oci|oci-archive|dir|docker-archive|docker-daemon|containers-storage):.+")
    )]
    pub destination: String,
    /// How to copy (the options of `kopeo copy`).
    #[serde(flatten)]
    pub copy: CopySettings,
    /// Re-check the source digest this often (e.g. `10m`) and copy again when the tag moved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(ns|us|µs|ms|s|m|h))+$"))]
    pub refresh_interval: Option<String>,
    /// Stop reconciling (a running copy is cancelled).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
    /// Copy only a source signed with these keys (a signature that does
    /// not verify stalls the copy with reason SignatureRejected).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<crate::options::verify::VerifySettings>,
    /// Sign the copy at the destination with a sigstore key from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign: Option<crate::options::sign::SignSettings>,
    /// Encrypt the copy's layers (ocicrypt's format) for these recipients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<crate::options::encryption::EncryptionSettings>,
    /// Decrypt encrypted layers with these keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decryption: Option<crate::options::encryption::DecryptionSettings>,
}

/// What the operator last observed and did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageCopyStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Digest of the source manifest that was copied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_digest: Option<String>,
    /// Digest of the manifest written at the destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_digest: Option<String>,
    #[serde(default)]
    pub blobs_copied: u64,
    #[serde(default)]
    pub blobs_reused: u64,
    #[serde(default)]
    pub bytes_copied: u64,
    /// When the last copy finished (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_copy_time: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// How far the running copy has got; absent when no copy runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<crate::operator::progress::CopyProgress>,
    /// The keys whose signatures `spec.verify` accepted for the last copy
    /// (OpenPGP fingerprints; `sha256:` digests of sigstore public keys).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verified_by: Vec<String>,
}

impl crate::operator::verify_keys::KeyObjects for ImageCopy {
    fn key_objects(&self) -> Vec<(&'static str, String)> {
        let s = &self.spec;
        crate::operator::verify_keys::named_objects(
            s.verify.as_ref(),
            s.sign.as_ref(),
            s.encryption.as_ref(),
            s.decryption.as_ref(),
        )
    }
}
