//! Copying a manifest list / image index: its instances first (each with
//! [`super::single::copy_single`]), the list last; or only the list
//! (`--multi-arch=index-only`), or a subset of it (`--platform`).

use super::plan::target_type;
use super::signatures::SignatureContext;
use super::single::{As, caps, copy_single};
use super::{CopyError, CopyOptions, DigestChange, ManifestFormat, MultiArch, ProgressEvent, Stats};
use crate::digest::Digest;
use crate::manifest::{self, ImageIndex, Manifest, Platform, is_list_type, media};
use crate::transport::{ImageDestination, ImageSource};
use bytes::Bytes;

/// The instances of `index` for `platforms`, as the list kopeo writes when
/// copying only those (`--platform`). Requested platforms the list lacks are
/// skipped with a warning; none at all is an error.
pub fn platform_subset(index: &ImageIndex, platforms: &[Platform]) -> Result<ImageIndex, CopyError> {
    let mut out = index.clone();
    out.media_type = Some(index.mime().to_string());
    out.manifests.retain(|d| {
        d.platform
            .as_ref()
            .is_some_and(|p| platforms.iter().any(|want| want.accepts(p)))
    });
    for want in platforms {
        if !out
            .manifests
            .iter()
            .any(|d| d.platform.as_ref().is_some_and(|p| want.accepts(p)))
        {
            tracing::warn!(platform = %want, "the source list has no image for this platform");
        }
    }
    if out.manifests.is_empty() {
        let wanted: Vec<String> = platforms.iter().map(ToString::to_string).collect();
        return Err(CopyError::NoWantedPlatform {
            platforms: wanted.join(", "),
        });
    }
    Ok(out)
}

/// Copy a list's instances (for `All`) and return the list to write.
#[allow(clippy::too_many_arguments)]
pub(super) async fn copy_list(
    src: &dyn ImageSource,
    dst: &dyn ImageDestination,
    bytes: &Bytes,
    index: &ImageIndex,
    mode: MultiArch,
    opts: &CopyOptions,
    stats: &Stats,
    ctx: &SignatureContext,
) -> Result<(Bytes, String), CopyError> {
    if !dst.supports_lists() {
        // Every destination describes itself as `transport:reference`.
        let transport = dst.describe().split(':').next().unwrap_or_default().to_string();
        return Err(CopyError::ListNotStorable { transport });
    }
    let mut target = target_type(
        index.mime(),
        &caps(dst),
        opts.format.map(ManifestFormat::list_type),
        true,
    )?;
    // Encrypted instances are OCI manifests: the list becomes an OCI index.
    if opts.encryption.is_some() && mode == MultiArch::All && target != media::OCI_INDEX {
        let types = dst.supported_manifest_types();
        if opts.format == Some(ManifestFormat::V2s2) || !(types.is_empty() || types.contains(&media::OCI_INDEX)) {
            return Err(CopyError::EncryptionNeedsOci {
                destination: dst.describe(),
            });
        }
        target = media::OCI_INDEX.to_string();
    }
    let instance_format = if target == media::OCI_INDEX {
        ManifestFormat::Oci
    } else {
        ManifestFormat::V2s2
    };
    let mut out = index.clone();
    out.media_type = Some(target.clone());
    let total = index.manifests.len();
    if mode == MultiArch::All {
        if let Some(p) = &opts.progress {
            p.event(ProgressEvent::CopyingImages { count: total, total });
        }
        // A list kept whole (preserved digests, or its signatures) keeps
        // its instances whole too: their digests are in it.
        let instance_opts = CopyOptions {
            format: Some(instance_format),
            ..opts.clone()
        };
        for (i, desc) in out.manifests.iter_mut().enumerate() {
            if let Some(p) = &opts.progress {
                p.event(ProgressEvent::Image {
                    digest: &desc.digest,
                    n: i + 1,
                    count: total,
                });
            }
            let (ib, im) = src.manifest(Some(&desc.digest)).await?;
            if is_list_type(&im) {
                return Err(CopyError::NestedList { image: src.describe() });
            }
            let role = As::Instance(desc.digest.clone());
            let (nb, nm, _) = copy_single(src, dst, ib, &im, role, &instance_opts, stats, ctx).await?;
            desc.digest = Digest::sha256_of(&nb);
            desc.size = nb.len() as i64;
            desc.media_type = nm;
        }
    } else {
        for desc in &mut out.manifests {
            if desc.media_type == media::DOCKER_V2S2 || desc.media_type == media::OCI_MANIFEST {
                let want = instance_format.image_type();
                if desc.media_type != want {
                    return Err(CopyError::IndexOnlyConversion { to: want.to_string() });
                }
            }
        }
    }
    let unchanged = target == index.mime()
        && out.manifests == index.manifests
        && Manifest::parse(bytes, index.mime())
            .is_ok_and(|m| matches!(m, Manifest::Index(i) if i.manifests == index.manifests));
    if unchanged {
        return Ok((bytes.clone(), target));
    }
    if opts.preserve_digests {
        return Err(CopyError::DigestWouldChange {
            destination: dst.describe(),
            change: DigestChange::List,
            reason: opts.keep_reason,
        });
    }
    if opts.decryption.is_some() {
        super::encrypted_from::remove(&mut out.annotations);
    }
    if target == media::DOCKER_LIST {
        out.annotations = None;
        out.artifact_type = None;
        out.subject = None;
    }
    Ok((Bytes::from(manifest::to_bytes(&out)), target))
}
