//! The YAML source file of `sync --src yaml`, parsed strictly: an unknown key
//! is an error that names it.
//!
//! ```yaml
//! registry.example.com:
//!   images:
//!     busybox: []            # every tag
//!     redis: ["1.0", "2.0"]  # these tags (or digests)
//!   images-by-tag-regex:
//!     nginx: ^1\.13\.[12]-alpine-perl$
//!   images-by-semver:
//!     alpine: ">= 3.12.0"
//!   credentials: { username: john, password: secret }
//!   tls-verify: true
//!   cert-dir: /home/john/certs
//!   # kopeo's own keys:
//!   exclude-tags: ["-rc", "^sha256-"]
//!   keep-newest: 5
//!   catalog: ["team/"]       # every repository under these prefixes
//! ```

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Credentials for one source registry.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct YamlCredentials {
    pub username: String,
    pub password: String,
}

/// What to take from one registry.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RegistryConfig {
    /// Repository → tags or digests; an empty list means every tag.
    #[serde(default)]
    pub images: BTreeMap<String, Option<Vec<String>>>,
    /// Repository → regular expression the tags must match.
    #[serde(default)]
    pub images_by_tag_regex: BTreeMap<String, String>,
    /// Repository → semver constraint the tags must satisfy.
    #[serde(default)]
    pub images_by_semver: BTreeMap<String, String>,
    #[serde(default)]
    pub credentials: Option<YamlCredentials>,
    #[serde(default)]
    pub tls_verify: Option<bool>,
    #[serde(default)]
    pub cert_dir: Option<PathBuf>,
    /// Tags matching any of these regular expressions are left out.
    #[serde(default)]
    pub exclude_tags: Vec<String>,
    /// Keep only the newest N semver tags of each repository.
    #[serde(default)]
    pub keep_newest: Option<usize>,
    /// Repository prefixes to take from the registry's catalog ("" = all).
    #[serde(default)]
    pub catalog: Vec<String>,
}

/// A whole YAML source file: registry → what to take from it.
pub type SourceConfig = BTreeMap<String, RegistryConfig>;

/// Why a YAML source document was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Yaml(#[from] serde_yaml_ng::Error),
    #[error("registry {0:?} lists no images")]
    NoImages(String),
}

/// Parse a YAML source document.
pub fn parse(text: &str) -> Result<SourceConfig, ConfigError> {
    let cfg: SourceConfig = serde_yaml_ng::from_str(text)?;
    for (registry, r) in &cfg {
        if r.images.is_empty()
            && r.images_by_tag_regex.is_empty()
            && r.images_by_semver.is_empty()
            && r.catalog.is_empty()
        {
            return Err(ConfigError::NoImages(registry.clone()));
        }
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_skopeo_format_and_our_keys() {
        let cfg = parse(
            r#"
registry.example.com:
  images:
    busybox: []
    redis: ["1.0", "2.0"]
    empty:
  images-by-tag-regex:
    nginx: ^1\.13\.[12]-alpine-perl$
  images-by-semver:
    alpine: ">= 3.12.0"
  credentials: { username: john, password: secret }
  tls-verify: false
  exclude-tags: ["-rc"]
  keep-newest: 3
"#,
        )
        .unwrap();
        let r = &cfg["registry.example.com"];
        assert_eq!(r.images["redis"], Some(vec!["1.0".to_string(), "2.0".to_string()]));
        assert_eq!(r.images["empty"], None);
        assert_eq!(r.tls_verify, Some(false));
        assert_eq!(r.keep_newest, Some(3));
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = parse("reg.example:\n  imagez:\n    a: []\n").unwrap_err().to_string();
        assert!(e.contains("imagez"), "{e}");
        let e = parse("reg.example:\n  credentials: {username: a, password: b, token: c}\n  images: {a: []}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("token"), "{e}");
        assert!(matches!(
            parse("reg.example:\n  tls-verify: true\n"),
            Err(ConfigError::NoImages(r)) if r == "reg.example"
        ));
    }
}
