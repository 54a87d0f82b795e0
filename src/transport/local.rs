//! File helpers shared by the local transports (`oci:`, `dir:`): streaming
//! blob reads, blob writes to a temporary name renamed into place only after
//! the stream ended cleanly, and atomic small-file writes.

use super::{BlobStream, TransportError};
use futures::{StreamExt, TryStreamExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::AsyncWriteExt;

/// Read buffer for blob files: large enough that syscalls don't dominate.
const READ_CHUNK: usize = 256 * 1024;
/// Write batching for blob files.
const WRITE_BUFFER: usize = 256 * 1024;

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A unique temporary name beside `target`.
pub fn temp_path(target: &Path) -> PathBuf {
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = target
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(".{name}.kopeo-{}-{n}.tmp", std::process::id()))
}

/// Stream a file's contents.
pub async fn read_stream(path: &Path) -> Result<BlobStream, TransportError> {
    let f = tokio::fs::File::open(path).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            TransportError::Invalid(format!("blob file {} is missing", path.display()))
        } else {
            TransportError::Io {
                op: "opening",
                path: path.to_path_buf(),
                source: e,
            }
        }
    })?;
    let p = path.to_path_buf();
    Ok(tokio_util::io::ReaderStream::with_capacity(f, READ_CHUNK)
        .map_err(move |e| TransportError::Io {
            op: "reading",
            path: p.clone(),
            source: e,
        })
        .boxed())
}

/// Removes a temporary file unless disarmed: runs even when the writing
/// future is dropped mid-way (a sibling blob failed and the copy was abandoned).
struct TempGuard(Option<PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Write `stream` to `target` via a temporary file; on any error (or if this
/// future is dropped) the temporary file is removed and `target` is untouched.
pub async fn write_stream(target: &Path, mut stream: BlobStream) -> Result<u64, TransportError> {
    let tmp = temp_path(target);
    let mut guard = TempGuard(Some(tmp.clone()));
    let result = async {
        let file = tokio::fs::File::create(&tmp)
            .await
            .map_err(TransportError::io("creating", &tmp))?;
        // Network chunks are small; batch them so each blocking write is large.
        let mut f = tokio::io::BufWriter::with_capacity(WRITE_BUFFER, file);
        let mut n = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            n += chunk.len() as u64;
            f.write_all(&chunk).await.map_err(TransportError::io("writing", &tmp))?;
        }
        f.flush().await.map_err(TransportError::io("writing", &tmp))?;
        let file = f.into_inner();
        file.sync_data().await.map_err(TransportError::io("syncing", &tmp))?;
        drop(file);
        tokio::fs::rename(&tmp, target)
            .await
            .map_err(TransportError::io("renaming into place", target))?;
        Ok(n)
    }
    .await;
    if result.is_ok() {
        guard.0 = None;
    }
    result
}

/// Write a small file atomically (temporary name, then rename).
pub async fn write_atomic(target: &Path, data: &[u8]) -> Result<(), TransportError> {
    let stream = futures::stream::once(futures::future::ready(Ok(bytes::Bytes::copy_from_slice(data)))).boxed();
    write_stream(target, stream).await.map(|_| ())
}

/// Read a small file, with a size limit so a hostile layout can't exhaust memory.
pub async fn read_small(path: &Path, limit: u64) -> Result<Vec<u8>, TransportError> {
    let meta = tokio::fs::metadata(path).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            TransportError::ImageNotFound(format!("{} does not exist", path.display()))
        } else {
            TransportError::Io {
                op: "reading",
                path: path.to_path_buf(),
                source: e,
            }
        }
    })?;
    if meta.len() > limit {
        return Err(TransportError::Invalid(format!(
            "{} is larger than {limit} bytes",
            path.display()
        )));
    }
    tokio::fs::read(path).await.map_err(TransportError::io("reading", path))
}

/// Create a directory and its parents.
pub async fn mkdir_all(path: &Path) -> Result<(), TransportError> {
    tokio::fs::create_dir_all(path)
        .await
        .map_err(TransportError::io("creating directory", path))
}

/// Write a blob of unknown digest into `dir` (named `<hex>` by
/// `name(digest)`), hashing it on the way; returns its digest and size.
pub async fn write_stream_hashed(
    dir: &Path,
    stream: BlobStream,
    name: impl Fn(&crate::digest::Digest) -> String,
) -> Result<(crate::digest::Digest, u64), TransportError> {
    let (stream, slot) = super::hashing(stream);
    let tmp_target = dir.join(format!(".incoming-{}", TMP_COUNTER.fetch_add(1, Ordering::Relaxed)));
    let mut guard = TempGuard(Some(tmp_target.clone()));
    write_stream(&tmp_target, stream).await?;
    let (digest, size) = super::hashed(&slot)?;
    let target = dir.join(name(&digest));
    tokio::fs::rename(&tmp_target, &target)
        .await
        .map_err(TransportError::io("renaming into place", &target))?;
    guard.0 = None;
    Ok((digest, size))
}
