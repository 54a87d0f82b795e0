//! Image sources and destinations: one module per transport, each
//! implementing [`ImageSource`] and/or [`ImageDestination`]. The copy
//! pipeline talks only to these traits and asks destinations what they
//! accept instead of checking which transport they are.

pub mod atomic;
pub mod containers_storage;
pub mod dir;
pub mod docker;
pub mod docker_archive;
mod docker_attachments;
pub mod docker_daemon;
mod docker_referrers;
mod error;
pub(crate) mod local;
pub mod oci;
pub mod oci_archive;
mod oci_delete;
pub mod sif;
pub mod tar_archive;
pub mod tarball;

pub use error::TransportError;
pub(crate) use local::write_atomic;

use crate::digest::Digest;
use crate::reference::ImageReference;
use crate::registry::{RegistryError, RegistryOptions};
use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use std::path::PathBuf;

/// A stream of blob bytes.
pub type BlobStream = BoxStream<'static, Result<Bytes, TransportError>>;

/// What the pipeline knows about a blob before copying it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    pub digest: Digest,
    /// Size in bytes; `None` when unknown.
    pub size: Option<u64>,
    pub media_type: String,
}

/// Where a source's blobs live in a registry, so that a destination in the
/// same registry can mount them instead of uploading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryLocation {
    pub registry: String,
    pub repository: String,
}

/// What a source's top-level manifest is, known without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentManifest {
    /// The manifest's digest.
    pub digest: Digest,
    /// Its media type, as the transport reports it.
    pub media_type: String,
}

/// A readable image. Callers may request manifests and blobs in any order
/// and concurrently.
#[async_trait]
pub trait ImageSource: Send + Sync {
    /// The reference this source was opened for, for messages.
    fn describe(&self) -> String;
    /// The top-level manifest (`instance` = `None`) or one instance of a list,
    /// by digest: its bytes and media type.
    async fn manifest(&self, instance: Option<&Digest>) -> Result<(Bytes, String), TransportError>;
    /// Stream a blob. The bytes are unverified: the pipeline checks the digest.
    async fn blob(&self, info: &BlobInfo) -> Result<BlobStream, TransportError>;
    /// Where this source's blobs live, if in a registry.
    fn registry_location(&self) -> Option<RegistryLocation> {
        None
    }
    /// How a layer's bytes are really compressed, where that differs from
    /// what the manifest's media type says (a docker-archive presents its
    /// uncompressed layers as gzip, as containers/image does). `None`: the
    /// media type tells the truth.
    fn layer_compression(&self, _digest: &Digest) -> Option<crate::compression::Compression> {
        None
    }
    /// The digest and media type of the top-level manifest, as cheaply as
    /// the transport allows (a HEAD for a registry); `None` where it cannot
    /// tell without reading the manifest.
    async fn current_manifest(&self) -> Result<Option<CurrentManifest>, TransportError> {
        let (bytes, media_type) = self.manifest(None).await?;
        Ok(Some(CurrentManifest {
            digest: crate::manifest_digest::manifest_digest(&bytes)?,
            media_type,
        }))
    }
    /// Tags of the image's repository (for `inspect`); empty where the
    /// transport has no such notion.
    async fn repo_tags(&self) -> Result<Vec<String>, TransportError> {
        Ok(vec![])
    }
    /// Layer descriptors to copy in place of `m`'s, where the source keeps
    /// layers in another form than its manifest says (containers-storage
    /// serves them uncompressed: digests are diff IDs). The copy then
    /// writes a manifest with these. `None`: the manifest's own.
    fn layers_for_copy(&self, _m: &crate::manifest::ImageManifest) -> Result<Option<Vec<BlobInfo>>, TransportError> {
        Ok(None)
    }
    /// The signatures of the top-level manifest (`instance` = `None`) or of
    /// one instance of a list, unverified, each in containers/image's blob
    /// form (simple signatures as they are); `manifest` is the digest of that
    /// manifest, as read. Empty where the transport keeps none.
    async fn signatures(&self, _instance: Option<&Digest>, _manifest: &Digest) -> Result<Vec<Bytes>, TransportError> {
        Ok(vec![])
    }
    /// Whether [`ImageSource::referrers`] can list anything.
    fn keeps_referrers(&self) -> bool {
        false
    }
    /// The OCI referrers of manifest `subject` (of these artifact types
    /// when any are given).
    async fn referrers(
        &self,
        _subject: &Digest,
        _artifact_types: &[String],
    ) -> Result<Vec<crate::manifest::Descriptor>, TransportError> {
        Err(TransportError::ReferrersUnsupported(self.describe()))
    }
}

