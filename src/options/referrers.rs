//! Carrying OCI 1.1 referrers along with an image (`--include-referrers`,
//! `spec.referrers`): signatures, attestations, SBOMs attached to it by
//! their `subject`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Which referrers to carry; present means carry them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReferrerSettings {
    /// Only referrers of these artifact types (`--referrers-artifact-type`);
    /// empty means all. Their own referrers (a signature of an SBOM, say)
    /// come along whatever their type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifact_types: Vec<String>,
}
