//! Executing a sync plan: images in parallel (bounded), each copied with the
//! copy pipeline, whose "already at the destination" stage makes an
//! unchanged image cost a manifest HEAD on each side and no transfer.

use super::{Plan, PlannedImage, SyncOptions};
use crate::copy::{self, CopyOptions};
use crate::digest::Digest;
use crate::transport;
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
    /// The trust policy refused the source (its signatures).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub rejected: bool,
}

/// The outcome of a whole sync.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncReport {
    pub images: Vec<ImageResult>,
    /// With `prune`: the destination tags the source no longer has.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pruned: Vec<super::prune::PruneResult>,
}

impl SyncReport {
    /// How many images ended with `action`.
    pub fn count(&self, action: Action) -> usize {
        self.images.iter().filter(|i| i.action == action).count()
    }
}

/// Tells the sync's `on_start` when an image's transfer begins (its first
/// progress event: an image found already present has none), and passes
/// every event on.
struct Starting<F: Fn() + Send + Sync> {
    once: std::sync::Once,
    start: F,
    inner: Option<Arc<dyn copy::Progress>>,
}

impl<F: Fn() + Send + Sync> copy::Progress for Starting<F> {
    fn event(&self, event: copy::ProgressEvent<'_>) {
        self.once.call_once(&self.start);
        if let Some(p) = &self.inner {
            p.event(event);
        }
    }
}

/// What happens to `item`, short of copying it: skipped (the digest the
/// destination holds), planned (dry run), or `None` to copy it.
async fn precheck(
    item: &PlannedImage,
    opts: &SyncOptions,
    absent: bool,
) -> Result<Option<(Action, Option<Digest>)>, copy::CopyError> {
    let dst = transport::open_destination(&item.destination, &opts.dest).await?;
    if opts.skip_existing && !absent {
        // Tags are immutable: any image there is the one.
        if let Some(d) = dst.current_digest().await? {
            return Ok(Some((Action::Skipped, Some(d))));
        }
    }
    if !opts.dry_run {
        return Ok(None);
    }
    if absent {
        return Ok(Some((Action::Planned, None)));
    }
    let src = transport::open_source(&item.source, &item.source_options).await?;
    Ok(Some(
        match copy::already_present(src.as_ref(), dst.as_ref(), &opts.copy).await? {
            Some(d) => (Action::Skipped, Some(d)),
            None => (Action::Planned, None),
        },
    ))
}

async fn sync_one(item: &PlannedImage, opts: &SyncOptions, absent: bool, n: usize, total: usize) -> ImageResult {
    let mut result = ImageResult {
        source: item.source.to_string(),
        destination: item.destination.to_string(),
        digest: None,
        action: Action::Failed,
        bytes: 0,
        error: None,
        rejected: false,
    };
    match precheck(item, opts, absent).await {
        Ok(Some((Action::Skipped, d))) => {
            tracing::info!(source = %item.source, destination = %item.destination, "already present, skipping");
            result.digest = d.map(|d| d.to_string());
            result.action = Action::Skipped;
            return result;
        }
        Ok(Some((action, _))) => {
            announce(item, opts, n, total);
            result.action = action;
            return result;
        }
        Ok(None) => {}
        Err(e) => {
            result.error = Some(e.to_string());
            return result;
        }
    }
    // The copy's own "already at the destination" stage decides; the start
    // is announced only when something is transferred.
    let (on_start, source, destination) = (opts.on_start.clone(), item.source.clone(), item.destination.clone());
    let copy_opts = CopyOptions {
        progress: Some(Arc::new(Starting {
            once: std::sync::Once::new(),
            start: move || {
                if let Some(f) = &on_start {
                    f(&super::ImageStart {
                        n,
                        total,
                        source: &source,
                        destination: &destination,
                        dry_run: false,
                    });
                }
            },
            inner: opts.copy.progress.clone(),
        })),
        destination_absent: absent,
        ..opts.copy.clone()
    };
    match copy::copy_image(
        &item.source,
        &item.destination,
        &item.source_options,
        &opts.dest,
        &copy_opts,
    )
    .await
    {
        Ok(report) if report.unchanged => {
            tracing::info!(source = %item.source, destination = %item.destination, "already present, skipping");
            result.action = Action::Skipped;
            result.digest = Some(report.manifest_digest.to_string());
        }
        Ok(report) => {
            result.action = Action::Copied;
            result.digest = Some(report.manifest_digest.to_string());
            result.bytes = report.bytes_copied;
        }
        Err(e) => {
            tracing::error!(source = %item.source, error = %e, "copying image failed");
            result.rejected = matches!(e, crate::copy::CopyError::Rejected(_));
            result.error = Some(e.to_string());
        }
    }
    result
}

/// Tell `on_start` that image `n` of `total` starts (or would, in a dry run).
fn announce(item: &PlannedImage, opts: &SyncOptions, n: usize, total: usize) {
    if let Some(f) = &opts.on_start {
        f(&super::ImageStart {
            n,
            total,
            source: &item.source,
            destination: &item.destination,
            dry_run: opts.dry_run,
        });
    }
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
    let absent = &super::destination::known_absent(plan, &opts.dest, parallel).await;
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
                        rejected: false,
                    };
                    if let Some(f) = &opts.on_done {
                        f(&r, total);
                    }
                    return (i, r);
                }
                let r = sync_one(item, opts, absent[i], i + 1, total).await;
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
    // Pruning depends on the source's listings only, not on the copies.
    let pruned = match opts.prune {
        true => super::prune::prune(plan, opts).await,
        false => vec![],
    };
    SyncReport {
        images: results.into_iter().map(|(_, r)| r).collect(),
        pruned,
    }
}