/// A writable image. Call order: blobs (after `try_reuse_blob`), then each
/// instance manifest of a list, then the top-level manifest, then `commit`.
/// Nothing is visible as a complete image until `commit` returns; dropping a
/// destination without committing leaves no new image behind.
#[async_trait]
pub trait ImageDestination: Send + Sync {
    /// The reference this destination was opened for, for messages.
    fn describe(&self) -> String;
    /// Manifest media types this destination stores, preferred first; empty means any.
    fn supported_manifest_types(&self) -> Vec<&'static str>;
    /// The digest of the complete image the destination's reference names
    /// now (what a copy would replace), `None` when there is none or the
    /// transport cannot tell (archives are always written anew).
    async fn current_digest(&self) -> Result<Option<Digest>, TransportError> {
        Ok(None)
    }
    /// Whether the destination can hold a manifest list / index.
    fn supports_lists(&self) -> bool {
        true
    }
    /// Make the blob available without uploading it if possible (it already
    /// exists, or can be mounted from `from` in the same registry). True when
    /// the blob is now present.
    async fn try_reuse_blob(&self, info: &BlobInfo, from: Option<&RegistryLocation>) -> Result<bool, TransportError>;
    /// Store a blob from a stream whose digest the pipeline verifies in flight:
    /// an `Err` item means the data is bad and must not be kept.
    async fn put_blob(&self, info: &BlobInfo, stream: BlobStream) -> Result<(), TransportError>;
    /// Store a manifest: an instance of a list (`instance` = its digest) or,
    /// with `None`, the top-level manifest for the destination's reference.
    async fn put_manifest(
        &self,
        manifest: &[u8],
        media_type: &str,
        instance: Option<&Digest>,
    ) -> Result<(), TransportError>;
    /// Make the image visible. Must be called for the image to persist.
    async fn commit(&self) -> Result<(), TransportError>;
    /// What this destination wants done to layer compression.
    fn desired_layer_compression(&self) -> LayerCompression {
        LayerCompression::Preserve
    }
    /// Whether `put_blob`/`put_blob_computed` may run concurrently.
    fn concurrent_blobs(&self) -> bool {
        true
    }
    /// Store a blob whose digest and size are known only once it has been
    /// written (the output of a compression stage). Returns both. As with
    /// `put_blob`, an `Err` item means the data must not be kept.
    async fn put_blob_computed(&self, media_type: &str, stream: BlobStream) -> Result<(Digest, u64), TransportError>;
    /// Whether signatures can be stored here: `Err` with the reason when not
    /// (containers/image's texts), so that none is dropped silently.
    fn supports_signatures(&self) -> Result<(), TransportError> {
        Err(TransportError::SignaturesUnsupported(
            "Pushing signatures for OCI images is not supported",
        ))
    }
    /// Whether sigstore signatures in particular can be stored here (a
    /// registry keeps them as attachments only where configured to).
    fn supports_sigstore(&self) -> Result<(), TransportError> {
        self.supports_signatures()
    }
    /// Store the signatures of the top-level manifest (`None`) or of an
    /// instance, after that manifest was put.
    async fn put_signatures(&self, signatures: &[Bytes], _instance: Option<&Digest>) -> Result<(), TransportError> {
        match signatures.is_empty() {
            true => Ok(()),
            false => self.supports_signatures(),
        }
    }
    /// Whether [`ImageDestination::put_referrer`] can store anything.
    fn keeps_referrers(&self) -> bool {
        false
    }
    /// Store `manifest` (whose blobs are in place) by its digest as a
    /// referrer of `subject`, findable as one afterwards.
    async fn put_referrer(
        &self,
        _manifest: &[u8],
        _media_type: &str,
        _referrer: &crate::manifest::Descriptor,
        _subject: &Digest,
    ) -> Result<(), TransportError> {
        Err(TransportError::ReferrersUnsupported(self.describe()))
    }
}

/// What a destination wants done to layers' compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerCompression {
    /// Keep layers as they are.
    Preserve,
    /// Compress uncompressed layers (registries, OCI layouts).
    Compress,
    /// Store layers uncompressed (docker-archive, docker-daemon).
    Decompress,
}

/// Where [`hashing`] leaves a stream's digest and size.
pub type HashSlot = std::sync::Arc<std::sync::Mutex<Option<(Digest, u64)>>>;

