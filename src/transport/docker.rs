//! `docker://`: images in a registry speaking the Docker Registry HTTP API v2.

use super::{BlobInfo, BlobStream, ImageDestination, ImageSource, RegistryLocation, TransportError};
use crate::digest::Digest;
use crate::reference::DockerReference;
use crate::registry::{MountOutcome, RegistryClient};
use crate::signature::blob::Signature;
use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Delete the image `reference` names from its registry: its manifest, by
/// digest (a tag is resolved first), which removes every tag pointing at it.
/// An image that is not there is containers/image's "Unable to delete"
/// (exit 1, as skopeo: not the "image not found" of other commands).
pub async fn delete(reference: &DockerReference, client: &RegistryClient) -> Result<(), TransportError> {
    let missing = |e: crate::registry::RegistryError| match TransportError::from(e) {
        e if e.is_image_not_found() => TransportError::DeleteNotFound(reference.to_string()),
        e => e,
    };
    let digest = match reference.digest() {
        Some(d) => d.clone(),
        None => {
            let (bytes, _) = client
                .get_manifest(reference.path(), &reference.manifest_reference())
                .await
                .map_err(missing)?;
            crate::manifest_digest::manifest_digest(&bytes)?
        }
    };
    client.delete_manifest(reference.path(), &digest).await.map_err(missing)
}

type Storage = Option<Arc<crate::signature::lookaside::SignatureStorage>>;

/// Reads an image from a registry.
pub struct DockerSource {
    client: Arc<RegistryClient>,
    reference: DockerReference,
    signatures: Storage,
}

impl DockerSource {
    /// A source for `reference`; nothing is contacted until first use.
    pub fn new(reference: DockerReference, client: Arc<RegistryClient>) -> Self {
        DockerSource {
            client,
            reference,
            signatures: None,
        }
    }
    /// Read signatures from `storage` (registries.d lookasides).
    pub fn with_signatures(self, storage: Storage) -> Self {
        DockerSource {
            signatures: storage,
            ..self
        }
    }
    /// The registry client, shared with callers that need more endpoints.
    pub fn client(&self) -> &Arc<RegistryClient> {
        &self.client
    }
}

#[async_trait]
impl ImageSource for DockerSource {
    fn describe(&self) -> String {
        format!("docker://{}", self.reference)
    }

    async fn manifest(&self, instance: Option<&Digest>) -> Result<(Bytes, String), TransportError> {
        let r = match instance {
            Some(d) => d.to_string(),
            None => self.reference.manifest_reference(),
        };
        Ok(self.client.get_manifest(self.reference.path(), &r).await?)
    }

    async fn current_manifest(&self) -> Result<Option<super::CurrentManifest>, TransportError> {
        let head = self
            .client
            .head_manifest(self.reference.path(), &self.reference.manifest_reference(), false)
            .await?;
        match head {
            Some(h) => Ok(h.digest.map(|digest| super::CurrentManifest {
                digest,
                media_type: h.media_type,
            })),
            // A HEAD's 404 has no body: the GET says which (manifest or
            // repository unknown) in the registry's words, as skopeo reports.
            None => {
                let (bytes, media_type) = self.manifest(None).await?;
                Ok(Some(super::CurrentManifest {
                    digest: crate::manifest_digest::manifest_digest(&bytes)?,
                    media_type,
                }))
            }
        }
    }

    async fn blob(&self, info: &BlobInfo) -> Result<BlobStream, TransportError> {
        Ok(self
            .client
            .blob_stream(self.reference.path(), &info.digest)
            .map_err(TransportError::from)
            .boxed())
    }

    fn registry_location(&self) -> Option<RegistryLocation> {
        Some(RegistryLocation {
            registry: self.reference.domain().to_string(),
            repository: self.reference.path().to_string(),
        })
    }

    async fn repo_tags(&self) -> Result<Vec<String>, TransportError> {
        Ok(self.client.list_tags(self.reference.path()).await?)
    }

    async fn signatures(&self, _instance: Option<&Digest>, manifest: &Digest) -> Result<Vec<Bytes>, TransportError> {
        let Some(storage) = &self.signatures else {
            return Ok(vec![]);
        };
        // A registry that keeps signatures itself is read instead of any
        // lookaside, as containers/image reads it; attachments either way.
        let mut out: Vec<Bytes> = if self.client.supports_signatures().await? {
            let path = self.reference.path();
            let simple = self.client.extension_signatures(path, manifest).await?;
            simple.into_iter().map(Bytes::from).collect()
        } else {
            storage.read(&self.reference, manifest).await?
        };
        if storage.config.use_sigstore_attachments(&self.reference) {
            let attached = super::docker_attachments::read(&self.client, self.reference.path(), manifest).await?;
            out.extend(attached.into_iter().map(|s| Signature::Sigstore(s).to_blob()));
        }
        Ok(out)
    }

