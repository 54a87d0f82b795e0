//! Executing a sync plan: images in parallel (bounded), each first checked
//! against the destination with HEAD requests so that unchanged images cost
//! no transfer, then copied with the copy pipeline.

use super::{Plan, PlannedImage, SyncOptions};
use crate::copy::{self, CopyOptions, MultiArch};
use crate::digest::Digest;
use crate::manifest::{self, Manifest, is_list_type};
use crate::reference::ImageReference;
use crate::transport::{self, OpenOptions, TransportError};
use futures::StreamExt;
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What happened to one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Copied,
    /// The destination already has this image (same digest, or the tag exists with `--skip-existing`).
    Skipped,
    Failed,
    /// `--dry-run`: would be copied.
    Planned,
    /// Not attempted: an earlier image failed without `--keep-going`.
    NotAttempted,
}

/// The outcome for one image, as the report lists it.
#[derive(Debug, Clone, Serialize)]
pub struct ImageResult {
    pub source: String,
    pub destination: String,
    pub digest: Option<String>,
    pub action: Action,
    pub bytes: u64,
    pub error: Option<String>,
}

/// The outcome of a whole sync.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncReport {
    pub images: Vec<ImageResult>,
}

impl SyncReport {
    /// How many images ended with `action`.
    pub fn count(&self, action: Action) -> usize {
        self.images.iter().filter(|i| i.action == action).count()
    }
}

/// The digest the destination holds for this image, if it has it.
async fn existing_digest(dst: &ImageReference, opts: &OpenOptions) -> Result<Option<Digest>, TransportError> {
    match dst {
        ImageReference::Docker(r) => {
            let reference = r.manifest_reference();
            let head = opts.client(r.domain())?.head_manifest(r.path(), &reference).await?;
            Ok(head.and_then(|h| h.digest))
        }
        ImageReference::Dir { path } => match tokio::fs::read(path.join("manifest.json")).await {
            Ok(b) => Ok(Some(Digest::sha256_of(&b))),
            Err(_) => Ok(None),
        },
        _ => Ok(None),
    }
}

/// Whether copying `src` would write exactly the digest `have`: compares
/// with a HEAD for registries (no manifest GET unless a list must be
/// resolved to one platform).
async fn up_to_date(item: &PlannedImage, have: &Digest, copy: &CopyOptions) -> Result<bool, TransportError> {
    if copy.format.is_some() {
        return Ok(false);
    }
    let (digest, mime) = match &item.source {
        ImageReference::Docker(r) => {
            let reference = r.manifest_reference();
            match item
                .source_options
                .client(r.domain())?
                .head_manifest(r.path(), &reference)
                .await?
            {
                Some(h) => (h.digest, h.media_type),
                None => return Ok(false),
            }
        }
        _ => (None, String::new()),
    };
    if digest.as_ref() == Some(have) && copy.platforms.is_empty() {
        return Ok(true);
    }
    if !copy.platforms.is_empty() && (digest.is_none() || is_list_type(&mime)) {
        // A platform subset is written as a reduced list: compare with the
        // digest that list would have (this needs the source list itself).
        let src = transport::open_source(&item.source, &item.source_options).await?;
        let (bytes, mime) = src.manifest(None).await?;
        return Ok(match Manifest::parse(&bytes, &mime) {
            Ok(Manifest::Index(index)) => copy::platform_subset(&index, &copy.platforms)
                .map(|sub| Digest::sha256_of(&manifest::to_bytes(&sub)) == *have)
                .unwrap_or(false),
            _ => Digest::sha256_of(&bytes) == *have,
        });
    }
    let resolve_list = digest.is_none() || (is_list_type(&mime) && copy.multi_arch == MultiArch::System);
    if !resolve_list {
        return Ok(false);
    }
    let src = transport::open_source(&item.source, &item.source_options).await?;
    let (bytes, mime) = src.manifest(None).await?;
    if Digest::sha256_of(&bytes) == *have {
        return Ok(true);
    }
    if is_list_type(&mime)
        && copy.multi_arch == MultiArch::System
        && let Ok(Manifest::Index(index)) = Manifest::parse(&bytes, &mime)
    {
        let want = copy.platform.clone().unwrap_or_else(manifest::host_platform);
        if let Ok(d) = manifest::choose_instance(&index, &want) {
            return Ok(d.digest == *have);
        }
    }
    Ok(false)
}

