//! Copying one blob: reuse if the destination can, else stream it from the
//! source through a verifying stage (and, for a layer whose compression
//! changes, a compression stage) into the destination, retrying transient
//! failures.

use super::compress::{Compression, transcode};
use super::plan::{CompressionTarget, Crypt, Job};
use super::{CopyOptions, Progress, ProgressEvent};
use crate::digest::{Digest, Hasher};
use crate::encryption::cipher::{self, CryptFailure};
use crate::encryption::{EncryptionError, layer};
use crate::manifest::media;
use crate::transport::{BlobInfo, BlobStream, ImageDestination, ImageSource, RegistryLocation, TransportError};
use futures::StreamExt;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What a copied layer's encryption became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CryptDone {
    /// Encrypted: the annotations ocicrypt gives the layer.
    Encrypted(BTreeMap<String, String>),
    Decrypted,
}

/// What happened to a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobOutcome {
    /// Bytes were copied; digest and size as written (they differ from the
    /// source's when the compression or encryption changed), and for a
    /// layer the compression written (of the plaintext, when encrypted).
    Copied {
        digest: Digest,
        size: u64,
        compression: Option<Compression>,
        crypt: Option<CryptDone>,
    },
    /// The destination already had it, or mounted it.
    Reused,
}

/// Where [`verify`] says what was wrong with a blob, for whoever sees the
/// stream fail further down (a destination's error hides the cause).
pub type Mismatch = Arc<std::sync::OnceLock<String>>;

