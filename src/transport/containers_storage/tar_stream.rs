//! A streaming reader of layer tars that keeps every byte that is not file
//! content, so that tar-split can record it and reading the layer back
//! reproduces the original tar byte for byte. Understands ustar, GNU long
//! names (`L`, `K`) and PAX headers (`x`, `g`: path, linkpath, size, ids,
//! mtime, `SCHILY.xattr.*`); refuses sparse files and bad checksums.

use super::StorageError;
use std::collections::BTreeMap;
use std::io::Read;

const BLOCK: usize = 512;
/// Bound on one extension header's data (PAX or GNU long name): real ones
/// are a few KiB; this refuses a "huge PAX header" without reading it.
const EXTENSION_LIMIT: u64 = 1 << 20;

/// Bound on content kopeo does not write out but keeps for tar-split.
const UNREAD_LIMIT: u64 = 1 << 20;

/// What one member of the tar says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub link: String,
    /// The type flag byte (`b'0'` file, `b'5'` directory, …).
    pub kind: u8,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// The declared size (what tar-split records).
    pub size: u64,
    pub mtime: i64,
    pub dev_major: u32,
    pub dev_minor: u32,
    /// `SCHILY.xattr.*` PAX records, by attribute name.
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

impl Header {
    /// Whether the member carries content bytes in the archive.
    pub fn has_data(&self) -> bool {
        matches!(self.kind, b'0' | 0 | b'7')
    }
}

/// The reader: call [`TarStream::next`], take [`TarStream::take_raw`] (the
/// header bytes), then read the member's content with [`TarStream::content`].
pub struct TarStream<R: Read> {
    inner: R,
    raw: Vec<u8>,
    /// Content bytes of the current member not yet read.
    remaining: u64,
    /// Padding after the current member's content.
    padding: u64,
    globals: BTreeMap<String, Vec<u8>>,
    done: bool,
}

fn malformed(why: impl Into<String>) -> StorageError {
    StorageError::MalformedLayer(why.into())
}

impl<R: Read> TarStream<R> {
    /// Read a tar from `inner` (already decompressed).
    pub fn new(inner: R) -> Self {
        TarStream {
            inner,
            raw: vec![],
            remaining: 0,
            padding: 0,
            globals: BTreeMap::new(),
            done: false,
        }
    }

