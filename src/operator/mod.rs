//! The operator's API (group `kopeo.dev`, version `v1alpha1`): ImageCopy,
//! ImageSync and RegistryCredential. Spec fields reuse the engine's option
//! types ([`crate::options::CopySettings`]) so that a custom resource
//! and a CLI flag cannot drift apart. The CRDs are generated from these
//! types (`kopeo crd`) and checked in under `crds/`.

pub mod condition;
mod context;
pub mod controller;
mod credential_cache;
mod events;
pub mod from_files;
pub mod image_copy;
pub mod image_sync;
pub mod leader;
pub mod local_access;
mod memory;
pub mod metrics;
pub mod progress;
pub mod registry_credential;
mod supervise;
mod verify_keys;

pub use context::{Error, LeaderElection, OperatorOptions};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// The API group.
pub const GROUP: &str = "kopeo.dev";

/// Every CRD the operator serves.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        image_copy::ImageCopy::crd(),
        image_sync::ImageSync::crd(),
        registry_credential::RegistryCredential::crd(),
    ]
}

/// The CRDs as one multi-document YAML stream (what `kopeo crd` prints).
pub fn crd_yaml() -> Result<String, serde_yaml_ng::Error> {
    let mut out = String::new();
    for crd in crds() {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(&crd)?);
    }
    Ok(out)
}
