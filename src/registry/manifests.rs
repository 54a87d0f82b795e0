//! Manifest endpoints: GET (verified against a requested digest), HEAD,
//! PUT (retried on Distribution's DIGEST_INVALID race), DELETE.

use super::RegistryError;
use super::client::{MAX_MANIFEST_SIZE, ManifestHead, RegistryClient};
use super::response::{error_from, read_limited};
use super::token_auth::repo_scope;
use crate::digest::Digest;
use crate::manifest::{guess_mime_type, media};
use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE};
use std::collections::BTreeSet;

impl RegistryClient {
    /// Fetch a manifest by tag or digest: its bytes and media type. A manifest
    /// fetched by digest is verified against it.
    pub async fn get_manifest(&self, repo: &str, reference: &str) -> Result<(Bytes, String), RegistryError> {
        let op = format!("reading manifest {reference} in {}/{repo}", self.registry);
        let path = format!("v2/{repo}/manifests/{reference}");
        let resp = self
            .send(&op, repo, Self::scopes(repo, false), |c, base| {
                Ok(c.get(self.url(base, &path)?)
                    .header(ACCEPT, media::ALL_MANIFESTS.join(", ")))
            })
            .await?;
        if !resp.status().is_success() {
            return Err(error_from(&op, resp).await);
        }
        if resp.content_length().is_some_and(|l| l as usize > MAX_MANIFEST_SIZE) {
            return Err(RegistryError::Protocol {
                op,
                reason: format!("manifest is larger than {MAX_MANIFEST_SIZE} bytes"),
            });
        }
        let mime = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|h| h.to_str().ok())
            .map(|s| s.split(';').next().unwrap_or("").trim().to_string())
            .unwrap_or_default();
        let body = read_limited(&op, resp, MAX_MANIFEST_SIZE).await?;
        if let Ok(d) = reference.parse::<Digest>()
            && !crate::manifest_digest::matches(&body, &d)
        {
            let actual = crate::manifest_digest::manifest_digest_with(&body, d.algorithm()).unwrap_or_else(|_| {
                let mut h = crate::digest::Hasher::new(d.algorithm());
                h.update(&body);
                h.finish()
            });
            return Err(RegistryError::DigestMismatch {
                op,
                expected: d,
                actual,
            });
        }
        let mime = if mime.is_empty() || mime == "application/json" || mime == "text/plain" {
            guess_mime_type(&body)
        } else {
            mime
        };
        Ok((body, mime))
    }

    /// HEAD a manifest; `None` when it does not exist. A destination asks
    /// with push access (`for_push`), as every request of upstream's
    /// destination does: the copy's uploads then reuse the same token.
    pub async fn head_manifest(
        &self,
        repo: &str,
        reference: &str,
        for_push: bool,
    ) -> Result<Option<ManifestHead>, RegistryError> {
        let op = format!("checking manifest {reference} in {}/{repo}", self.registry);
        let path = format!("v2/{repo}/manifests/{reference}");
        let resp = self
            .send(&op, repo, Self::scopes(repo, for_push), |c, base| {
                Ok(c.head(self.url(base, &path)?)
                    .header(ACCEPT, media::ALL_MANIFESTS.join(", ")))
            })
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(error_from(&op, resp).await);
        }
        let h = resp.headers();
        Ok(Some(ManifestHead {
            digest: h
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok()),
            media_type: h
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string(),
            size: h
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok()),
        }))
    }

    /// Upload a manifest under a tag or digest.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        body: &[u8],
        mime: &str,
    ) -> Result<(), RegistryError> {
        self.put_manifest_for_subject(repo, reference, body, mime)
            .await
            .map(|_| ())
    }

    /// Upload a manifest; returns the `OCI-Subject` the registry answered
    /// with, which says it indexed the manifest's `subject` as a referrer.
    pub async fn put_manifest_for_subject(
        &self,
        repo: &str,
        reference: &str,
        body: &[u8],
        mime: &str,
    ) -> Result<Option<String>, RegistryError> {
        let op = format!("writing manifest {reference} to {}/{repo}", self.registry);
        let path = format!("v2/{repo}/manifests/{reference}");
        let body = Bytes::copy_from_slice(body);
        // Distribution can answer DIGEST_INVALID to a manifest put by tag when
        // another client is uploading one of its blobs into the same
        // repository at that moment (it reads the blob's link file while it
        // is being rewritten). The manifest is fine: try again shortly.
        let mut races = 0;
        loop {
            let resp = self
                .send(&op, repo, Self::scopes(repo, true), |c, base| {
                    Ok(c.put(self.url(base, &path)?)
                        .header(CONTENT_TYPE, mime)
                        .body(body.clone()))
                })
                .await?;
            if resp.status().is_success() {
                return Ok(resp
                    .headers()
                    .get("oci-subject")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string));
            }
            let err = error_from(&op, resp).await;
            let raced = matches!(&err, RegistryError::Status { code: Some(c), .. } if c == "DIGEST_INVALID");
            if raced && races < 3 && reference.parse::<Digest>().is_err() {
                races += 1;
                tracing::debug!(
                    op,
                    attempt = races,
                    "registry reported DIGEST_INVALID for a manifest; retrying"
                );
                tokio::time::sleep(std::time::Duration::from_millis(200 * races)).await;
                continue;
            }
            return Err(err);
        }
    }

    /// Delete a manifest by digest.
    pub async fn delete_manifest(&self, repo: &str, digest: &Digest) -> Result<(), RegistryError> {
        let op = format!("deleting manifest {digest} from {}/{repo}", self.registry);
        let path = format!("v2/{repo}/manifests/{digest}");
        let scopes = BTreeSet::from([format!("repository:{repo}:delete"), repo_scope(repo, true)]);
        let resp = self
            .send(&op, repo, scopes, |c, base| Ok(c.delete(self.url(base, &path)?)))
            .await?;
        if !resp.status().is_success() {
            return Err(error_from(&op, resp).await);
        }
        Ok(())
    }
}
