//! File helpers shared by the local transports (`oci:`, `dir:`): streaming
//! blob reads, blob writes to a temporary name renamed into place only after
//! the stream ended cleanly, and atomic small-file writes.

use super::{BlobStream, TransportError};
use futures::{StreamExt, TryStreamExt};
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

/// Read buffer for blob files: large enough that syscalls don't dominate.
const READ_CHUNK: usize = 256 * 1024;
/// Write batching for blob files.
const WRITE_BUFFER: usize = 256 * 1024;

/// Stream a file's contents.
pub async fn read_stream(path: &Path) -> Result<BlobStream, TransportError> {
    let f = tokio::fs::File::open(path)
        .await
        .map_err(TransportError::io_or_missing("opening", path, || {
            TransportError::BlobFileMissing(path.to_path_buf())
        }))?;
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
pub async fn write_stream(target: &Path, stream: BlobStream) -> Result<u64, TransportError> {
    let (file, tmp) = create_temp(target).await?;
    let mut guard = TempGuard(Some(tmp.clone()));
    let n = write_file(file, &tmp, stream).await?;
    tokio::fs::rename(&tmp, target)
        .await
        .map_err(TransportError::io("renaming into place", target))?;
    guard.0 = None;
    Ok(n)
}

/// Write all of `stream` into `file` (at `path`) and flush it to disk.
async fn write_file(file: tokio::fs::File, path: &Path, mut stream: BlobStream) -> Result<u64, TransportError> {
    // Network chunks are small; batch them so each blocking write is large.
    let mut f = tokio::io::BufWriter::with_capacity(WRITE_BUFFER, file);
    let mut n = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        n += chunk.len() as u64;
        f.write_all(&chunk).await.map_err(TransportError::io("writing", path))?;
    }
    f.flush().await.map_err(TransportError::io("writing", path))?;
    f.into_inner()
        .sync_data()
        .await
        .map_err(TransportError::io("syncing", path))?;
    Ok(n)
}

/// Create a temporary file beside `target`, exclusively, readable by all
/// (blobs and layouts are shared with other tools).
pub(super) async fn create_temp(target: &Path) -> Result<(tokio::fs::File, PathBuf), TransportError> {
    let t = target.to_path_buf();
    let (file, tmp) = off_thread(move || crate::temp::create_beside(&t, 0o644), |(_, p)| p.clone())
        .await
        .map_err(TransportError::io("creating a temporary file beside", target))?;
    Ok((tokio::fs::File::from_std(file), tmp))
}

/// Create a staging directory beside `target`.
pub(super) async fn create_staging_dir(target: &Path) -> Result<PathBuf, TransportError> {
    let t = target.to_path_buf();
    off_thread(move || crate::temp::mkdir_beside(&t), PathBuf::clone)
        .await
        .map_err(TransportError::io("creating a staging directory beside", target))
}

/// Run `make` (which creates a file or directory) on a blocking thread. If
/// the caller's future is dropped meanwhile (the copy was interrupted), what
/// `make` created, at `path_of(..)`, is removed instead of left behind —
/// also when it was already handed over but not yet taken.
async fn off_thread<T: Send + 'static>(
    make: impl FnOnce() -> std::io::Result<T> + Send + 'static,
    path_of: impl FnOnce(&T) -> PathBuf + Send + 'static,
) -> std::io::Result<T> {
    /// A made thing that removes itself unless taken.
    struct Made<T> {
        value: Option<T>,
        path: PathBuf,
    }
    impl<T> Drop for Made<T> {
        fn drop(&mut self) {
            if let Some(v) = self.value.take() {
                drop(v);
                let _ = std::fs::remove_file(&self.path).or_else(|_| std::fs::remove_dir_all(&self.path));
            }
        }
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::task::spawn_blocking(move || {
        let made = make().map(|v| {
            let path = path_of(&v);
            Made { value: Some(v), path }
        });
        // Dropped here (and removed) if the receiver is gone.
        let _ = tx.send(made);
    });
    let mut made = rx
        .await
        .unwrap_or_else(|_| Err(std::io::Error::other("the blocking task was cancelled")))?;
    made.value.take().ok_or_else(|| std::io::Error::other("created twice"))
}

/// Remove what killed kopeo processes left in `dir` (see [`crate::temp`]).
pub async fn collect_debris(dir: &Path) {
    let d = dir.to_path_buf();
    let _ = tokio::task::spawn_blocking(move || crate::temp::collect_debris(&d)).await;
}

/// Flush `dir`'s entries to disk after a rename into it.
pub async fn sync_dir(dir: &Path) -> Result<(), TransportError> {
    let d = dir.to_path_buf();
    tokio::task::spawn_blocking(move || crate::temp::sync_dir(&d))
        .await
        .map_err(TransportError::background("syncing a directory"))?
        .map_err(TransportError::io("syncing directory", dir))
}

/// Write a small file atomically (temporary name, then rename).
pub async fn write_atomic(target: &Path, data: &[u8]) -> Result<(), TransportError> {
    let stream = futures::stream::once(futures::future::ready(Ok(bytes::Bytes::copy_from_slice(data)))).boxed();
    write_stream(target, stream).await.map(|_| ())
}

/// Read a small file, with a size limit so a hostile layout can't exhaust memory.
pub async fn read_small(path: &Path, limit: u64) -> Result<Vec<u8>, TransportError> {
    let meta = tokio::fs::metadata(path)
        .await
        .map_err(TransportError::io_or_missing("reading", path, || {
            TransportError::ImageNotFound(format!("{} does not exist", path.display()))
        }))?;
    if meta.len() > limit {
        return Err(TransportError::FileTooLarge {
            path: path.to_path_buf(),
            limit,
        });
    }
    tokio::fs::read(path).await.map_err(TransportError::io("reading", path))
}

/// Create a directory and its parents.
pub async fn mkdir_all(path: &Path) -> Result<(), TransportError> {
    tokio::fs::create_dir_all(path)
        .await
        .map_err(TransportError::io("creating directory", path))
}

/// Write a blob of unknown digest into `dir` (named by `name(digest)`),
/// hashing it on the way; returns its digest and size. The temporary file is
/// this process's alone (exclusively created), so the digest computed from
/// the stream is the digest of the file that is renamed into place.
pub async fn write_stream_hashed(
    dir: &Path,
    stream: BlobStream,
    name: impl Fn(&crate::digest::Digest) -> String,
) -> Result<(crate::digest::Digest, u64), TransportError> {
    let (stream, slot) = super::hashing(stream);
    let (file, tmp) = create_temp(&dir.join("incoming")).await?;
    let mut guard = TempGuard(Some(tmp.clone()));
    let n = write_file(file, &tmp, stream).await?;
    let (digest, size) = super::hashed(&slot)?;
    if size != n {
        return Err(TransportError::ShortWrite {
            path: tmp,
            written: n,
            hashed: size,
        });
    }
    let target = dir.join(name(&digest));
    tokio::fs::rename(&tmp, &target)
        .await
        .map_err(TransportError::io("renaming into place", &target))?;
    guard.0 = None;
    Ok((digest, size))
}
