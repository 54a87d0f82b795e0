//! Copy options as data: what an ImageCopy/ImageSync spec holds (and what a
//! set of CLI flags amounts to), turned into engine [`CopyOptions`] by one
//! function so that the two front doors cannot drift apart.

use super::{Compression, CompressionOptions, CopyOptions, Format, MultiArch};
use crate::manifest::Platform;
use crate::registry::RetryOptions;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Manifest format to write (`--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FormatName {
    Oci,
    V2s2,
}

/// Layer compression to write (`--dest-compress-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CompressionName {
    Gzip,
    Zstd,
}

/// Layer compression settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.level) || ((has(self.format) && self.format == 'zstd') ? (self.level >= 1 && self.level <= 22) : self.level <= 9)",
     "message": LEVEL_RANGE}
]))]
pub struct CompressionSettings {
    /// Compress layers with this format (and recompress layers in another one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<CompressionName>,
    /// Compression level (gzip 0-9, zstd 1-22).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 22))]
    pub level: Option<i32>,
    /// Store layers uncompressed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub decompress: bool,
}

/// The valid compression levels (checked here, by the CRD and by the CLI).
pub const LEVEL_RANGE: &str = "compression level out of range (gzip 0-9, zstd 1-22)";

/// Whether `level` suits `format` (gzip when unset).
pub fn level_in_range(level: i32, format: Option<Compression>) -> bool {
    match format.unwrap_or(Compression::Gzip) {
        Compression::Zstd => (1..=22).contains(&level),
        _ => (0..=9).contains(&level),
    }
}

/// Retries of failed transfers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetrySettings {
    /// Extra attempts after the first (`--retry-times`).
    #[serde(default)]
    #[schemars(range(max = 100))]
    pub times: u32,
    /// Fixed delay between attempts, e.g. `2s`; exponential from 1s when unset (`--retry-delay`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"))]
    pub delay: Option<String>,
}

/// How to copy an image: the options an ImageCopy spec and `kopeo copy` share.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CopySettings {
    /// Copy every image of a list (`--all`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
    /// Copy only these platforms of a list, `os/arch[/variant]` (`--platform`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<String>,
    /// Manifest format to write (`--format`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<FormatName>,
    /// Fail rather than change any digest (`--preserve-digests`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub preserve_digests: bool,
    /// Do not copy signatures (`--remove-signatures`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub remove_signatures: bool,
    /// Layer compression changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<CompressionSettings>,
    /// Retries of failed transfers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetrySettings>,
}

impl CopySettings {
    /// The engine options these settings stand for.
    pub fn to_options(&self) -> Result<CopyOptions, String> {
        let platforms = self
            .platforms
            .iter()
            .map(|p| Platform::parse(p))
            .collect::<Result<Vec<_>, _>>()?;
        let retry = match &self.retry {
            None => RetryOptions::default(),
            Some(r) => RetryOptions {
                times: r.times,
                delay: r.delay.as_deref().map(crate::duration::parse_duration).transpose()?,
            },
        };
        let compression = match &self.compression {
            None => CompressionOptions::default(),
            Some(c) => CompressionOptions {
                compress: false,
                decompress: c.decompress,
                format: c.format.map(|f| match f {
                    CompressionName::Gzip => Compression::Gzip,
                    CompressionName::Zstd => Compression::Zstd,
                }),
                level: c.level,
            },
        };
        if let Some(l) = compression.level
            && !level_in_range(l, compression.format)
        {
            return Err(format!("{LEVEL_RANGE}: {l}"));
        }
        Ok(CopyOptions {
            multi_arch: if self.all { MultiArch::All } else { MultiArch::System },
            platforms,
            format: self.format.map(|f| match f {
                FormatName::Oci => Format::Oci,
                FormatName::V2s2 => Format::V2s2,
            }),
            preserve_digests: self.preserve_digests,
            remove_signatures: self.remove_signatures,
            retry,
            compression,
            ..CopyOptions::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_become_options() {
        let s: CopySettings = serde_json::from_value(serde_json::json!({
            "all": true, "platforms": ["linux/arm64"], "format": "oci", "compression": {"format": "zstd", "level": 3},
            "retry": {"times": 2, "delay": "500ms"}
        }))
        .unwrap();
        let o = s.to_options().unwrap();
        assert_eq!(o.multi_arch, MultiArch::All);
        assert_eq!(o.platforms[0].architecture, "arm64");
        assert_eq!(o.format, Some(Format::Oci));
        assert_eq!(o.compression.format, Some(Compression::Zstd));
        assert_eq!(o.retry.times, 2);
        assert!(
            CopySettings {
                platforms: vec!["bad".into()],
                ..Default::default()
            }
            .to_options()
            .is_err()
        );
        let bad: Result<CopySettings, _> = serde_json::from_value(serde_json::json!({"format": "v2s1"}));
        assert!(bad.is_err());
        // The level range the CRD's validation rule and the CLI also check.
        let level = |format: Option<CompressionName>, level: i32| CopySettings {
            compression: Some(CompressionSettings {
                format,
                level: Some(level),
                decompress: false,
            }),
            ..Default::default()
        };
        assert!(level(None, 9).to_options().is_ok());
        assert!(
            level(None, 15)
                .to_options()
                .err()
                .is_some_and(|e| e.contains("out of range"))
        );
        assert!(level(Some(CompressionName::Zstd), 15).to_options().is_ok());
        assert!(level(Some(CompressionName::Zstd), 0).to_options().is_err());
    }
}