/// Wrap `stream` so that its digest and size are recorded in the returned
/// slot once it ends cleanly.
pub fn hashing(stream: BlobStream) -> (BlobStream, HashSlot) {
    use futures::StreamExt as _;
    let slot = std::sync::Arc::new(std::sync::Mutex::new(None));
    let out = slot.clone();
    let state = (
        stream,
        Some(crate::digest::Hasher::new(crate::digest::Algorithm::Sha256)),
        0u64,
        slot,
    );
    let s = futures::stream::unfold(state, |(mut inner, mut hasher, mut n, slot)| async move {
        match inner.next().await {
            Some(Ok(chunk)) => {
                if let Some(h) = hasher.as_mut() {
                    h.update(&chunk);
                }
                n += chunk.len() as u64;
                Some((Ok(chunk), (inner, hasher, n, slot)))
            }
            Some(Err(e)) => Some((Err(e), (inner, None, n, slot))),
            None => {
                if let Some(h) = hasher.take() {
                    *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some((h.finish(), n));
                }
                None
            }
        }
    });
    (s.boxed(), out)
}

/// The digest and size a [`hashing`] stream recorded, or an error if it did not finish.
pub fn hashed(slot: &std::sync::Mutex<Option<(Digest, u64)>>) -> Result<(Digest, u64), TransportError> {
    slot.lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
        .ok_or(TransportError::StreamEndedEarly)
}

/// Options that open a transport: per-side registry settings and shared blob dirs.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    pub registry: RegistryOptions,
    /// `--src-shared-blob-dir` / `--dest-shared-blob-dir` for `oci:`.
    pub shared_blob_dir: Option<PathBuf>,
    /// Share registry clients with other images of the same operation.
    pub pool: Option<std::sync::Arc<crate::registry::ClientPool>>,
    /// `--dest-oci-accept-uncompressed-layers`.
    pub oci_accept_uncompressed_layers: bool,
    /// `--src-daemon-host` / `--dest-daemon-host` for `docker-daemon:`.
    pub daemon_host: Option<String>,
    /// `--additional-tag` for `docker-archive:` destinations.
    pub additional_tags: Vec<crate::reference::DockerReference>,
    /// Where registry images' signatures live (registries.d lookasides);
    /// `None`: registry images have no signatures to read or write.
    pub signature_storage: Option<std::sync::Arc<crate::signature::lookaside::SignatureStorage>>,
    /// Whose identity `atomic:` uses with the cluster.
    pub atomic: atomic::AtomicAccess,
}

impl OpenOptions {
    /// The registry client for `registry`: from the pool if there is one.
    pub fn client(&self, registry: &str) -> Result<std::sync::Arc<crate::registry::RegistryClient>, RegistryError> {
        match &self.pool {
            Some(p) => p.get(registry, &self.registry),
            None => Ok(std::sync::Arc::new(crate::registry::RegistryClient::new(
                registry,
                self.registry.clone(),
            )?)),
        }
    }
}

/// Open `reference` for reading.
pub async fn open_source(
    reference: &ImageReference,
    opts: &OpenOptions,
) -> Result<Box<dyn ImageSource>, TransportError> {
    match reference {
        ImageReference::Docker(r) => Ok(Box::new(
            docker::DockerSource::new(r.clone(), opts.client(r.domain())?)
                .with_signatures(opts.signature_storage.clone()),
        )),
        ImageReference::Oci { path, image } => Ok(Box::new(
            oci::OciSource::open(path, image.as_deref(), opts.shared_blob_dir.clone()).await?,
        )),
        ImageReference::Dir { path } => Ok(Box::new(dir::DirSource::open(path).await?)),
        ImageReference::OciArchive { path, image } => {
            Ok(Box::new(oci::OciSource::open_archive(path, image.as_deref()).await?))
        }
        ImageReference::DockerArchive { path, target } => Ok(Box::new(
            docker_archive::DockerArchiveSource::open(path, target.as_ref()).await?,
        )),
        ImageReference::DockerDaemon(t) => Ok(Box::new(
            docker_daemon::DaemonSource::open(t, opts.daemon_host.as_deref()).await?,
        )),
        ImageReference::Tarball { paths } => Ok(Box::new(tarball::TarballSource::open(paths).await?)),
        ImageReference::ContainersStorage { store, image } => Ok(Box::new(
            containers_storage::StorageSource::open(store.as_deref(), image).await?,
        )),
        ImageReference::Sif { path } => Ok(Box::new(sif::SifSource::open(path).await?)),
        ImageReference::Atomic(r) => Ok(Box::new(atomic::open_source(r, opts).await?)),
    }
}