/// Wrap `inner` so that every byte is hashed once in flight and the digest
/// and size are checked *before* the last byte is handed on: a consumer that
/// sees the stream end cleanly has received exactly the expected content.
/// `mismatch` is set, with what was wrong, when verification failed.
pub fn verify(
    inner: BlobStream,
    info: &BlobInfo,
    mismatch: Mismatch,
    progress: Option<Arc<dyn Progress>>,
) -> BlobStream {
    struct St {
        inner: BlobStream,
        hasher: Option<Hasher>,
        seen: u64,
        digest: Digest,
        size: Option<u64>,
        mismatch: Mismatch,
        progress: Option<Arc<dyn Progress>>,
        done: bool,
    }
    impl St {
        fn check(&mut self) -> Result<(), TransportError> {
            let actual = self.hasher.take().map(Hasher::finish);
            let err = if let Some(expected) = self.size.filter(|s| *s != self.seen) {
                TransportError::SizeMismatch {
                    digest: self.digest.clone(),
                    expected,
                    actual: self.seen,
                }
            } else {
                match actual {
                    Some(a) if a != self.digest => TransportError::DigestMismatch {
                        digest: self.digest.clone(),
                        actual: a,
                    },
                    _ => return Ok(()),
                }
            };
            let why = match &err {
                TransportError::SizeMismatch { expected, actual, .. } => format!("{actual} bytes, not {expected}"),
                TransportError::DigestMismatch { actual, .. } => format!("its content's digest is {actual}"),
                other => other.to_string(),
            };
            let _ = self.mismatch.set(why);
            Err(err)
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

/// `stream`, setting `failed` when it yields an error.
fn noting_failure(stream: BlobStream, failed: Arc<AtomicBool>) -> BlobStream {
    stream
        .inspect(move |item| {
            if item.is_err() {
                failed.store(true, Ordering::SeqCst);
            }
        })
        .boxed()
}

/// The first `n` bytes of `stream` (fewer if it is shorter), and a stream
/// that still yields every byte, those included.
async fn peek(stream: BlobStream, n: usize) -> Result<(Vec<u8>, BlobStream), TransportError> {
    // Fused: a blob shorter than `n` has ended here, and the stages below
    // (`unfold`s) panic if polled again after their end.
    let mut stream = stream.fuse();
    let mut chunks = vec![];
    let mut head = vec![];
    while head.len() < n {
        match stream.next().await {
            Some(Ok(c)) => {
                head.extend_from_slice(&c[..c.len().min(n - head.len())]);
                chunks.push(Ok(c));
            }
            Some(Err(e)) => return Err(e),
            None => break,
        }
    }
    Ok((head, futures::stream::iter(chunks).chain(stream).boxed()))
}

/// ocicrypt's `decrypting layer D: …`.
fn layer_error(info: &BlobInfo, e: EncryptionError) -> TransportError {
    TransportError::Encryption(EncryptionError::Layer {
        layer: info.digest.clone(),
        source: Box::new(e),
    })
}

/// Copy one blob from `src` to `dst`. A layer (`job.claimed` is set) is
/// written in the compression `target` wants for what its first bytes show
/// it to be — not only what its media type claims — and the outcome says
/// which compression was written. A transfer holds a permit of `transfers`
/// (the looking up of a blob already there does not).
pub async fn copy_blob(
    src: &dyn ImageSource,
    dst: &dyn ImageDestination,
    job: &Job,
    from: Option<&RegistryLocation>,
    opts: &CopyOptions,
    target: &CompressionTarget,
    transfers: &tokio::sync::Semaphore,
) -> Result<BlobOutcome, TransportError> {
    let info = &job.info;
    let progress = opts.progress.clone();
    if let Some(p) = &progress {
        p.event(ProgressEvent::BlobStart { info });
    }
    // Kept as it is (by its claim): the destination may have it already.
    let unchanged = job.crypt == Crypt::Keep && job.claimed.is_none_or(|c| target.wanted(c) == c);
    // The layer's key, unwrapped before any byte moves: a wrong key fails here.
    let opened = match &job.crypt {
        Crypt::Decrypt(annotations) => {
            let with = opts.decryption.as_ref().map(|d| d.keys.clone());
            let with = with.ok_or_else(|| layer_error(info, EncryptionError::NoPrivateKey(String::new())))?;
            Some(
                layer::open(annotations, &with)
                    .await
                    .map_err(|e| layer_error(info, e))?,
            )
        }
        _ => None,
    };
    // An encrypted layer's key, wrapped for every recipient before any byte
    // moves (the same key for each attempt: the same bytes, the same ciphertext).
    let sealing = match (&job.crypt, &opts.encryption) {
        (Crypt::Encrypt, Some(enc)) => {
            let private = cipher::fresh_options(info.digest.to_string())?;
            let keys =
                layer::wrapped_keys(&enc.recipients, &private)
                    .await
                    .map_err(|source| EncryptionError::Encrypting {
                        blob: info.digest.clone(),
                        source: Box::new(source),
                    })?;
            Some((private, keys))
        }
        (Crypt::Encrypt, None) => return Err(EncryptionError::NoWrappedKeys.into()),
        _ => None,
    };
    if unchanged && dst.try_reuse_blob(info, from).await? {
        if let Some(p) = &progress {
            p.event(ProgressEvent::BlobDone {
                digest: &info.digest,
                reused: true,
            });
        }
        return Ok(BlobOutcome::Reused);
    }
    // Never closed: the semaphore lives as long as the copy of the image.
    let _permit = transfers.acquire().await.ok();
    let mut attempt = 0;
    loop {
        let mismatch = Mismatch::default();
        // Set when the source's stream failed (its client retried already).
        let source_failed = Arc::new(AtomicBool::new(false));
        let crypt_failed = CryptFailure::default();
        let result = async {
            let raw = noting_failure(src.blob(info).await?, source_failed.clone());
            let mut stream = verify(raw, info, mismatch.clone(), progress.clone());
            if let Some((private, public)) = &opened {
                stream = cipher::decrypt(prefetch(stream, 4), private, public, crypt_failed.clone())?;
            }
            // A layer is written in the compression the target wants for
            // what its first bytes show it to be.
            let (stream, compression, recompressed) = match job.claimed {
                None => (stream, None, false),
                Some(_) => {
                    let (head, stream) = peek(stream, 6).await?;
                    let actual = Compression::detect(&head);
                    let to = target.wanted(actual);
                    if to == actual {
                        (stream, Some(actual), false)
                    } else {
                        // Fetching and verifying run on one core, (de)compressing,
                        // hashing and writing on the other.
                        let s = transcode(prefetch(stream, 4), actual, to, target.settings.level)?;
                        (s, Some(to), true)
                    }
                }
            };
            let media_type = compression
                .unwrap_or(Compression::None)
                .layer_media_type(media::OCI_MANIFEST);
            match &job.crypt {
                Crypt::Keep if !recompressed => dst
                    .put_blob(info, stream)
                    .await
                    .map(|()| (info.digest.clone(), info.size.unwrap_or(0), compression, None)),
                Crypt::Keep => {
                    let (digest, size) = dst.put_blob_computed(media_type, stream).await?;
                    Ok((digest, size, compression, None))
                }
                Crypt::Decrypt(_) => {
                    let (digest, size) = dst.put_blob_computed(media_type, stream).await?;
                    Ok((digest, size, compression, Some(CryptDone::Decrypted)))
                }
                Crypt::Encrypt => {
                    let Some((private, keys)) = &sealing else {
                        return Err(EncryptionError::NoWrappedKeys.into());
                    };
                    let slot = cipher::PublicSlot::default();
                    let stream = cipher::encrypt(prefetch(stream, 4), private, slot.clone())?;
                    let (digest, size) = dst
                        .put_blob_computed(&format!("{media_type}+encrypted"), stream)
                        .await?;
                    let public = slot
                        .get()
                        .ok_or(EncryptionError::Crypto("the encrypted stream did not finish"))?;
                    let mut annotations = keys.clone();
                    annotations.extend([layer::public_annotation(public)?]);
                    Ok((digest, size, compression, Some(CryptDone::Encrypted(annotations))))
                }
            }
        }
        .await;
        if let (Err(_), Some(e)) = (&result, crypt_failed.get()) {
            return Err(layer_error(info, e.clone()));
        }
        match result {
            Ok((digest, size, compression, crypt)) => {
                if let Some(p) = &progress {
                    p.event(ProgressEvent::BlobDone {
                        digest: &info.digest,
                        reused: false,
                    });
                }
                return Ok(BlobOutcome::Copied {
                    digest,
                    size,
                    compression,
                    crypt,
                });
            }
            Err(e) if mismatch.get().is_some() => {
                tracing::debug!(error = %e, "blob failed verification");
                return Err(TransportError::CorruptSource {
                    digest: info.digest.clone(),
                    from: src.describe(),
                    why: mismatch.get().cloned().unwrap_or_default(),
                });
            }
            // Only a failed upload is retried here: replayable requests and
            // interrupted downloads were retried by the registry client, so
            // each failure is retried by exactly one layer.
            Err(e)
                if e.is_retryable_upload() && !source_failed.load(Ordering::SeqCst) && attempt < opts.retry.times =>
            {
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
