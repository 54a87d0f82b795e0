//! Writing an image into a store. Blobs are staged in a temporary
//! directory inside the store while the pipeline streams them (verified
//! there); `commit` applies the layers in order under the store's locks —
//! each marked incomplete until its files and tar-split are in place —
//! then writes the image record with its config and manifest. A copy that
//! fails or is dropped before `commit` leaves no image and no layer behind.

use super::lock::Mode;
use super::name::ImageName;
use super::store::{Store, manifest_key};
use super::{StorageError, blocking};
use crate::digest::Digest;
use crate::manifest::{Manifest, media};
use crate::transport::local::{write_stream, write_stream_hashed};
use crate::transport::{BlobInfo, BlobStream, ImageDestination, TransportError};
use async_trait::async_trait;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

/// An image to be written into a store.
pub struct StorageDestination {
    store: Store,
    reference: String,
    name: ImageName,
    staging: super::store::Staging,
    /// Blobs found in the store already (by compressed or diff digest):
    /// the layer that has them.
    reused: Mutex<HashMap<Digest, String>>,
    manifest: Mutex<Option<Vec<u8>>>,
    /// Signatures of the image, in containers/image's blob form.
    signatures: Mutex<Vec<bytes::Bytes>>,
}

fn staged_name(d: &Digest) -> String {
    d.to_string().replace(':', "-")
}

impl StorageDestination {
    /// Prepare writing `image` into the store `store` names.
    pub async fn open(store: Option<&str>, image: &str) -> Result<StorageDestination, TransportError> {
        let (spec, img) = (store.map(str::to_string), image.to_string());
        let reference = match store {
            Some(s) => format!("containers-storage:[{s}]{image}"),
            None => format!("containers-storage:{image}"),
        };
        blocking("opening containers-storage", move || {
            let store = Store::open(spec.as_deref())?;
            let images = {
                let _l = store.lock(Mode::Read)?;
                store.load_images()?
            };
            let name = ImageName::parse(&img, &images)?;
            let staging = store.staging_dir()?;
            Ok::<_, StorageError>(StorageDestination {
                store,
                reference,
                name,
                staging,
                reused: Mutex::new(HashMap::new()),
                manifest: Mutex::new(None),
                signatures: Mutex::new(vec![]),
            })
        })
        .await
    }

    fn staged(&self, d: &Digest) -> PathBuf {
        self.staging.path().join(staged_name(d))
    }
}

#[async_trait]
impl ImageDestination for StorageDestination {
    fn describe(&self) -> String {
        self.reference.clone()
    }