    /// The underlying reader (to drain what follows the archive).
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Bytes that are not member content, read since the last call.
    pub fn take_raw(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.raw)
    }

    fn read_raw(&mut self, n: usize) -> Result<Vec<u8>, StorageError> {
        let mut buf = vec![0u8; n];
        self.inner.read_exact(&mut buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => malformed("the tar ends in the middle of a member"),
            _ => StorageError::Read(e),
        })?;
        self.raw.extend_from_slice(&buf);
        Ok(buf)
    }

    /// The next member's header, or `None` at the end of the archive (whose
    /// trailing blocks, and anything after them, are then in `take_raw`).
    pub fn next(&mut self) -> Result<Option<Header>, StorageError> {
        if self.done {
            return Ok(None);
        }
        // Whatever of the previous member's content was not read (a member
        // that is not written out, such as a whiteout or the root, with
        // content all the same) stays in the raw bytes, so that the tar
        // still reads back whole; then its padding.
        let skip = self.remaining;
        self.remaining = 0;
        if skip > UNREAD_LIMIT {
            return Err(malformed(format!("a member that is not a file carries {skip} bytes")));
        }
        self.read_raw(skip as usize)?;
        let pad = self.padding as usize;
        self.padding = 0;
        self.read_raw(pad)?;
        let mut pax: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut long_name: Option<String> = None;
        let mut long_link: Option<String> = None;
        loop {
            let block = match self.read_block_or_eof()? {
                Some(b) => b,
                None => {
                    self.done = true;
                    return Ok(None);
                }
            };
            if block.iter().all(|&b| b == 0) {
                // End of archive: keep the rest as it is (more zero blocks, record padding).
                self.inner.read_to_end(&mut self.raw).map_err(StorageError::Read)?;
                self.done = true;
                return Ok(None);
            }
            verify_checksum(&block)?;
            let size = numeric(&block[124..136])?;
            let kind = block[156];
            match kind {
                b'x' | b'g' | b'L' | b'K' => {
                    if size > EXTENSION_LIMIT {
                        return Err(malformed(format!("an extension header of {size} bytes")));
                    }
                    let data = self.read_raw(size as usize)?;
                    self.read_raw(pad_of(size) as usize)?;
                    match kind {
                        b'x' => pax.extend(parse_pax(&data)?),
                        b'g' => self.globals.extend(parse_pax(&data)?),
                        b'L' => long_name = Some(c_string(&data)?),
                        _ => long_link = Some(c_string(&data)?),
                    }
                    continue;
                }
                b'S' => return Err(malformed("sparse files are not supported in layers")),
                _ => {}
            }
            let mut h = Header {
                name: ustar_name(&block)?,
                link: c_string(&block[157..257])?,
                kind,
                mode: numeric(&block[100..108])? as u32,
                uid: numeric(&block[108..116])?,
                gid: numeric(&block[116..124])?,
                size,
                mtime: numeric(&block[136..148])? as i64,
                dev_major: numeric(&block[329..337]).unwrap_or(0) as u32,
                dev_minor: numeric(&block[337..345]).unwrap_or(0) as u32,
                xattrs: BTreeMap::new(),
            };
            if let Some(n) = long_name {
                h.name = n;
            }
            if let Some(l) = long_link {
                h.link = l;
            }
            let records = self.globals.iter().chain(pax.iter());
            for (k, raw) in records {
                let v = String::from_utf8_lossy(raw).into_owned();
                match k.as_str() {
                    "path" => h.name = utf8(raw)?,
                    "linkpath" => h.link = utf8(raw)?,
                    "size" => h.size = v.parse().map_err(|_| malformed(format!("PAX size {v:?}")))?,
                    "uid" => h.uid = v.parse().map_err(|_| malformed(format!("PAX uid {v:?}")))?,
                    "gid" => h.gid = v.parse().map_err(|_| malformed(format!("PAX gid {v:?}")))?,
                    "mtime" => {
                        let secs = v.split('.').next().unwrap_or("0");
                        h.mtime = secs.parse().map_err(|_| malformed(format!("PAX mtime {v:?}")))?;
                    }
                    k if k.starts_with("GNU.sparse.") => {
                        return Err(malformed("sparse files are not supported in layers"));
                    }
                    k if k.starts_with("SCHILY.xattr.") => {
                        h.xattrs.insert(k["SCHILY.xattr.".len()..].to_string(), raw.clone());
                    }
                    _ => {}
                }
            }
            let data = if h.has_data() { h.size } else { 0 };
            self.remaining = data;
            self.padding = pad_of(data);
            return Ok(Some(h));
        }
    }

    /// A block, or `None` when the stream ends cleanly before one (a tar
    /// without its end-of-archive blocks, which Go's reader also accepts).
    fn read_block_or_eof(&mut self) -> Result<Option<[u8; BLOCK]>, StorageError> {
        let mut block = [0u8; BLOCK];
        let mut got = 0;
        while got < BLOCK {
            match self.inner.read(&mut block[got..]) {
                Ok(0) if got == 0 => return Ok(None),
                Ok(0) => return Err(malformed("the tar ends in the middle of a header")),
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(StorageError::Read(e)),
            }
        }
        self.raw.extend_from_slice(&block);
        Ok(Some(block))
    }

    /// Read the current member's content (up to its end).
    pub fn content(&mut self) -> Content<'_, R> {
        Content { stream: self }
    }
}

/// The current member's content bytes.
pub struct Content<'a, R: Read> {
    stream: &'a mut TarStream<R>,
}

impl<R: Read> Read for Content<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let s = &mut *self.stream;
        if s.remaining == 0 {
            return Ok(0);
        }
        let want = buf.len().min(s.remaining.min(usize::MAX as u64) as usize);
        let n = s.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the tar ends in the middle of a member's content",
            ));
        }
        s.remaining -= n as u64;
        Ok(n)
    }
}

