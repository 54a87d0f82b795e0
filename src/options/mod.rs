//! Copy options grouped by concern, one type each, shared by the three front
//! doors: the CLI's flags parse into them (clap value parsing through
//! `FromStr`), the CRDs embed them (serde and JSON schema), and
//! [`CopySettings::to_options`] is the one conversion into the engine's
//! [`crate::copy::CopyOptions`] — for `kopeo copy`, `kopeo sync`, ImageCopy,
//! ImageSync and `kopeo run` alike.
//!
//! Names: a `*Settings` type is what a user writes (a flag or a spec
//! field: serde, JSON schema, strings such as `"500ms"`); a `*Options` type
//! is what the engine runs with (checked, resolved, with in-memory handles).
//! Each `*Settings` has one conversion to the engine's options; where the
//! engine needs nothing more (compression), it holds the settings as they
//! are, already checked.

pub mod compression;
pub mod encryption;
pub mod format;
pub mod platform;
pub mod rate_limit;
pub mod referrers;
pub mod retry;
pub mod sign;
pub mod signatures;
pub mod signing;
pub mod verify;

pub use compression::{CompressionError, CompressionFormat, CompressionSettings, LEVEL_RANGE, level_in_range};
pub use format::{FormatError, ManifestFormat};
pub use platform::{MultiArch, PlatformError, PlatformName};
pub use retry::RetrySettings;

use crate::copy::CopyOptions;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Why copy settings cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    #[error(transparent)]
    Platform(#[from] PlatformError),
    #[error(transparent)]
    Compression(#[from] CompressionError),
    #[error(transparent)]
    Signatures(#[from] signatures::SignatureHandlingError),
}

/// How to copy an image: what an ImageCopy or ImageSync spec holds and what
/// the copy flags amount to. Fields marked CLI only have no CRD field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CopySettings {
    /// Copy every image of a list (`--all`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
    /// `--multi-arch` (CLI only).
    #[serde(skip)]
    #[schemars(skip)]
    pub multi_arch: Option<MultiArch>,
    /// Copy only these platforms of a list, `os/arch[/variant]` (`--platform`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<PlatformName>,
    /// Manifest format to write (`--format`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<ManifestFormat>,
    /// Fail rather than change any digest (`--preserve-digests`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub preserve_digests: bool,
    /// Do not copy signatures (`--remove-signatures`); the same as
    /// `signatures: remove`, which says more.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub remove_signatures: bool,
    /// What to do with the source's signatures: `keep` (the default),
    /// `remove`, or `referrers` (keep them and carry the image's signature
    /// referrers, such as cosign v3 bundles, too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signatures: Option<signatures::SignatureHandling>,
    /// Layer compression changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<CompressionSettings>,
    /// Retries of failed transfers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetrySettings>,
    /// Blobs copied at once, `--image-parallel-copies` (CLI only).
    #[serde(skip)]
    #[schemars(skip)]
    pub parallel_blobs: Option<std::num::NonZeroUsize>,
    /// Carry the image's OCI referrers along (`--include-referrers`); the
    /// image's digest is then kept, since they name it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrers: Option<referrers::ReferrerSettings>,
}

impl CopySettings {
    /// The engine options these settings stand for (checked together).
    pub fn to_options(&self) -> Result<CopyOptions, OptionsError> {
        let compression = self.compression.clone().unwrap_or_default();
        compression.validate()?;
        let (remove_signatures, referrers) =
            signatures::resolve(self.signatures, self.remove_signatures, self.referrers.as_ref())?;
        Ok(CopyOptions {
            multi_arch: MultiArch::combine(self.all, self.multi_arch)?,
            platforms: self.platforms.iter().map(|p| p.0.clone()).collect(),
            format: self.format,
            preserve_digests: self.preserve_digests || referrers.is_some(),
            keep_reason: match (self.preserve_digests, &referrers) {
                (false, Some(_)) => crate::copy::KeepReason::Referrers,
                _ => crate::copy::KeepReason::PreserveDigests,
            },
            referrers,
            remove_signatures,
            parallel: self.parallel_blobs.map_or(0, |n| n.get()),
            retry: self.retry.as_ref().map(RetrySettings::options).unwrap_or_default(),
            compression,
            ..CopyOptions::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_settings_become_engine_options() {
        let s: CopySettings = serde_json::from_value(serde_json::json!({
            "all": true, "platforms": ["linux/arm64"], "format": "oci", "compression": {"format": "zstd", "level": 3},
            "retry": {"times": 2, "delay": "500ms"}
        }))
        .unwrap();
        let o = s.to_options().unwrap();
        assert_eq!(o.multi_arch, MultiArch::All);
        assert_eq!(o.platforms[0].architecture, "arm64");
        assert_eq!(o.format, Some(ManifestFormat::Oci));
        assert_eq!(o.compression.format, Some(CompressionFormat::Zstd));
        assert_eq!(
            (o.retry.times, o.retry.delay),
            (2, Some(std::time::Duration::from_millis(500)))
        );
        let bad: Result<CopySettings, _> = serde_json::from_value(serde_json::json!({"platforms": ["bad"]}));
        assert!(bad.is_err());
        let bad: Result<CopySettings, _> = serde_json::from_value(serde_json::json!({"format": "v2s1"}));
        assert!(bad.is_err());
        let level = CopySettings {
            compression: Some(CompressionSettings {
                level: Some(15),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(
            level
                .to_options()
                .err()
                .is_some_and(|e| e.to_string().contains("out of range"))
        );
    }
}
