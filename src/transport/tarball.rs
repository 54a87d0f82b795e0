//! `tarball:FILE[:FILE…]` (read only): filesystem tarballs, each one layer of
//! an OCI image, built as containers/image's tarball transport builds it —
//! byte for byte, so that a copy has the digest skopeo gives it: layers as
//! they are (their media type from their compression), diff_ids from their
//! decompressed bytes, a history entry per file dated by its modification
//! time, the config and manifest as Go's encoding/json writes them. `-` is
//! standard input (read once, dated now). bzip2 and xz tarballs are refused:
//! upstream gives them the gzip media type, an image no runtime can unpack.

use super::{BlobInfo, BlobStream, ImageSource, TransportError};
use crate::digest::{Algorithm, Digest, Hasher};
use crate::manifest::media;
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use serde_json::json;
use std::collections::HashMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Where a layer's bytes are.
enum Layer {
    File(PathBuf),
    Stdin(Bytes),
}

/// One tarball read: its digest, size, media type, diff_id and date.
struct Scanned {
    digest: Digest,
    size: u64,
    media_type: &'static str,
    diff_id: Digest,
    time: SystemTime,
}

/// The source: the manifest and config built at open, the layers read on demand.
pub struct TarballSource {
    name: String,
    manifest: Bytes,
    config: (Digest, Bytes),
    layers: HashMap<Digest, Layer>,
}

impl TarballSource {
    /// Read every tarball once (digests, diff_ids, dates) and build the image.
    pub async fn open(paths: &[PathBuf]) -> Result<Self, TransportError> {
        let name = format!(
            "tarball:{}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(":")
        );
        let owned = paths.to_vec();
        let (scanned, layers) = tokio::task::spawn_blocking(move || scan_all(&owned))
            .await
            .map_err(TransportError::background("reading tarballs"))??;
        let (manifest, config) = build(&scanned);
        Ok(TarballSource {
            name,
            manifest,
            config,
            layers,
        })
    }
}

type ScanResult = (Vec<Scanned>, HashMap<Digest, Layer>);

fn scan_all(paths: &[PathBuf]) -> Result<ScanResult, TransportError> {
    let mut scanned = vec![];
    let mut layers = HashMap::new();
    for path in paths {
        let (layer, time, (digest, size, media_type, diff_id)) = if path.as_os_str() == "-" {
            let mut data = vec![];
            std::io::stdin()
                .read_to_end(&mut data)
                .map_err(TransportError::io("reading", path))?;
            let s = scan(&data[..], path)?;
            (Layer::Stdin(data.into()), SystemTime::now(), s)
        } else {
            // A missing file is a bad reference, not a missing image (skopeo exits 1).
            let f = std::fs::File::open(path).map_err(TransportError::io("opening", path))?;
            let time = f
                .metadata()
                .and_then(|m| m.modified())
                .map_err(TransportError::io("reading the date of", path))?;
            let s = scan(f, path)?;
            (Layer::File(path.clone()), time, s)
        };
        layers.insert(digest.clone(), layer);
        scanned.push(Scanned {
            digest,
            size,
            media_type,
            diff_id,
            time,
        });
    }
    Ok((scanned, layers))
}

/// Read `input` once, as containers/image does: its digest and size, the
/// media type its compression gives it, and its diff_id (the digest of the
/// decompressed bytes, or the digest itself when it is not compressed).
fn scan(input: impl std::io::Read, name: &Path) -> Result<(Digest, u64, &'static str, Digest), TransportError> {
    use std::io::BufRead as _;
    let read_err = TransportError::io("reading", name);
    // The raw bytes are hashed while a decoder reads them.
    let mut tee = crate::digest::HashingReader::new(input);
    let mut buffered = std::io::BufReader::with_capacity(256 * 1024, &mut tee);
    let head = buffered
        .fill_buf()
        .map_err(TransportError::io("reading", name))?
        .to_vec();
    // containers/image's DetectCompressionFormat. It labels bzip2 and xz
    // layers gzip, which no runtime can unpack: refused here instead.
    if head.starts_with(b"BZh") || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        return Err(TransportError::TarballCompression {
            path: name.to_path_buf(),
            format: if head.starts_with(b"BZh") { "bzip2" } else { "xz" },
        });
    }
    let (diff_id, media_type) = if head.starts_with(&[0x1f, 0x8b]) {
        let d = flate2::bufread::MultiGzDecoder::new(&mut buffered);
        (Some(hash_all(d, name)?), media::OCI_LAYER_GZIP)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let d = zstd::stream::read::Decoder::with_buffer(&mut buffered)
            .map_err(TransportError::io("decompressing", name))?;
        (Some(hash_all(d, name)?), media::OCI_LAYER_ZSTD)
    } else {
        (None, media::OCI_LAYER)
    };
    // What the decoder left (or all of it, uncompressed) still counts in the digest.
    std::io::copy(&mut buffered, &mut std::io::sink()).map_err(read_err)?;
    drop(buffered);
    let (digest, size) = tee.finish();
    Ok((digest.clone(), size, media_type, diff_id.unwrap_or(digest)))
}

