//! The copy pipeline: plan → blobs in parallel → config → manifest → index.
//!
//! Every blob streams from source to destination exactly once, hashed in
//! flight; a manifest is written only after all of its blobs are in place,
//! and a list's instances before the list. Memory stays bounded by
//! `parallel` × the transports' chunk sizes, whatever the image size.

mod blob;
pub mod compress;
pub mod encrypted_from;
mod error;
mod layers;
mod list;
pub mod plan;
mod present;
mod referrers;
mod rewrite;
pub(crate) mod schema1;
pub(crate) use schema1::parse as parse_schema1;
mod signatures;
mod single;
pub use signatures::SignatureContext;

pub use blob::{BlobOutcome, copy_blob, prefetch, verify};
pub use compress::Compression;
pub use error::{CopyError, DigestChange, KeepReason};
pub use list::platform_subset;

use crate::digest::Digest;
use crate::manifest::{self, Descriptor, Manifest, Platform, is_list_type, media};
pub use crate::options::{CompressionSettings, ManifestFormat, MultiArch};
use crate::reference::ImageReference;
use crate::registry::RetryOptions;
use crate::transport::{self, BlobInfo, ImageDestination, ImageSource, OpenOptions, TransportError};
use bytes::Bytes;
use futures::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// containers/image's default number of blobs copied at once.
pub const DEFAULT_PARALLEL_COPIES: usize = 6;

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
    /// A step worth a line of its own (signing, storing signatures).
    Note(&'static str),
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
    pub format: Option<ManifestFormat>,
    /// Fail rather than change any digest.
    pub preserve_digests: bool,
    pub remove_signatures: bool,
    /// Blobs copied at once (`--image-parallel-copies`); 0 means the default.
    pub parallel: usize,
    pub retry: RetryOptions,
    /// Layer compression changes.
    pub compression: CompressionSettings,
    pub progress: Option<Arc<dyn Progress>>,
    /// The caller knows the destination holds nothing under this name (sync
    /// listed the repository's tags): the "already there" check is skipped.
    pub destination_absent: bool,
    /// The trust policy for the source (policy.json); `None` accepts anything.
    pub policy: Option<Arc<crate::signature::policy::Policy>>,
    /// Signatures to add.
    pub signing: crate::options::signing::SigningOptions,
    /// Why `preserve_digests` holds, for its error (set by the pipeline).
    pub keep_reason: KeepReason,
    /// Encrypt layers (`--encryption-key`).
    pub encryption: Option<Arc<crate::options::encryption::EncryptionOptions>>,
    /// Decrypt encrypted layers (`--decryption-key`).
    pub decryption: Option<crate::options::encryption::DecryptionOptions>,
    /// The marker an encrypted copy's top-level manifest carries (set by
    /// [`copy_image`]; see `encrypted_from`).
    pub encrypted_from: Option<String>,
    /// Carry the image's OCI referrers along (after the image).
    pub referrers: Option<crate::options::referrers::ReferrerSettings>,
}

impl CopyOptions {
    /// Choose a list's instance for `platform` (`--override-*`) instead of the host's.
    pub fn for_platform(self, platform: Option<Platform>) -> Self {
        CopyOptions { platform, ..self }
    }

    /// Report progress to `progress`.
    pub fn with_progress(self, progress: Option<Arc<dyn Progress>>) -> Self {
        CopyOptions { progress, ..self }
    }
}

/// What a finished copy did.
#[derive(Debug, Clone)]
pub struct CopyReport {
    /// Digest of the top-level manifest written (or found already there).
    pub manifest_digest: Digest,
    /// The manifest written; `None` when nothing was written.
    pub manifest: Option<Bytes>,
    /// The destination already held what the copy would write: nothing was done.
    pub unchanged: bool,
    pub blobs_copied: u64,
    pub blobs_reused: u64,
    pub bytes_copied: u64,
    /// Which keys' signatures the policy accepted (empty when it asked for none).
    pub verified_by: Vec<String>,
    /// OCI referrers carried along (each one put, whether or not new).
    pub referrers: usize,
}

impl CopyReport {
    fn unchanged(digest: Digest) -> CopyReport {
        tracing::debug!(%digest, "the destination already holds the image");
        CopyReport {
            manifest_digest: digest,
            manifest: None,
            unchanged: true,
            blobs_copied: 0,
            blobs_reused: 0,
            bytes_copied: 0,
            verified_by: vec![],
            referrers: 0,
        }
    }
}

