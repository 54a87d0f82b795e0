//! `oci:path[:ref]`: OCI image layouts (`oci-layout`, `index.json`,
//! `blobs/<alg>/<hex>`), several images per layout told apart by the
//! `org.opencontainers.image.ref.name` annotation.

use super::local::{collect_debris, mkdir_all, read_small, read_stream, sync_dir, write_atomic, write_stream};
use super::{BlobInfo, BlobStream, ImageDestination, ImageSource, TransportError};
use crate::digest::Digest;
use crate::manifest::{Descriptor, ImageIndex, guess_mime_type, media};
use async_trait::async_trait;
use bytes::Bytes;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The annotation naming an image inside a layout.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
const INDEX_LIMIT: u64 = 64 << 20;
const MANIFEST_LIMIT: u64 = 4 << 20;

fn blob_path(blobs: &Path, d: &Digest) -> PathBuf {
    blobs.join(d.algorithm().as_str()).join(d.hex())
}

/// Where a layout's files live: a directory, or a tar of one (`oci-archive:`).
enum Store {
    Dir { root: PathBuf, blobs: PathBuf },
    Tar(super::tar_archive::TarIndex),
}

impl Store {
    async fn read(&self, name: &str, limit: u64) -> Result<Vec<u8>, TransportError> {
        match self {
            Store::Dir { root, .. } => read_small(&root.join(name), limit).await,
            Store::Tar(t) => t.read_small(name, limit).await,
        }
    }
    async fn read_blob(&self, d: &Digest, limit: u64) -> Result<Vec<u8>, TransportError> {
        match self {
            Store::Dir { blobs, .. } => read_small(&blob_path(blobs, d), limit).await,
            Store::Tar(t) => {
                t.read_small(&format!("blobs/{}/{}", d.algorithm().as_str(), d.hex()), limit)
                    .await
            }
        }
    }
    async fn stream_blob(&self, d: &Digest) -> Result<BlobStream, TransportError> {
        match self {
            Store::Dir { blobs, .. } => read_stream(&blob_path(blobs, d)).await,
            Store::Tar(t) => t.stream(&format!("blobs/{}/{}", d.algorithm().as_str(), d.hex())).await,
        }
    }
}

/// Reads one image from an OCI layout or an OCI archive.
pub struct OciSource {
    name: String,
    store: Store,
    descriptor: Descriptor,
}

impl OciSource {
    /// Open the layout at `path` and find `image` (or its only image) in index.json.
    pub async fn open(path: &Path, image: Option<&str>, shared_blobs: Option<PathBuf>) -> Result<Self, TransportError> {
        let store = Store::Dir {
            root: path.to_path_buf(),
            blobs: shared_blobs.unwrap_or_else(|| path.join("blobs")),
        };
        Self::from_store(store, "oci", path, image).await
    }

    /// Open the OCI archive (a tar of a layout) at `path`, without unpacking it.
    pub async fn open_archive(path: &Path, image: Option<&str>) -> Result<Self, TransportError> {
        let store = Store::Tar(super::tar_archive::TarIndex::open(path).await?);
        Self::from_store(store, "oci-archive", path, image).await
    }

    async fn from_store(
        store: Store,
        transport: &'static str,
        path: &Path,
        image: Option<&str>,
    ) -> Result<Self, TransportError> {
        let data = store.read("index.json", INDEX_LIMIT).await?;
        let index: ImageIndex = serde_json::from_slice(&data).map_err(|source| TransportError::MalformedIndex {
            path: path.join("index.json"),
            source,
        })?;
        let descriptor = match image {
            Some(name) => index
                .manifests
                .iter()
                .find(|d| d.annotations.as_ref().and_then(|a| a.get(REF_NAME)).map(String::as_str) == Some(name))
                .cloned()
                .ok_or_else(|| {
                    TransportError::ImageNotFound(format!(
                        "no descriptor found for reference {name:?} in {}",
                        path.display()
                    ))
                })?,
            None => match index.manifests.as_slice() {
                [one] => one.clone(),
                [] => {
                    return Err(TransportError::ImageNotFound(format!(
                        "no images in {}",
                        path.display()
                    )));
                }
                _ => {
                    return Err(TransportError::AmbiguousImage {
                        transport,
                        path: path.to_path_buf(),
                    });
                }
            },
        };
        let name = match image {
            Some(i) => format!("{transport}:{}:{i}", path.display()),
            None => format!("{transport}:{}", path.display()),
        };
        Ok(OciSource {
            name,
            store,
            descriptor,
        })
    }

