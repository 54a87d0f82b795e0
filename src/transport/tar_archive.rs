//! Tar archives for the archive transports: an index of a tar file's
//! members (read without unpacking: each blob is served by seeking to its
//! offset) that refuses hostile archives, and a writer that streams members
//! of unknown size by patching their headers afterwards.

use super::{BlobStream, TransportError};
use futures::StreamExt;
use std::collections::{HashMap, HashSet};
use std::io::SeekFrom;
use std::path::{Component, Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// Largest JSON member (manifest.json, index.json, configs) kopeo reads.
pub const JSON_LIMIT: u64 = 64 << 20;

/// One regular file inside the archive.
#[derive(Debug, Clone, Copy)]
struct Member {
    offset: u64,
    size: u64,
}

/// The regular files of a tar archive, by normalised path.
#[derive(Debug)]
pub struct TarIndex {
    path: PathBuf,
    members: HashMap<String, Member>,
    /// The decompressed copy `path` names, for a compressed archive.
    _spool: Option<tempfile::TempPath>,
}

/// How a whole archive file is compressed (as containers/image's
/// AutoDecompress tells them apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArchiveCompression {
    Gzip,
    Zstd,
    Xz,
    Bzip2,
}

impl ArchiveCompression {
    /// From a stream's first bytes; `None` for uncompressed.
    pub(crate) fn detect(head: &[u8]) -> Option<Self> {
        if head.starts_with(&[0x1f, 0x8b]) {
            Some(Self::Gzip)
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Some(Self::Zstd)
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            Some(Self::Xz)
        } else if head.starts_with(b"BZh") {
            Some(Self::Bzip2)
        } else {
            None
        }
    }
}

/// Decompress `path` into a temporary file (random access needs a plain tar).
fn decompressed_copy(path: &Path, how: ArchiveCompression) -> Result<tempfile::TempPath, TransportError> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(TransportError::io("opening", path))?;
    let input = std::io::BufReader::with_capacity(256 * 1024, file);
    let mut reader: Box<dyn std::io::Read> = match how {
        ArchiveCompression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(input)),
        ArchiveCompression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(input).map_err(TransportError::io("decompressing", path))?,
        ),
        ArchiveCompression::Xz => Box::new(lzma_rust2::XzReader::new(input, true)),
        ArchiveCompression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(input)),
    };
    let mut spool = tempfile::Builder::new()
        .prefix("kopeo-archive-")
        .suffix(".tar")
        .tempfile()
        .map_err(TransportError::io("creating a temporary file for", path))?;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| bad(path, format!("decompressing ({how:?}): {e}")))?;
        if n == 0 {
            break;
        }
        std::io::Write::write_all(spool.as_file_mut(), &buf[..n])
            .map_err(TransportError::io("writing", spool.path().to_path_buf()))?;
    }
    Ok(spool.into_temp_path())
}

/// Opening the archive at `path` failed; a missing one is not found (exit 2).
fn missing_archive(path: &Path) -> impl FnOnce(std::io::Error) -> TransportError {
    TransportError::io_or_missing("opening", path, || {
        TransportError::ImageNotFound(format!("archive {} does not exist", path.display()))
    })
}

fn bad(path: &Path, why: String) -> TransportError {
    TransportError::MalformedArchive {
        format: "archive",
        path: path.to_path_buf(),
        why,
    }
}

/// Normalise a member path; `None` if it is absolute or climbs out with `..`.
fn clean(name: &Path) -> Option<String> {
    let mut parts: Vec<String> = vec![];
    for c in name.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.join("/"))
}

impl TarIndex {
    /// Read every header of the archive at `path` (skipping file data).
    pub async fn open(path: &Path) -> Result<TarIndex, TransportError> {
        let p = path.to_path_buf();
        tokio::task::spawn_blocking(move || Self::open_blocking(&p))
            .await
            .map_err(TransportError::background("indexing archive"))?
    }

