//! What to do to layer compression: `--dest-compress`, `--dest-decompress`,
//! `--dest-compress-format`, `--dest-compress-level` (`compression:` in specs).

use crate::compression::Compression;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A compression format layers can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CompressionFormat {
    Gzip,
    Zstd,
}

impl std::str::FromStr for CompressionFormat {
    type Err = CompressionError;

    fn from_str(s: &str) -> Result<Self, CompressionError> {
        match s {
            "gzip" => Ok(CompressionFormat::Gzip),
            "zstd" => Ok(CompressionFormat::Zstd),
            // zstd:chunked adds a seekable table of contents; kopeo writes
            // plain zstd, which every reader accepts.
            "zstd:chunked" => {
                tracing::warn!(
                    "zstd:chunked is written as plain zstd (no chunked table of contents); every zstd reader accepts it"
                );
                Ok(CompressionFormat::Zstd)
            }
            other => Err(CompressionError::Format(other.to_string())),
        }
    }
}

impl From<CompressionFormat> for Compression {
    fn from(f: CompressionFormat) -> Compression {
        match f {
            CompressionFormat::Gzip => Compression::Gzip,
            CompressionFormat::Zstd => Compression::Zstd,
        }
    }
}

/// The message for a level the format does not have (CLI, spec and CRD rule alike).
pub const LEVEL_RANGE: &str = "compression level out of range (gzip 0-9, zstd 1-22)";

/// Why compression settings were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompressionError {
    #[error("unsupported compression format {0:?}: use gzip or zstd")]
    Format(String),
    #[error("{LEVEL_RANGE}: {0}")]
    Level(i32),
    #[error("--dest-compress and --dest-decompress cannot be used together")]
    CompressAndDecompress,
    #[error("--dest-force-compress-format requires --dest-compress-format")]
    ForceWithoutFormat,
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
    pub format: Option<CompressionFormat>,
    /// Compression level (gzip 0-9, zstd 1-22).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 22))]
    pub level: Option<i32>,
    /// Store layers uncompressed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub decompress: bool,
    /// `--dest-compress`: compress uncompressed layers even where the
    /// destination keeps them as they are (CLI only).
    #[serde(skip)]
    #[schemars(skip)]
    pub compress: bool,
    /// `--dest-force-compress-format` (CLI only; kopeo writes every layer it
    /// compresses in the given format anyway).
    #[serde(skip)]
    #[schemars(skip)]
    pub force_format: bool,
}

/// Whether `level` suits `format` (gzip when unset).
pub fn level_in_range(level: i32, format: Option<CompressionFormat>) -> bool {
    match format {
        Some(CompressionFormat::Zstd) => (1..=22).contains(&level),
        _ => (0..=9).contains(&level),
    }
}

impl CompressionSettings {
    /// Check the settings together: the one place the level range is checked.
    pub fn validate(&self) -> Result<(), CompressionError> {
        if self.compress && self.decompress {
            return Err(CompressionError::CompressAndDecompress);
        }
        if self.force_format && self.format.is_none() {
            return Err(CompressionError::ForceWithoutFormat);
        }
        match self.level {
            Some(l) if !level_in_range(l, self.format) => Err(CompressionError::Level(l)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_checked_by_format() {
        let s = |format, level| CompressionSettings {
            format,
            level: Some(level),
            ..Default::default()
        };
        assert!(s(None, 9).validate().is_ok());
        assert_eq!(s(None, 15).validate(), Err(CompressionError::Level(15)));
        assert!(s(Some(CompressionFormat::Zstd), 15).validate().is_ok());
        assert!(s(Some(CompressionFormat::Zstd), 0).validate().is_err());
        assert!(
            CompressionError::Level(15)
                .to_string()
                .starts_with("compression level out of range")
        );
        assert_eq!("zstd:chunked".parse(), Ok(CompressionFormat::Zstd));
    }
}