async fn sync_one(item: &PlannedImage, opts: &SyncOptions, n: usize, total: usize) -> ImageResult {
    let mut result = ImageResult {
        source: item.source.to_string(),
        destination: item.destination.to_string(),
        digest: None,
        action: Action::Failed,
        bytes: 0,
        error: None,
    };
    let checked = async {
        let have = existing_digest(&item.destination, &opts.dest).await?;
        if let Some(h) = have
            && (opts.skip_existing || up_to_date(item, &h, &opts.copy).await?)
        {
            return Ok::<_, TransportError>(Some(h));
        }
        Ok(None)
    }
    .await;
    match checked {
        Ok(Some(d)) => {
            tracing::info!(source = %item.source, destination = %item.destination, "already present, skipping");
            result.digest = Some(d.to_string());
            result.action = Action::Skipped;
            return result;
        }
        Ok(None) => {}
        Err(e) => {
            result.error = Some(e.to_string());
            return result;
        }
    }
    if let Some(f) = &opts.on_start {
        f(&super::ImageStart {
            n,
            total,
            source: &item.source,
            destination: &item.destination,
            dry_run: opts.dry_run,
        });
    }
    if opts.dry_run {
        result.action = Action::Planned;
        return result;
    }
    match copy::copy_image(
        &item.source,
        &item.destination,
        &item.source_options,
        &opts.dest,
        &opts.copy,
    )
    .await
    {
        Ok(report) => {
            result.action = Action::Copied;
            result.digest = Some(report.manifest_digest.to_string());
            result.bytes = report.bytes_copied;
        }
        Err(e) => {
            tracing::error!(source = %item.source, error = %e, "copying image failed");
            result.error = Some(e.to_string());
        }
    }
    result
}

/// Copy every image of `plan`, `opts.parallel_images` at a time. Without
/// `keep_going`, the first failure stops new copies from starting (those in
/// flight finish); the report says what happened to every image.
pub async fn execute(plan: &Plan, opts: &SyncOptions) -> SyncReport {
    let parallel = if opts.parallel_images == 0 {
        super::DEFAULT_PARALLEL_IMAGES
    } else {
        opts.parallel_images
    };
    let stop = Arc::new(AtomicBool::new(false));
    let total = plan.images.len();
    // Indices, not references: a closure over borrowed items is not general
    // enough for callers that need the sync future to be Send (controllers).
    let results: Vec<(usize, ImageResult)> = futures::stream::iter(0..total)
        .map(|i| {
            let stop = stop.clone();
            async move {
                let item = &plan.images[i];
                if stop.load(Ordering::SeqCst) {
                    let r = ImageResult {
                        source: item.source.to_string(),
                        destination: item.destination.to_string(),
                        digest: None,
                        action: Action::NotAttempted,
                        bytes: 0,
                        error: None,
                    };
                    if let Some(f) = &opts.on_done {
                        f(&r, total);
                    }
                    return (i, r);
                }
                let r = sync_one(item, opts, i + 1, total).await;
                if r.action == Action::Failed && !opts.keep_going {
                    stop.store(true, Ordering::SeqCst);
                }
                if let Some(f) = &opts.on_done {
                    f(&r, total);
                }
                (i, r)
            }
        })
        .buffer_unordered(parallel)
        .collect()
        .await;
    let mut results = results;
    results.sort_by_key(|(i, _)| *i);
    SyncReport {
        images: results.into_iter().map(|(_, r)| r).collect(),
    }
}
