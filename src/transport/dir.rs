//! `dir:path`: skopeo's directory layout — `manifest.json`, blobs named by
//! their hex digest, `<hex>.manifest.json` for list instances, a `version` file.
//!
//! Writes go to a staging directory beside the target, swapped into place at
//! commit, so a failed copy never leaves a directory that looks complete.

use super::local::{
    collect_debris, create_staging_dir, mkdir_all, read_small, read_stream, sync_dir, write_atomic, write_stream,
};
use super::{BlobInfo, BlobStream, ImageDestination, ImageSource, TransportError};
use crate::digest::Digest;
use crate::manifest::guess_mime_type;
use async_trait::async_trait;
use bytes::Bytes;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// The version file's exact content, as containers/image writes it.
pub const VERSION: &str = "Directory Transport Version: 1.1\n";
const MANIFEST_LIMIT: u64 = 4 << 20;

fn blob_name(d: &Digest) -> String {
    match d.algorithm() {
        crate::digest::Algorithm::Sha256 => d.hex().to_string(),
        a => format!("{}-{}", a.as_str(), d.hex()),
    }
}

/// `signature-N`, or `<hex>.signature-N` for a list instance (N from 1).
fn signature_name(instance: Option<&Digest>, index: usize) -> String {
    match instance {
        Some(d) => format!("{}.signature-{}", d.hex(), index + 1),
        None => format!("signature-{}", index + 1),
    }
}

fn manifest_name(instance: Option<&Digest>) -> String {
    match instance {
        Some(d) => format!("{}.manifest.json", d.hex()),
        None => "manifest.json".to_string(),
    }
}

/// Reads an image from a `dir:` directory.
pub struct DirSource {
    path: PathBuf,
}

impl DirSource {
    /// Open the directory; it must hold a manifest.
    pub async fn open(path: &Path) -> Result<Self, TransportError> {
        if tokio::fs::metadata(path.join("manifest.json")).await.is_err() {
            return Err(TransportError::NoManifestFile(path.to_path_buf()));
        }
        Ok(DirSource {
            path: path.to_path_buf(),
        })
    }
}

#[async_trait]
impl ImageSource for DirSource {
    fn describe(&self) -> String {
        format!("dir:{}", self.path.display())
    }

    async fn manifest(&self, instance: Option<&Digest>) -> Result<(Bytes, String), TransportError> {
        let bytes = read_small(&self.path.join(manifest_name(instance)), MANIFEST_LIMIT).await?;
        if let Some(d) = instance
            && !d.matches(&bytes)
        {
            return Err(TransportError::StoredManifestMismatch {
                digest: d.clone(),
                location: self.path.display().to_string(),
            });
        }
        let mime = guess_mime_type(&bytes);
        Ok((bytes.into(), mime))
    }

    async fn blob(&self, info: &BlobInfo) -> Result<BlobStream, TransportError> {
        read_stream(&self.path.join(blob_name(&info.digest))).await
    }

    async fn signatures(&self, instance: Option<&Digest>, _manifest: &Digest) -> Result<Vec<Bytes>, TransportError> {
        let mut out = Vec::new();
        loop {
            let path = self.path.join(signature_name(instance, out.len()));
            if let Err(e) = tokio::fs::metadata(&path).await
                && e.kind() == std::io::ErrorKind::NotFound
            {
                return Ok(out);
            }
            let b = read_small(&path, crate::signature::openpgp::MAX_SIGNATURE_SIZE as u64).await?;
            out.push(Bytes::from(b));
        }
    }
}

/// Writes an image to a `dir:` directory through a staging directory.
pub struct DirDestination {
    path: PathBuf,
    staging: PathBuf,
    committed: AtomicBool,
}

impl DirDestination {
    /// Prepare a staging directory beside `path`. An existing non-empty
    /// directory is replaced at commit only if it is a `dir:` image itself.
    pub async fn open(path: &Path) -> Result<Self, TransportError> {
        // A symlink to a directory is written through, as skopeo does: the
        // image replaces the directory it points to, and the link stays.
        let path = &match tokio::fs::symlink_metadata(path).await {
            Ok(m) if m.file_type().is_symlink() => tokio::fs::canonicalize(path)
                .await
                .map_err(TransportError::io("resolving the symlink", path))?,
            _ => path.to_path_buf(),
        };
        if let Ok(mut entries) = tokio::fs::read_dir(path).await {
            let non_empty = entries.next_entry().await.ok().flatten().is_some();
            if non_empty && tokio::fs::metadata(path.join("version")).await.is_err() {
                return Err(TransportError::WouldOverwrite {
                    path: path.to_path_buf(),
                    holds: "it is not empty and holds no dir: image",
                });
            }
        } else if tokio::fs::metadata(path).await.is_ok() {
            return Err(TransportError::NotADirectory(path.to_path_buf()));
        }
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        mkdir_all(&parent).await?;
        // Staging directories and replaced images of killed copies.
        collect_debris(&parent).await;
        // Owned (and removed when dropped unfinished) before the next await.
        let dest = DirDestination {
            path: path.to_path_buf(),
            staging: create_staging_dir(path).await?,
            committed: AtomicBool::new(false),
        };
        write_atomic(&dest.staging.join("version"), VERSION.as_bytes()).await?;
        Ok(dest)
    }
}