    fn open_blocking(path: &Path) -> Result<TarIndex, TransportError> {
        let mut head = [0u8; 6];
        let n = {
            use std::io::Read as _;
            let mut f = std::fs::File::open(path).map_err(missing_archive(path))?;
            f.read(&mut head).map_err(TransportError::io("reading", path))?
        };
        if let Some(how) = ArchiveCompression::detect(&head[..n]) {
            let spool = decompressed_copy(path, how)?;
            let mut index = Self::open_plain(&spool)?;
            index._spool = Some(spool);
            return Ok(index);
        }
        Self::open_plain(path)
    }

    fn open_plain(path: &Path) -> Result<TarIndex, TransportError> {
        let file = std::fs::File::open(path).map_err(missing_archive(path))?;
        let len = file.metadata().map_err(TransportError::io("reading", path))?.len();
        let mut archive = tar::Archive::new(file);
        let mut members = HashMap::new();
        let mut links: Vec<(String, String)> = vec![];
        let mut seen = HashSet::new();
        let entries = archive.entries_with_seek().map_err(|e| bad(path, e.to_string()))?;
        for entry in entries {
            let entry = entry.map_err(|e| bad(path, format!("corrupt or truncated: {e}")))?;
            let raw = entry.path().map_err(|e| bad(path, e.to_string()))?.into_owned();
            let name =
                clean(&raw).ok_or_else(|| bad(path, format!("member {} points outside the archive", raw.display())))?;
            let kind = entry.header().entry_type();
            if kind.is_dir() {
                continue;
            }
            if !seen.insert(name.clone()) {
                return Err(bad(path, format!("member {name} appears more than once")));
            }
            if kind.is_symlink() || kind.is_hard_link() {
                let target = entry
                    .link_name()
                    .map_err(|e| bad(path, e.to_string()))?
                    .ok_or_else(|| bad(path, format!("link {name} has no target")))?;
                let joined = if kind.is_symlink() {
                    Path::new(&name).parent().unwrap_or(Path::new("")).join(&target)
                } else {
                    target.to_path_buf()
                };
                let resolved = clean(&joined).filter(|_| !target.is_absolute()).ok_or_else(|| {
                    bad(
                        path,
                        format!("link {name} points outside the archive ({})", target.display()),
                    )
                })?;
                links.push((name, resolved));
                continue;
            }
            if !kind.is_file() && kind != tar::EntryType::Continuous {
                continue;
            }
            let size = entry.size();
            let offset = entry.raw_file_position();
            if offset.checked_add(size).is_none_or(|end| end > len) {
                return Err(bad(path, format!("member {name} is truncated")));
            }
            members.insert(name, Member { offset, size });
        }
        // Links may only name regular files of the same archive.
        for (name, target) in links {
            let m = *members.get(&target).ok_or_else(|| {
                bad(
                    path,
                    format!("link {name} points to {target}, which is not a file in the archive"),
                )
            })?;
            members.insert(name, m);
        }
        Ok(TarIndex {
            path: path.to_path_buf(),
            members,
            _spool: None,
        })
    }

    /// Whether `name` is a file in the archive.
    pub fn contains(&self, name: &str) -> bool {
        clean(Path::new(name)).is_some_and(|n| self.members.contains_key(&n))
    }

    fn member(&self, name: &str) -> Result<Member, TransportError> {
        clean(Path::new(name))
            .and_then(|n| self.members.get(&n).copied())
            .ok_or_else(|| bad(&self.path, format!("{name} is missing from the archive")))
    }

    /// The archive file, positioned at `offset`.
    async fn open_at(&self, offset: u64) -> Result<tokio::fs::File, TransportError> {
        let mut f = tokio::fs::File::open(&self.path)
            .await
            .map_err(TransportError::io("opening", &self.path))?;
        f.seek(SeekFrom::Start(offset))
            .await
            .map_err(TransportError::io("reading", &self.path))?;
        Ok(f)
    }

    /// Size of member `name`.
    pub fn size(&self, name: &str) -> Result<u64, TransportError> {
        Ok(self.member(name)?.size)
    }

