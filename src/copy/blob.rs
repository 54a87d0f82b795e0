//! Copying one blob: reuse if the destination can, else stream it from the
//! source through a verifying stage into the destination, retrying
//! transient failures.

use super::compress::{Compression, transcode};
use super::{CopyOptions, Progress, ProgressEvent};
use crate::digest::{Digest, Hasher};
use crate::manifest::media;
use crate::transport::{BlobInfo, BlobStream, ImageDestination, ImageSource, RegistryLocation, TransportError};
use futures::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What happened to a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobOutcome {
    /// Bytes were copied; digest and size as written (they differ from the
    /// source's when a transform ran).
    Copied { digest: Digest, size: u64 },
    /// The destination already had it, or mounted it.
    Reused,
}

/// Wrap `inner` so that every byte is hashed once in flight and the digest
/// and size are checked *before* the last byte is handed on: a consumer that
/// sees the stream end cleanly has received exactly the expected content.
/// `mismatch` is set when verification failed.
pub fn verify(
    inner: BlobStream,
    info: &BlobInfo,
    mismatch: Arc<AtomicBool>,
    progress: Option<Arc<dyn Progress>>,
) -> BlobStream {
    struct St {
        inner: BlobStream,
        hasher: Option<Hasher>,
        seen: u64,
        digest: Digest,
        size: Option<u64>,
        mismatch: Arc<AtomicBool>,
        progress: Option<Arc<dyn Progress>>,
        done: bool,
    }
    impl St {
        fn check(&mut self) -> Result<(), TransportError> {
            let actual = self.hasher.take().map(Hasher::finish);
            if let Some(expected) = self.size.filter(|s| *s != self.seen) {
                self.mismatch.store(true, Ordering::SeqCst);
                return Err(TransportError::SizeMismatch {
                    digest: self.digest.clone(),
                    expected,
                    actual: self.seen,
                });
            }
            match actual {
                Some(a) if a != self.digest => {
                    self.mismatch.store(true, Ordering::SeqCst);
                    Err(TransportError::DigestMismatch {
                        digest: self.digest.clone(),
                        actual: a,
                    })
                }
                _ => Ok(()),
            }
        }
    }
    let st = St {
        inner,
        hasher: Some(Hasher::new(info.digest.algorithm())),
        seen: 0,
        digest: info.digest.clone(),
        size: info.size,
        mismatch,
        progress,
        done: false,
    };
    futures::stream::unfold(st, |mut st| async move {
        if st.done {
            return None;
        }
        match st.inner.next().await {
            Some(Ok(chunk)) => {
                st.seen += chunk.len() as u64;
                if let Some(h) = st.hasher.as_mut() {
                    h.update(&chunk);
                }
                if let Some(p) = &st.progress {
                    p.event(ProgressEvent::BlobBytes {
                        digest: &st.digest,
                        bytes: chunk.len() as u64,
                    });
                }
                let over = st.size.is_some_and(|s| st.seen > s);
                let last = st.size == Some(st.seen);
                if (over || last)
                    && let Err(e) = st.check()
                {
                    st.done = true;
                    return Some((Err(e), st));
                }
                Some((Ok(chunk), st))
            }
            Some(Err(e)) => {
                st.done = true;
                Some((Err(e), st))
            }
            None => {
                st.done = true;
                if st.hasher.is_some()
                    && let Err(e) = st.check()
                {
                    return Some((Err(e), st));
                }
                None
            }
        }
    })
    .boxed()
}

/// Drive `stream` in its own task, `depth` chunks ahead of the consumer, so
/// that the two ends of a CPU-heavy pipeline run in parallel. Memory stays
/// bounded by `depth` chunks; dropping the result stops the task.
pub fn prefetch(stream: BlobStream, depth: usize) -> BlobStream {
    let (tx, rx) = tokio::sync::mpsc::channel(depth);
    tokio::spawn(async move {
        let mut stream = stream;
        while let Some(item) = stream.next().await {
            let stop = item.is_err();
            if tx.send(item).await.is_err() || stop {
                break;
            }
        }
    });
    tokio_stream_from(rx)
}

fn tokio_stream_from(rx: tokio::sync::mpsc::Receiver<Result<bytes::Bytes, TransportError>>) -> BlobStream {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }).boxed()
}

/// A compression change applied while a blob streams through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transform {
    pub from: Compression,
    pub to: Compression,
    pub level: Option<i32>,
}

/// Copy one blob from `src` to `dst`, through `transform` if given (then the
/// result's digest and size are those of the transformed bytes).
pub async fn copy_blob(
    src: &dyn ImageSource,
    dst: &dyn ImageDestination,
    info: &BlobInfo,
    from: Option<&RegistryLocation>,
    opts: &CopyOptions,
    transform: Option<Transform>,
) -> Result<BlobOutcome, TransportError> {
    let progress = opts.progress.clone();
    if let Some(p) = &progress {
        p.event(ProgressEvent::BlobStart { info });
    }
    if transform.is_none() && dst.try_reuse_blob(info, from).await? {
        if let Some(p) = &progress {
            p.event(ProgressEvent::BlobDone {
                digest: &info.digest,
                reused: true,
            });
        }
        return Ok(BlobOutcome::Reused);
    }
    let mut attempt = 0;
    loop {
        let mismatch = Arc::new(AtomicBool::new(false));
        let result = async {
            let stream = verify(src.blob(info).await?, info, mismatch.clone(), progress.clone());
            match transform {
                None => dst
                    .put_blob(info, stream)
                    .await
                    .map(|()| (info.digest.clone(), info.size.unwrap_or(0))),
                Some(t) => {
                    // Fetching and verifying run on one core, (de)compressing,
                    // hashing and writing on the other.
                    let stream = transcode(prefetch(stream, 4), t.from, t.to, t.level)?;
                    dst.put_blob_computed(t.to.layer_media_type(media::OCI_MANIFEST), stream)
                        .await
                }
            }
        }
        .await;
        match result {
            Ok((digest, size)) => {
                if let Some(p) = &progress {
                    p.event(ProgressEvent::BlobDone {
                        digest: &info.digest,
                        reused: false,
                    });
                }
                return Ok(BlobOutcome::Copied { digest, size });
            }
            Err(e) if mismatch.load(Ordering::SeqCst) => {
                tracing::debug!(error = %e, "blob failed verification");
                return Err(TransportError::Invalid(format!(
                    "blob {} from {} does not match its digest or size; nothing was committed",
                    info.digest,
                    src.describe()
                )));
            }
            Err(e) if e.is_transient() && attempt < opts.retry.times => {
                let delay = opts.retry.delay_for(attempt);
                attempt += 1;
                tracing::warn!(digest = %info.digest, attempt, ?delay, error = %e, "blob copy failed, retrying");
                if let Some(p) = &progress {
                    p.event(ProgressEvent::BlobRestart { digest: &info.digest });
                }
                tokio::time::sleep(delay).await;
            }
            Err(e) => return Err(e),
        }
    }
}
