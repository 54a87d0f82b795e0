//! Writing `atomic:`: blobs and manifests go to the registry as for
//! `docker://HOST/NAMESPACE/STREAM:TAG` (the registry registers the image
//! in the stream when the manifest is pushed); signatures then become
//! `ImageSignature` objects of that image, each new one once.

use super::{AtomicError, Stream};
use crate::digest::Digest;
use crate::signature::blob::Signature;
use crate::transport::docker::DockerDestination;
use crate::transport::{BlobInfo, BlobStream, ImageDestination, LayerCompression, RegistryLocation, TransportError};
use async_trait::async_trait;
use bytes::Bytes;
use std::collections::HashSet;

/// An image stream tag being written.
pub struct AtomicDestination {
    stream: Stream,
    docker: DockerDestination,
}

impl AtomicDestination {
    pub(super) fn open(stream: Stream) -> Result<AtomicDestination, TransportError> {
        let docker = DockerDestination::new(stream.reference.clone(), stream.registry.clone())?;
        Ok(AtomicDestination { stream, docker })
    }
}

#[async_trait]
impl ImageDestination for AtomicDestination {
    fn describe(&self) -> String {
        self.stream.describe()
    }

    fn supported_manifest_types(&self) -> Vec<&'static str> {
        self.docker.supported_manifest_types()
    }

    async fn current_digest(&self) -> Result<Option<Digest>, TransportError> {
        self.docker.current_digest().await
    }

    async fn try_reuse_blob(&self, info: &BlobInfo, from: Option<&RegistryLocation>) -> Result<bool, TransportError> {
        self.docker.try_reuse_blob(info, from).await
    }

    async fn put_blob(&self, info: &BlobInfo, stream: BlobStream) -> Result<(), TransportError> {
        self.docker.put_blob(info, stream).await
    }

    async fn put_blob_computed(&self, media_type: &str, stream: BlobStream) -> Result<(Digest, u64), TransportError> {
        self.docker.put_blob_computed(media_type, stream).await
    }

    async fn put_manifest(
        &self,
        manifest: &[u8],
        media_type: &str,
        instance: Option<&Digest>,
    ) -> Result<(), TransportError> {
        self.docker.put_manifest(manifest, media_type, instance).await
    }

    async fn commit(&self) -> Result<(), TransportError> {
        self.docker.commit().await
    }

    fn desired_layer_compression(&self) -> LayerCompression {
        LayerCompression::Compress
    }

    fn supports_signatures(&self) -> Result<(), TransportError> {
        Ok(())
    }

    fn supports_sigstore(&self) -> Result<(), TransportError> {
        Err(AtomicError::SignatureFormat("sigstore signatures").into())
    }

    async fn put_signatures(&self, signatures: &[Bytes], instance: Option<&Digest>) -> Result<(), TransportError> {
        if signatures.is_empty() {
            return Ok(());
        }
        let mut simple = Vec::with_capacity(signatures.len());
        for b in signatures {
            match Signature::from_blob(b).map_err(TransportError::Attachment)? {
                Signature::Simple(s) => simple.push(s),
                Signature::Sigstore(_) => return Err(AtomicError::SignatureFormat("sigstore signatures").into()),
            }
        }
        let image = match instance {
            Some(d) => d.to_string(),
            None => self
                .docker
                .top_level()
                .map(|d| d.to_string())
                .ok_or(AtomicError::NoManifestYet)?,
        };
        let (ns, name) = (&self.stream.namespace, &self.stream.name);
        let existing = self.stream.api.image(ns, name, &image).await?.signatures;
        let mut names: HashSet<String> = existing.iter().map(|s| s.metadata.name.clone()).collect();
        for sig in simple {
            if existing.iter().any(|e| e.kind == "atomic" && e.content == sig.as_ref()) {
                continue;
            }
            let signature_name = crate::signature::fresh_signature_name(&image, &mut names);
            self.stream.api.add_signature(&signature_name, &sig).await?;
        }
        Ok(())
    }
}
