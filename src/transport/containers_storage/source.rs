//! Reading an image out of a store: manifests and the config from the
//! image's big data, layers reassembled from tar-split and the layer's
//! files, uncompressed (their digests are the diff IDs), as containers/image's
//! storage source serves them.

use super::lock::Mode;
use super::name::ImageName;
use super::records::Record;
use super::store::{Store, manifest_key};
use super::tar_split::Assembler;
use super::{StorageError, blocking};
use crate::digest::Digest;
use crate::manifest::{ImageManifest, media};
use crate::transport::{BlobInfo, BlobStream, ImageSource, TransportError};
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt as _;

/// An image in a store, opened for reading.
pub struct StorageSource {
    store: Store,
    reference: String,
    image: Record,
    /// The image's layers, base first.
    layers: Vec<Record>,
    /// The digest named by the reference, if any.
    digest: Option<Digest>,
}

impl StorageSource {
    /// Open the image `image` of the store `store` names.
    pub async fn open(store: Option<&str>, image: &str) -> Result<StorageSource, TransportError> {
        let (spec, name) = (store.map(str::to_string), image.to_string());
        let reference = match store {
            Some(s) => format!("containers-storage:[{s}]{image}"),
            None => format!("containers-storage:{image}"),
        };
        let r = reference.clone();
        blocking("opening containers-storage", move || {
            let store = Store::open(spec.as_deref())?;
            // Reading creates no store where there is none.
            if !store.images_dir().join("images.json").exists() {
                let empty = super::records::Records::load(&store.images_dir().join("images.json"))?;
                let parsed = ImageName::parse(&name, &empty)?;
                return Err(StorageError::NoSuchImage(store.describe_reference(&parsed)));
            }
            let locks = store.lock(Mode::Read)?;
            let images = store.load_images()?;
            let layers = store.load_layers()?;
            drop(locks);
            let parsed = ImageName::parse(&name, &images)?;
            let found = parsed.resolve(&images).cloned();
            let Some(image) = found else {
                return Err(StorageError::NoSuchImage(store.describe_reference(&parsed)));
            };
            let chain = store.chain(&layers, image.str("layer"))?;
            Ok(StorageSource {
                store,
                reference: r,
                image,
                layers: chain,
                digest: parsed.named.and_then(|n| n.digest().cloned()),
            })
        })
        .await
        .map_err(|e| match e {
            TransportError::Storage(e @ StorageError::NoSuchImage(_)) => TransportError::ImageNotFound(e.to_string()),
            other => other,
        })
    }

    fn id(&self) -> &str {
        self.image.id()
    }

    async fn big(&self, key: String) -> Result<Vec<u8>, TransportError> {
        let (store, id) = (self.store.clone(), self.id().to_string());
        blocking("reading containers-storage", move || store.big_data(&id, &key)).await
    }
}

/// The uncompressed layer type for a manifest type (containers/image's
/// `LayerInfosForCopy`).
fn uncompressed_type(manifest_type: &str) -> &'static str {
    match manifest_type {
        media::OCI_MANIFEST => media::OCI_LAYER,
        _ => media::DOCKER_LAYER_TAR,
    }
}

#[async_trait]
impl ImageSource for StorageSource {
    fn describe(&self) -> String {
        self.reference.clone()
    }

    async fn manifest(&self, instance: Option<&Digest>) -> Result<(Bytes, String), TransportError> {
        let bytes = match (instance, &self.digest) {
            (Some(d), _) => self.big(manifest_key(d)).await?,
            (None, Some(d)) => match self.big(manifest_key(d)).await {
                Ok(b) => b,
                Err(_) => self.big("manifest".into()).await?,
            },
            (None, None) => self.big("manifest".into()).await?,
        };
        let mime = crate::manifest::guess_mime_type(&bytes);
        Ok((Bytes::from(bytes), mime))
    }

