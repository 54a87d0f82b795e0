//! Reading `atomic:`: the tag resolves through the image stream to the
//! image (a manifest digest) and where the registry holds it; manifest and
//! blobs then come from the registry, signatures from the image API.

use super::{AtomicError, Stream};
use crate::digest::Digest;
use crate::reference::DockerReference;
use crate::transport::docker::DockerSource;
use crate::transport::{BlobInfo, BlobStream, CurrentManifest, ImageSource, RegistryLocation, TransportError};
use async_trait::async_trait;
use bytes::Bytes;

/// An image of an image stream, resolved when opened.
pub struct AtomicSource {
    stream: Stream,
    docker: DockerSource,
    /// The image the tag named when opened (its manifest digest).
    image: String,
}

impl AtomicSource {
    pub(super) async fn open(stream: Stream) -> Result<AtomicSource, TransportError> {
        let tag = stream.reference.tag().unwrap_or("latest").to_string();
        let is = stream.api.image_stream(&stream.namespace, &stream.name).await?;
        // Items are newest first: the tag's current image is the first.
        let event = is
            .status
            .tags
            .into_iter()
            .filter(|t| t.tag == tag)
            .find_map(|t| t.items.into_iter().next())
            .ok_or_else(|| AtomicError::NoMatchingTag {
                tag: tag.clone(),
                stream: format!("{}/{}", stream.namespace, stream.name),
            })?;
        tracing::debug!(reference = %event.docker_image_reference, image = %event.image, "tag event");
        let at = registry_reference(&stream.reference, &event.docker_image_reference)?;
        let docker = DockerSource::new(at, stream.registry.clone());
        Ok(AtomicSource {
            stream,
            docker,
            image: event.image,
        })
    }
}

/// The tag event's reference on the host the user named: the API stores
/// the registry's cluster-internal service address, unusable from outside
/// (containers/image's `convertDockerImageReference`).
fn registry_reference(named: &DockerReference, stored: &str) -> Result<DockerReference, TransportError> {
    let (_, repo) = stored
        .split_once('/')
        .ok_or_else(|| AtomicError::ImageReference(stored.to_string()))?;
    let r = format!("{}/{repo}", named.domain());
    DockerReference::parse_normalized(&r).map_err(|e| {
        TransportError::from(AtomicError::Decode {
            what: format!("the tag event's image reference {stored:?}"),
            reason: e.to_string(),
        })
    })
}

#[async_trait]
impl ImageSource for AtomicSource {
    fn describe(&self) -> String {
        self.stream.describe()
    }

    async fn manifest(&self, instance: Option<&Digest>) -> Result<(Bytes, String), TransportError> {
        self.docker.manifest(instance).await
    }

    async fn current_manifest(&self) -> Result<Option<CurrentManifest>, TransportError> {
        self.docker.current_manifest().await
    }

    async fn blob(&self, info: &BlobInfo) -> Result<BlobStream, TransportError> {
        self.docker.blob(info).await
    }

    fn registry_location(&self) -> Option<RegistryLocation> {
        self.docker.registry_location()
    }

    async fn signatures(&self, instance: Option<&Digest>, _manifest: &Digest) -> Result<Vec<Bytes>, TransportError> {
        let name = instance.map_or_else(|| self.image.clone(), |d| d.to_string());
        let image = self
            .stream
            .api
            .image(&self.stream.namespace, &self.stream.name, &name)
            .await?;
        Ok(image
            .signatures
            .into_iter()
            .filter(|s| s.kind == "atomic")
            .map(|s| Bytes::from(s.content))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_host_is_replaced_by_the_named_one() {
        let named = DockerReference::parse_normalized("registry.example:443/ns/app:1").unwrap();
        let at = registry_reference(
            &named,
            "image-registry.openshift-image-registry.svc:5000/ns/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        )
        .unwrap();
        assert_eq!(at.domain(), "registry.example:443");
        assert_eq!(at.path(), "ns/app");
        assert!(at.digest().is_some());
        assert!(registry_reference(&named, "no-slash").is_err());
    }
}