#[derive(Default)]
struct Stats {
    copied: AtomicU64,
    reused: AtomicU64,
    bytes: AtomicU64,
    /// Keys the policy accepted signatures of, per image judged.
    verified: std::sync::Mutex<Vec<String>>,
}

impl Stats {
    fn note_verified(&self, keys: Vec<String>) {
        self.verified.lock().unwrap_or_else(|p| p.into_inner()).extend(keys);
    }
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
    let mut opts = std::borrow::Cow::Borrowed(opts);
    if let Some(enc) = &opts.encryption
        && let Some(current) = source.current_manifest().await?
    {
        let marker = encrypted_from::marker(&current.digest, enc);
        if !opts.destination_absent
            && let Some(d) = encrypted_from::find(dst, dst_opts, &marker).await
        {
            return Ok(CopyReport::unchanged(d));
        }
        opts.to_mut().encrypted_from = Some(marker);
    }
    let dest = transport::open_destination(dst, dst_opts).await?;
    if opts.referrers.is_some() {
        // Both sides must keep referrers before any byte moves.
        referrers::check(source.as_ref(), dest.as_ref())?;
    }
    let ctx = SignatureContext::new(src, dst, opts.policy.clone());
    let mut report = copy(source.as_ref(), dest.as_ref(), &opts, &ctx).await?;
    if let Some(r) = &opts.referrers {
        // Also when the image was there already: referrers come and go
        // after it (an SBOM attached later).
        report.referrers = referrers::carry(source.as_ref(), dest.as_ref(), &report, r).await?;
    }
    Ok(report)
}

/// The digest the destination already holds for this copy, if it does,
/// without copying anything (for plans: `sync --dry-run`).
pub async fn already_present(
    src: &dyn ImageSource,
    dst: &dyn ImageDestination,
    opts: &CopyOptions,
) -> Result<Option<Digest>, CopyError> {
    present::check(src, dst, opts).await
}

