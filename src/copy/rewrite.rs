//! The manifest an image copy writes: the source's, converted to the
//! plan's type, with the descriptors of layers whose bytes changed (and the
//! media types of layers whose compression was misdeclared) rewritten.
//! Unchanged, it is the source's bytes exactly, so the digest is kept.

use super::CopyError;
use super::layers::Written;
use super::plan::ImagePlan;
use crate::compression::Compression;
use crate::digest::Digest;
use crate::manifest::{self, ImageManifest};
use crate::transport::{ImageSource, TransportError};
use bytes::Bytes;

/// The manifest to write for `m` (whose bytes are `source`) after its blobs
/// were `written`; `diff_ids` from the config check decompressed layers.
pub fn finished_manifest(
    src: &dyn ImageSource,
    m: &ImageManifest,
    source: Bytes,
    plan: &ImagePlan,
    written: &[Written],
    diff_ids: &[Option<Digest>],
) -> Result<(Bytes, String), CopyError> {
    let target = &plan.target;
    let of = |d: &Digest| written.iter().find(|w| w.source == *d);
    let digests_change = m
        .layers
        .iter()
        .any(|l| of(&l.digest).is_some_and(|w| w.digest != l.digest));
    let rewritten = target != m.mime() || digests_change;
    if !rewritten {
        return Ok((source, target.clone()));
    }
    let mut out = if target == m.mime() {
        m.clone()
    } else {
        m.convert(target)?
    };
    for (i, layer) in out.layers.iter_mut().enumerate() {
        let claimed = Compression::of_media_type(&layer.media_type);
        let written = of(&layer.digest);
        // What the layer's bytes at the destination are, where known.
        let actual = written
            .and_then(|w| w.compression)
            .or_else(|| src.layer_compression(&layer.digest));
        if let Some(w) = written.filter(|w| w.digest != layer.digest) {
            if w.compression == Some(Compression::None)
                && let Some(Some(want)) = diff_ids.get(i)
                && *want != w.digest
            {
                return Err(CopyError::Transport(TransportError::DiffIdMismatch {
                    layer: layer.digest.clone(),
                    actual: w.digest.clone(),
                    expected: want.clone(),
                }));
            }
            layer.digest = w.digest.clone();
            layer.size = w.size as i64;
            layer.annotations = None;
        }
        if let Some(a) = actual.filter(|a| claimed != Some(*a)) {
            layer.media_type = a.layer_media_type(target).to_string();
        }
    }
    Ok((Bytes::from(manifest::to_bytes(&out)), target.clone()))
}
