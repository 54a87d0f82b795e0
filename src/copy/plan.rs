//! Planning one image's copy, before any byte moves: the manifest type to
//! write, what each layer's compression should become, which blobs to copy
//! (each once), and whether the result can keep the source's digest. Pure:
//! it sees the manifest, what the destination accepts and the options.

use super::{CopyError, CopyOptions, DigestChange};
use crate::compression::Compression;
use crate::digest::Digest;
use crate::encryption::layer;
use crate::manifest::{Descriptor, ImageManifest, is_list_type, media};
use crate::options::{CompressionSettings, ManifestFormat};
use crate::transport::{BlobInfo, LayerCompression, TransportError};
use std::collections::BTreeMap;
use std::sync::Arc;

/// What the plan needs to know of the destination.
#[derive(Debug, Clone)]
pub struct DestinationCaps {
    /// Manifest media types it stores, preferred first; empty means any.
    pub manifest_types: Vec<&'static str>,
    /// What it wants done to layer compression.
    pub layers: LayerCompression,
    /// For messages.
    pub name: String,
}

/// The compression a layer should end up in, given what it turns out to be.
/// Decided again from the first bytes of each layer as it streams: a
/// manifest's media type may be wrong (a docker-archive presents its
/// uncompressed layers as gzip, and `dir:` keeps that label).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompressionTarget {
    pub desired: LayerCompression,
    pub settings: CompressionSettings,
    /// `--preserve-digests`: bytes stay as they are, whatever they are.
    pub preserve: bool,
}

impl CompressionTarget {
    /// The compression a layer that is `have` should be written in.
    pub fn wanted(&self, have: Compression) -> Compression {
        let o = &self.settings;
        if self.preserve {
            return have;
        }
        if o.decompress || self.desired == LayerCompression::Decompress {
            return Compression::None;
        }
        match (have, o.format.map(Compression::from)) {
            (Compression::None, f) if o.compress || self.desired == LayerCompression::Compress => {
                f.unwrap_or(Compression::Gzip)
            }
            (Compression::None, _) => Compression::None,
            (h, Some(f)) if f != h => f,
            (h, _) => h,
        }
    }
}

/// What happens to a layer's encryption.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Crypt {
    /// Nothing (a plain layer, or an encrypted one copied as it is).
    #[default]
    Keep,
    /// Encrypt the layer (after any compression change).
    Encrypt,
    /// Decrypt the layer with the options wrapped in these annotations.
    Decrypt(Arc<BTreeMap<String, String>>),
}

/// One distinct blob to copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub info: BlobInfo,
    /// For a layer: its compression as claimed (by the source or the media
    /// type); the blob stage checks the bytes.
    pub claimed: Option<Compression>,
    pub crypt: Crypt,
}

/// The plan of one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagePlan {
    /// The manifest media type to write.
    pub target: String,
    /// Distinct blobs: layers in order, then the config.
    pub jobs: Vec<Job>,
    /// What each layer should become.
    pub compression: CompressionTarget,
    /// Each layer's expected compression change (by the claims), in manifest order.
    pub changes: Vec<Option<(Compression, Compression)>>,
    /// Whether layers may be decompressed (their diff_ids are then checked).
    pub may_decompress: bool,
    /// What happens to each layer's encryption, in manifest order.
    pub crypt: Vec<Crypt>,
}

impl ImagePlan {
    /// Whether the manifest is written anew (converted, or layers changed).
    pub fn rewrites(&self, source_type: &str) -> bool {
        self.target != source_type || self.changes.iter().any(Option::is_some) || self.crypts()
    }

    /// Whether any layer is encrypted or decrypted.
    pub fn crypts(&self) -> bool {
        self.crypt.iter().any(|c| *c != Crypt::Keep)
    }
}

/// Each layer's encryption step: encrypted layers are decrypted when keys
/// were given (else copied as they are), chosen plain ones encrypted.
/// Foreign layers, whose bytes are not copied, stay as they are.
fn crypt_steps(m: &ImageManifest, opts: &CopyOptions) -> Result<Vec<Crypt>, CopyError> {
    let chosen = match &opts.encryption {
        Some(e) => e.chosen(m.layers.len()).map_err(TransportError::from)?,
        None => vec![false; m.layers.len()],
    };
    Ok(m.layers
        .iter()
        .zip(chosen)
        .map(|(l, chosen)| {
            if is_foreign(l) {
                Crypt::Keep
            } else if layer::is_encrypted(&l.media_type) {
                match &opts.decryption {
                    Some(_) => Crypt::Decrypt(Arc::new(l.annotations.clone().unwrap_or_default())),
                    None => Crypt::Keep,
                }
            } else if chosen {
                Crypt::Encrypt
            } else {
                Crypt::Keep
            }
        })
        .collect())
}

