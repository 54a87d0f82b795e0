//! The copy pipeline: plan → blobs in parallel → config → manifest → index.
//!
//! Every blob streams from source to destination exactly once, hashed in
//! flight; a manifest is written only after all of its blobs are in place,
//! and a list's instances before the list. Memory stays bounded by
//! `parallel` × the transports' chunk sizes, whatever the image size.

mod blob;
pub mod compress;
mod schema1;
pub mod settings;

pub use blob::{BlobOutcome, Transform, copy_blob, verify};
pub use compress::Compression;

use crate::digest::Digest;
use crate::manifest::{self, Descriptor, ImageIndex, Manifest, ManifestError, Platform, is_list_type, media};
use crate::reference::ImageReference;
use crate::registry::RetryOptions;
use crate::transport::{self, BlobInfo, ImageDestination, ImageSource, LayerCompression, OpenOptions, TransportError};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicU64, Ordering};

/// containers/image's default number of blobs copied at once.
pub const DEFAULT_PARALLEL_COPIES: usize = 6;

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

/// Manifest format to write (`--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Oci,
    V2s2,
}

impl Format {
    fn image_type(self) -> &'static str {
        match self {
            Format::Oci => media::OCI_MANIFEST,
            Format::V2s2 => media::DOCKER_V2S2,
        }
    }
    fn list_type(self) -> &'static str {
        match self {
            Format::Oci => media::OCI_INDEX,
            Format::V2s2 => media::DOCKER_LIST,
        }
    }
}

/// Something a progress display wants to know.
#[derive(Debug)]
pub enum ProgressEvent<'a> {
    /// A list is being copied: `count` of its `total` images.
    CopyingImages {
        count: usize,
        total: usize,
    },
    /// Instance `n` (1-based) of a list.
    Image {
        digest: &'a Digest,
        n: usize,
        count: usize,
    },
    /// An image's blobs are known: `count` distinct blobs of `bytes` in all
    /// (sizes as the manifest gives them).
    ImageBlobs {
        count: usize,
        bytes: u64,
    },
    BlobStart {
        info: &'a BlobInfo,
    },
    BlobBytes {
        digest: &'a Digest,
        bytes: u64,
    },
    /// A transfer failed and starts again.
    BlobRestart {
        digest: &'a Digest,
    },
    BlobDone {
        digest: &'a Digest,
        reused: bool,
    },
    WritingManifest,
}

/// Receives progress events from a copy (from several tasks at once).
pub trait Progress: Send + Sync {
    /// Handle one event.
    fn event(&self, event: ProgressEvent<'_>);
}

/// What to copy and how; shared by the CLI flags and the operator's specs.
#[derive(Clone, Default)]
pub struct CopyOptions {
    pub multi_arch: MultiArch,
    /// Platform to select from a list (`--override-os/arch/variant`); the host's when unset.
    pub platform: Option<Platform>,
    /// Copy these platforms of a list and a reduced list (`--platform`); overrides `multi_arch`.
    pub platforms: Vec<Platform>,
    pub format: Option<Format>,
    /// Fail rather than change any digest.
    pub preserve_digests: bool,
    pub remove_signatures: bool,
    /// Blobs copied at once (`--image-parallel-copies`); 0 means the default.
    pub parallel: usize,
    pub retry: RetryOptions,
    /// Layer compression changes.
    pub compression: CompressionOptions,
    pub progress: Option<Arc<dyn Progress>>,
}

/// Why a copy failed.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("{0}")]
    Unsupported(String),
}

impl CopyError {
    /// True when the source image does not exist (skopeo exits 2).
    pub fn is_image_not_found(&self) -> bool {
        matches!(self, CopyError::Transport(e) if e.is_image_not_found())
    }
}

/// What a finished copy did.
#[derive(Debug, Clone)]
pub struct CopyReport {
    /// Digest of the top-level manifest written.
    pub manifest_digest: Digest,
    pub manifest: Bytes,
    pub blobs_copied: u64,
    pub blobs_reused: u64,
    pub bytes_copied: u64,
}

#[derive(Default)]
struct Stats {
    copied: AtomicU64,
    reused: AtomicU64,
    bytes: AtomicU64,
}

/// Open both references and copy.
pub async fn copy_image(
    src: &ImageReference,
    dst: &ImageReference,
    src_opts: &OpenOptions,
    dst_opts: &OpenOptions,
    opts: &CopyOptions,
) -> Result<CopyReport, CopyError> {
    let source = transport::open_source(src, src_opts).await?;
    let dest = transport::open_destination(dst, dst_opts).await?;
    copy(source.as_ref(), dest.as_ref(), opts).await
}

