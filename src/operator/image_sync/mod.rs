//! ImageSync: keep a set of repositories mirrored, like `kopeo sync --src yaml`.

pub(crate) mod controller;
pub mod reconcile;
pub mod throttle;
pub mod worker;
pub mod workers;

use crate::operator::condition::Condition;
use crate::options::CopySettings;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Which repositories and tags to take from the source registry (the sync YAML's keys).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncSelection {
    /// Repository → tags or digests; an empty list means every tag.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub images: BTreeMap<String, Vec<String>>,
    /// Repository → regular expression the tags must match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub images_by_tag_regex: BTreeMap<String, String>,
    /// Repository → semver constraint the tags must satisfy.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub images_by_semver: BTreeMap<String, String>,
    /// Tags matching any of these regular expressions are left out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_tags: Vec<String>,
    /// Keep only the newest N semver tags of each repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_newest: Option<u32>,
    /// Repository prefixes to take from the registry's catalog ("" for all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub catalog: Vec<String>,
}

/// Why an ImageSync that selects nothing is refused.
pub const SELECT_SOMETHING: &str = "select images with images, imagesByTagRegex, imagesBySemver or catalog";

impl SyncSelection {
    /// Whether anything is selected at all.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
            && self.images_by_tag_regex.is_empty()
            && self.images_by_semver.is_empty()
            && self.catalog.is_empty()
    }
}

/// Mirror images from `registry` to `destination`.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kopeo.dev",
    version = "v1alpha1",
    kind = "ImageSync",
    namespaced,
    status = "ImageSyncStatus",
    shortname = "isy",
    category = "kopeo",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Source","type":"string","jsonPath":".spec.registry"}"#,
    printcolumn = r#"{"name":"Destination","type":"string","jsonPath":".spec.destination"}"#,
    printcolumn = r#"{"name":"Copied","type":"integer","priority":1,"jsonPath":".status.copied"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "(has(self.images) && size(self.images) > 0) || (has(self.imagesByTagRegex) && size(self.imagesByTagRegex) > 0) || (has(self.imagesBySemver) && size(self.imagesBySemver) > 0) || (has(self.catalog) && size(self.catalog) > 0)",
     "message": SELECT_SOMETHING}
]))]
pub struct ImageSyncSpec {
    /// The source registry host (and port).
    #[schemars(length(min = 1))]
    pub registry: String,
    /// What to take from it.
    #[serde(flatten)]
    pub selection: SyncSelection,
    /// Destination registry and prefix, e.g. `mirror.example/team`.
    #[schemars(length(min = 1))]
    pub destination: String,
    /// Keep the source's full name under the destination (`--scoped`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub scoped: bool,
    /// Appended to every destination tag (`--append-suffix`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub append_suffix: String,
    /// How to copy each image.
    #[serde(flatten)]
    pub copy: CopySettings,
    /// How often to sync, e.g. `1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(ns|us|µs|ms|s|m|h))+$"))]
    pub interval: Option<String>,
    /// Images copied at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 64))]
    pub concurrency: Option<u32>,
    /// Carry on past a failed image.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_going: bool,
    /// Put the plan in status and copy nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// Delete destination tags that the source no longer has, in the synced
    /// repositories and among the tags the selection takes (a 1:1 mirror);
    /// with `dryRun` they are listed in the plan instead.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub prune: bool,
    /// Stop syncing (a running sync is cancelled).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
    /// Copy only images signed with these keys (refused images fail with
    /// reason SignatureRejected; the others are copied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<crate::options::verify::VerifySettings>,
    /// Sign every image written with a sigstore key from a Secret (`identity`
    /// is ignored: each image is signed for its own destination).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign: Option<crate::options::sign::SignSettings>,
    /// Encrypt the copy's layers (ocicrypt's format) for these recipients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<crate::options::encryption::EncryptionSettings>,
    /// Decrypt encrypted layers with these keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decryption: Option<crate::options::encryption::DecryptionSettings>,
    /// Run the sync as an Indexed Job of this many worker pods, each
    /// copying its shard of the plan (source repositories split by a hash
    /// of their names); absent: the operator's own pod copies everything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub workers: Option<u32>,
    /// Worker pods running at once (default: all of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub worker_parallelism: Option<u32>,
    /// How the worker pods are scheduled and sized.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_pod: Option<workers::WorkerPod>,
}

/// One image that failed in the last sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SyncFailure {
    pub source: String,
    pub reason: String,
}

/// What the last sync saw and did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageSyncStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default)]
    pub seen: u64,
    #[serde(default)]
    pub copied: u64,
    #[serde(default)]
    pub already_present: u64,
    #[serde(default)]
    pub failed: u64,
    /// Destination tags deleted by `prune` in the last sync.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pruned: u64,
    /// The first failures (at most 20).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<SyncFailure>,
    /// With `dryRun`: what would be copied (at most 100 entries).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plan: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_sync_time: Option<String>,
    /// How far the running sync has got; absent when no sync runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<crate::operator::progress::SyncProgress>,
    /// With `workers`: the Job running the sync now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// With `workers`: the Job that ran the last sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_job: Option<String>,
    /// With `workers`: what held the shards' requests back, per registry
    /// host (the current or last Job's pods, added up).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub throttled: Vec<throttle::HostThrottling>,
    /// With `workers`: what each shard (by index) reported for its Job.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub shards: BTreeMap<String, workers::ShardStatus>,
}

impl crate::operator::verify_keys::KeyObjects for ImageSync {
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

fn is_zero(n: &u64) -> bool {
    *n == 0
}
