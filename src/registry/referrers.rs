//! The OCI 1.1 referrers API: `GET /v2/<name>/referrers/<digest>`. A
//! registry without it answers 404, and clients fall back to the referrers
//! tag schema (`sha256-HEX`), which `transport::docker_referrers` keeps.

use super::RegistryError;
use super::client::{MAX_MANIFEST_SIZE, RegistryClient};
use super::response::{error_from, read_limited};
use crate::digest::Digest;
use crate::manifest::media;
use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::ACCEPT;

/// What the referrers API answered.
#[derive(Debug)]
pub struct ReferrersAnswer {
    /// The image index listing the referrers.
    pub index: Bytes,
    /// The registry applied the `artifactType` filter asked for
    /// (`OCI-Filters-Applied`); otherwise the client filters.
    pub filtered: bool,
}

impl RegistryClient {
    /// The referrers of `subject` by the referrers API, `None` when the
    /// registry has no such API (it answers 404).
    pub async fn referrers(
        &self,
        repo: &str,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Option<ReferrersAnswer>, RegistryError> {
        let op = format!("listing the referrers of {subject} in {}/{repo}", self.registry);
        let path = format!("v2/{repo}/referrers/{subject}");
        let resp = self
            .send(&op, repo, Self::scopes(repo, false), |c, base| {
                let mut url = self.url(base, &path)?;
                if let Some(t) = artifact_type {
                    url.query_pairs_mut().append_pair("artifactType", t);
                }
                Ok(c.get(url).header(ACCEPT, media::OCI_INDEX))
            })
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(error_from(&op, resp).await);
        }
        let filtered = resp
            .headers()
            .get("oci-filters-applied")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|f| f.trim() == "artifactType"));
        let index = read_limited(&op, resp, MAX_MANIFEST_SIZE).await?;
        Ok(Some(ReferrersAnswer { index, filtered }))
    }
}