    /// Read a small member whole, refusing anything over `limit` bytes.
    pub async fn read_small(&self, name: &str, limit: u64) -> Result<Vec<u8>, TransportError> {
        let m = self.member(name)?;
        if m.size > limit {
            return Err(bad(
                &self.path,
                format!("{name} is {} bytes, more than the {limit} allowed", m.size),
            ));
        }
        let mut f = self.open_at(m.offset).await?;
        let mut buf = vec![0; m.size as usize];
        f.read_exact(&mut buf)
            .await
            .map_err(TransportError::io("reading", &self.path))?;
        Ok(buf)
    }

    /// The first bytes of a member (to sniff compression).
    pub async fn head(&self, name: &str, n: usize) -> Result<Vec<u8>, TransportError> {
        let m = self.member(name)?;
        let mut f = self.open_at(m.offset).await?;
        let mut buf = vec![0; n.min(m.size as usize)];
        f.read_exact(&mut buf)
            .await
            .map_err(TransportError::io("reading", &self.path))?;
        Ok(buf)
    }

    /// Stream member `name` straight from the archive file.
    pub async fn stream(&self, name: &str) -> Result<BlobStream, TransportError> {
        let m = self.member(name)?;
        let f = self.open_at(m.offset).await?;
        let p = self.path.clone();
        Ok(tokio_util::io::ReaderStream::with_capacity(f.take(m.size), 256 * 1024)
            .map(move |r| {
                r.map_err(|e| TransportError::Io {
                    op: "reading",
                    path: p.clone(),
                    source: e,
                })
            })
            .boxed())
    }
}

/// Where a finished archive goes, decided from what is at its path now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// A regular file (new, empty, or one the transport may replace): the
    /// archive is written beside it and renamed over it at the end.
    File(PathBuf),
    /// A FIFO or character device (`/dev/stdout`, a pipe): the finished
    /// archive is streamed into it; nothing reaches it if the copy fails.
    Stream(PathBuf),
}

impl Placement {
    /// Decide for `path`: an existing non-empty regular file is replaced only
    /// if `replaceable` accepts it; a symlink is written through.
    pub async fn decide(
        path: &Path,
        replaceable: impl AsyncFnOnce(&Path) -> Result<(), TransportError>,
    ) -> Result<Placement, TransportError> {
        let meta = match tokio::fs::metadata(path).await {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if tokio::fs::symlink_metadata(path).await.is_ok() {
                    return Err(TransportError::DanglingSymlink(path.to_path_buf()));
                }
                return Ok(Placement::File(path.to_path_buf()));
            }
            Err(e) => return Err(TransportError::io("inspecting", path)(e)),
        };
        use std::os::unix::fs::FileTypeExt as _;
        let kind = meta.file_type();
        if kind.is_dir() {
            return Err(TransportError::IsADirectory(path.to_path_buf()));
        }
        if kind.is_fifo() || kind.is_char_device() || kind.is_socket() {
            return Ok(Placement::Stream(path.to_path_buf()));
        }
        let real = tokio::fs::canonicalize(path)
            .await
            .map_err(TransportError::io("resolving", path))?;
        if meta.len() > 0 {
            replaceable(&real).await?;
        }
        Ok(Placement::File(real))
    }
}

/// Writes a tar archive to a temporary file, which [`TarWriter::finish`]
/// renames over its target or streams into it; dropped unfinished, the
/// temporary file is removed and the target is untouched.
pub struct TarWriter {
    placement: Placement,
    tmp: PathBuf,
    file: Option<tokio::io::BufWriter<tokio::fs::File>>,
    pos: u64,
    names: HashSet<String>,
}

fn header(name: &str, size: u64, kind: tar::EntryType, link: Option<&str>) -> Result<tar::Header, TransportError> {
    let mut h = tar::Header::new_gnu();
    h.set_path(name).map_err(|source| TransportError::MemberName {
        name: name.to_string(),
        source,
    })?;
    if let Some(l) = link {
        h.set_link_name(l).map_err(|source| TransportError::MemberName {
            name: l.to_string(),
            source,
        })?;
    }
    h.set_size(size);
    h.set_entry_type(kind);
    h.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_cksum();
    Ok(h)
}

