//! Manifest media types, Docker schema2 / OCI manifests and lists, platform
//! choice, and the schema2 ↔ OCI conversion.

use crate::digest::Digest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Media type strings.
pub mod media {
    pub const DOCKER_V2S1: &str = "application/vnd.docker.distribution.manifest.v1+json";
    pub const DOCKER_V2S1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
    pub const DOCKER_V2S2: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
    pub const DOCKER_LAYER_FOREIGN: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    pub const OCI_LAYER_ND: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar";
    pub const OCI_LAYER_ND_GZIP: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";

    /// Every manifest type kopeo reads, for `Accept` headers.
    pub const ALL_MANIFESTS: &[&str] = &[
        OCI_MANIFEST,
        DOCKER_V2S2,
        DOCKER_V2S1_SIGNED,
        DOCKER_V2S1,
        OCI_INDEX,
        DOCKER_LIST,
    ];
}

/// Why a manifest could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("parsing manifest: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unsupported manifest media type {0:?}")]
    UnsupportedType(String),
    #[error("{}", crate::skopeo_texts::no_matching_instance(*oci_index, arch, variant.as_deref().unwrap_or(""), os))]
    NoMatchingPlatform {
        /// An OCI image index (else a Docker manifest list).
        oci_index: bool,
        os: String,
        arch: String,
        variant: Option<String>,
    },
    #[error("cannot convert {from} to {to}: {reason}")]
    Conversion { from: String, to: String, reason: String },
}

/// The platform an image is built for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(rename = "os.version", default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    #[serde(rename = "os.features", default, skip_serializing_if = "Option::is_none")]
    pub os_features: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// A content descriptor: what a manifest says about a blob or another manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    #[serde(deserialize_with = "non_negative")]
    pub size: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
}

/// A descriptor's size: the exact byte count, so never negative (a hostile
/// manifest's `-1` must not pass as "unknown" into a destination).
fn non_negative<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let size = i64::deserialize(d)?;
    if size < 0 {
        return Err(serde::de::Error::custom(format!("descriptor size {size} is negative")));
    }
    Ok(size)
}

/// A single-image manifest (Docker schema2 or OCI).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// A manifest list / image index.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// A parsed manifest of any supported kind.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // short-lived, one per copy step
pub enum Manifest {
    Image(ImageManifest),
    Index(ImageIndex),
}

/// True for manifest lists / indexes.
pub fn is_list_type(mime: &str) -> bool {
    mime == media::DOCKER_LIST || mime == media::OCI_INDEX
}

/// Work out a manifest's media type from its content, as containers/image
/// does when a source does not say (e.g. `dir:`).
pub fn guess_mime_type(bytes: &[u8]) -> String {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        schema_version: Option<u32>,
        media_type: Option<String>,
        signatures: Option<serde_json::Value>,
        config: Option<serde_json::Value>,
        manifests: Option<serde_json::Value>,
        layers: Option<serde_json::Value>,
    }
    let Ok(p) = serde_json::from_slice::<Probe>(bytes) else {
        return String::new();
    };
    if let Some(m) = p.media_type {
        return m;
    }
    match p.schema_version {
        Some(1) if p.signatures.is_some() => media::DOCKER_V2S1_SIGNED.into(),
        Some(1) => media::DOCKER_V2S1.into(),
        Some(2) if p.manifests.is_some() => media::OCI_INDEX.into(),
        Some(2) if p.config.is_some() || p.layers.is_some() => media::OCI_MANIFEST.into(),
        _ => String::new(),
    }
}

impl Manifest {
    /// Parse manifest bytes of the given media type (guessed when empty).
    pub fn parse(bytes: &[u8], mime: &str) -> Result<Manifest, ManifestError> {
        let guessed;
        let mime = if mime.is_empty() || mime == "application/json" || mime == "text/plain" {
            guessed = guess_mime_type(bytes);
            guessed.as_str()
        } else {
            mime
        };
        match mime {
            media::DOCKER_V2S2 | media::OCI_MANIFEST => Ok(Manifest::Image(serde_json::from_slice(bytes)?)),
            media::DOCKER_LIST | media::OCI_INDEX => Ok(Manifest::Index(serde_json::from_slice(bytes)?)),
            other => Err(ManifestError::UnsupportedType(other.to_string())),
        }
    }
}

/// A string that is not `os/arch[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid platform {0:?}: expected os/arch[/variant], e.g. linux/arm64")]
pub struct InvalidPlatform(pub String);