/// The digest of the image `reference` names, as cheaply as its transport
/// allows (a manifest HEAD for a registry).
pub async fn current_digest(reference: &ImageReference, opts: &OpenOptions) -> Result<Option<Digest>, TransportError> {
    Ok(open_source(reference, opts)
        .await?
        .current_manifest()
        .await?
        .map(|c| c.digest))
}

/// Tags listed for `list-tags`: a repository's (with its name), or an
/// archive's images' (no repository).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagList {
    pub repository: Option<String>,
    pub tags: Vec<String>,
}

/// The tags of a registry repository (`repository` has no tag or digest).
pub async fn list_repository_tags(
    repository: &crate::reference::DockerReference,
    opts: &OpenOptions,
) -> Result<TagList, TransportError> {
    let tags = opts.client(repository.domain())?.list_tags(repository.path()).await?;
    Ok(TagList {
        repository: Some(repository.name()),
        tags,
    })
}

/// The tags of the images an archive holds (`docker-archive:`).
pub async fn list_archive_tags(reference: &ImageReference) -> Result<TagList, TransportError> {
    match reference {
        ImageReference::DockerArchive { path, .. } => Ok(TagList {
            repository: None,
            tags: docker_archive::list_tags(path).await?,
        }),
        other => Err(TransportError::UnsupportedOperation {
            transport: other.transport(),
            operation: "listing tags",
        }),
    }
}

/// Delete the image `reference` names, where its transport can.
pub async fn delete(reference: &ImageReference, opts: &OpenOptions) -> Result<(), TransportError> {
    match reference {
        ImageReference::Docker(r) => docker::delete(r, opts.client(r.domain())?.as_ref()).await,
        ImageReference::Oci { path, image } => {
            oci_delete::delete(path, image.as_deref(), opts.shared_blob_dir.as_deref()).await
        }
        ImageReference::Tarball { paths } => tarball::delete(paths).await,
        ImageReference::Sif { .. } => Err(TransportError::DeleteNotImplemented("sif")),
        ImageReference::Atomic(_) => Err(TransportError::DeleteNotImplemented("atomic")),
        ImageReference::ContainersStorage { store, image } => containers_storage::delete(store.as_deref(), image).await,
        other => Err(TransportError::UnsupportedOperation {
            transport: other.transport(),
            operation: "deleting images",
        }),
    }
}

/// Open `reference` for writing.
pub async fn open_destination(
    reference: &ImageReference,
    opts: &OpenOptions,
) -> Result<Box<dyn ImageDestination>, TransportError> {
    match reference {
        ImageReference::Docker(r) => Ok(Box::new(
            docker::DockerDestination::new(r.clone(), opts.client(r.domain())?)?
                .with_signatures(opts.signature_storage.clone()),
        )),
        ImageReference::Oci { path, image } => {
            let mut d = oci::OciDestination::open(path, image.clone(), opts.shared_blob_dir.clone()).await?;
            d.accept_uncompressed = opts.oci_accept_uncompressed_layers;
            Ok(Box::new(d))
        }
        ImageReference::Dir { path } => Ok(Box::new(dir::DirDestination::open(path).await?)),
        ImageReference::OciArchive { path, image } => Ok(Box::new(
            oci_archive::OciArchiveDestination::create(path, image.clone(), opts.oci_accept_uncompressed_layers)
                .await?,
        )),
        ImageReference::DockerArchive { path, target } => {
            let mut tags = match target {
                Some(crate::reference::ArchiveTarget::Reference(r)) => vec![r.clone()],
                Some(crate::reference::ArchiveTarget::Index(_)) => {
                    return Err(TransportError::DestinationByIndex {
                        transport: "docker-archive",
                    });
                }
                None => vec![],
            };
            tags.extend(opts.additional_tags.iter().cloned());
            Ok(Box::new(
                docker_archive::DockerArchiveDestination::create(path, tags).await?,
            ))
        }
        ImageReference::DockerDaemon(t) => Ok(Box::new(
            docker_daemon::DaemonDestination::create(t, opts.daemon_host.as_deref()).await?,
        )),
        ImageReference::Tarball { .. } => Err(TransportError::ReadOnly("tarball")),
        ImageReference::Sif { .. } => Err(TransportError::ReadOnly("sif")),
        ImageReference::ContainersStorage { store, image } => Ok(Box::new(
            containers_storage::StorageDestination::open(store.as_deref(), image).await?,
        )),
        ImageReference::Atomic(r) => Ok(Box::new(atomic::open_destination(r, opts).await?)),
    }
}