    fn supported_manifest_types(&self) -> Vec<&'static str> {
        vec![media::OCI_MANIFEST, media::DOCKER_V2S2]
    }

    fn supports_lists(&self) -> bool {
        false
    }

    async fn current_digest(&self) -> Result<Option<Digest>, TransportError> {
        let (store, name) = (self.store.clone(), self.name.clone());
        blocking("reading containers-storage", move || {
            let _l = store.lock(Mode::Read)?;
            let images = store.load_images()?;
            Ok::<_, StorageError>(name.resolve(&images).and_then(|i| {
                // Complete images only: every layer of the chain is there.
                let layers = store.load_layers().ok()?;
                store.chain(&layers, i.str("layer")).ok()?;
                i.str("digest").and_then(|d| d.parse().ok())
            }))
        })
        .await
    }

    async fn try_reuse_blob(
        &self,
        info: &BlobInfo,
        _from: Option<&crate::transport::RegistryLocation>,
    ) -> Result<bool, TransportError> {
        let store = self.store.clone();
        let want = info.digest.to_string();
        let found = blocking("reading containers-storage", move || {
            let _l = store.lock(Mode::Read)?;
            let layers = store.load_layers()?;
            Ok::<_, StorageError>(
                layers
                    .items
                    .iter()
                    .find(|l| {
                        !l.flag("incomplete")
                            && (l.str("compressed-diff-digest") == Some(want.as_str())
                                || l.str("diff-digest") == Some(want.as_str()))
                    })
                    .map(|l| l.id().to_string()),
            )
        })
        .await?;
        match found {
            Some(layer) => {
                self.reused
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(info.digest.clone(), layer);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn put_blob(&self, info: &BlobInfo, stream: BlobStream) -> Result<(), TransportError> {
        write_stream(&self.staged(&info.digest), stream).await.map(|_| ())
    }

    async fn put_blob_computed(&self, _media_type: &str, stream: BlobStream) -> Result<(Digest, u64), TransportError> {
        write_stream_hashed(self.staging.path(), stream, staged_name).await
    }

    async fn put_manifest(
        &self,
        manifest: &[u8],
        _media_type: &str,
        instance: Option<&Digest>,
    ) -> Result<(), TransportError> {
        if instance.is_some() {
            return Err(TransportError::CannotHoldList {
                transport: "containers-storage",
            });
        }
        if let Some(want) = self.name.named.as_ref().and_then(|n| n.digest()) {
            let have = Digest::sha256_of(manifest);
            if have != *want {
                return Err(TransportError::ReferenceDigestMismatch {
                    expected: want.clone(),
                    actual: have,
                });
            }
        }
        *self.manifest.lock().unwrap_or_else(|p| p.into_inner()) = Some(manifest.to_vec());
        Ok(())
    }

    fn supports_signatures(&self) -> Result<(), TransportError> {
        Ok(())
    }

    async fn put_signatures(
        &self,
        signatures: &[bytes::Bytes],
        instance: Option<&Digest>,
    ) -> Result<(), TransportError> {
        if instance.is_some() {
            return Err(TransportError::CannotHoldList {
                transport: "containers-storage",
            });
        }
        *self.signatures.lock().unwrap_or_else(|p| p.into_inner()) = signatures.to_vec();
        Ok(())
    }

    async fn commit(&self) -> Result<(), TransportError> {
        let manifest =
            self.manifest
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
                .ok_or(TransportError::Unsupported(
                    "containers-storage commit without a manifest",
                ))?;
        let job = Commit {
            store: self.store.clone(),
            name: self.name.clone(),
            staging: self.staging.path().to_path_buf(),
            reused: self.reused.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            manifest,
            signatures: self.signatures.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        };
        tokio::task::spawn_blocking(move || job.run())
            .await
            .map_err(|source| TransportError::Background {
                task: "committing to containers-storage",
                source,
            })?
    }
}

/// What `commit` needs, moved to a blocking thread.
struct Commit {
    store: Store,
    name: ImageName,
    staging: PathBuf,
    reused: HashMap<Digest, String>,
    manifest: Vec<u8>,
    signatures: Vec<bytes::Bytes>,
}

impl Commit {
    fn run(self) -> Result<(), TransportError> {
        let mime = crate::manifest::guess_mime_type(&self.manifest);
        let Manifest::Image(m) = Manifest::parse(&self.manifest, &mime)? else {
            return Err(TransportError::CannotHoldList {
                transport: "containers-storage",
            });
        };
        let config_path = self.staging.join(staged_name(&m.config.digest));
        let config = std::fs::read(&config_path).map_err(TransportError::io("reading", &config_path))?;
        let v: serde_json::Value =
            serde_json::from_slice(&config).map_err(|source| TransportError::MalformedConfig {
                digest: m.config.digest.clone(),
                source,
            })?;
        let diff_ids: Vec<Digest> = v
            .pointer("/rootfs/diff_ids")
            .and_then(|x| x.as_array())
            .map(|a| a.iter().filter_map(|d| d.as_str()?.parse().ok()).collect())
            .unwrap_or_default();
        if diff_ids.len() != m.layers.len() {
            return Err(StorageError::LayerCountMismatch {
                diff_ids: diff_ids.len(),
                layers: m.layers.len(),
            }
            .into());
        }
        let locks = self.store.lock(Mode::Write)?;
        let mut layers = self.store.load_layers()?;
        let mut parent: Option<String> = None;
        for (i, (layer, diff_id)) in m.layers.iter().zip(&diff_ids).enumerate() {
            let staged = self.staging.join(staged_name(&layer.digest));
            let (blob, blob_digest) = if staged.exists() {
                (staged, layer.digest.clone())
            } else {
                // Present in the store, as this very layer or under another
                // parent: then its tar comes back out of the layer that has it.
                let id = super::store::layer_id(parent.as_deref(), diff_id);
                if layers.get(&id).is_some_and(|l| !l.flag("incomplete")) {
                    parent = Some(id);
                    continue;
                }
                let from = self
                    .reused
                    .get(&layer.digest)
                    .cloned()
                    .ok_or_else(|| TransportError::BlobFileMissing(staged.clone()))?;
                let out = self.staging.join(format!("extracted-{}", diff_id.hex()));
                self.extract(&from, &out)?;
                (out, diff_id.clone())
            };
            let id = self
                .store
                .put_layer(&locks, &mut layers, i, parent.as_deref(), diff_id, &blob, &blob_digest)?;
            parent = Some(id);
        }
        let manifest_digest = Digest::sha256_of(&self.manifest);
        let id = self
            .name
            .id
            .clone()
            .unwrap_or_else(|| m.config.digest.hex().to_string());
        let mut big = vec![
            (m.config.digest.to_string(), config),
            (manifest_key(&manifest_digest), self.manifest.clone()),
            ("manifest".to_string(), self.manifest.clone()),
        ];
        // As containers/image: the signatures concatenated under
        // "signatures", their sizes in the image's metadata.
        let sizes: Vec<usize> = self.signatures.iter().map(|s| s.len()).collect();
        let metadata = match sizes.is_empty() {
            true => "{}".to_string(),
            false => {
                big.push(("signatures".to_string(), self.signatures.concat()));
                serde_json::json!({ "signature-sizes": sizes }).to_string()
            }
        };
        let created = v.get("created").and_then(|c| c.as_str()).map(str::to_string);
        let name = self.name.store_name();
        self.store.put_image(
            &locks,
            super::store::NewImage {
                id: &id,
                top: parent.as_deref(),
                big: &big,
                name: name.as_deref(),
                created,
                metadata: &metadata,
            },
        )?;
        tracing::debug!(image = %id, "committed to containers-storage");
        Ok(())
    }

    /// Write the uncompressed tar of the store's layer `from` to `to`.
    fn extract(&self, from: &str, to: &std::path::Path) -> Result<(), StorageError> {
        let mut a = super::tar_split::Assembler::open(&self.store.tar_split(from), &self.store.layer_root(from))?;
        let mut f = std::fs::File::create(to).map_err(StorageError::io("creating", to))?;
        std::io::copy(&mut a, &mut f).map_err(StorageError::Read)?;
        Ok(())
    }
}