impl Platform {
    /// Parse `os/arch[/variant]`, e.g. `linux/arm64/v8`.
    pub fn parse(s: &str) -> Result<Platform, InvalidPlatform> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] | [os, arch, _] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: parts.get(2).filter(|v| !v.is_empty()).map(|v| v.to_string()),
                ..Platform::default()
            }),
            _ => Err(InvalidPlatform(s.to_string())),
        }
    }

    /// Whether an image for `other` satisfies a request for `self` (the
    /// variant only counts when requested).
    pub fn accepts(&self, other: &Platform) -> bool {
        self.os == other.os
            && self.architecture == other.architecture
            && self.variant.as_ref().is_none_or(|v| other.variant.as_ref() == Some(v))
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// The platform kopeo runs on, in OCI terms.
pub fn host_platform() -> Platform {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    Platform {
        architecture: arch.to_string(),
        os: std::env::consts::OS.to_string(),
        ..Platform::default()
    }
}

/// Pick the instance of `index` for a platform: exact OS and architecture,
/// the requested variant if one was given, else the first match.
pub fn choose_instance<'a>(index: &'a ImageIndex, want: &Platform) -> Result<&'a Descriptor, ManifestError> {
    let candidates = index.manifests.iter().filter(|d| {
        d.platform
            .as_ref()
            .is_some_and(|p| p.os == want.os && p.architecture == want.architecture)
    });
    let found = match &want.variant {
        Some(v) => candidates
            .into_iter()
            .find(|d| d.platform.as_ref().and_then(|p| p.variant.as_deref()) == Some(v.as_str())),
        None => candidates.into_iter().next(),
    };
    found.ok_or_else(|| ManifestError::NoMatchingPlatform {
        oci_index: index.mime() == media::OCI_INDEX,
        os: want.os.clone(),
        arch: want.architecture.clone(),
        variant: want.variant.clone(),
    })
}

/// The media type a layer gets when an image manifest moves to `target`.
fn convert_layer_type(mt: &str, target: &str) -> Option<&'static str> {
    use media::*;
    Some(match (mt, target) {
        (DOCKER_LAYER_GZIP | OCI_LAYER_GZIP, OCI_MANIFEST) => OCI_LAYER_GZIP,
        (DOCKER_LAYER_FOREIGN | OCI_LAYER_ND_GZIP, OCI_MANIFEST) => OCI_LAYER_ND_GZIP,
        (OCI_LAYER, OCI_MANIFEST) => OCI_LAYER,
        (OCI_LAYER_ZSTD, OCI_MANIFEST) => OCI_LAYER_ZSTD,
        (OCI_LAYER_ND, OCI_MANIFEST) => OCI_LAYER_ND,
        (DOCKER_LAYER_TAR, OCI_MANIFEST) => OCI_LAYER,
        (DOCKER_LAYER_GZIP | OCI_LAYER_GZIP, DOCKER_V2S2) => DOCKER_LAYER_GZIP,
        (DOCKER_LAYER_TAR | OCI_LAYER, DOCKER_V2S2) => DOCKER_LAYER_TAR,
        (DOCKER_LAYER_FOREIGN | OCI_LAYER_ND_GZIP | OCI_LAYER_ND, DOCKER_V2S2) => DOCKER_LAYER_FOREIGN,
        _ => return None,
    })
}

impl ImageManifest {
    /// This manifest's own media type (schema2 manifests always carry it, OCI ones may not).
    pub fn mime(&self) -> &str {
        self.media_type.as_deref().unwrap_or(media::OCI_MANIFEST)
    }

    /// The same image described in `target` format (schema2 or OCI). The
    /// config blob is unchanged: its JSON is valid in both formats.
    pub fn convert(&self, target: &str) -> Result<ImageManifest, ManifestError> {
        let err = |reason: String| ManifestError::Conversion {
            from: self.mime().to_string(),
            to: target.to_string(),
            reason,
        };
        let config_type = match target {
            media::OCI_MANIFEST => media::OCI_CONFIG,
            media::DOCKER_V2S2 => media::DOCKER_CONFIG,
            other => return Err(err(format!("{other} is not an image manifest type"))),
        };
        if self.config.media_type != media::OCI_CONFIG && self.config.media_type != media::DOCKER_CONFIG {
            return Err(err(format!(
                "config media type {} is not an image config",
                self.config.media_type
            )));
        }
        if target == media::DOCKER_V2S2 && (self.subject.is_some() || self.artifact_type.is_some()) {
            return Err(err("schema2 has no subject or artifactType".into()));
        }
        let mut out = self.clone();
        out.media_type = Some(target.to_string());
        out.config.media_type = config_type.to_string();
        for l in &mut out.layers {
            l.media_type = convert_layer_type(&l.media_type, target)
                .ok_or_else(|| err(format!("layer media type {} has no equivalent", l.media_type)))?
                .to_string();
            if target == media::DOCKER_V2S2 {
                l.annotations = None;
            }
        }
        if target == media::DOCKER_V2S2 {
            out.annotations = None;
        }
        Ok(out)
    }
}