    async fn blob(&self, info: &BlobInfo) -> Result<BlobStream, TransportError> {
        let want = info.digest.to_string();
        let Some(layer) = self.layers.iter().find(|l| l.str("diff-digest") == Some(want.as_str())) else {
            // Not a layer: the config (big data under its digest).
            let data = self.big(want).await?;
            return Ok(futures::stream::once(async move { Ok(Bytes::from(data)) }).boxed());
        };
        let (store, id) = (self.store.clone(), layer.id().to_string());
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, TransportError>>(4);
        tokio::task::spawn_blocking(move || {
            use std::io::Read as _;
            let run = || -> Result<(), StorageError> {
                // No lock while streaming (layers of one store read in
                // parallel): every file's CRC is checked against tar-split.
                let mut a = Assembler::open(&store.tar_split(&id), &store.layer_root(&id))?;
                let mut buf = vec![0u8; 256 * 1024];
                loop {
                    let n = a.read(&mut buf).map_err(StorageError::Read)?;
                    if n == 0 {
                        return Ok(());
                    }
                    if tx.blocking_send(Ok(Bytes::copy_from_slice(&buf[..n]))).is_err() {
                        return Ok(());
                    }
                }
            };
            if let Err(e) = run() {
                let _ = tx.blocking_send(Err(e.into()));
            }
        });
        Ok(tokio_stream_of(rx))
    }

    async fn signatures(&self, instance: Option<&Digest>, _manifest: &Digest) -> Result<Vec<Bytes>, TransportError> {
        // containers/image's layout: sizes in the metadata, the bytes
        // concatenated under "signatures" (or "signature-<digest>").
        let meta: serde_json::Value = self
            .image
            .str("metadata")
            .and_then(|m| serde_json::from_str(m).ok())
            .unwrap_or_default();
        let (key, sizes) = match instance {
            None => ("signatures".to_string(), meta.get("signature-sizes").cloned()),
            Some(d) => (
                format!("signature-{}", d.hex()),
                meta.pointer(&format!("/signatures-sizes/{d}")).cloned(),
            ),
        };
        let sizes: Vec<usize> = sizes.and_then(|s| serde_json::from_value(s).ok()).unwrap_or_default();
        if sizes.is_empty() {
            return Ok(vec![]);
        }
        let data = self.big(key).await?;
        let mut out = vec![];
        let mut at = 0usize;
        for n in sizes {
            let end = at
                .checked_add(n)
                .filter(|e| *e <= data.len())
                .ok_or_else(|| TransportError::from(StorageError::MalformedSignatures(self.id().to_string())))?;
            out.push(Bytes::copy_from_slice(&data[at..end]));
            at = end;
        }
        if at != data.len() {
            return Err(StorageError::MalformedSignatures(self.id().to_string()).into());
        }
        Ok(out)
    }

    async fn current_manifest(&self) -> Result<Option<crate::transport::CurrentManifest>, TransportError> {
        // A copy out of storage writes another manifest than the stored one
        // (uncompressed layers): the stored digest says nothing about it.
        Ok(None)
    }

    fn layers_for_copy(&self, m: &ImageManifest) -> Result<Option<Vec<BlobInfo>>, TransportError> {
        if self.layers.len() != m.layers.len() {
            return Err(StorageError::LayerCountMismatch {
                diff_ids: self.layers.len(),
                layers: m.layers.len(),
            }
            .into());
        }
        let mt = uncompressed_type(m.mime());
        self.layers
            .iter()
            .map(|l| {
                let digest = l
                    .str("diff-digest")
                    .and_then(|d| d.parse().ok())
                    .ok_or_else(|| StorageError::MissingLayer(l.id().to_string()))?;
                Ok(BlobInfo {
                    digest,
                    size: l.int("diff-size").and_then(|s| u64::try_from(s).ok()),
                    media_type: mt.to_string(),
                })
            })
            .collect::<Result<Vec<_>, StorageError>>()
            .map(Some)
            .map_err(TransportError::from)
    }
}

fn tokio_stream_of(mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, TransportError>>) -> BlobStream {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}