impl TarWriter {
    /// Start writing the archive that will appear at `placement`.
    pub async fn create(placement: Placement) -> Result<TarWriter, TransportError> {
        let beside = match &placement {
            Placement::File(target) => {
                if let Some(parent) = target.parent() {
                    super::local::collect_debris(parent).await;
                }
                target.clone()
            }
            // A pipe's directory is no place for temporary files.
            Placement::Stream(_) => std::env::temp_dir().join("kopeo-archive"),
        };
        let (f, tmp) = super::local::create_temp(&beside).await?;
        Ok(TarWriter {
            placement,
            tmp,
            file: Some(tokio::io::BufWriter::with_capacity(256 * 1024, f)),
            pos: 0,
            names: HashSet::new(),
        })
    }

    fn out(&mut self) -> Result<&mut tokio::io::BufWriter<tokio::fs::File>, TransportError> {
        self.file.as_mut().ok_or(TransportError::ArchiveFinished)
    }

    async fn write(&mut self, data: &[u8]) -> Result<(), TransportError> {
        let tmp = self.tmp.clone();
        self.out()?
            .write_all(data)
            .await
            .map_err(TransportError::io("writing", &tmp))?;
        self.pos += data.len() as u64;
        Ok(())
    }

    async fn pad(&mut self) -> Result<(), TransportError> {
        let rem = (self.pos % 512) as usize;
        if rem != 0 {
            self.write(&[0u8; 512][..512 - rem]).await?;
        }
        Ok(())
    }

    /// Whether a member of this name was written already.
    pub fn has(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    /// Add a small file.
    pub async fn add_file(&mut self, name: &str, data: &[u8]) -> Result<(), TransportError> {
        let h = header(name, data.len() as u64, tar::EntryType::Regular, None)?;
        self.write(h.as_bytes()).await?;
        self.write(data).await?;
        self.pad().await?;
        self.names.insert(name.to_string());
        Ok(())
    }

    /// Add a directory entry.
    pub async fn add_dir(&mut self, name: &str) -> Result<(), TransportError> {
        let h = header(name, 0, tar::EntryType::Directory, None)?;
        self.write(h.as_bytes()).await?;
        self.names.insert(name.to_string());
        Ok(())
    }

    /// Add a symbolic link.
    pub async fn add_symlink(&mut self, name: &str, target: &str) -> Result<(), TransportError> {
        let h = header(name, 0, tar::EntryType::Symlink, Some(target))?;
        self.write(h.as_bytes()).await?;
        self.names.insert(name.to_string());
        Ok(())
    }

    /// Stream a member whose size (and, through `name`, whose name) is known
    /// only at its end: a placeholder header is written first and patched.
    /// `name` is called with the number of bytes written.
    pub async fn add_stream(
        &mut self,
        mut stream: BlobStream,
        name: impl FnOnce(u64) -> Result<String, TransportError>,
    ) -> Result<String, TransportError> {
        let start = self.pos;
        let placeholder = header("incomplete", 0, tar::EntryType::Regular, None)?;
        self.write(placeholder.as_bytes()).await?;
        let mut n = 0u64;
        let streamed = async {
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                n += chunk.len() as u64;
                self.write(&chunk).await?;
            }
            self.pad().await
        }
        .await;
        if let Err(e) = streamed {
            // Cut the half-written member off, so that a retry (or the next
            // member) continues a well-formed archive.
            self.truncate_to(start).await?;
            return Err(e);
        }
        let name = name(n)?;
        let h = header(&name, n, tar::EntryType::Regular, None)?;
        let tmp = self.tmp.clone();
        let end = self.pos;
        let out = self.out()?;
        out.flush().await.map_err(TransportError::io("writing", &tmp))?;
        let f = out.get_mut();
        f.seek(SeekFrom::Start(start))
            .await
            .map_err(TransportError::io("writing", &tmp))?;
        f.write_all(h.as_bytes())
            .await
            .map_err(TransportError::io("writing", &tmp))?;
        f.seek(SeekFrom::Start(end))
            .await
            .map_err(TransportError::io("writing", &tmp))?;
        self.names.insert(name.clone());
        Ok(name)
    }