    fn keeps_referrers(&self) -> bool {
        true
    }

    async fn referrers(
        &self,
        subject: &Digest,
        artifact_types: &[String],
    ) -> Result<Vec<crate::manifest::Descriptor>, TransportError> {
        super::docker_referrers::list(&self.client, self.reference.path(), subject, artifact_types).await
    }
}

/// Writes an image to a registry.
pub struct DockerDestination {
    client: Arc<RegistryClient>,
    reference: DockerReference,
    /// Upload sessions a refused mount opened, reused for the upload.
    pending_uploads: Mutex<HashMap<Digest, reqwest::Url>>,
    /// Blob locks held from a failed reuse attempt until the upload ends.
    held: Mutex<HashMap<Digest, tokio::sync::OwnedMutexGuard<()>>>,
    signatures: Storage,
    /// The digest of the top-level manifest put, which its signatures name.
    top_level: Mutex<Option<Digest>>,
}

impl DockerDestination {
    /// A destination for `reference`; nothing is contacted until first use.
    pub fn new(reference: DockerReference, client: Arc<RegistryClient>) -> Result<Self, TransportError> {
        if reference.tag().is_some() && reference.digest().is_some() {
            return Err(TransportError::TagAndDigest {
                reference: reference.to_string(),
            });
        }
        Ok(DockerDestination {
            client,
            reference,
            pending_uploads: Mutex::new(HashMap::new()),
            held: Mutex::new(HashMap::new()),
            signatures: None,
            top_level: Mutex::new(None),
        })
    }
    /// The digest of the top-level manifest put so far, if any.
    pub fn top_level(&self) -> Option<Digest> {
        self.top_level.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
    /// Write signatures to `storage` (registries.d lookasides).
    pub fn with_signatures(self, storage: Storage) -> Self {
        DockerDestination {
            signatures: storage,
            ..self
        }
    }
}

#[async_trait]
impl ImageDestination for DockerDestination {
    fn describe(&self) -> String {
        format!("docker://{}", self.reference)
    }

    fn supported_manifest_types(&self) -> Vec<&'static str> {
        vec![]
    }

    async fn current_digest(&self) -> Result<Option<Digest>, TransportError> {
        let head = self
            .client
            .head_manifest(self.reference.path(), &self.reference.manifest_reference(), true)
            .await?;
        Ok(head.and_then(|h| h.digest))
    }

    async fn try_reuse_blob(&self, info: &BlobInfo, from: Option<&RegistryLocation>) -> Result<bool, TransportError> {
        let repo = self.reference.path();
        let guard = self.client.blob_lock(repo, &info.digest).await;
        if self.client.knows_blob(repo, &info.digest) {
            return Ok(true);
        }
        let present = || {
            self.client.remember_blob(repo, &info.digest);
            Ok(true)
        };
        let mountable = from.filter(|s| s.registry == self.reference.domain() && s.repository != repo);
        if let Some(src) = mountable {
            // Mount first: a registry answers 201 for a blob the repository
            // has already, so the HEAD is needed only when the mount fails.
            match self.client.mount_blob(repo, &info.digest, &src.repository).await? {
                MountOutcome::Mounted => {
                    tracing::debug!(digest = %info.digest, from = %src.repository, "blob mounted");
                    return present();
                }
                MountOutcome::NotMounted(url) => {
                    // Present anyway (not mountable from there, say): the
                    // upload session the registry opened is left to expire.
                    if self.client.head_blob(repo, &info.digest, true).await?.is_some() {
                        return present();
                    }
                    if let Some(url) = url {
                        self.pending_uploads
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(info.digest.clone(), url);
                    }
                }
            }
        } else if self.client.head_blob(repo, &info.digest, true).await?.is_some() {
            return present();
        }
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(info.digest.clone(), guard);
        Ok(false)
    }

