//! tar-split metadata (`<layer>.tar-split.gz`, as vbatts/tar-split writes it
//! for containers/storage): gzipped newline-delimited JSON entries, in
//! order: segments (`type` 2, the raw bytes between file contents, base64)
//! and files (`type` 1, name, size, CRC-64/ISO of the content, base64).
//! Reading a layer back joins the segments with the files' current
//! contents, checking each file's CRC, and so yields the original tar.

use super::StorageError;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::io::{BufRead, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

const SEGMENT: u8 = 2;
const FILE: u8 = 1;
/// The largest segment written at once (tar-split's padding chunk).
const SEGMENT_CHUNK: usize = 1024 * 1024;

/// One entry, as tar-split's `storage.Entry` encodes it (Go's `[]byte` is
/// base64 in JSON, and a nil one is `null`).
#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    #[serde(rename = "type")]
    kind: u8,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name_raw: Option<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    size: u64,
    payload: Option<String>,
    position: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Writes the entries of one layer as it is applied.
pub struct Writer<W: Write> {
    out: flate2::write::GzEncoder<W>,
    position: u64,
    seen: HashSet<String>,
}

impl<W: Write> Writer<W> {
    /// Entries go to `out`, gzipped.
    pub fn new(out: W) -> Self {
        Writer {
            out: flate2::write::GzEncoder::new(out, flate2::Compression::fast()),
            position: 0,
            seen: HashSet::new(),
        }
    }

    fn put(&mut self, e: &Entry) -> Result<(), StorageError> {
        serde_json::to_writer(&mut self.out, e).map_err(|e| StorageError::TarSplit(e.to_string()))?;
        self.out.write_all(b"\n").map_err(StorageError::Write)?;
        self.position += 1;
        Ok(())
    }

    /// Raw bytes between file contents (headers, padding, the trailer).
    pub fn segment(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        for chunk in bytes.chunks(SEGMENT_CHUNK) {
            let e = Entry {
                kind: SEGMENT,
                name: String::new(),
                name_raw: None,
                size: 0,
                payload: Some(base64::engine::general_purpose::STANDARD.encode(chunk)),
                position: self.position,
            };
            self.put(&e)?;
        }
        Ok(())
    }

    /// A member: its name as in the tar, declared size, and the CRC of its
    /// content (`None` when it has none). The same path twice is refused,
    /// as tar-split refuses it.
    pub fn file(&mut self, name: &str, size: u64, crc: Option<u64>) -> Result<(), StorageError> {
        if !self.seen.insert(clean(name)) {
            return Err(StorageError::DuplicatePath(name.to_string()));
        }
        let e = Entry {
            kind: FILE,
            name: name.to_string(),
            name_raw: None,
            size,
            payload: crc.map(|c| base64::engine::general_purpose::STANDARD.encode(c.to_be_bytes())),
            position: self.position,
        };
        self.put(&e)
    }

    /// End the gzip stream and hand back the output.
    pub fn finish(self) -> Result<W, StorageError> {
        self.out.finish().map_err(StorageError::Write)
    }
}

/// Go's `filepath.Clean` as tar-split applies it to names before comparing.
pub fn clean(name: &str) -> String {
    let rooted = name.starts_with('/');
    let mut parts: Vec<&str> = vec![];
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            c => parts.push(c),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// The tar of a layer, reassembled from its tar-split file and the
/// directory whose files hold the contents (`root`).
pub struct Assembler {
    lines: std::io::Lines<std::io::BufReader<flate2::read::GzDecoder<std::fs::File>>>,
    root: PathBuf,
    pending: std::io::Cursor<Vec<u8>>,
}

impl Assembler {
    /// Open `tar_split` for a layer whose files are under `root`.
    pub fn open(tar_split: &Path, root: &Path) -> Result<Assembler, StorageError> {
        let f = std::fs::File::open(tar_split).map_err(StorageError::io("opening", tar_split))?;
        Ok(Assembler {
            lines: std::io::BufReader::new(flate2::read::GzDecoder::new(f)).lines(),
            root: root.to_path_buf(),
            pending: std::io::Cursor::new(vec![]),
        })
    }

    /// The next piece of the tar, `None` at its end.
    fn next_piece(&mut self) -> Result<Option<Vec<u8>>, StorageError> {
        let Some(line) = self.lines.next() else {
            return Ok(None);
        };
        let line = line.map_err(|e| StorageError::TarSplit(e.to_string()))?;
        if line.trim().is_empty() {
            return Ok(Some(vec![]));
        }
        let e: Entry = serde_json::from_str(&line).map_err(|e| StorageError::TarSplit(e.to_string()))?;
        let b64 = |s: &str| {
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|e| StorageError::TarSplit(e.to_string()))
        };
        match e.kind {
            SEGMENT => Ok(Some(b64(e.payload.as_deref().unwrap_or(""))?)),
            FILE if e.size == 0 => Ok(Some(vec![])),
            FILE => {
                let name = match &e.name_raw {
                    Some(raw) => String::from_utf8(b64(raw)?)
                        .map_err(|_| StorageError::TarSplit("a member name that is not UTF-8".into()))?,
                    None => e.name.clone(),
                };
                // Resolved inside the layer as when it was applied: a
                // symlink in the layer never makes this read a host file.
                let rel = super::apply::relative(&name)?;
                let parent = match rel.parent() {
                    Some(p) if !p.as_os_str().is_empty() => super::apply::resolve(&self.root, p, false)?,
                    _ => self.root.clone(),
                };
                let path = parent.join(rel.file_name().unwrap_or_default());
                let mut data = Vec::with_capacity(e.size.min(1 << 20) as usize);
                // Non-blocking: a FIFO a hostile layer put at this path must
                // not hang the read; only a regular file is layer content.
                let f = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                    .open(&path)
                    .map_err(StorageError::io("opening layer file", &path))?;
                if !f.metadata().is_ok_and(|m| m.is_file()) {
                    return Err(StorageError::LayerFileChanged(path));
                }
                f.take(e.size)
                    .read_to_end(&mut data)
                    .map_err(StorageError::io("reading layer file", &path))?;
                let want = e.payload.as_deref().map(b64).transpose()?;
                let have = crc64(&data).to_be_bytes();
                if data.len() as u64 != e.size || want.as_deref() != Some(&have[..]) {
                    return Err(StorageError::LayerFileChanged(path));
                }
                Ok(Some(data))
            }
            other => Err(StorageError::TarSplit(format!("unknown entry type {other}"))),
        }
    }
}

impl Read for Assembler {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let n = self.pending.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            match self.next_piece() {
                Ok(Some(p)) => self.pending = std::io::Cursor::new(p),
                Ok(None) => return Ok(0),
                Err(e) => return Err(std::io::Error::other(e)),
            }
        }
    }
}

