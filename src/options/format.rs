//! The manifest format to write (`--format`, `format:` in specs).

use crate::manifest::media;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A manifest format kopeo writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ManifestFormat {
    Oci,
    V2s2,
}

/// Why a `--format` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("writing Docker schema1 manifests (--format v2s1) is not supported by kopeo")]
    Schema1,
    #[error("unknown format {0:?}. Choose one of the supported formats: 'oci', 'v2s1', or 'v2s2'")]
    Unknown(String),
}

impl std::str::FromStr for ManifestFormat {
    type Err = FormatError;

    fn from_str(s: &str) -> Result<Self, FormatError> {
        match s {
            "oci" => Ok(ManifestFormat::Oci),
            "v2s2" => Ok(ManifestFormat::V2s2),
            "v2s1" => Err(FormatError::Schema1),
            other => Err(FormatError::Unknown(other.to_string())),
        }
    }
}

impl ManifestFormat {
    /// The image manifest media type of this format.
    pub fn image_type(self) -> &'static str {
        match self {
            ManifestFormat::Oci => media::OCI_MANIFEST,
            ManifestFormat::V2s2 => media::DOCKER_V2S2,
        }
    }

    /// The list media type of this format.
    pub fn list_type(self) -> &'static str {
        match self {
            ManifestFormat::Oci => media::OCI_INDEX,
            ManifestFormat::V2s2 => media::DOCKER_LIST,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_as_skopeo_names_them() {
        assert_eq!("oci".parse(), Ok(ManifestFormat::Oci));
        assert_eq!("v2s2".parse(), Ok(ManifestFormat::V2s2));
        assert_eq!("v2s1".parse::<ManifestFormat>(), Err(FormatError::Schema1));
        assert!(matches!("x".parse::<ManifestFormat>(), Err(FormatError::Unknown(_))));
    }
}