    async fn put_blob(&self, info: &BlobInfo, stream: BlobStream) -> Result<(), TransportError> {
        let repo = self.reference.path();
        let size = info
            .size
            .ok_or_else(|| TransportError::UnknownSize(info.digest.clone()))?;
        let pending = self
            .pending_uploads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&info.digest);
        let url = match pending {
            Some(u) => u,
            None => self.client.start_upload(repo).await?,
        };
        let body = reqwest::Body::wrap_stream(stream);
        self.client.put_blob(repo, url, &info.digest, size, body).await?;
        self.client.remember_blob(repo, &info.digest);
        // The blob is in place: others waiting for it may go on. (After a
        // failure the lock stays held for a retry, until this destination drops.)
        self.held.lock().unwrap_or_else(|p| p.into_inner()).remove(&info.digest);
        Ok(())
    }

    fn desired_layer_compression(&self) -> super::LayerCompression {
        super::LayerCompression::Compress
    }

    async fn put_blob_computed(&self, _media_type: &str, stream: BlobStream) -> Result<(Digest, u64), TransportError> {
        let (stream, slot) = super::hashing(stream);
        let digest = self
            .client
            .put_blob_chunked(self.reference.path(), reqwest::Body::wrap_stream(stream), || {
                super::hashed(&slot)
                    .map(|(d, _)| d)
                    .map_err(|e| crate::registry::RegistryError::Protocol {
                        op: "uploading a blob".into(),
                        reason: e.to_string(),
                    })
            })
            .await?;
        let (_, size) = super::hashed(&slot)?;
        self.client.remember_blob(self.reference.path(), &digest);
        Ok((digest, size))
    }

    async fn put_manifest(
        &self,
        manifest: &[u8],
        media_type: &str,
        instance: Option<&Digest>,
    ) -> Result<(), TransportError> {
        let r = match instance {
            Some(d) => d.to_string(),
            None => self.reference.manifest_reference(),
        };
        if let (None, Some(want)) = (instance, self.reference.digest())
            && !want.matches(manifest)
        {
            return Err(TransportError::ReferenceDigestMismatch {
                expected: want.clone(),
                actual: Digest::sha256_of(manifest),
            });
        }
        self.client
            .put_manifest(self.reference.path(), &r, manifest, media_type)
            .await?;
        if instance.is_none() {
            *self.top_level.lock().unwrap_or_else(|p| p.into_inner()) = Some(Digest::sha256_of(manifest));
        }
        Ok(())
    }

    async fn commit(&self) -> Result<(), TransportError> {
        Ok(())
    }

    fn supports_signatures(&self) -> Result<(), TransportError> {
        match self.signatures {
            Some(_) => Ok(()),
            None => Err(TransportError::NoLookaside(self.describe())),
        }
    }

    fn supports_sigstore(&self) -> Result<(), TransportError> {
        match &self.signatures {
            Some(s) if s.config.use_sigstore_attachments(&self.reference) => Ok(()),
            Some(_) => Err(TransportError::Attachment(
                "writing sigstore attachments is disabled by configuration (registries.d: use-sigstore-attachments)"
                    .into(),
            )),
            None => Err(TransportError::NoLookaside(self.describe())),
        }
    }

    async fn put_signatures(&self, signatures: &[Bytes], instance: Option<&Digest>) -> Result<(), TransportError> {
        if signatures.is_empty() {
            return Ok(());
        }
        let Some(storage) = &self.signatures else {
            return Err(TransportError::NoLookaside(self.describe()));
        };
        let digest = match instance {
            Some(d) => d.clone(),
            None => self
                .top_level
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
                .ok_or_else(|| TransportError::NoLookaside(self.describe()))?,
        };
        // Simple signatures go to the lookaside, sigstore ones into the
        // registry as attachments (where registries.d allows them).
        let mut simple = Vec::new();
        let mut sigstore = Vec::new();
        for b in signatures {
            match Signature::from_blob(b).map_err(TransportError::Attachment)? {
                Signature::Simple(s) => simple.push(s),
                Signature::Sigstore(s) => sigstore.push(s),
            }
        }
        if !sigstore.is_empty() {
            if !storage.config.use_sigstore_attachments(&self.reference) {
                return Err(TransportError::Attachment(
                    "writing sigstore attachments is disabled by configuration".into(),
                ));
            }
            super::docker_attachments::write(&self.client, self.reference.path(), &digest, &sigstore).await?;
        }
        if self.client.supports_signatures().await? {
            let simple: Vec<&[u8]> = simple.iter().map(|s| s.as_ref()).collect();
            let repo = self.reference.path();
            return Ok(self.client.put_extension_signatures(repo, &digest, &simple).await?);
        }
        Ok(storage.write(&self.reference, &digest, &simple).await?)
    }

    fn keeps_referrers(&self) -> bool {
        true
    }

    async fn put_referrer(
        &self,
        manifest: &[u8],
        media_type: &str,
        referrer: &crate::manifest::Descriptor,
        subject: &Digest,
    ) -> Result<(), TransportError> {
        let repo = self.reference.path();
        let indexed = self
            .client
            .put_manifest_for_subject(repo, &referrer.digest.to_string(), manifest, media_type)
            .await?;
        // A registry with the referrers API says it indexed the subject;
        // for any other the client keeps the referrers tag.
        if indexed.as_deref() != Some(subject.to_string().as_str()) {
            super::docker_referrers::attach(&self.client, repo, subject, referrer).await?;
        }
        Ok(())
    }
}
