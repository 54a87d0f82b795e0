//! Carrying OCI 1.1 referrers along: after the image, every manifest that
//! names it (or, for a list, one of its instances) as its `subject` —
//! cosign bundles, attestations, SBOMs — is copied by digest with its
//! blobs and recorded as a referrer at the destination, then the
//! referrers of those in turn, a few levels deep. The copy keeps the
//! image's digest (the referrers name it), and a referrer's bytes are
//! never changed: its digest is what the registry indexes it by.

use super::{CopyError, CopyReport, verify};
use crate::digest::Digest;
use crate::manifest::{Descriptor, Manifest, is_list_type};
use crate::options::referrers::ReferrerSettings;
use crate::transport::{BlobInfo, ImageDestination, ImageSource, TransportError};
use std::collections::HashSet;

/// Referrers of referrers followed this deep (a signature of an
/// attestation of the image is two).
const MAX_DEPTH: usize = 4;
/// Referrers carried per copy at most: a registry's answer is not trusted
/// to be small.
const MAX_REFERRERS: usize = 10_000;

/// Whether both sides keep referrers (before anything is copied).
pub fn check(src: &dyn ImageSource, dst: &dyn ImageDestination) -> Result<(), CopyError> {
    if !src.keeps_referrers() {
        return Err(TransportError::ReferrersUnsupported(src.describe()).into());
    }
    if !dst.keeps_referrers() {
        return Err(TransportError::ReferrersUnsupported(dst.describe()).into());
    }
    Ok(())
}

/// Carry the referrers of the image `report` wrote (or found) and of its
/// instances; returns how many were put.
pub async fn carry(
    src: &dyn ImageSource,
    dst: &dyn ImageDestination,
    report: &CopyReport,
    settings: &ReferrerSettings,
) -> Result<usize, CopyError> {
    let top = report.manifest_digest.clone();
    let (bytes, mime) = match &report.manifest {
        Some(m) => (m.clone(), crate::manifest::guess_mime_type(m)),
        None => src.manifest(None).await?,
    };
    let mut subjects = vec![top];
    if is_list_type(&mime)
        && let Manifest::Index(index) = Manifest::parse(&bytes, &mime)?
    {
        subjects.extend(index.manifests.into_iter().map(|d| d.digest));
    }
    let mut seen: HashSet<Digest> = subjects.iter().cloned().collect();
    let mut todo: Vec<(Digest, usize)> = subjects.into_iter().map(|s| (s, 0)).collect();
    let mut carried = 0;
    while let Some((subject, depth)) = todo.pop() {
        // The filter picks what is attached to the image; what is attached
        // to those (their signatures) comes whatever its type.
        let types: &[String] = if depth == 0 { &settings.artifact_types } else { &[] };
        for referrer in src.referrers(&subject, types).await? {
            if !seen.insert(referrer.digest.clone()) {
                continue;
            }
            if carried == MAX_REFERRERS {
                return Err(TransportError::Referrers {
                    repo: src.describe(),
                    subject: subject.to_string(),
                    why: format!("more than {MAX_REFERRERS} referrers"),
                }
                .into());
            }
            // Fetched by digest, so checked against it (only registries
            // keep referrers, and their manifests by digest are verified).
            let (bytes, mime) = src.manifest(Some(&referrer.digest)).await?;
            copy_contents(src, dst, &bytes, &mime).await?;
            dst.put_referrer(&bytes, &mime, &referrer, &subject).await?;
            tracing::debug!(%subject, referrer = %referrer.digest, artifact_type = ?referrer.artifact_type, "referrer carried");
            carried += 1;
            if depth + 1 < MAX_DEPTH {
                todo.push((referrer.digest.clone(), depth + 1));
            }
        }
    }
    Ok(carried)
}

/// Put what a referrer manifest points at: its blobs, or an index's
/// image manifests (by digest) and theirs.
async fn copy_contents(
    src: &dyn ImageSource,
    dst: &dyn ImageDestination,
    bytes: &[u8],
    mime: &str,
) -> Result<(), CopyError> {
    match Manifest::parse(bytes, mime)? {
        Manifest::Image(m) => copy_blobs(src, dst, &m).await?,
        Manifest::Index(index) => {
            for child in &index.manifests {
                let (cb, cm) = src.manifest(Some(&child.digest)).await?;
                let Manifest::Image(m) = Manifest::parse(&cb, &cm)? else {
                    return Err(CopyError::NotAList(format!(
                        "{cm} (an index inside a referrer index, which kopeo does not carry)"
                    )));
                };
                copy_blobs(src, dst, &m).await?;
                dst.put_manifest(&cb, &cm, Some(&child.digest)).await?;
            }
        }
    }
    Ok(())
}

/// An image manifest's config and layers.
async fn copy_blobs(
    src: &dyn ImageSource,
    dst: &dyn ImageDestination,
    m: &crate::manifest::ImageManifest,
) -> Result<(), CopyError> {
    for d in std::iter::once(&m.config).chain(&m.layers) {
        copy_blob(src, dst, d).await?;
    }
    Ok(())
}

/// One blob as it is, verified in flight, unless the destination has it.
async fn copy_blob(src: &dyn ImageSource, dst: &dyn ImageDestination, d: &Descriptor) -> Result<(), CopyError> {
    let info = BlobInfo {
        digest: d.digest.clone(),
        size: u64::try_from(d.size).ok(),
        media_type: d.media_type.clone(),
    };
    if dst.try_reuse_blob(&info, src.registry_location().as_ref()).await? {
        return Ok(());
    }
    let stream = verify(src.blob(&info).await?, &info, Default::default(), None);
    dst.put_blob(&info, stream).await?;
    Ok(())
}
