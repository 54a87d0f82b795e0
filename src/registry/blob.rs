//! Blob downloads that survive dropped connections: when a body breaks off,
//! the download reconnects with `Range: bytes=N-` and carries on, so the
//! consumer (an upload, a file) sees one uninterrupted stream.

use super::response::error_from;
use super::{RegistryClient, RegistryError};
use crate::digest::Digest;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use reqwest::{Response, StatusCode};
use std::sync::Arc;
use std::time::Duration;

/// How many times one download may reconnect, beyond `--retry-times`.
const BASE_RESUMES: u32 = 3;

struct State {
    client: Arc<RegistryClient>,
    repo: String,
    digest: Digest,
    offset: u64,
    skip: u64,
    /// Where the open body ends in the blob, by its Content-Length.
    announced: Option<u64>,
    body: Option<BoxStream<'static, reqwest::Result<Bytes>>>,
    resumes: u32,
    done: bool,
    /// The host budget's download permit, held while the stream lives.
    permit: Option<Option<tokio::sync::OwnedSemaphorePermit>>,
}

impl RegistryClient {
    /// HEAD a blob; its size when present. Before an upload, ask with push
    /// access (`for_push`: one token for the lookups and the uploads).
    pub async fn head_blob(&self, repo: &str, digest: &Digest, for_push: bool) -> Result<Option<u64>, RegistryError> {
        let op = format!("checking blob {digest} in {}/{repo}", self.registry);
        let path = format!("v2/{repo}/blobs/{digest}");
        let resp = self
            .send(&op, repo, Self::scopes(repo, for_push), |c, base| {
                Ok(c.head(self.url(base, &path)?))
            })
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(Some(resp.content_length().unwrap_or(0))),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(error_from(&op, resp).await),
        }
    }

    /// Open a blob for reading from `offset` (a `Range` request when > 0).
    /// Returns the response and how many leading bytes to skip when the
    /// registry ignored the range.
    pub(super) async fn open_blob(
        &self,
        repo: &str,
        digest: &Digest,
        offset: u64,
    ) -> Result<(Response, u64), RegistryError> {
        let op = format!("fetching blob {digest} from {}/{repo}", self.registry);
        let path = format!("v2/{repo}/blobs/{digest}");
        let resp = self
            .send(&op, repo, Self::scopes(repo, false), |c, base| {
                let mut rb = c.get(self.url(base, &path)?);
                if offset > 0 {
                    rb = rb.header(reqwest::header::RANGE, format!("bytes={offset}-"));
                }
                Ok(rb)
            })
            .await?;
        match resp.status() {
            StatusCode::PARTIAL_CONTENT => Ok((resp, 0)),
            StatusCode::OK => Ok((resp, offset)),
            _ => Err(error_from(&op, resp).await),
        }
    }

    /// Stream the blob `digest` of `repo`, resuming interrupted transfers.
    /// The bytes are not verified here: the copy pipeline hashes them in flight.
    pub fn blob_stream(
        self: &Arc<Self>,
        repo: &str,
        digest: &Digest,
    ) -> BoxStream<'static, Result<Bytes, RegistryError>> {
        let state = State {
            client: Arc::clone(self),
            repo: repo.to_string(),
            digest: digest.clone(),
            offset: 0,
            skip: 0,
            announced: None,
            body: None,
            resumes: 0,
            done: false,
            permit: None,
        };
        futures::stream::unfold(state, |mut st| async move {
            if st.done {
                return None;
            }
            if st.permit.is_none() {
                st.permit = Some(st.client.transfer_permit(super::budget::Transfer::Download).await);
            }
            loop {
                if st.body.is_none() {
                    match st.client.open_blob(&st.repo, &st.digest, st.offset).await {
                        Ok((resp, skip)) => {
                            st.skip = skip;
                            st.announced = resp.content_length().map(|l| st.offset - skip + l);
                            st.body = Some(resp.bytes_stream().boxed());
                        }
                        Err(e) => {
                            st.done = true;
                            return Some((Err(e), st));
                        }
                    }
                }
                let Some(body) = st.body.as_mut() else { continue };
                match body.next().await {
                    Some(Ok(mut chunk)) => {
                        if st.skip > 0 {
                            let n = (st.skip as usize).min(chunk.len());
                            st.skip -= n as u64;
                            chunk = chunk.slice(n..);
                            if chunk.is_empty() {
                                continue;
                            }
                        }
                        st.offset += chunk.len() as u64;
                        return Some((Ok(chunk), st));
                    }
                    Some(Err(e)) => {
                        let op = format!("fetching blob {} from {}/{}", st.digest, st.client.registry(), st.repo);
                        let err = super::error::body_error(&op, e, st.offset, st.announced);
                        let limit = BASE_RESUMES + st.client.retry().times;
                        if st.resumes >= limit {
                            st.done = true;
                            return Some((Err(err), st));
                        }
                        st.resumes += 1;
                        tracing::warn!(digest = %st.digest, offset = st.offset, attempt = st.resumes, error = %err, "blob download interrupted, resuming");
                        st.body = None;
                        tokio::time::sleep(Duration::from_millis(100 * u64::from(st.resumes))).await;
                    }
                    None => return None,
                }
            }
        })
        .boxed()
    }
}