/// Copy the image `src` names into `dst` and commit it.
pub async fn copy(
    src: &dyn ImageSource,
    dst: &dyn ImageDestination,
    opts: &CopyOptions,
) -> Result<CopyReport, CopyError> {
    let stats = Stats::default();
    let (bytes, mime) = src.manifest(None).await?;
    let (out, out_mime) = if is_list_type(&mime) {
        let Manifest::Index(index) = Manifest::parse(&bytes, &mime)? else {
            return Err(CopyError::Unsupported(format!("{mime} is not a list")));
        };
        match opts.multi_arch {
            _ if !opts.platforms.is_empty() => {
                let subset = platform_subset(&index, &opts.platforms)?;
                copy_list(src, dst, &bytes, &subset, MultiArch::All, opts, &stats).await?
            }
            MultiArch::System => {
                let want = opts.platform.clone().unwrap_or_else(manifest::host_platform);
                let chosen = manifest::choose_instance(&index, &want)?;
                let (ib, im) = src.manifest(Some(&chosen.digest)).await?;
                copy_single(src, dst, ib, &im, false, opts, &stats).await?
            }
            mode => copy_list(src, dst, &bytes, &index, mode, opts, &stats).await?,
        }
    } else if mime == media::DOCKER_V2S1 || mime == media::DOCKER_V2S1_SIGNED {
        let (s2, s2_mime) = schema1::copy(src, dst, &bytes, opts, &stats).await?;
        // The blobs are in place: finish as any schema2 image (converted
        // further if the destination wants another format).
        let Manifest::Image(m) = Manifest::parse(&s2, &s2_mime)? else {
            return Err(CopyError::Unsupported("schema1 conversion produced a list".into()));
        };
        let target = target_type(&s2_mime, dst, opts.format.map(Format::image_type), false)?;
        if target == s2_mime {
            (s2, s2_mime)
        } else {
            (Bytes::from(manifest::to_bytes(&m.convert(&target)?)), target)
        }
    } else {
        copy_single(src, dst, bytes, &mime, false, opts, &stats).await?
    };
    if let Some(p) = &opts.progress {
        p.event(ProgressEvent::WritingManifest);
    }
    dst.put_manifest(&out, &out_mime, None).await?;
    dst.commit().await?;
    Ok(CopyReport {
        manifest_digest: Digest::sha256_of(&out),
        manifest: out,
        blobs_copied: stats.copied.load(Ordering::Relaxed),
        blobs_reused: stats.reused.load(Ordering::Relaxed),
        bytes_copied: stats.bytes.load(Ordering::Relaxed),
    })
}

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
        return Err(CopyError::Unsupported(format!(
            "the source list has none of the platforms {}",
            wanted.join(", ")
        )));
    }
    Ok(out)
}

/// Choose the media type to write: `--format`, else the source's if the
/// destination takes it, else the destination's first choice of that kind.
fn target_type(
    src: &str,
    dst: &dyn ImageDestination,
    forced: Option<&'static str>,
    list: bool,
) -> Result<String, CopyError> {
    if let Some(f) = forced {
        return Ok(f.to_string());
    }
    let supported = dst.supported_manifest_types();
    if supported.is_empty() || supported.contains(&src) {
        return Ok(src.to_string());
    }
    supported
        .iter()
        .find(|t| is_list_type(t) == list)
        .map(|t| t.to_string())
        .ok_or_else(|| {
            CopyError::Unsupported(format!(
                "{} accepts none of the manifest types kopeo can convert {src} to",
                dst.describe()
            ))
        })
}

/// What to do with each layer's compression (`--dest-compress`, …).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompressionOptions {
    /// `--dest-compress`: compress uncompressed layers even where the destination keeps them as they are.
    pub compress: bool,
    /// `--dest-decompress`: store layers uncompressed.
    pub decompress: bool,
    /// `--dest-compress-format`: the format to compress to; layers compressed otherwise are recompressed.
    pub format: Option<Compression>,
    /// `--dest-compress-level`.
    pub level: Option<i32>,
}

/// The compression a layer should have at `dst`.
fn wanted_compression(have: Compression, dst: LayerCompression, o: &CompressionOptions) -> Compression {
    if o.decompress || dst == LayerCompression::Decompress {
        return Compression::None;
    }
    match (have, o.format) {
        (Compression::None, f) if o.compress || dst == LayerCompression::Compress => f.unwrap_or(Compression::Gzip),
        (Compression::None, _) => Compression::None,
        (h, Some(f)) if f != h => f,
        (h, _) => h,
    }
}