    async fn read_manifest(&self, d: &Digest) -> Result<Bytes, TransportError> {
        let bytes = self.store.read_blob(d, MANIFEST_LIMIT).await?;
        if !d.matches(&bytes) {
            return Err(TransportError::StoredManifestMismatch {
                digest: d.clone(),
                location: self.name.clone(),
            });
        }
        Ok(bytes.into())
    }
}

#[async_trait]
impl ImageSource for OciSource {
    fn describe(&self) -> String {
        self.name.clone()
    }

    async fn manifest(&self, instance: Option<&Digest>) -> Result<(Bytes, String), TransportError> {
        match instance {
            None => {
                let bytes = self.read_manifest(&self.descriptor.digest).await?;
                Ok((bytes, self.descriptor.media_type.clone()))
            }
            Some(d) => {
                let bytes = self.read_manifest(d).await?;
                let mime = guess_mime_type(&bytes);
                Ok((bytes, mime))
            }
        }
    }

    async fn blob(&self, info: &BlobInfo) -> Result<BlobStream, TransportError> {
        self.store.stream_blob(&info.digest).await
    }
}

/// `transport:path[:image]`, for messages.
pub(super) fn describe(transport: &str, path: &Path, image: Option<&str>) -> String {
    match image {
        Some(i) => format!("{transport}:{}:{i}", path.display()),
        None => format!("{transport}:{}", path.display()),
    }
}

/// The index.json entry of a top-level manifest, named by `image`.
pub(super) fn top_descriptor(manifest: &[u8], media_type: &str, image: Option<&String>) -> Descriptor {
    let annotations = image.map(|i| BTreeMap::from([(REF_NAME.to_string(), i.clone())]));
    Descriptor {
        media_type: media_type.to_string(),
        digest: Digest::sha256_of(manifest),
        size: manifest.len() as i64,
        urls: None,
        annotations,
        platform: None,
        artifact_type: None,
    }
}

/// Writes one image into an OCI layout; index.json changes only at commit.
pub struct OciDestination {
    /// `--dest-oci-accept-uncompressed-layers`: do not compress uncompressed layers.
    pub accept_uncompressed: bool,
    path: PathBuf,
    image: Option<String>,
    blobs: PathBuf,
    top: Mutex<Option<Descriptor>>,
}

impl OciDestination {
    /// Prepare the layout at `path` (created if missing).
    pub async fn open(
        path: &Path,
        image: Option<String>,
        shared_blobs: Option<PathBuf>,
    ) -> Result<Self, TransportError> {
        if let Ok(m) = tokio::fs::metadata(path).await
            && !m.is_dir()
        {
            return Err(TransportError::NotADirectory(path.to_path_buf()));
        }
        let blobs = shared_blobs.unwrap_or_else(|| path.join("blobs"));
        mkdir_all(&blobs.join("sha256")).await?;
        mkdir_all(path).await?;
        // What kopeo processes killed mid-copy left behind.
        collect_debris(&blobs.join("sha256")).await;
        collect_debris(path).await;
        let layout = path.join("oci-layout");
        if tokio::fs::metadata(&layout).await.is_err() {
            write_atomic(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#).await?;
        }
        Ok(OciDestination {
            accept_uncompressed: false,
            path: path.to_path_buf(),
            image,
            blobs,
            top: Mutex::new(None),
        })
    }
}

#[async_trait]
impl ImageDestination for OciDestination {
    fn describe(&self) -> String {
        describe("oci", &self.path, self.image.as_deref())
    }

    fn supported_manifest_types(&self) -> Vec<&'static str> {
        vec![media::OCI_MANIFEST, media::OCI_INDEX]
    }

