//! A running copy's progress as the operator reports it in status: a tally
//! fed by the copy engine's events, read by the controller at a bounded rate.

use crate::copy::{Progress, ProgressEvent};
use crate::digest::Digest;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;

/// How far a running copy has got (blobs and bytes known so far; a list's
/// totals grow as each instance's blobs become known).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CopyProgress {
    /// Blobs done (copied or already present).
    pub blobs_done: u64,
    /// Blobs to copy.
    pub blobs_total: u64,
    /// Bytes done, counting blobs already present at their full size.
    pub bytes_done: u64,
    /// Bytes to copy.
    pub bytes_total: u64,
}

/// Receives engine events; [`Tally::snapshot`] is what goes to status.
#[derive(Default)]
pub struct Tally {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    progress: CopyProgress,
    /// Bytes read so far of blobs in flight (undone when one restarts).
    in_flight: HashMap<Digest, (u64, Option<u64>)>,
    started: bool,
}

impl Tally {
    /// The progress so far; `None` until the copy knows its first image's blobs.
    pub fn snapshot(&self) -> Option<CopyProgress> {
        let i = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        i.started.then(|| i.progress.clone())
    }
}

impl Progress for Tally {
    fn event(&self, event: ProgressEvent<'_>) {
        let mut i = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let Inner {
            progress: p,
            in_flight,
            started,
        } = &mut *i;
        match event {
            ProgressEvent::ImageBlobs { count, bytes } => {
                *started = true;
                p.blobs_total += count as u64;
                p.bytes_total += bytes;
            }
            ProgressEvent::BlobStart { info } => {
                in_flight.insert(info.digest.clone(), (0, info.size));
            }
            ProgressEvent::BlobBytes { digest, bytes } => {
                if let Some((n, _)) = in_flight.get_mut(digest) {
                    *n += bytes;
                }
                p.bytes_done += bytes;
            }
            ProgressEvent::BlobRestart { digest } => {
                if let Some((n, _)) = in_flight.get_mut(digest) {
                    p.bytes_done = p.bytes_done.saturating_sub(*n);
                    *n = 0;
                }
            }
            ProgressEvent::BlobDone { digest, .. } => {
                if let Some((n, size)) = in_flight.remove(digest) {
                    // A reused blob counts whole; a copied one is topped up
                    // to its size (BlobBytes may lag behind its last chunk).
                    let full = size.unwrap_or(n);
                    p.bytes_done += full.saturating_sub(n);
                }
                p.blobs_done += 1;
            }
            ProgressEvent::CopyingImages { .. }
            | ProgressEvent::Image { .. }
            | ProgressEvent::WritingManifest
            | ProgressEvent::Note(_) => {}
        }
    }
}

/// How far a running sync has got.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncProgress {
    /// Images done, whatever became of them.
    pub images_done: u64,
    /// Images in the plan.
    pub images_total: u64,
    /// Images copied so far.
    pub copied: u64,
    /// Images failed so far.
    pub failed: u64,
}

/// Counts a sync's finished images; [`SyncTally::snapshot`] goes to status.
#[derive(Default)]
pub struct SyncTally {
    inner: Mutex<Option<SyncProgress>>,
}

impl SyncTally {
    /// The progress so far; `None` until the first image is done.
    pub fn snapshot(&self) -> Option<SyncProgress> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Count one finished image of a plan of `total`.
    pub fn done(&self, r: &crate::sync::ImageResult, total: usize) {
        let mut i = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let p = i.get_or_insert_with(SyncProgress::default);
        p.images_total = total as u64;
        p.images_done += 1;
        match r.action {
            crate::sync::Action::Copied => p.copied += 1,
            crate::sync::Action::Failed => p.failed += 1,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::BlobInfo;

    #[test]
    fn tallies_bytes_and_blobs_through_a_restart_and_a_reuse() {
        let t = Tally::default();
        assert_eq!(t.snapshot(), None);
        let a = BlobInfo {
            digest: Digest::sha256_of(b"a"),
            size: Some(100),
            media_type: String::new(),
        };
        let b = BlobInfo {
            digest: Digest::sha256_of(b"b"),
            size: Some(50),
            media_type: String::new(),
        };
        t.event(ProgressEvent::ImageBlobs { count: 2, bytes: 150 });
        t.event(ProgressEvent::BlobStart { info: &a });
        t.event(ProgressEvent::BlobBytes {
            digest: &a.digest,
            bytes: 60,
        });
        t.event(ProgressEvent::BlobRestart { digest: &a.digest });
        t.event(ProgressEvent::BlobBytes {
            digest: &a.digest,
            bytes: 30,
        });
        let mid = t.snapshot().unwrap();
        assert_eq!((mid.bytes_done, mid.blobs_done), (30, 0));
        t.event(ProgressEvent::BlobDone {
            digest: &a.digest,
            reused: false,
        });
        t.event(ProgressEvent::BlobStart { info: &b });
        t.event(ProgressEvent::BlobDone {
            digest: &b.digest,
            reused: true,
        });
        assert_eq!(
            t.snapshot(),
            Some(CopyProgress {
                blobs_done: 2,
                blobs_total: 2,
                bytes_done: 150,
                bytes_total: 150
            })
        );
    }
}
