//! Copying an image's blobs: each distinct blob once, a bounded number at a
//! time, in the plan's order.

use super::blob::CryptDone;
use super::plan::ImagePlan;
use super::{BlobOutcome, CopyOptions, DEFAULT_PARALLEL_COPIES, Stats, copy_blob};
use crate::compression::Compression;
use crate::digest::Digest;
use crate::transport::{ImageDestination, ImageSource, TransportError};
use futures::{StreamExt, TryStreamExt};
use std::sync::atomic::Ordering;

/// What was written for one source blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The source's digest.
    pub source: Digest,
    /// The digest and size at the destination.
    pub digest: Digest,
    pub size: u64,
    /// For a copied layer, the compression written; `None` when the blob
    /// was reused or is not a layer.
    pub compression: Option<Compression>,
    /// For a layer encrypted or decrypted on the way.
    pub crypt: Option<CryptDone>,
}

/// Copy every blob of `plan`.
pub async fn copy_blobs(
    src: &dyn ImageSource,
    dst: &dyn ImageDestination,
    plan: &ImagePlan,
    opts: &CopyOptions,
    stats: &Stats,
) -> Result<Vec<Written>, TransportError> {
    let from = src.registry_location();
    let parallel = match (dst.concurrent_blobs(), opts.parallel) {
        (false, _) => 1,
        (true, 0) => DEFAULT_PARALLEL_COPIES,
        (true, n) => n,
    };
    // Items by index: a closure over borrowed items here is not general
    // enough for callers that need the whole copy future to be Send.
    let from = &from;
    futures::stream::iter(0..plan.jobs.len())
        .map(|i| async move {
            let job = &plan.jobs[i];
            let info = &job.info;
            let written = match copy_blob(src, dst, job, from.as_ref(), opts, &plan.compression).await? {
                BlobOutcome::Reused => {
                    stats.reused.fetch_add(1, Ordering::Relaxed);
                    Written {
                        source: info.digest.clone(),
                        digest: info.digest.clone(),
                        size: info.size.unwrap_or(0),
                        compression: None,
                        crypt: None,
                    }
                }
                BlobOutcome::Copied {
                    digest,
                    size,
                    compression,
                    crypt,
                } => {
                    stats.bytes.fetch_add(size, Ordering::Relaxed);
                    stats.copied.fetch_add(1, Ordering::Relaxed);
                    Written {
                        source: info.digest.clone(),
                        digest,
                        size,
                        compression,
                        crypt,
                    }
                }
            };
            Ok::<_, TransportError>(written)
        })
        .buffered(parallel)
        .try_collect()
        .await
}
