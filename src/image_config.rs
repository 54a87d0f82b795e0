//! An image configuration as the OCI image-spec's Go types read and write
//! it: what `inspect --config` prints. Decoding keeps only the fields the
//! OCI `Image` type has (a Docker config loses `container_config`,
//! `docker_version` and the like); encoding writes them in the Go structs'
//! field order, with their `omitempty` rules and Go's map key order.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The empty JSON object Go writes for a `map[string]struct{}` value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

fn is_false(b: &bool) -> bool {
    !*b
}

/// image-spec's `ImageConfig`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(rename = "User", default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(
        rename = "ExposedPorts",
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        with = "set"
    )]
    pub exposed_ports: BTreeMap<String, Empty>,
    #[serde(
        rename = "Env",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub env: Vec<String>,
    #[serde(
        rename = "Entrypoint",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub entrypoint: Vec<String>,
    #[serde(
        rename = "Cmd",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub cmd: Vec<String>,
    #[serde(
        rename = "Volumes",
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        with = "set"
    )]
    pub volumes: BTreeMap<String, Empty>,
    #[serde(rename = "WorkingDir", default, skip_serializing_if = "String::is_empty")]
    pub working_dir: String,
    #[serde(
        rename = "Labels",
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "nullable"
    )]
    pub labels: BTreeMap<String, String>,
    #[serde(rename = "StopSignal", default, skip_serializing_if = "String::is_empty")]
    pub stop_signal: String,
    #[serde(rename = "ArgsEscaped", default, skip_serializing_if = "is_false")]
    pub args_escaped: bool,
}

/// image-spec's `RootFS` (both fields always written).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type", default)]
    pub type_: String,
    #[serde(default)]
    pub diff_ids: Option<Vec<String>>,
}

/// image-spec's `History`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub created_by: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub author: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub empty_layer: bool,
}

/// image-spec's `Image`, its embedded `Platform` flattened in place.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OciImage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub author: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(rename = "os.version", default, skip_serializing_if = "String::is_empty")]
    pub os_version: String,
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub os_features: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub variant: String,
    /// `omitzero`: left out when every field is empty.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub config: ImageConfig,
    #[serde(default)]
    pub rootfs: RootFs,
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "nullable")]
    pub history: Vec<History>,
}

fn is_zero(c: &ImageConfig) -> bool {
    *c == ImageConfig::default()
}

/// `null` reads as empty, as Go's decoder leaves a nil slice or map.
fn nullable<'de, D: serde::Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `map[string]struct{}`: any value reads as present; `{}` is written.
mod set {
    use super::Empty;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<S: Serializer>(m: &BTreeMap<String, Empty>, s: S) -> Result<S::Ok, S::Error> {
        m.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Empty>, D::Error> {
        let m = Option::<BTreeMap<String, serde_json::Value>>::deserialize(d)?.unwrap_or_default();
        Ok(m.into_keys().map(|k| (k, Empty {})).collect())
    }
}

/// Go's RFC 3339 with trailing zeros of the fraction dropped (`time.Time`'s JSON form).
fn go_time(t: &str) -> String {
    let Some(dot) = t.find('.') else { return t.to_string() };
    let end = t[dot + 1..]
        .find(|c: char| !c.is_ascii_digit())
        .map_or(t.len(), |i| dot + 1 + i);
    let fraction = t[dot + 1..end].trim_end_matches('0');
    let dot_part = if fraction.is_empty() {
        String::new()
    } else {
        format!(".{fraction}")
    };
    format!("{}{dot_part}{}", &t[..dot], &t[end..])
}

impl OciImage {
    /// Read a configuration (Docker or OCI) as the OCI `Image` type reads it.
    pub fn from_json(config: &[u8]) -> Result<OciImage, serde_json::Error> {
        let mut image: OciImage = serde_json::from_slice(config)?;
        image.created = image.created.as_deref().map(go_time);
        for h in &mut image.history {
            h.created = h.created.as_deref().map(go_time);
        }
        Ok(image)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_docker_config_loses_what_oci_does_not_have() {
        let docker = br#"{"architecture":"amd64","config":{"Hostname":"","Env":["PATH=/bin"],"Cmd":["sh"],"Labels":{"b":"2","a":"1"},"ExposedPorts":{"80/tcp":{}},"ArgsEscaped":true},
            "container":"abc","container_config":{"Cmd":["x"]},"created":"2026-01-02T03:04:05.120000000Z","docker_version":"20.10",
            "history":[{"created":"2026-01-02T03:04:05Z","created_by":"/bin/sh","empty_layer":true}],"os":"linux",
            "rootfs":{"type":"layers","diff_ids":["sha256:aa"]}}"#;
        let oci = OciImage::from_json(docker).unwrap();
        assert_eq!(
            serde_json::to_string(&oci).unwrap(),
            r#"{"created":"2026-01-02T03:04:05.12Z","architecture":"amd64","os":"linux","config":{"ExposedPorts":{"80/tcp":{}},"Env":["PATH=/bin"],"Cmd":["sh"],"Labels":{"a":"1","b":"2"},"ArgsEscaped":true},"rootfs":{"type":"layers","diff_ids":["sha256:aa"]},"history":[{"created":"2026-01-02T03:04:05Z","created_by":"/bin/sh","empty_layer":true}]}"#
        );
        let bare = OciImage::from_json(br#"{"architecture":"arm64","os":"linux"}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&bare).unwrap(),
            r#"{"architecture":"arm64","os":"linux","rootfs":{"type":"","diff_ids":null}}"#
        );
    }
}