/// The digest of everything `input` yields.
fn hash_all(mut input: impl std::io::Read, name: &Path) -> Result<Digest, TransportError> {
    let mut h = Hasher::new(Algorithm::Sha256);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = input
            .read(&mut buf)
            .map_err(TransportError::io("decompressing", name))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finish())
}

/// The config and manifest, as containers/image marshals them.
fn build(layers: &[Scanned]) -> (Bytes, (Digest, Bytes)) {
    let created = layers.iter().map(|l| l.time).max().unwrap_or(SystemTime::UNIX_EPOCH);
    let history: Vec<_> = layers
        .iter()
        .map(|l| {
            json!({
                "created": crate::timestamp::format_go_local(l.time),
                "created_by": format!("/bin/sh -c #(nop) ADD file:{} in /", l.diff_id.hex()),
                "comment": "imported from tarball",
            })
        })
        .collect();
    let host = crate::manifest::host_platform();
    let config = json!({
        "created": crate::timestamp::format_go_local(created),
        "architecture": host.architecture,
        "os": host.os,
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>()},
        "history": history,
    });
    let config = Bytes::from(crate::manifest::to_bytes(&config));
    let config_digest = Digest::sha256_of(&config);
    let manifest = json!({
        "schemaVersion": 2,
        "config": {"mediaType": media::OCI_CONFIG, "digest": config_digest.to_string(), "size": config.len()},
        "layers": layers.iter().map(|l| json!({"mediaType": l.media_type, "digest": l.digest.to_string(), "size": l.size})).collect::<Vec<_>>(),
    });
    (
        Bytes::from(crate::manifest::to_bytes(&manifest)),
        (config_digest, config),
    )
}

/// `delete tarball:…` removes the files, as containers/image does (a file
/// already gone is no error).
pub async fn delete(paths: &[PathBuf]) -> Result<(), TransportError> {
    for p in paths.iter().filter(|p| p.as_os_str() != "-") {
        match tokio::fs::remove_file(p).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(TransportError::io("deleting", p)(e)),
        }
    }
    Ok(())
}

#[async_trait]
impl ImageSource for TarballSource {
    fn describe(&self) -> String {
        self.name.clone()
    }

    async fn manifest(&self, instance: Option<&Digest>) -> Result<(Bytes, String), TransportError> {
        if instance.is_some() {
            return Err(TransportError::NotAList {
                transport: "tarball",
                digest: instance.cloned().unwrap_or_else(|| self.config.0.clone()),
            });
        }
        Ok((self.manifest.clone(), media::OCI_MANIFEST.to_string()))
    }

    async fn blob(&self, info: &BlobInfo) -> Result<BlobStream, TransportError> {
        if info.digest == self.config.0 {
            let body = self.config.1.clone();
            return Ok(futures::stream::once(async move { Ok(body) }).boxed());
        }
        match self.layers.get(&info.digest) {
            Some(Layer::File(p)) => super::local::read_stream(p).await,
            Some(Layer::Stdin(b)) => {
                let body = b.clone();
                Ok(futures::stream::once(async move { Ok(body) }).boxed())
            }
            None => Err(TransportError::BlobNotInArchive {
                archive: self.name.clone(),
                digest: info.digest.clone(),
            }),
        }
    }
}