impl ImageIndex {
    /// This index's own media type.
    pub fn mime(&self) -> &str {
        self.media_type.as_deref().unwrap_or(media::OCI_INDEX)
    }
}

/// Serialise a manifest the way registries and skopeo write them (3-space
/// indent is Docker's, but any stable JSON is valid; we use compact JSON).
pub fn to_bytes<T: Serialize>(m: &T) -> Vec<u8> {
    // Serialising our own plain structs cannot fail.
    serde_json::to_vec(m).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const S2: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
      "config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},
      "layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":3,"digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}]}"#;

    #[test]
    fn a_negative_size_is_refused() {
        let neg = S2.replacen("\"size\":3", "\"size\":-1", 1);
        let err = Manifest::parse(neg.as_bytes(), "").unwrap_err().to_string();
        assert!(err.contains("descriptor size -1 is negative"), "{err}");
    }

    #[test]
    fn guesses_types() {
        assert_eq!(guess_mime_type(S2.as_bytes()), media::DOCKER_V2S2);
        assert_eq!(
            guess_mime_type(br#"{"schemaVersion":2,"manifests":[]}"#),
            media::OCI_INDEX
        );
        assert_eq!(
            guess_mime_type(br#"{"schemaVersion":2,"config":{}}"#),
            media::OCI_MANIFEST
        );
        assert_eq!(
            guess_mime_type(br#"{"schemaVersion":1,"signatures":[]}"#),
            media::DOCKER_V2S1_SIGNED
        );
    }

    #[test]
    fn converts_schema2_to_oci_and_back() {
        let Manifest::Image(m) = Manifest::parse(S2.as_bytes(), "").unwrap() else {
            panic!()
        };
        let oci = m.convert(media::OCI_MANIFEST).unwrap();
        assert_eq!(oci.config.media_type, media::OCI_CONFIG);
        assert_eq!(oci.layers[0].media_type, media::OCI_LAYER_GZIP);
        let back = oci.convert(media::DOCKER_V2S2).unwrap();
        assert_eq!(back.layers[0].media_type, media::DOCKER_LAYER_GZIP);
        let mut z = oci.clone();
        z.layers[0].media_type = media::OCI_LAYER_ZSTD.into();
        assert!(z.convert(media::DOCKER_V2S2).is_err());
    }

    #[test]
    fn chooses_platform() {
        let idx: ImageIndex = serde_json::from_str(&format!(
            r#"{{"schemaVersion":2,"manifests":[
            {{"mediaType":"{0}","size":1,"digest":"sha256:{1}","platform":{{"os":"linux","architecture":"arm","variant":"v6"}}}},
            {{"mediaType":"{0}","size":1,"digest":"sha256:{2}","platform":{{"os":"linux","architecture":"arm","variant":"v7"}}}}]}}"#,
            media::OCI_MANIFEST,
            "a".repeat(64),
            "b".repeat(64)
        ))
        .unwrap();
        let mut p = Platform {
            os: "linux".into(),
            architecture: "arm".into(),
            ..Default::default()
        };
        assert!(choose_instance(&idx, &p).unwrap().digest.hex().starts_with('a'));
        p.variant = Some("v7".into());
        assert!(choose_instance(&idx, &p).unwrap().digest.hex().starts_with('b'));
        p.architecture = "s390x".into();
        assert!(choose_instance(&idx, &p).is_err());
    }

    #[test]
    fn parses_platforms() {
        let p = Platform::parse("linux/arm64/v8").unwrap();
        assert_eq!(
            (p.os.as_str(), p.architecture.as_str(), p.variant.as_deref()),
            ("linux", "arm64", Some("v8"))
        );
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert!(Platform::parse("linux").is_err());
        assert!(Platform::parse("/amd64").is_err());
        let any_variant = Platform::parse("linux/arm").unwrap();
        assert!(any_variant.accepts(&Platform::parse("linux/arm/v7").unwrap()));
        assert!(!p.accepts(&Platform::parse("linux/arm64").unwrap()));
    }
}
