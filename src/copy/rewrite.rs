//! The manifest an image copy writes: the source's, converted to the
//! plan's type, with the descriptors of layers whose bytes changed (and the
//! media types of layers whose compression was misdeclared) rewritten.
//! Unchanged, it is the source's bytes exactly, so the digest is kept.

use super::CopyError;
use super::blob::CryptDone;
use super::layers::Written;
use super::plan::ImagePlan;
use crate::compression::Compression;
use crate::digest::Digest;
use crate::encryption;
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
        .any(|l| of(&l.digest).is_some_and(|w| w.digest != l.digest || w.crypt.is_some()));
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
        let written = of(&layer.digest);
        let crypt = written.and_then(|w| w.crypt.as_ref());
        if let Some(CryptDone::Decrypted) = crypt {
            // The plaintext's type and the annotations it had before ocicrypt's.
            if let Some(plain) = encryption::layer::decrypted_media_type(&layer.media_type) {
                layer.media_type = plain.to_string();
            }
            layer.annotations = layer
                .annotations
                .as_ref()
                .and_then(encryption::layer::without_encryption);
        }
        let claimed = Compression::of_media_type(&layer.media_type);
        // What the layer's bytes at the destination are (before encryption), where known.
        let actual = written
            .and_then(|w| w.compression)
            .or_else(|| src.layer_compression(&layer.digest));
        if let Some(w) = written.filter(|w| w.digest != layer.digest || w.crypt.is_some()) {
            let plaintext = !matches!(w.crypt, Some(CryptDone::Encrypted(_)));
            if plaintext
                && w.compression == Some(Compression::None)
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
            // Recompressed bytes lose the source's layer annotations; an
            // encrypted or decrypted layer keeps them, as containers/image does.
            if crypt.is_none() {
                layer.annotations = None;
            }
        }
        if let Some(a) = actual.filter(|a| claimed != Some(*a)) {
            layer.media_type = a.layer_media_type(target).to_string();
        }
        if let Some(CryptDone::Encrypted(enc)) = crypt {
            layer.media_type = encryption::layer::encrypted_media_type(&layer.media_type).ok_or_else(|| {
                CopyError::NoEncryptedType {
                    media_type: layer.media_type.clone(),
                }
            })?;
            let mut a = layer.annotations.take().unwrap_or_default();
            a.extend(enc.iter().map(|(k, v)| (k.clone(), v.clone())));
            layer.annotations = Some(a);
        }
    }
    if written.iter().any(|w| w.crypt == Some(CryptDone::Decrypted)) {
        // Decrypted, the image is the original again: without the marker
        // of the encrypted copy it was.
        super::encrypted_from::remove(&mut out.annotations);
    }
    Ok((Bytes::from(manifest::to_bytes(&out)), target.clone()))
}