    async fn current_digest(&self) -> Result<Option<Digest>, TransportError> {
        // An unnamed destination adds an entry; only a named one is replaced.
        let Some(name) = &self.image else { return Ok(None) };
        let index = match read_small(&self.path.join("index.json"), INDEX_LIMIT).await {
            Ok(data) => data,
            Err(TransportError::ImageNotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let Ok(index) = serde_json::from_slice::<ImageIndex>(&index) else {
            return Ok(None);
        };
        let found = index
            .manifests
            .iter()
            .find(|d| d.annotations.as_ref().and_then(|a| a.get(REF_NAME)) == Some(name))
            .map(|d| d.digest.clone());
        match found {
            Some(d) if tokio::fs::metadata(blob_path(&self.blobs, &d)).await.is_ok() => Ok(Some(d)),
            _ => Ok(None),
        }
    }

    async fn try_reuse_blob(
        &self,
        info: &BlobInfo,
        _from: Option<&super::RegistryLocation>,
    ) -> Result<bool, TransportError> {
        match tokio::fs::metadata(blob_path(&self.blobs, &info.digest)).await {
            Ok(m) => Ok(info.size.is_none_or(|s| s == m.len())),
            Err(_) => Ok(false),
        }
    }

    async fn put_blob(&self, info: &BlobInfo, stream: BlobStream) -> Result<(), TransportError> {
        let dir = self.blobs.join(info.digest.algorithm().as_str());
        mkdir_all(&dir).await?;
        write_stream(&dir.join(info.digest.hex()), stream).await.map(|_| ())
    }

    fn desired_layer_compression(&self) -> super::LayerCompression {
        if self.accept_uncompressed {
            super::LayerCompression::Preserve
        } else {
            super::LayerCompression::Compress
        }
    }

    async fn put_blob_computed(&self, _media_type: &str, stream: BlobStream) -> Result<(Digest, u64), TransportError> {
        let dir = self.blobs.join("sha256");
        mkdir_all(&dir).await?;
        super::local::write_stream_hashed(&dir, stream, |d| d.hex().to_string()).await
    }

    async fn put_manifest(
        &self,
        manifest: &[u8],
        media_type: &str,
        instance: Option<&Digest>,
    ) -> Result<(), TransportError> {
        let digest = Digest::sha256_of(manifest);
        if let Some(want) = instance
            && *want != digest
        {
            return Err(TransportError::InstanceDigestMismatch {
                expected: want.clone(),
                actual: digest,
            });
        }
        write_atomic(&blob_path(&self.blobs, &digest), manifest).await?;
        if instance.is_none() {
            *self.top.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(top_descriptor(manifest, media_type, self.image.as_ref()));
        }
        Ok(())
    }

    async fn commit(&self) -> Result<(), TransportError> {
        let Some(desc) = self.top.lock().unwrap_or_else(|p| p.into_inner()).clone() else {
            return Err(TransportError::CommitWithoutManifest);
        };
        // Other writers of this layout (kopeo processes, or threads of this
        // one) edit index.json too: read, edit and replace it under a lock,
        // so that no writer's entry is lost.
        let _lock = IndexLock::take(&self.path).await?;
        super::oci_delete::check_complete(&self.blobs, &desc.digest).await?;
        let index_path = self.path.join("index.json");
        let mut index = match read_small(&index_path, INDEX_LIMIT).await {
            Ok(data) => serde_json::from_slice::<Value>(&data).map_err(|source| TransportError::MalformedIndex {
                path: index_path.clone(),
                source,
            })?,
            Err(TransportError::ImageNotFound(_)) => {
                json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": []})
            }
            Err(e) => return Err(e),
        };
        let manifests = index
            .get_mut("manifests")
            .and_then(Value::as_array_mut)
            .ok_or_else(|| TransportError::IndexWithoutManifests(index_path.clone()))?;
        let name = |v: &Value| {
            v.get("annotations")
                .and_then(|a| a.get(REF_NAME))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let new_digest = desc.digest.to_string();
        manifests.retain(|m| match &self.image {
            Some(i) => name(m).as_deref() != Some(i.as_str()),
            None => name(m).is_some() || m.get("digest").and_then(Value::as_str) != Some(new_digest.as_str()),
        });
        manifests.push(serde_json::to_value(&desc).map_err(TransportError::encode("index.json"))?);
        let body = serde_json::to_vec(&index).map_err(TransportError::encode("index.json"))?;
        write_atomic(&index_path, &body).await?;
        sync_dir(&self.path).await
    }
}

/// An exclusive lock on a layout's index.json (`flock` on `.index.json.lock`
/// beside it), held while the index is read, edited and replaced.
/// Released when dropped.
pub(super) struct IndexLock(#[allow(dead_code)] std::fs::File);

impl IndexLock {
    /// Wait for and take the lock of the layout at `layout`.
    pub(super) async fn take(layout: &Path) -> Result<IndexLock, TransportError> {
        let path = layout.join(".index.json.lock");
        let p = path.clone();
        let locked = tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::OpenOptionsExt as _;
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o644)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&p)?;
            f.lock()?;
            Ok::<_, std::io::Error>(f)
        })
        .await
        .map_err(TransportError::background("locking index.json"))?;
        locked.map(IndexLock).map_err(TransportError::io("locking", path))
    }
}