/// Read a config blob (small) into memory, verified in flight.
pub async fn read_config(src: &dyn ImageSource, d: &Descriptor) -> Result<Vec<u8>, TransportError> {
    let info = BlobInfo {
        digest: d.digest.clone(),
        size: u64::try_from(d.size).ok(),
        media_type: d.media_type.clone(),
    };
    let mut stream = verify(src.blob(&info).await?, &info, Arc::new(AtomicBool::new(false)), None);
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        buf.extend_from_slice(&chunk?);
        if buf.len() > 64 << 20 {
            return Err(TransportError::Invalid(format!(
                "config {} is larger than 64 MiB",
                d.digest
            )));
        }
    }
    Ok(buf)
}

/// Copy one image's blobs, then return the manifest to write (converted and
/// with rewritten layer descriptors where compression changed). Instance
/// manifests (`as_instance`) are written here; the top-level one by the caller.
async fn copy_single(
    src: &dyn ImageSource,
    dst: &dyn ImageDestination,
    bytes: Bytes,
    mime: &str,
    as_instance: bool,
    opts: &CopyOptions,
    stats: &Stats,
) -> Result<(Bytes, String), CopyError> {
    if mime == media::DOCKER_V2S1 || mime == media::DOCKER_V2S1_SIGNED {
        return Err(CopyError::Unsupported(format!(
            "{} uses Docker schema1 manifests, which kopeo cannot copy yet",
            src.describe()
        )));
    }
    let Manifest::Image(m) = Manifest::parse(&bytes, mime)? else {
        return Err(CopyError::Unsupported(format!(
            "nested manifest list in {}",
            src.describe()
        )));
    };
    let mut target = target_type(m.mime(), dst, opts.format.map(Format::image_type), false)?;

    // Plan each layer's compression.
    let desired = dst.desired_layer_compression();
    let transforms: Vec<Option<Transform>> = m
        .layers
        .iter()
        .map(|l| {
            let have = Compression::of_media_type(&l.media_type)?;
            let to = wanted_compression(have, desired, &opts.compression);
            (to != have).then_some(Transform {
                from: have,
                to,
                level: opts.compression.level,
            })
        })
        .collect();
    let zstd = transforms.iter().flatten().any(|t| t.to == Compression::Zstd);
    if zstd && target == media::DOCKER_V2S2 {
        // Docker schema2 has no zstd layer type.
        if opts.format == Some(Format::V2s2)
            || !(dst.supported_manifest_types().is_empty()
                || dst.supported_manifest_types().contains(&media::OCI_MANIFEST))
        {
            return Err(CopyError::Unsupported(
                "zstd-compressed layers need an OCI manifest, but the destination or --format requires Docker schema2"
                    .into(),
            ));
        }
        target = media::OCI_MANIFEST.to_string();
    }
    let changes_layers = transforms.iter().any(Option::is_some);
    if opts.preserve_digests && (target != m.mime() || changes_layers) {
        return Err(CopyError::Unsupported(format!(
            "writing {} requires {}, which changes the image's digest, but --preserve-digests was given",
            dst.describe(),
            if target != m.mime() {
                format!("converting the manifest from {} to {target}", m.mime())
            } else {
                "changing layer compression".to_string()
            }
        )));
    }
    let diff_ids: Vec<Option<Digest>> = if transforms.iter().flatten().any(|t| t.to == Compression::None) {
        let config = read_config(src, &m.config).await?;
        let v: serde_json::Value = serde_json::from_slice(&config)
            .map_err(|e| TransportError::Invalid(format!("parsing config {}: {e}", m.config.digest)))?;
        let ids = v
            .pointer("/rootfs/diff_ids")
            .and_then(|x| x.as_array())
            .cloned()
            .unwrap_or_default();
        ids.iter().map(|d| d.as_str().and_then(|s| s.parse().ok())).collect()
    } else {
        vec![]
    };

    // Distinct blobs: layers (with their transforms) then the config.
    let mut jobs: Vec<(BlobInfo, Option<Transform>)> = vec![];
    for (d, t) in m
        .layers
        .iter()
        .zip(transforms.iter().copied())
        .chain(std::iter::once((&m.config, None)))
    {
        if d.urls.is_some() && (d.media_type.contains("foreign") || d.media_type.contains("nondistributable")) {
            continue;
        }
        if !jobs.iter().any(|(b, _)| b.digest == d.digest) {
            jobs.push((
                BlobInfo {
                    digest: d.digest.clone(),
                    size: u64::try_from(d.size).ok(),
                    media_type: d.media_type.clone(),
                },
                t,
            ));
        }
    }
    if let Some(p) = &opts.progress {
        p.event(ProgressEvent::ImageBlobs {
            count: jobs.len(),
            bytes: jobs.iter().filter_map(|(b, _)| b.size).sum(),
        });
    }
    let from = src.registry_location();
    let parallel = match (dst.concurrent_blobs(), opts.parallel) {
        (false, _) => 1,
        (true, 0) => DEFAULT_PARALLEL_COPIES,
        (true, n) => n,
    };
    // Owned items: a closure over references here is not general enough for
    // callers that need the whole copy future to be Send (the controllers).
    let from = &from;
    let written: Vec<(Digest, Digest, u64)> = futures::stream::iter(jobs)
        .map(|(info, t)| async move {
            let out = match copy_blob(src, dst, &info, from.as_ref(), opts, t).await? {
                BlobOutcome::Reused => {
                    stats.reused.fetch_add(1, Ordering::Relaxed);
                    (info.digest.clone(), info.digest.clone(), info.size.unwrap_or(0))
                }
                BlobOutcome::Copied { digest, size } => {
                    stats.bytes.fetch_add(size, Ordering::Relaxed);
                    stats.copied.fetch_add(1, Ordering::Relaxed);
                    (info.digest.clone(), digest, size)
                }
            };
            Ok::<_, TransportError>(out)
        })
        .buffered(parallel)
        .try_collect()
        .await?;

    let mut out_m = if target == m.mime() {
        m.clone()
    } else {
        m.convert(&target)?
    };
    if changes_layers {
        for (i, (layer, t)) in out_m.layers.iter_mut().zip(transforms.iter()).enumerate() {
            let Some(t) = t else { continue };
            let Some((_, new, size)) = written.iter().find(|(old, _, _)| *old == layer.digest) else {
                continue;
            };
            if t.to == Compression::None
                && let Some(Some(want)) = diff_ids.get(i)
                && want != new
            {
                return Err(CopyError::Transport(TransportError::Invalid(format!(
                    "layer {} decompresses to {new}, but the image config says {want}",
                    layer.digest
                ))));
            }
            layer.digest = new.clone();
            layer.size = *size as i64;
            layer.media_type = t.to.layer_media_type(&target).to_string();
            layer.annotations = None;
        }
    }
    let out = if target == m.mime() && !changes_layers {
        bytes
    } else {
        Bytes::from(manifest::to_bytes(&out_m))
    };
    if as_instance {
        dst.put_manifest(&out, &target, Some(&Digest::sha256_of(&out))).await?;
    }
    Ok((out, target))
}

