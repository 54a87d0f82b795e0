//! Copying an image's blobs: each distinct blob once, a bounded number of
//! transfers at a time, the largest first.

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

/// How many blobs beyond the transfers in flight may be looked up at the
/// destination meanwhile: finding a blob there costs a HEAD, not a transfer
/// slot, so an image whose blobs are all present needs one round trip, not
/// one per `parallel` blobs.
const LOOKAHEAD: usize = 16;

/// Copy every blob of `plan`; the result is in the plan's order.
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
    // Largest first (by the size the manifest states; ties in the plan's
    // order): the image is done when its last transfer is, and a big layer
    // started last would run alone. A destination that takes one blob at a
    // time gets them in the plan's order.
    let mut order: Vec<usize> = (0..plan.jobs.len()).collect();
    if parallel > 1 {
        order.sort_by_key(|&i| std::cmp::Reverse(plan.jobs[i].info.size.unwrap_or(0)));
    }
    let in_flight = if parallel > 1 { parallel + LOOKAHEAD } else { 1 };
    let transfers = tokio::sync::Semaphore::new(parallel);
    // Items by index: a closure over borrowed items here is not general
    // enough for callers that need the whole copy future to be Send.
    let (from, transfers) = (&from, &transfers);
    let mut done: Vec<(usize, Written)> = futures::stream::iter(order)
        .map(|i| async move {
            let job = &plan.jobs[i];
            let info = &job.info;
            let outcome = copy_blob(src, dst, job, from.as_ref(), opts, &plan.compression, transfers).await?;
            let written = match outcome {
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
            Ok::<_, TransportError>((i, written))
        })
        .buffer_unordered(in_flight)
        .try_collect()
        .await?;
    done.sort_unstable_by_key(|(i, _)| *i);
    Ok(done.into_iter().map(|(_, w)| w).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::copy::plan::{DestinationCaps, plan_image};
    use crate::manifest::{Manifest, media};
    use crate::transport::{BlobInfo, BlobStream, LayerCompression, RegistryLocation};
    use async_trait::async_trait;
    use bytes::Bytes;
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    /// Blobs by digest.
    struct Source(HashMap<Digest, Bytes>);

    #[async_trait]
    impl ImageSource for Source {
        fn describe(&self) -> String {
            "source".into()
        }
        async fn manifest(&self, _: Option<&Digest>) -> Result<(Bytes, String), TransportError> {
            unreachable!("copy_blobs reads no manifest")
        }
        async fn blob(&self, info: &BlobInfo) -> Result<BlobStream, TransportError> {
            let b = self.0[&info.digest].clone();
            Ok(futures::stream::iter([Ok(b)]).boxed())
        }
    }

    /// A destination that holds `present` already, answers lookups and
    /// takes uploads after a pause, and records what happened at once.
    #[derive(Default)]
    struct Dest {
        present: Vec<Digest>,
        lookups: AtomicUsize,
        most_lookups: AtomicUsize,
        uploads: AtomicUsize,
        most_uploads: AtomicUsize,
        upload_order: Mutex<Vec<u64>>,
    }

    fn enter(now: &AtomicUsize, most: &AtomicUsize) {
        let n = now.fetch_add(1, Ordering::SeqCst) + 1;
        most.fetch_max(n, Ordering::SeqCst);
    }

    #[async_trait]
    impl ImageDestination for Dest {
        fn describe(&self) -> String {
            "dest".into()
        }
        fn supported_manifest_types(&self) -> Vec<&'static str> {
            vec![]
        }
        async fn try_reuse_blob(&self, info: &BlobInfo, _: Option<&RegistryLocation>) -> Result<bool, TransportError> {
            enter(&self.lookups, &self.most_lookups);
            tokio::time::sleep(Duration::from_millis(20)).await;
            self.lookups.fetch_sub(1, Ordering::SeqCst);
            Ok(self.present.contains(&info.digest))
        }
        async fn put_blob(&self, info: &BlobInfo, stream: BlobStream) -> Result<(), TransportError> {
            enter(&self.uploads, &self.most_uploads);
            self.upload_order.lock().unwrap().push(info.size.unwrap_or(0));
            let _: Vec<Bytes> = stream.try_collect().await?;
            tokio::time::sleep(Duration::from_millis(20)).await;
            self.uploads.fetch_sub(1, Ordering::SeqCst);
            Ok(())
        }
        async fn put_manifest(&self, _: &[u8], _: &str, _: Option<&Digest>) -> Result<(), TransportError> {
            unreachable!()
        }
        async fn commit(&self) -> Result<(), TransportError> {
            Ok(())
        }
        async fn put_blob_computed(&self, _: &str, _: BlobStream) -> Result<(Digest, u64), TransportError> {
            unreachable!("layers are kept as they are")
        }
    }

    /// An image of uncompressed layers of these sizes (bytes), its blobs, and its plan.
    fn image(sizes: &[usize]) -> (ImagePlan, Source) {
        let mut blobs = HashMap::new();
        let mut layers = vec![];
        for (i, n) in sizes.iter().enumerate() {
            let data = Bytes::from(vec![i as u8 + 1; *n]);
            let d = Digest::sha256_of(&data);
            layers.push(serde_json::json!({"mediaType": media::OCI_LAYER, "size": n, "digest": d.to_string()}));
            blobs.insert(d, data);
        }
        let config = Bytes::from_static(b"{}");
        let cd = Digest::sha256_of(&config);
        blobs.insert(cd.clone(), config);
        let v = serde_json::json!({"schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
            "config": {"mediaType": media::OCI_CONFIG, "size": 2, "digest": cd.to_string()}, "layers": layers});
        let Ok(Manifest::Image(m)) = Manifest::parse(v.to_string().as_bytes(), media::OCI_MANIFEST) else {
            panic!("the test manifest parses")
        };
        let caps = DestinationCaps {
            manifest_types: vec![media::OCI_MANIFEST],
            layers: LayerCompression::Preserve,
            name: "dest".into(),
        };
        let plan = plan_image(&m, &caps, |_| None, &CopyOptions::default()).expect("plan");
        (plan, Source(blobs))
    }

    #[tokio::test]
    async fn blobs_already_there_are_looked_up_all_at_once() {
        let (plan, src) = image(&[10; 9]);
        let dst = Dest {
            present: plan.jobs.iter().map(|j| j.info.digest.clone()).collect(),
            ..Dest::default()
        };
        let written = copy_blobs(&src, &dst, &plan, &CopyOptions::default(), &Stats::default())
            .await
            .expect("copy");
        assert_eq!(written.len(), 10);
        assert_eq!(
            dst.most_lookups.load(Ordering::SeqCst),
            10,
            "one round of lookups, not two"
        );
        assert_eq!(dst.most_uploads.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn layers_shorter_than_a_compression_magic_copy() {
        // Regression: a layer of fewer bytes than the compression sniffing
        // reads ended the stream there, and the next poll panicked.
        let (plan, src) = image(&[0, 1, 5]);
        let dst = Dest::default();
        let written = copy_blobs(&src, &dst, &plan, &CopyOptions::default(), &Stats::default())
            .await
            .expect("copy");
        assert_eq!(written.iter().map(|w| w.size).collect::<Vec<_>>(), [0, 1, 5, 2]);
    }

    #[tokio::test]
    async fn transfers_are_bounded_and_the_largest_go_first() {
        let sizes = [3, 700, 50, 9000, 1, 400, 20, 8000, 60];
        let (plan, src) = image(&sizes);
        let dst = Dest::default();
        let written = copy_blobs(&src, &dst, &plan, &CopyOptions::default(), &Stats::default())
            .await
            .expect("copy");
        // The result is in the plan's order, whatever order the transfers ran in.
        let planned: Vec<_> = plan.jobs.iter().map(|j| j.info.digest.clone()).collect();
        assert_eq!(written.iter().map(|w| w.digest.clone()).collect::<Vec<_>>(), planned);
        assert_eq!(dst.most_uploads.load(Ordering::SeqCst), DEFAULT_PARALLEL_COPIES);
        let order = dst.upload_order.lock().unwrap().clone();
        let mut by_size: Vec<u64> = plan.jobs.iter().map(|j| j.info.size.unwrap_or(0)).collect();
        by_size.sort_by(|a, b| b.cmp(a));
        // The first `parallel` uploads start together: the largest ones.
        let mut first: Vec<u64> = order[..DEFAULT_PARALLEL_COPIES].to_vec();
        first.sort_by(|a, b| b.cmp(a));
        assert_eq!(first, by_size[..DEFAULT_PARALLEL_COPIES]);
    }
}
