//! Copying one image (a top-level image, or one instance of a list): plan,
//! copy its blobs, then the manifest.

use super::layers::copy_blobs;
use super::plan::{DestinationCaps, plan_image};
use super::rewrite::finished_manifest;
use super::signatures::{self, SignatureContext};
use super::{CopyError, CopyOptions, ProgressEvent, Stats, read_config};
use crate::digest::Digest;
use crate::manifest::{Manifest, media};
use crate::transport::{ImageDestination, ImageSource, TransportError};
use bytes::Bytes;

/// What the plan needs of `dst`.
pub fn caps(dst: &dyn ImageDestination) -> DestinationCaps {
    DestinationCaps {
        manifest_types: dst.supported_manifest_types(),
        layers: dst.desired_layer_compression(),
        name: dst.describe(),
    }
}

/// What the image being copied is, at the source and at the destination.
pub enum As {
    /// The source's top-level image, written as the destination's.
    TopLevel,
    /// An instance of the source's list (by digest), written as the
    /// destination's top-level image.
    Chosen(Option<Digest>),
    /// An instance of the source's list (by digest), written as an instance.
    Instance(Digest),
}

/// Copy one image's blobs, then return the manifest to write (converted and
/// with rewritten layer descriptors where compression changed) and the
/// signatures the caller stores with it. The policy judges the image first.
/// Instance manifests (`As::Instance`) and their signatures are written
/// here; the top-level ones by the caller.
#[allow(clippy::too_many_arguments)]
pub async fn copy_single(
    src: &dyn ImageSource,
    dst: &dyn ImageDestination,
    bytes: Bytes,
    mime: &str,
    role: As,
    opts: &CopyOptions,
    stats: &Stats,
    ctx: &SignatureContext,
) -> Result<(Bytes, String, Vec<Bytes>), CopyError> {
    let source_instance = match &role {
        As::TopLevel => None,
        As::Chosen(d) => d.clone(),
        As::Instance(d) => Some(d.clone()),
    };
    let sigs = signatures::read(ctx, src, source_instance.as_ref(), &bytes, opts).await?;
    stats.note_verified(signatures::admit(ctx, &sigs, &bytes)?);
    let carried = signatures::carry(dst, sigs, opts)?;
    let kept = signatures::keeping(&carried, opts);
    let opts = kept.as_ref().unwrap_or(opts);
    if mime == media::DOCKER_V2S1 || mime == media::DOCKER_V2S1_SIGNED {
        // Top-level schema1 images are converted (see schema1.rs); inside a
        // list there is no such thing in practice.
        return Err(CopyError::Schema1InList { image: src.describe() });
    }
    let Manifest::Image(m) = Manifest::parse(&bytes, mime)? else {
        return Err(CopyError::NestedList { image: src.describe() });
    };
    let (m, bytes) = with_layers_for_copy(src, dst, m, bytes, opts)?;
    let plan = plan_image(&m, &caps(dst), |d| src.layer_compression(d), opts)?;
    let diff_ids: Vec<Option<Digest>> = if plan.may_decompress {
        let config = read_config(src, &m.config).await?;
        let v: serde_json::Value =
            serde_json::from_slice(&config).map_err(|source| TransportError::MalformedConfig {
                digest: m.config.digest.clone(),
                source,
            })?;
        let ids = v
            .pointer("/rootfs/diff_ids")
            .and_then(|x| x.as_array())
            .cloned()
            .unwrap_or_default();
        ids.iter().map(|d| d.as_str().and_then(|s| s.parse().ok())).collect()
    } else {
        vec![]
    };
    if let Some(p) = &opts.progress {
        p.event(ProgressEvent::ImageBlobs {
            count: plan.jobs.len(),
            bytes: plan.jobs.iter().filter_map(|j| j.info.size).sum(),
        });
    }
    let written = copy_blobs(src, dst, &plan, opts, stats).await?;
    let (out, target) = finished_manifest(src, &m, bytes, &plan, &written, &diff_ids)?;
    if let As::Instance(_) = role {
        let digest = Digest::sha256_of(&out);
        dst.put_manifest(&out, &target, Some(&digest)).await?;
        signatures::store(ctx, dst, carried, &out, Some(&digest), opts).await?;
        return Ok((out, target, vec![]));
    }
    Ok((out, target, carried))
}

/// `m` with the layer descriptors the source copies instead of the
/// manifest's (and its bytes, re-serialized), where it has such: a
/// containers-storage image's layers are its uncompressed diffs. As
/// containers/image's `UpdateLayerInfos`, annotations and URLs go with the
/// old descriptors.
/// The manifest changes, so digests that must stay (signatures,
/// `--preserve-digests`) refuse the copy.
pub fn with_layers_for_copy(
    src: &dyn ImageSource,
    dst: &dyn ImageDestination,
    mut m: crate::manifest::ImageManifest,
    bytes: Bytes,
    opts: &CopyOptions,
) -> Result<(crate::manifest::ImageManifest, Bytes), CopyError> {
    let Some(infos) = src.layers_for_copy(&m)? else {
        return Ok((m, bytes));
    };
    if opts.preserve_digests {
        return Err(CopyError::DigestWouldChange {
            destination: dst.describe(),
            change: super::DigestChange::LayerCompression,
            reason: opts.keep_reason,
        });
    }
    for (l, info) in m.layers.iter_mut().zip(infos) {
        l.size = info
            .size
            .and_then(|s| i64::try_from(s).ok())
            .ok_or(TransportError::UnknownSize(info.digest.clone()))?;
        l.digest = info.digest;
        l.media_type = info.media_type;
        l.annotations = None;
        l.urls = None;
    }
    let bytes = Bytes::from(crate::manifest::to_bytes(&m));
    Ok((m, bytes))
}