fn pad_of(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

/// A NUL-terminated name. Names that are not UTF-8 are refused rather than
/// altered: their files would not be found again when the layer is read.
fn c_string(b: &[u8]) -> Result<String, StorageError> {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    utf8(&b[..end])
}

fn utf8(b: &[u8]) -> Result<String, StorageError> {
    String::from_utf8(b.to_vec()).map_err(|_| malformed("a member name that is not UTF-8"))
}

/// The member name: ustar's prefix joined to its name (GNU headers have no prefix).
fn ustar_name(block: &[u8; BLOCK]) -> Result<String, StorageError> {
    let name = c_string(&block[0..100])?;
    if &block[257..263] == b"ustar\0" {
        let prefix = c_string(&block[345..500])?;
        if !prefix.is_empty() {
            return Ok(format!("{prefix}/{name}"));
        }
    }
    Ok(name)
}

/// An octal field (spaces and NULs around it), or base-256 when the first
/// byte's high bit is set.
fn numeric(field: &[u8]) -> Result<u64, StorageError> {
    if let Some(&first) = field.first()
        && first & 0x80 != 0
    {
        if first & 0x40 != 0 {
            return Err(malformed("a negative number in a tar header"));
        }
        let mut v: u64 = (first & 0x3f) as u64;
        for &b in &field[1..] {
            if v >> 56 != 0 {
                return Err(malformed("a number too large in a tar header"));
            }
            v = (v << 8) | b as u64;
        }
        return Ok(v);
    }
    let s: String = field
        .iter()
        .map(|&b| b as char)
        .filter(|c| *c != '\0')
        .collect::<String>()
        .trim()
        .to_string();
    if s.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(&s, 8).map_err(|_| malformed(format!("a tar header field {s:?} is not octal")))
}

fn verify_checksum(block: &[u8; BLOCK]) -> Result<(), StorageError> {
    let stored = numeric(&block[148..156])?;
    let unsigned: u64 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| if (148..156).contains(&i) { b' ' as u64 } else { b as u64 })
        .sum();
    let signed: i64 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                b' ' as i64
            } else {
                b as i8 as i64
            }
        })
        .sum();
    if stored == unsigned || stored as i64 == signed {
        Ok(())
    } else {
        Err(malformed("a tar header's checksum does not match"))
    }
}

/// PAX records: `"%d %s=%s\n"`, the length counting the whole record.
fn parse_pax(mut data: &[u8]) -> Result<BTreeMap<String, Vec<u8>>, StorageError> {
    let mut out = BTreeMap::new();
    while !data.is_empty() && data[0] != 0 {
        let sp = data
            .iter()
            .position(|&b| b == b' ')
            .ok_or_else(|| malformed("a PAX record without its length"))?;
        let len: usize = std::str::from_utf8(&data[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| malformed("a PAX record length is not a number"))?;
        if len <= sp + 1 || len > data.len() || data[len - 1] != b'\n' {
            return Err(malformed("a PAX record's length does not fit it"));
        }
        let record = &data[sp + 1..len - 1];
        let eq = record
            .iter()
            .position(|&b| b == b'=')
            .ok_or_else(|| malformed("a PAX record without '='"))?;
        out.insert(
            String::from_utf8_lossy(&record[..eq]).into_owned(),
            // Values of xattrs are binary: kept as bytes.
            record[eq + 1..].to_vec(),
        );
        data = &data[len..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive() -> Vec<u8> {
        let mut b = tar::Builder::new(vec![]);
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o640);
        h.set_uid(7);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, "a/very/".repeat(20) + "long-name.txt", &b"abc"[..])
            .unwrap();
        let mut d = tar::Header::new_ustar();
        d.set_size(0);
        d.set_entry_type(tar::EntryType::Directory);
        d.set_mode(0o755);
        b.append_data(&mut d, "dir/", &b""[..]).unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn raw_bytes_and_contents_put_together_are_the_archive() {
        let tar = archive();
        let mut s = TarStream::new(&tar[..]);
        let mut again = vec![];
        let mut names = vec![];
        while let Some(h) = s.next().unwrap() {
            again.extend(s.take_raw());
            let mut c = vec![];
            s.content().read_to_end(&mut c).unwrap();
            assert_eq!(c.len() as u64, if h.has_data() { h.size } else { 0 });
            again.extend(c);
            names.push((h.name, h.mode, h.uid));
        }
        again.extend(s.take_raw());
        assert_eq!(again, tar);
        assert_eq!(
            names,
            vec![
                ("a/very/".repeat(20) + "long-name.txt", 0o640, 7),
                ("dir/".to_string(), 0o755, 0)
            ]
        );
    }

    #[test]
    fn truncated_archives_and_bad_checksums_are_refused() {
        let tar = archive();
        let mut s = TarStream::new(&tar[..700]);
        let err = loop {
            match s.next() {
                Ok(Some(_)) => {
                    let _ = std::io::copy(&mut s.content(), &mut std::io::sink());
                }
                Ok(None) => panic!("a truncated tar read to its end"),
                Err(e) => break e,
            }
        };
        assert!(err.to_string().contains("ends in the middle"), "{err}");
        let mut bad = tar.clone();
        bad[2048 + 10] ^= 1;
        let mut s = TarStream::new(&bad[..]);
        let mut found = None;
        for _ in 0..3 {
            if let Err(e) = s.next() {
                found = Some(e);
                break;
            }
        }
        assert!(found.is_some_and(|e| e.to_string().contains("checksum")));
    }
}