/// A layer that stays where its URLs point (never copied).
fn is_foreign(d: &Descriptor) -> bool {
    d.urls.is_some() && (d.media_type.contains("foreign") || d.media_type.contains("nondistributable"))
}

/// Choose the media type to write: `--format`, else the source's if the
/// destination takes it, else the destination's first choice of that kind.
pub fn target_type(
    src: &str,
    dst: &DestinationCaps,
    forced: Option<&'static str>,
    list: bool,
) -> Result<String, CopyError> {
    if let Some(f) = forced {
        return Ok(f.to_string());
    }
    if dst.manifest_types.is_empty() || dst.manifest_types.contains(&src) {
        return Ok(src.to_string());
    }
    dst.manifest_types
        .iter()
        .find(|t| is_list_type(t) == list)
        .map(|t| t.to_string())
        .ok_or_else(|| CopyError::NoAcceptedManifestType {
            destination: dst.name.clone(),
            from: src.to_string(),
        })
}

/// Plan copying `m` to a destination with `dst`'s capabilities; `claimed`
/// tells a layer's real compression where the source knows it better than
/// the media type.
pub fn plan_image(
    m: &ImageManifest,
    dst: &DestinationCaps,
    claimed: impl Fn(&Digest) -> Option<Compression>,
    opts: &CopyOptions,
) -> Result<ImagePlan, CopyError> {
    let mut target = target_type(m.mime(), dst, opts.format.map(ManifestFormat::image_type), false)?;
    let crypt = crypt_steps(m, opts)?;
    // Encrypted layers exist only in OCI manifests.
    let stays_encrypted = m
        .layers
        .iter()
        .zip(&crypt)
        .any(|(l, c)| *c == Crypt::Encrypt || (*c == Crypt::Keep && layer::is_encrypted(&l.media_type)));
    if stays_encrypted && target != media::OCI_MANIFEST {
        let oci_ok = dst.manifest_types.is_empty() || dst.manifest_types.contains(&media::OCI_MANIFEST);
        if opts.format == Some(ManifestFormat::V2s2) || !oci_ok {
            return Err(CopyError::EncryptionNeedsOci {
                destination: dst.name.clone(),
            });
        }
        target = media::OCI_MANIFEST.to_string();
    }
    // The changes the claims call for; with --preserve-digests any of them is an error.
    let mut compression = CompressionTarget {
        desired: dst.layers,
        settings: opts.compression.clone(),
        preserve: false,
    };
    // An encrypted layer's compression is known only once it is decrypted
    // (then by its media type): one copied as it is, is opaque.
    let have: Vec<Option<Compression>> = m
        .layers
        .iter()
        .zip(&crypt)
        .map(|(l, c)| match c {
            Crypt::Decrypt(_) => layer::decrypted_media_type(&l.media_type).and_then(Compression::of_media_type),
            _ if layer::is_encrypted(&l.media_type) => None,
            _ => claimed(&l.digest).or_else(|| Compression::of_media_type(&l.media_type)),
        })
        .collect();
    let changes: Vec<Option<(Compression, Compression)>> = have
        .iter()
        .map(|h| {
            let h = (*h)?;
            let to = compression.wanted(h);
            (to != h).then_some((h, to))
        })
        .collect();
    if changes.iter().flatten().any(|(_, to)| *to == Compression::Zstd) && target == media::DOCKER_V2S2 {
        // Docker schema2 has no zstd layer type.
        let oci_ok = dst.manifest_types.is_empty() || dst.manifest_types.contains(&media::OCI_MANIFEST);
        if opts.format == Some(ManifestFormat::V2s2) || !oci_ok {
            return Err(CopyError::ZstdNeedsOci);
        }
        target = media::OCI_MANIFEST.to_string();
    }
    let changes_layers = changes.iter().any(Option::is_some);
    let crypts = crypt.iter().any(|c| *c != Crypt::Keep);
    if opts.preserve_digests && (target != m.mime() || changes_layers || crypts) {
        return Err(CopyError::DigestWouldChange {
            destination: dst.name.clone(),
            change: if target != m.mime() {
                DigestChange::ManifestType {
                    from: m.mime().to_string(),
                    to: target,
                }
            } else if crypts {
                DigestChange::LayerEncryption
            } else {
                DigestChange::LayerCompression
            },
            reason: opts.keep_reason,
        });
    }
    compression.preserve = opts.preserve_digests;
    // A decrypted layer that turns out uncompressed is checked against its diff_id.
    let may_decompress = !opts.preserve_digests
        && (compression.wanted(Compression::Gzip) == Compression::None
            || crypt.iter().any(|c| matches!(c, Crypt::Decrypt(_))));
    let mut jobs: Vec<Job> = vec![];
    let layers = m.layers.iter().zip(have.iter().copied()).zip(crypt.iter().cloned());
    for ((d, h), c) in layers.chain(std::iter::once(((&m.config, None), Crypt::Keep))) {
        // Foreign (non-distributable) layers stay where their URLs point.
        if is_foreign(d) {
            continue;
        }
        match jobs.iter_mut().find(|j| j.info.digest == d.digest) {
            // One blob used twice is copied once: encrypted if either use asks.
            Some(j) if c == Crypt::Encrypt => j.crypt = Crypt::Encrypt,
            Some(_) => {}
            None => jobs.push(Job {
                info: BlobInfo {
                    digest: d.digest.clone(),
                    size: u64::try_from(d.size).ok(),
                    media_type: d.media_type.clone(),
                },
                claimed: h,
                crypt: c,
            }),
        }
    }
    Ok(ImagePlan {
        target,
        jobs,
        compression,
        changes,
        may_decompress,
        crypt,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Manifest;

    fn manifest(layer_types: &[&str]) -> ImageManifest {
        let layers: Vec<_> = layer_types
            .iter()
            .enumerate()
            .map(|(i, t)| serde_json::json!({"mediaType": t, "size": 10, "digest": format!("sha256:{:064x}", i + 1)}))
            .collect();
        let v = serde_json::json!({"schemaVersion": 2, "mediaType": media::DOCKER_V2S2,
            "config": {"mediaType": media::DOCKER_CONFIG, "size": 2, "digest": format!("sha256:{:064x}", 99)},
            "layers": layers});
        match Manifest::parse(v.to_string().as_bytes(), media::DOCKER_V2S2).unwrap() {
            Manifest::Image(m) => m,
            _ => unreachable!(),
        }
    }

    fn caps(types: Vec<&'static str>, layers: LayerCompression) -> DestinationCaps {
        DestinationCaps {
            manifest_types: types,
            layers,
            name: "dest".into(),
        }
    }

    #[test]
    fn a_registry_gets_uncompressed_layers_compressed_and_a_layout_converted() {
        let m = manifest(&[media::DOCKER_LAYER_TAR, media::DOCKER_LAYER_GZIP]);
        let p = plan_image(
            &m,
            &caps(vec![], LayerCompression::Compress),
            |_| None,
            &CopyOptions::default(),
        )
        .unwrap();
        assert_eq!(p.target, media::DOCKER_V2S2);
        assert_eq!(p.changes, vec![Some((Compression::None, Compression::Gzip)), None]);
        assert_eq!(p.jobs.len(), 3, "two layers and the config");
        assert!(p.jobs[2].claimed.is_none(), "the config has no compression");
        let oci = caps(vec![media::OCI_MANIFEST, media::OCI_INDEX], LayerCompression::Compress);
        let p = plan_image(&m, &oci, |_| None, &CopyOptions::default()).unwrap();
        assert_eq!(p.target, media::OCI_MANIFEST);
        assert!(p.rewrites(media::DOCKER_V2S2));
    }

    #[test]
    fn the_sources_word_on_compression_beats_the_media_type() {
        // A docker-archive's layers say gzip but are uncompressed.
        let m = manifest(&[media::DOCKER_LAYER_GZIP]);
        let p = plan_image(
            &m,
            &caps(vec![], LayerCompression::Compress),
            |_| Some(Compression::None),
            &CopyOptions::default(),
        )
        .unwrap();
        assert_eq!(p.changes, vec![Some((Compression::None, Compression::Gzip))]);
        let p = plan_image(
            &m,
            &caps(vec![], LayerCompression::Preserve),
            |_| Some(Compression::None),
            &CopyOptions::default(),
        )
        .unwrap();
        assert_eq!(p.changes, vec![None], "dir: keeps the bytes and the manifest");
        assert!(!p.rewrites(media::DOCKER_V2S2));
    }

    #[test]
    fn zstd_forces_oci_and_preserve_digests_refuses_any_change() {
        let m = manifest(&[media::DOCKER_LAYER_GZIP]);
        let mut opts = CopyOptions::default();
        opts.compression.format = Some(crate::options::CompressionFormat::Zstd);
        let p = plan_image(&m, &caps(vec![], LayerCompression::Preserve), |_| None, &opts).unwrap();
        assert_eq!(p.target, media::OCI_MANIFEST);
        opts.format = Some(ManifestFormat::V2s2);
        assert!(plan_image(&m, &caps(vec![], LayerCompression::Preserve), |_| None, &opts).is_err());
        let preserve = CopyOptions {
            preserve_digests: true,
            ..CopyOptions::default()
        };
        let m = manifest(&[media::DOCKER_LAYER_TAR]);
        let e = plan_image(&m, &caps(vec![], LayerCompression::Compress), |_| None, &preserve).unwrap_err();
        assert!(e.to_string().contains("--preserve-digests"), "{e}");
        assert_eq!(
            CompressionTarget {
                desired: LayerCompression::Compress,
                settings: Default::default(),
                preserve: true
            }
            .wanted(Compression::None),
            Compression::None
        );
    }
}
