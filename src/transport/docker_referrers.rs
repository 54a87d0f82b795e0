//! OCI 1.1 referrers in a registry: listed by the referrers API where the
//! registry has it and by the referrers tag schema (`sha256-HEX`, an image
//! index) where it does not; written by putting the manifest by digest and,
//! unless the registry says it indexed the subject (`OCI-Subject`), adding
//! its descriptor to that tag's index, as the distribution spec asks of clients.

use super::TransportError;
use crate::digest::Digest;
use crate::manifest::{Descriptor, ImageIndex, media};
use crate::registry::RegistryClient;

/// The referrers tag of `subject` (`sha256:HEX` → `sha256-HEX`).
pub fn tag(subject: &Digest) -> String {
    format!("{}-{}", subject.algorithm().as_str(), subject.hex())
}

fn bad(repo: &str, subject: &Digest, why: impl std::fmt::Display) -> TransportError {
    TransportError::Referrers {
        repo: repo.to_string(),
        subject: subject.to_string(),
        why: why.to_string(),
    }
}

fn parse_index(repo: &str, subject: &Digest, bytes: &[u8]) -> Result<ImageIndex, TransportError> {
    serde_json::from_slice(bytes).map_err(|e| bad(repo, subject, format!("not an image index: {e}")))
}

/// The referrers tag's index, `None` when there is no such tag.
async fn tag_index(
    client: &RegistryClient,
    repo: &str,
    subject: &Digest,
) -> Result<Option<ImageIndex>, TransportError> {
    match client.get_manifest(repo, &tag(subject)).await {
        Ok((bytes, mime)) if mime == media::OCI_INDEX => parse_index(repo, subject, &bytes).map(Some),
        Ok((_, mime)) => Err(bad(
            repo,
            subject,
            format!("the tag {} is a {mime}, not an image index", tag(subject)),
        )),
        Err(e) => {
            let e = TransportError::from(e);
            if e.is_image_not_found() { Ok(None) } else { Err(e) }
        }
    }
}

/// The referrers of `subject`, those of the given artifact types only
/// when any are given.
pub async fn list(
    client: &RegistryClient,
    repo: &str,
    subject: &Digest,
    artifact_types: &[String],
) -> Result<Vec<Descriptor>, TransportError> {
    // The API filters one type at a time; with several, ask for all.
    let one = match artifact_types {
        [t] => Some(t.as_str()),
        _ => None,
    };
    let (manifests, filtered) = match client.referrers(repo, subject, one).await? {
        Some(a) => (parse_index(repo, subject, &a.index)?.manifests, a.filtered),
        None => (
            tag_index(client, repo, subject)
                .await?
                .map(|i| i.manifests)
                .unwrap_or_default(),
            false,
        ),
    };
    Ok(manifests
        .into_iter()
        .filter(|d| {
            filtered
                || artifact_types.is_empty()
                || d.artifact_type.as_ref().is_some_and(|t| artifact_types.contains(t))
        })
        .collect())
}

/// Record `referrer` (already put by digest) as a referrer of `subject` in
/// the referrers tag's index, once.
pub async fn attach(
    client: &RegistryClient,
    repo: &str,
    subject: &Digest,
    referrer: &Descriptor,
) -> Result<(), TransportError> {
    let mut index = tag_index(client, repo, subject).await?.unwrap_or(ImageIndex {
        schema_version: 2,
        media_type: Some(media::OCI_INDEX.to_string()),
        artifact_type: None,
        manifests: vec![],
        subject: None,
        annotations: None,
    });
    if index.manifests.iter().any(|d| d.digest == referrer.digest) {
        return Ok(());
    }
    index.manifests.push(referrer.clone());
    let body = serde_json::to_vec(&index).map_err(|e| bad(repo, subject, e))?;
    client
        .put_manifest(repo, &tag(subject), &body, media::OCI_INDEX)
        .await?;
    Ok(())
}