impl Drop for DirDestination {
    fn drop(&mut self) {
        if !self.committed.load(Ordering::SeqCst) {
            let _ = std::fs::remove_dir_all(&self.staging);
        }
    }
}

#[async_trait]
impl ImageDestination for DirDestination {
    fn describe(&self) -> String {
        format!("dir:{}", self.path.display())
    }

    fn supported_manifest_types(&self) -> Vec<&'static str> {
        vec![]
    }

    async fn current_digest(&self) -> Result<Option<Digest>, TransportError> {
        // Only a dir: image is complete (it was swapped in whole, with its version file).
        if tokio::fs::metadata(self.path.join("version")).await.is_err() {
            return Ok(None);
        }
        match tokio::fs::read(self.path.join("manifest.json")).await {
            Ok(b) => Ok(Some(Digest::sha256_of(&b))),
            Err(_) => Ok(None),
        }
    }

    async fn try_reuse_blob(
        &self,
        info: &BlobInfo,
        _from: Option<&super::RegistryLocation>,
    ) -> Result<bool, TransportError> {
        // Already staged (another instance of a list shares it), or a blob of
        // the image being replaced that can be linked instead of copied.
        let name = blob_name(&info.digest);
        if tokio::fs::metadata(self.staging.join(&name)).await.is_ok() {
            return Ok(true);
        }
        let old = self.path.join(&name);
        match tokio::fs::metadata(&old).await {
            Ok(m) if info.size.is_none_or(|s| s == m.len()) => {
                Ok(tokio::fs::hard_link(&old, self.staging.join(&name)).await.is_ok())
            }
            _ => Ok(false),
        }
    }

    async fn put_blob(&self, info: &BlobInfo, stream: BlobStream) -> Result<(), TransportError> {
        write_stream(&self.staging.join(blob_name(&info.digest)), stream)
            .await
            .map(|_| ())
    }

    async fn put_blob_computed(&self, _media_type: &str, stream: BlobStream) -> Result<(Digest, u64), TransportError> {
        super::local::write_stream_hashed(&self.staging, stream, blob_name).await
    }

    async fn put_manifest(
        &self,
        manifest: &[u8],
        _media_type: &str,
        instance: Option<&Digest>,
    ) -> Result<(), TransportError> {
        write_atomic(&self.staging.join(manifest_name(instance)), manifest).await
    }

    fn supports_signatures(&self) -> Result<(), TransportError> {
        Ok(())
    }

    async fn put_signatures(&self, signatures: &[Bytes], instance: Option<&Digest>) -> Result<(), TransportError> {
        // The staging directory is new: there are no older signatures to remove.
        for (i, sig) in signatures.iter().enumerate() {
            write_atomic(&self.staging.join(signature_name(instance, i)), sig).await?;
        }
        Ok(())
    }

    async fn commit(&self) -> Result<(), TransportError> {
        let (staging, path) = (self.staging.clone(), self.path.clone());
        // Swap the staged image and the old one in one step, so that a copy
        // killed at any point leaves either image complete at `path` and
        // only debris (the other one, at the staging name) beside it.
        let swapped = tokio::task::spawn_blocking(move || exchange(&staging, &path))
            .await
            .map_err(TransportError::background("moving into place"))?;
        let had_old = match swapped {
            Ok(()) => true,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                tokio::fs::rename(&self.staging, &self.path)
                    .await
                    .map_err(TransportError::io("moving into place", &self.path))?;
                false
            }
            Err(e) => {
                return Err(TransportError::Io {
                    op: "moving into place",
                    path: self.path.clone(),
                    source: e,
                });
            }
        };
        self.committed.store(true, Ordering::SeqCst);
        if let Some(parent) = self.path.parent() {
            sync_dir(parent).await?;
        }
        if had_old {
            tokio::fs::remove_dir_all(&self.staging)
                .await
                .map_err(TransportError::io("removing the replaced image", &self.staging))?;
        }
        Ok(())
    }
}

/// Atomically exchange two paths (`renameat2(RENAME_EXCHANGE)`); `ENOENT`
/// when `b` does not exist. Where the filesystem cannot exchange, `b` is
/// moved aside first (a kill between the two renames leaves `b` at a
/// temporary name, which is then kept: only staging names are debris).
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt as _;
    let ca = std::ffi::CString::new(a.as_os_str().as_bytes())?;
    let cb = std::ffi::CString::new(b.as_os_str().as_bytes())?;
    // SAFETY: both are valid NUL-terminated paths, relative to the cwd.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    if !matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) {
        return Err(e);
    }
    let aside = b.with_file_name(format!(
        "{}.replaced-{}",
        b.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    std::fs::rename(b, &aside)?;
    if let Err(e) = std::fs::rename(a, b) {
        let _ = std::fs::rename(&aside, b);
        return Err(e);
    }
    std::fs::rename(&aside, a)
}