    async fn truncate_to(&mut self, offset: u64) -> Result<(), TransportError> {
        let tmp = self.tmp.clone();
        let out = self.out()?;
        out.flush().await.map_err(TransportError::io("writing", &tmp))?;
        let f = out.get_mut();
        f.set_len(offset)
            .await
            .map_err(TransportError::io("truncating", &tmp))?;
        f.seek(SeekFrom::Start(offset))
            .await
            .map_err(TransportError::io("writing", &tmp))?;
        self.pos = offset;
        Ok(())
    }

    /// End the archive and move it into place (or stream it into its pipe).
    pub async fn finish(&mut self) -> Result<(), TransportError> {
        let f = self.end().await?.into_inner();
        match self.placement.clone() {
            Placement::File(target) => {
                f.sync_all().await.map_err(TransportError::io("syncing", &self.tmp))?;
                drop(f);
                tokio::fs::rename(&self.tmp, &target)
                    .await
                    .map_err(TransportError::io("renaming into place", &target))?;
                match target.parent() {
                    Some(dir) => super::local::sync_dir(dir).await,
                    None => Ok(()),
                }
            }
            Placement::Stream(target) => {
                drop(f);
                let mut from = tokio::fs::File::open(&self.tmp)
                    .await
                    .map_err(TransportError::io("reading", &self.tmp))?;
                // Opened without O_CREAT or O_TRUNC: a pipe or device is written as it is.
                let mut to = tokio::fs::OpenOptions::new()
                    .write(true)
                    .open(&target)
                    .await
                    .map_err(TransportError::io("opening", &target))?;
                tokio::io::copy(&mut from, &mut to)
                    .await
                    .map_err(TransportError::io("writing", &target))?;
                to.flush().await.map_err(TransportError::io("writing", &target))?;
                let _ = tokio::fs::remove_file(&self.tmp).await;
                Ok(())
            }
        }
    }

    /// Where the archive is being written (for handing it on before `finish`).
    pub fn temp_path(&self) -> &Path {
        &self.tmp
    }

    /// End the archive without moving it into place (it stays at [`TarWriter::temp_path`]).
    pub async fn close(&mut self) -> Result<(), TransportError> {
        self.end().await.map(drop)
    }

    /// Write the end-of-archive blocks and flush; the file, done with.
    async fn end(&mut self) -> Result<tokio::io::BufWriter<tokio::fs::File>, TransportError> {
        self.write(&[0u8; 1024]).await?;
        let mut f = self.file.take().ok_or(TransportError::ArchiveFinished)?;
        f.flush().await.map_err(TransportError::io("writing", &self.tmp))?;
        Ok(f)
    }
}

impl Drop for TarWriter {
    fn drop(&mut self) {
        // Unfinished archives are not kept; a finished one was renamed away.
        let _ = std::fs::remove_file(&self.tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failed_member_leaves_a_well_formed_archive() {
        use futures::StreamExt as _;
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a.tar");
        let mut w = TarWriter::create(Placement::File(target.clone())).await.unwrap();
        w.add_file("first", b"one").await.unwrap();
        let failing = futures::stream::iter(vec![
            Ok(bytes::Bytes::from_static(b"partial")),
            Err(TransportError::StreamEndedEarly),
        ])
        .boxed();
        assert!(w.add_stream(failing, |_| Ok("broken".into())).await.is_err());
        let ok = futures::stream::iter(vec![Ok(bytes::Bytes::from_static(b"two"))]).boxed();
        w.add_stream(ok, |_| Ok("second".into())).await.unwrap();
        w.finish().await.unwrap();
        let index = TarIndex::open(&target).await.unwrap();
        assert_eq!(index.read_small("first", 10).await.unwrap(), b"one");
        assert_eq!(index.read_small("second", 10).await.unwrap(), b"two");
        assert!(!index.contains("broken") && !index.contains("incomplete"));
    }

    #[test]
    fn cleans_member_paths() {
        assert_eq!(clean(Path::new("./a/b")).as_deref(), Some("a/b"));
        assert_eq!(clean(Path::new("a/../b")).as_deref(), Some("b"));
        assert_eq!(clean(Path::new("../b")), None);
        assert_eq!(clean(Path::new("/etc/passwd")), None);
    }
}
