//! Which images of a list to copy: `--all`/`--multi-arch` and
//! `--platform os/arch[/variant],…` (`platforms:` in specs).

use crate::manifest::Platform;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// Which images of a manifest list to copy (`--multi-arch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MultiArch {
    /// The one image for the current (or overridden) platform.
    #[default]
    System,
    /// Every image and the list itself (`--all`).
    All,
    /// Only the list itself.
    IndexOnly,
}

/// Why a `--multi-arch` or `--platform` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlatformError {
    #[error("unknown multi-arch option {0:?}. Choose one of the supported options: 'system', 'all', or 'index-only'")]
    MultiArch(String),
    #[error("Cannot use --all and --multi-arch together")]
    AllAndMultiArch,
    #[error("invalid platform {0:?}: expected os/arch[/variant], e.g. linux/arm64/v8")]
    Platform(String),
}

impl std::str::FromStr for MultiArch {
    type Err = PlatformError;

    fn from_str(s: &str) -> Result<Self, PlatformError> {
        match s {
            "system" => Ok(MultiArch::System),
            "all" => Ok(MultiArch::All),
            "index-only" => Ok(MultiArch::IndexOnly),
            other => Err(PlatformError::MultiArch(other.to_string())),
        }
    }
}

impl MultiArch {
    /// `--all` together with `--multi-arch`, as skopeo combines them.
    pub fn combine(all: bool, multi_arch: Option<MultiArch>) -> Result<MultiArch, PlatformError> {
        match (all, multi_arch) {
            (true, Some(m)) if m != MultiArch::All => Err(PlatformError::AllAndMultiArch),
            (true, _) => Ok(MultiArch::All),
            (false, m) => Ok(m.unwrap_or_default()),
        }
    }
}

/// One `os/arch[/variant]` a list may be reduced to; a string in specs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PlatformName(pub Platform);

impl std::str::FromStr for PlatformName {
    type Err = PlatformError;

    fn from_str(s: &str) -> Result<Self, PlatformError> {
        Platform::parse(s.trim())
            .map(PlatformName)
            .map_err(|_| PlatformError::Platform(s.to_string()))
    }
}

impl TryFrom<String> for PlatformName {
    type Error = PlatformError;
    fn try_from(s: String) -> Result<Self, PlatformError> {
        s.parse()
    }
}

impl From<PlatformName> for String {
    fn from(p: PlatformName) -> String {
        p.0.to_string()
    }
}

impl JsonSchema for PlatformName {
    fn schema_name() -> Cow<'static, str> {
        "PlatformName".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string"})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_arch_combines_with_all_as_skopeo_does() {
        assert_eq!(MultiArch::combine(false, None), Ok(MultiArch::System));
        assert_eq!(MultiArch::combine(true, None), Ok(MultiArch::All));
        assert_eq!(
            MultiArch::combine(false, Some(MultiArch::IndexOnly)),
            Ok(MultiArch::IndexOnly)
        );
        assert_eq!(
            MultiArch::combine(true, Some(MultiArch::System)),
            Err(PlatformError::AllAndMultiArch)
        );
        assert!("bogus".parse::<MultiArch>().is_err());
        let p: PlatformName = "linux/arm64/v8".parse().unwrap();
        assert_eq!(String::from(p), "linux/arm64/v8");
        assert!("linux".parse::<PlatformName>().is_err());
    }
}
