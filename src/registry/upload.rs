//! Putting blobs into a repository: cross-repository mounts (a 202 answer
//! means not mounted), upload sessions, one streaming PUT when the digest is
//! known, one streaming PATCH then a PUT when it is computed on the way.

use super::RegistryError;
use super::client::{MountOutcome, RegistryClient};
use super::response::error_from;
use super::token_auth::repo_scope;
use crate::digest::Digest;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Method, Response, StatusCode, Url};
use std::collections::BTreeSet;

impl RegistryClient {
    /// Ask the registry to mount `digest` from `from_repo` into `repo`.
    pub async fn mount_blob(
        &self,
        repo: &str,
        digest: &Digest,
        from_repo: &str,
    ) -> Result<MountOutcome, RegistryError> {
        let op = format!("mounting blob {digest} from {from_repo} to {}/{repo}", self.registry);
        let scopes = BTreeSet::from([repo_scope(repo, true), repo_scope(from_repo, false)]);
        let path = format!("v2/{repo}/blobs/uploads/");
        let resp = self
            .send(&op, repo, scopes, |c, base| {
                let mut url = self.url(base, &path)?;
                url.query_pairs_mut()
                    .append_pair("mount", &digest.to_string())
                    .append_pair("from", from_repo);
                Ok(c.post(url).header(CONTENT_LENGTH, "0"))
            })
            .await?;
        match resp.status() {
            StatusCode::CREATED => Ok(MountOutcome::Mounted),
            StatusCode::ACCEPTED => Ok(MountOutcome::NotMounted(self.location(&op, &resp).await.ok())),
            _ => {
                let e = error_from(&op, resp).await;
                tracing::debug!(error = %e, "mount refused, uploading instead");
                Ok(MountOutcome::NotMounted(None))
            }
        }
    }

    async fn location(&self, op: &str, resp: &Response) -> Result<Url, RegistryError> {
        let loc = resp
            .headers()
            .get(LOCATION)
            .and_then(|h| h.to_str().ok())
            .ok_or_else(|| RegistryError::Protocol {
                op: op.to_string(),
                reason: "upload response has no Location".into(),
            })?;
        let base = self.base().await?;
        base.join(loc).map_err(|e| RegistryError::Protocol {
            op: op.to_string(),
            reason: format!("bad Location {:?}: {e}", super::error::redacted(loc)),
        })
    }

    /// Open an upload session; its URL.
    pub async fn start_upload(&self, repo: &str) -> Result<Url, RegistryError> {
        let op = format!("starting upload to {}/{repo}", self.registry);
        let path = format!("v2/{repo}/blobs/uploads/");
        let resp = self
            .send(&op, repo, Self::scopes(repo, true), |c, base| {
                Ok(c.post(self.url(base, &path)?).header(CONTENT_LENGTH, "0"))
            })
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(error_from(&op, resp).await);
        }
        self.location(&op, &resp).await
    }

    /// Finish an upload session with one streaming PUT of the whole blob
    /// (monolithic upload: the digest and size are known beforehand).
    pub async fn put_blob(
        &self,
        repo: &str,
        upload: Url,
        digest: &Digest,
        size: u64,
        body: reqwest::Body,
    ) -> Result<(), RegistryError> {
        let op = format!("uploading blob {digest} to {}/{repo}", self.registry);
        let _permit = self.transfer_permit(super::budget::Transfer::Upload).await;
        let mut url = upload;
        url.query_pairs_mut().append_pair("digest", &digest.to_string());
        let resp = self
            .send_once(&op, repo, Self::scopes(repo, true), |c| {
                c.request(Method::PUT, url)
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, size)
                    .body(body)
            })
            .await
            .map_err(|e| RegistryError::Upload(Box::new(e)))?;
        if resp.status() != StatusCode::CREATED {
            return Err(RegistryError::Upload(Box::new(error_from(&op, resp).await)));
        }
        Ok(())
    }

    /// Upload a blob whose digest is not known beforehand: one streaming
    /// PATCH with the whole body, then a PUT naming the digest `finish` yields
    /// once the body has been sent.
    pub async fn put_blob_chunked(
        &self,
        repo: &str,
        body: reqwest::Body,
        finish: impl FnOnce() -> Result<Digest, RegistryError>,
    ) -> Result<Digest, RegistryError> {
        let _permit = self.transfer_permit(super::budget::Transfer::Upload).await;
        let upload = self.start_upload(repo).await?;
        let op = format!("uploading a blob to {}/{repo}", self.registry);
        let resp = self
            .send_once(&op, repo, Self::scopes(repo, true), |c| {
                c.request(Method::PATCH, upload)
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .body(body)
            })
            .await
            .map_err(|e| RegistryError::Upload(Box::new(e)))?;
        if resp.status() != StatusCode::ACCEPTED && resp.status() != StatusCode::NO_CONTENT {
            return Err(RegistryError::Upload(Box::new(error_from(&op, resp).await)));
        }
        let mut url = self.location(&op, &resp).await?;
        let digest = finish()?;
        url.query_pairs_mut().append_pair("digest", &digest.to_string());
        let op = format!("uploading blob {digest} to {}/{repo}", self.registry);
        let resp = self
            .send_once(&op, repo, Self::scopes(repo, true), |c| {
                c.put(url).header(CONTENT_LENGTH, "0")
            })
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(error_from(&op, resp).await);
        }
        Ok(digest)
    }
}
