//! `oci-archive:path[:ref]`: a tar of an OCI layout. Read in place through a
//! tar index (see [`super::oci::OciSource::open_archive`]); written as one
//! stream into a temporary file renamed over `path` at commit (or streamed
//! into it, for a pipe), so a failed copy leaves no archive behind. Like
//! skopeo, writing replaces an existing OCI archive; other files are refused.

use super::tar_archive::{Placement, TarIndex, TarWriter};
use super::{BlobInfo, BlobStream, ImageDestination, LayerCompression, RegistryLocation, TransportError};
use crate::digest::Digest;
use crate::manifest::{Descriptor, media};
use async_trait::async_trait;
use std::path::{Path, PathBuf};
use tokio::sync::Mutex;

fn blob_name(d: &Digest) -> String {
    format!("blobs/{}/{}", d.algorithm().as_str(), d.hex())
}

/// Writes one image into a new OCI archive.
pub struct OciArchiveDestination {
    path: PathBuf,
    image: Option<String>,
    accept_uncompressed: bool,
    tar: Mutex<TarWriter>,
    top: Mutex<Option<Descriptor>>,
}

impl OciArchiveDestination {
    /// Start the archive for `path`.
    pub async fn create(path: &Path, image: Option<String>, accept_uncompressed: bool) -> Result<Self, TransportError> {
        // Like skopeo, writing replaces an OCI archive; unlike skopeo, any
        // other file is left alone.
        let placement = Placement::decide(path, async |real: &Path| match TarIndex::open(real).await {
            Ok(t) if t.contains("oci-layout") && t.contains("index.json") => Ok(()),
            _ => Err(TransportError::WouldOverwrite {
                path: path.to_path_buf(),
                holds: "it exists and is not an OCI archive",
            }),
        })
        .await?;
        let mut tar = TarWriter::create(placement).await?;
        tar.add_file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#).await?;
        tar.add_dir("blobs/").await?;
        tar.add_dir("blobs/sha256/").await?;
        Ok(OciArchiveDestination {
            path: path.to_path_buf(),
            image,
            accept_uncompressed,
            tar: Mutex::new(tar),
            top: Mutex::new(None),
        })
    }
}

#[async_trait]
impl ImageDestination for OciArchiveDestination {
    fn describe(&self) -> String {
        super::oci::describe("oci-archive", &self.path, self.image.as_deref())
    }

    fn supported_manifest_types(&self) -> Vec<&'static str> {
        vec![media::OCI_MANIFEST, media::OCI_INDEX]
    }

    fn desired_layer_compression(&self) -> LayerCompression {
        if self.accept_uncompressed {
            LayerCompression::Preserve
        } else {
            LayerCompression::Compress
        }
    }

    fn concurrent_blobs(&self) -> bool {
        false
    }

    async fn try_reuse_blob(&self, info: &BlobInfo, _from: Option<&RegistryLocation>) -> Result<bool, TransportError> {
        Ok(self.tar.lock().await.has(&blob_name(&info.digest)))
    }

    async fn put_blob(&self, info: &BlobInfo, stream: BlobStream) -> Result<(), TransportError> {
        let name = blob_name(&info.digest);
        self.tar.lock().await.add_stream(stream, |_| Ok(name)).await.map(|_| ())
    }

    async fn put_blob_computed(&self, _media_type: &str, stream: BlobStream) -> Result<(Digest, u64), TransportError> {
        let (stream, slot) = super::hashing(stream);
        let mut tar = self.tar.lock().await;
        tar.add_stream(stream, |_| super::hashed(&slot).map(|(d, _)| blob_name(&d)))
            .await?;
        super::hashed(&slot)
    }

    async fn put_manifest(
        &self,
        manifest: &[u8],
        media_type: &str,
        instance: Option<&Digest>,
    ) -> Result<(), TransportError> {
        let digest = Digest::sha256_of(manifest);
        let mut tar = self.tar.lock().await;
        if !tar.has(&blob_name(&digest)) {
            tar.add_file(&blob_name(&digest), manifest).await?;
        }
        if instance.is_none() {
            *self.top.lock().await = Some(super::oci::top_descriptor(manifest, media_type, self.image.as_ref()));
        }
        Ok(())
    }

    async fn commit(&self) -> Result<(), TransportError> {
        let top = self
            .top
            .lock()
            .await
            .clone()
            .ok_or(TransportError::CommitWithoutManifest)?;
        let index = serde_json::json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": [top]});
        let mut tar = self.tar.lock().await;
        tar.add_file("index.json", index.to_string().as_bytes()).await?;
        tar.finish().await
    }
}