/// CRC-64 with the ISO polynomial, as Go's `hash/crc64` computes it.
pub fn crc64(data: &[u8]) -> u64 {
    let mut c = Crc64::default();
    c.update(data);
    c.sum()
}

/// An incremental CRC-64/ISO.
#[derive(Debug, Clone, Copy)]
pub struct Crc64(u64);

impl Default for Crc64 {
    fn default() -> Self {
        Crc64(!0)
    }
}

static TABLE: std::sync::LazyLock<[u64; 256]> = std::sync::LazyLock::new(|| {
    const ISO: u64 = 0xD800_0000_0000_0000;
    let mut t = [0u64; 256];
    for (i, slot) in t.iter_mut().enumerate() {
        let mut c = i as u64;
        for _ in 0..8 {
            c = if c & 1 == 1 { (c >> 1) ^ ISO } else { c >> 1 };
        }
        *slot = c;
    }
    t
});

impl Crc64 {
    /// Add bytes.
    pub fn update(&mut self, data: &[u8]) {
        let t = &*TABLE;
        let mut c = self.0;
        for &b in data {
            c = t[((c as u8) ^ b) as usize] ^ (c >> 8);
        }
        self.0 = c;
    }

    /// The checksum so far.
    pub fn sum(&self) -> u64 {
        !self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc64_iso_matches_the_catalogued_check_value() {
        // CRC-64/GO-ISO, check value of "123456789" (reveng catalogue).
        assert_eq!(crc64(b"123456789"), 0xb909_56c7_75a4_1001);
    }

    #[test]
    fn go_clean_semantics() {
        assert_eq!(clean("./a//b/../c/"), "a/c");
        assert_eq!(clean("/../x"), "/x");
        assert_eq!(clean("a/../../x"), "../x");
        assert_eq!(clean(""), ".");
    }

    #[test]
    fn entries_reassemble_the_tar_from_files_on_disk_and_notice_a_changed_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"hello").unwrap();
        let mut w = Writer::new(vec![]);
        w.segment(b"HEADER").unwrap();
        w.file("./f", 5, Some(crc64(b"hello"))).unwrap();
        w.file("empty", 0, None).unwrap();
        assert!(matches!(w.file("f", 5, None), Err(StorageError::DuplicatePath(_))));
        w.segment(b"TRAILER").unwrap();
        let ts = dir.path().join("l.tar-split.gz");
        std::fs::write(&ts, w.finish().unwrap()).unwrap();
        let mut out = vec![];
        Assembler::open(&ts, dir.path()).unwrap().read_to_end(&mut out).unwrap();
        assert_eq!(out, b"HEADERhelloTRAILER");
        std::fs::write(dir.path().join("f"), b"HELLO").unwrap();
        let err = Assembler::open(&ts, dir.path())
            .unwrap()
            .read_to_end(&mut vec![])
            .unwrap_err();
        assert!(err.to_string().contains("no longer has the content"), "{err}");
    }
}