/// Copy a list's instances (for `All`) and return the list to write.
async fn copy_list(
    src: &dyn ImageSource,
    dst: &dyn ImageDestination,
    bytes: &Bytes,
    index: &ImageIndex,
    mode: MultiArch,
    opts: &CopyOptions,
    stats: &Stats,
) -> Result<(Bytes, String), CopyError> {
    if !dst.supports_lists() {
        return Err(CopyError::Unsupported(format!(
            "{} cannot store a manifest list; copy one platform instead",
            dst.describe()
        )));
    }
    let target = target_type(index.mime(), dst, opts.format.map(Format::list_type), true)?;
    let instance_format = if target == media::OCI_INDEX {
        Format::Oci
    } else {
        Format::V2s2
    };
    let mut out = index.clone();
    out.media_type = Some(target.clone());
    let total = index.manifests.len();
    if mode == MultiArch::All {
        if let Some(p) = &opts.progress {
            p.event(ProgressEvent::CopyingImages { count: total, total });
        }
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
                return Err(CopyError::Unsupported(format!(
                    "nested manifest list in {}",
                    src.describe()
                )));
            }
            let (nb, nm) = copy_single(src, dst, ib, &im, true, &instance_opts, stats).await?;
            desc.digest = Digest::sha256_of(&nb);
            desc.size = nb.len() as i64;
            desc.media_type = nm;
        }
    } else {
        for desc in &mut out.manifests {
            if desc.media_type == media::DOCKER_V2S2 || desc.media_type == media::OCI_MANIFEST {
                let want = instance_format.image_type();
                if desc.media_type != want {
                    return Err(CopyError::Unsupported(format!(
                        "--multi-arch=index-only cannot convert the list's instances to {want}; copy with --all"
                    )));
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
        return Err(CopyError::Unsupported(format!(
            "writing {} requires changing the manifest list, which changes its digest, but --preserve-digests was given",
            dst.describe()
        )));
    }
    if target == media::DOCKER_LIST {
        out.annotations = None;
        out.artifact_type = None;
        out.subject = None;
    }
    Ok((Bytes::from(manifest::to_bytes(&out)), target))
}