/// Copy the image `src` names into `dst` and commit it — or, when the
/// destination already holds what the copy would write, do nothing and say
/// so (`unchanged`).
pub async fn copy(
    src: &dyn ImageSource,
    dst: &dyn ImageDestination,
    opts: &CopyOptions,
    ctx: &SignatureContext,
) -> Result<CopyReport, CopyError> {
    let stats = Stats::default();
    if opts.signing.signs() {
        // Before any blob moves: a destination that keeps no signatures
        // would otherwise get the image unsigned.
        let supported = match opts.signing.sigstore {
            Some(_) => dst.supports_signatures().and_then(|()| dst.supports_sigstore()),
            None => dst.supports_signatures(),
        };
        supported.map_err(|source| CopyError::SigningNotPossible {
            destination: dst.describe(),
            source,
        })?;
    }
    // Judging the source or writing signatures needs the whole copy: the
    // destination holding the image already does not end it early.
    let mut shortcut = !signatures::forbids_shortcut(ctx, opts);
    let have = match present::quick(src, dst, opts).await? {
        present::Presence::Present(d) if shortcut => {
            // An image that is there may still lack the source's signatures
            // (copied before they were made, or with --remove-signatures):
            // then the copy goes on, reusing every blob, to store them.
            if opts.remove_signatures
                || src
                    .signatures(None, &d)
                    .await
                    .map_err(CopyError::ReadingSignatures)?
                    .is_empty()
            {
                return Ok(CopyReport::unchanged(d));
            }
            shortcut = false;
            Some(d)
        }
        present::Presence::Present(d) => Some(d),
        present::Presence::Absent(h) => h,
    };
    let unchanged = |predicted: Option<Digest>| predicted.filter(|p| shortcut && Some(p) == have.as_ref());
    // (A chosen instance or a reduced list found unchanged ends the copy
    // there too; their signatures are not looked at first.)
    let (bytes, mime) = src.manifest(None).await?;
    // The signatures of the top-level manifest, stored with it at the end.
    let mut top_sigs = vec![];
    let (out, out_mime) = if is_list_type(&mime) {
        let Manifest::Index(index) = Manifest::parse(&bytes, &mime)? else {
            return Err(CopyError::NotAList(mime));
        };
        match opts.multi_arch {
            _ if !opts.platforms.is_empty() => {
                let subset = platform_subset(&index, &opts.platforms)?;
                if let Some(d) = unchanged(Some(Digest::sha256_of(&manifest::to_bytes(&subset)))) {
                    return Ok(CopyReport::unchanged(d));
                }
                top_sigs = signatures::carry(dst, signatures::read(ctx, src, None, &bytes, opts).await?, opts)?;
                let kept = signatures::keeping(&top_sigs, opts);
                let lopts = kept.as_ref().unwrap_or(opts);
                list::copy_list(src, dst, &bytes, &subset, MultiArch::All, lopts, &stats, ctx).await?
            }
            MultiArch::System => {
                let want = opts.platform.clone().unwrap_or_else(manifest::host_platform);
                let chosen = manifest::choose_instance(&index, &want).map_err(|source| CopyError::NoInstance {
                    image: src.describe(),
                    source,
                })?;
                let (ib, im) = src.manifest(Some(&chosen.digest)).await?;
                if let Some(d) = unchanged(present::predicted_image(src, dst, &ib, &im, opts)?) {
                    return Ok(CopyReport::unchanged(d));
                }
                let instance = Some(chosen.digest.clone());
                let (out, mime, sigs) =
                    single::copy_single(src, dst, ib, &im, single::As::Chosen(instance), opts, &stats, ctx).await?;
                top_sigs = sigs;
                (out, mime)
            }
            mode => {
                top_sigs = signatures::carry(dst, signatures::read(ctx, src, None, &bytes, opts).await?, opts)?;
                let kept = signatures::keeping(&top_sigs, opts);
                let lopts = kept.as_ref().unwrap_or(opts);
                list::copy_list(src, dst, &bytes, &index, mode, lopts, &stats, ctx).await?
            }
        }
    } else if mime == media::DOCKER_V2S1 || mime == media::DOCKER_V2S1_SIGNED {
        if opts.encryption.is_some() {
            // Its layers are converted on the way (schema1.rs): never written unencrypted.
            return Err(CopyError::EncryptSchema1 { image: src.describe() });
        }
        let sigs = signatures::read(ctx, src, None, &bytes, opts).await?;
        stats.note_verified(signatures::admit(ctx, &sigs, &bytes)?);
        let carried = signatures::carry(dst, sigs, opts)?;
        let kept = signatures::keeping(&carried, opts);
        let (s2, s2_mime) = schema1::copy(src, dst, &bytes, kept.as_ref().unwrap_or(opts), &stats).await?;
        top_sigs = carried;
        // The blobs are in place: finish as any schema2 image (converted
        // further if the destination wants another format).
        let Manifest::Image(m) = Manifest::parse(&s2, &s2_mime)? else {
            return Err(CopyError::Schema1ToList);
        };
        let target = plan::target_type(
            &s2_mime,
            &single::caps(dst),
            opts.format.map(ManifestFormat::image_type),
            false,
        )?;
        if target == s2_mime {
            (s2, s2_mime)
        } else {
            (Bytes::from(manifest::to_bytes(&m.convert(&target)?)), target)
        }
    } else {
        if let Some(d) = unchanged(present::predicted_image(src, dst, &bytes, &mime, opts)?) {
            return Ok(CopyReport::unchanged(d));
        }
        let (out, mime, sigs) =
            single::copy_single(src, dst, bytes, &mime, single::As::TopLevel, opts, &stats, ctx).await?;
        top_sigs = sigs;
        (out, mime)
    };
    let out = match &opts.encrypted_from {
        Some(marker) => encrypted_from::annotate(out, &out_mime, marker)?,
        None => out,
    };
    if let Some(p) = &opts.progress {
        p.event(ProgressEvent::WritingManifest);
    }
    dst.put_manifest(&out, &out_mime, None).await?;
    signatures::store(ctx, dst, top_sigs, &out, None, opts).await?;
    dst.commit().await?;
    Ok(CopyReport {
        manifest_digest: Digest::sha256_of(&out),
        manifest: Some(out),
        unchanged: false,
        blobs_copied: stats.copied.load(Ordering::Relaxed),
        blobs_reused: stats.reused.load(Ordering::Relaxed),
        bytes_copied: stats.bytes.load(Ordering::Relaxed),
        verified_by: {
            let mut v = stats.verified.lock().unwrap_or_else(|p| p.into_inner()).clone();
            v.sort();
            v.dedup();
            v
        },
        referrers: 0,
    })
}

/// Read a config blob (small) into memory, verified in flight.
pub async fn read_config(src: &dyn ImageSource, d: &Descriptor) -> Result<Vec<u8>, TransportError> {
    let info = BlobInfo {
        digest: d.digest.clone(),
        size: u64::try_from(d.size).ok(),
        media_type: d.media_type.clone(),
    };
    let mut stream = verify(src.blob(&info).await?, &info, Default::default(), None);
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        buf.extend_from_slice(&chunk?);
        if buf.len() > 64 << 20 {
            return Err(TransportError::ConfigTooLarge(d.digest.clone()));
        }
    }
    Ok(buf)
}
