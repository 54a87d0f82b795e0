//! Requests against one registry: ping, authorisation, retries, and the
//! manifest / blob / tag endpoints.

use super::auth::{Challenge, TokenCache, fetch_token, parse_challenge, repo_scope, scope_key};
use super::tls::{TlsOptions, build_client};
use super::{RegistryError, endpoint_host};
use crate::auth::{AuthOptions, Credentials};
use crate::digest::Digest;
use crate::manifest::{guess_mime_type, media};
use bytes::Bytes;
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, LINK, LOCATION, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Largest manifest kopeo accepts, as containers/image (4 MiB).
pub const MAX_MANIFEST_SIZE: usize = 4 << 20;

/// How often and how long to wait when a request fails transiently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetryOptions {
    /// `--retry-times`: extra attempts after the first.
    pub times: u32,
    /// `--retry-delay`: fixed delay; exponential from 1 s when unset.
    pub delay: Option<Duration>,
}

impl RetryOptions {
    /// The wait before retry number `attempt` (0-based).
    pub fn delay_for(&self, attempt: u32) -> Duration {
        self.delay
            .unwrap_or_else(|| Duration::from_secs(1u64 << attempt.min(6)))
    }
}

/// Everything that decides how kopeo talks to one side's registries.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    pub auth: AuthOptions,
    pub tls: TlsOptions,
    pub retry: RetryOptions,
}

/// What a manifest HEAD reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestHead {
    pub digest: Option<Digest>,
    pub media_type: String,
    pub size: Option<u64>,
}

/// The answer to a cross-repository mount request.
#[derive(Debug)]
pub enum MountOutcome {
    /// The blob is now in the destination repository.
    Mounted,
    /// Not mounted; the registry may have opened an upload session instead.
    NotMounted(Option<Url>),
}

/// Credentials as a request carries them.
enum Authorization {
    Basic(String, String),
    Bearer(String),
}

impl Authorization {
    fn apply(auth: Option<Authorization>, rb: RequestBuilder) -> RequestBuilder {
        match auth {
            Some(Authorization::Basic(u, p)) => rb.basic_auth(u, Some(p)),
            Some(Authorization::Bearer(t)) => rb.bearer_auth(t),
            None => rb,
        }
    }
}

/// A lock serialising work on one blob in one repository.
type BlobLock = Arc<tokio::sync::Mutex<()>>;

/// A client for one registry host.
pub struct RegistryClient {
    registry: String,
    http: reqwest::Client,
    opts: RegistryOptions,
    ping: tokio::sync::OnceCell<Url>,
    /// The auth challenge: from the ping, updated when a later 401 names another.
    challenge: Mutex<Challenge>,
    tokens: Mutex<TokenCache>,
    creds: Mutex<HashMap<String, Credentials>>,
    /// One lock per (repository, blob) being made present, see [`RegistryClient::blob_lock`].
    blob_locks: Mutex<HashMap<(String, Digest), BlobLock>>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

fn net(op: &str) -> impl Fn(reqwest::Error) -> RegistryError + '_ {
    move |source| RegistryError::network(op, source)
}

/// containers/image reads at most this much of an error body (iolimits.MaxErrorBodySize).
pub(super) const MAX_ERROR_BODY: usize = 1 << 20;

/// The first `{"errors":[{"code","message"}]}` entry of an error body, or
/// (no code) the body's first 300 characters.
pub(super) fn error_body(body: &[u8]) -> (Option<String>, String) {
    #[derive(serde::Deserialize)]
    struct Errs {
        errors: Vec<Err1>,
    }
    #[derive(serde::Deserialize)]
    struct Err1 {
        code: Option<String>,
        message: Option<String>,
    }
    match serde_json::from_slice::<Errs>(body) {
        Ok(e) if !e.errors.is_empty() => (
            e.errors[0].code.clone(),
            e.errors[0].message.clone().unwrap_or_default(),
        ),
        _ => (None, String::from_utf8_lossy(body).trim().chars().take(300).collect()),
    }
}

/// Turn an error response into a [`RegistryError`], reading the registry's
/// `{"errors":[{"code","message"}]}` body.
pub(super) async fn error_from(op: &str, resp: Response) -> RegistryError {
    let status = resp.status().as_u16();
    // An endless or huge error body is cut off: its first MiB says enough.
    let body = read_at_most(resp, MAX_ERROR_BODY).await;
    let (code, message) = error_body(&body);
    if status == 401 {
        // Without an errcode body, distribution reports UNAUTHORIZED.
        let message = if code.is_some() { message } else { String::new() };
        return RegistryError::Unauthorized {
            op: op.to_string(),
            detail: crate::skopeo_texts::unauthorized(code.as_deref(), &message),
        };
    }
    RegistryError::Status {
        op: op.to_string(),
        status,
        code,
        message,
    }
}

impl RegistryClient {
    /// A client for `registry` (as written in references, e.g. `127.0.0.1:5000`).
    pub fn new(registry: &str, opts: RegistryOptions) -> Result<Self, RegistryError> {
        let http = build_client(endpoint_host(registry), &opts.tls, &super::user_agent())?;
        Ok(RegistryClient {
            registry: registry.to_string(),
            http,
            opts,
            ping: tokio::sync::OnceCell::new(),
            challenge: Mutex::new(Challenge::None),
            tokens: Mutex::new(TokenCache::default()),
            creds: Mutex::new(HashMap::new()),
            blob_locks: Mutex::new(HashMap::new()),
        })
    }

    /// Serialise work that makes `digest` present in `repo` among the users of
    /// this client (images of one sync): Distribution's filesystem storage
    /// rewrites a repository's blob link on every upload, and a concurrent
    /// manifest PUT can read it half-written and fail with DIGEST_INVALID.
    /// Whoever waits here then finds the blob present instead of uploading it
    /// a second time.
    pub async fn blob_lock(&self, repo: &str, digest: &Digest) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = self
            .blob_locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((repo.to_string(), digest.clone()))
            .or_default()
            .clone();
        lock.lock_owned().await
    }

    /// The registry name this client serves.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The retry policy of this client.
    pub fn retry(&self) -> RetryOptions {
        self.opts.retry
    }

    /// Find out how the registry wants to be talked to: scheme and auth challenge.
    async fn ping(&self) -> Result<&Url, RegistryError> {
        self.ping
            .get_or_try_init(|| async {
                let host = endpoint_host(&self.registry);
                let mut schemes = vec!["https"];
                if !self.opts.tls.verifies() {
                    schemes.push("http");
                }
                let mut last = String::new();
                for scheme in schemes {
                    let base = Url::parse(&format!("{scheme}://{host}/")).map_err(|e| RegistryError::Ping {
                        registry: self.registry.clone(),
                        reason: e.to_string(),
                    })?;
                    let url = base.join("v2/").map_err(|e| RegistryError::Ping {
                        registry: self.registry.clone(),
                        reason: e.to_string(),
                    })?;
                    match self.http.get(url).send().await {
                        Ok(resp) => {
                            let status = resp.status();
                            let challenge = resp
                                .headers()
                                .get(WWW_AUTHENTICATE)
                                .and_then(|h| h.to_str().ok())
                                .and_then(parse_challenge);
                            if status.is_success() || status == StatusCode::UNAUTHORIZED {
                                tracing::debug!(registry = %self.registry, %scheme, ?challenge, "pinged registry");
                                *self.challenge.lock().unwrap_or_else(|p| p.into_inner()) =
                                    challenge.unwrap_or(Challenge::None);
                                return Ok(base);
                            }
                            last = format!("{scheme}: unexpected HTTP status {}", status.as_u16());
                        }
                        Err(e) => last = super::error::causes(&super::error::redact_error(e)),
                    }
                }
                Err(RegistryError::Ping {
                    registry: self.registry.clone(),
                    reason: last,
                })
            })
            .await
    }

    fn credentials(&self, repo: &str) -> Result<Credentials, RegistryError> {
        let mut cache = self.creds.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = cache.get(repo) {
            return Ok(c.clone());
        }
        let c = self
            .opts
            .auth
            .resolve(&self.registry, repo)
            .map_err(|e| RegistryError::Protocol {
                op: format!("credentials for {}/{repo}", self.registry),
                reason: e.to_string(),
            })?;
        cache.insert(repo.to_string(), c.clone());
        Ok(c)
    }

    /// The Authorization header the registry's challenge calls for (none
    /// when it wants none), fetching a bearer token if needed.
    async fn authorization(
        &self,
        op: &str,
        repo: &str,
        scopes: &BTreeSet<String>,
    ) -> Result<Option<Authorization>, RegistryError> {
        self.ping().await?;
        let challenge = self.challenge.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let creds = self.credentials(repo)?;
        Ok(match (&challenge, &creds) {
            (_, Credentials::Bearer(t)) => Some(Authorization::Bearer(t.clone())),
            (Challenge::None, _) => None,
            (Challenge::Basic, Credentials::Basic { username, password }) => {
                Some(Authorization::Basic(username.clone(), password.clone()))
            }
            (Challenge::Basic, _) => None,
            (Challenge::Bearer { realm, service, .. }, _) => {
                let key = scope_key(scopes);
                let cached = self.tokens.lock().unwrap_or_else(|p| p.into_inner()).get(&key);
                let token = match cached {
                    Some(t) => t,
                    None => {
                        let (t, life) = fetch_token(&self.http, op, realm, service.as_deref(), scopes, &creds).await?;
                        self.tokens
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .put(key, t.clone(), life);
                        t
                    }
                };
                Some(Authorization::Bearer(token))
            }
        })
    }

    /// [`RegistryClient::authorization`], retrying a token endpoint that
    /// fails transiently as any other request is retried. `attempt` counts
    /// the attempts used so far, shared with the caller's own retries.
    async fn authorization_retried(
        &self,
        op: &str,
        repo: &str,
        scopes: &BTreeSet<String>,
        attempt: &mut u32,
    ) -> Result<Option<Authorization>, RegistryError> {
        loop {
            match self.authorization(op, repo, scopes).await {
                Err(e) if e.is_transient() && *attempt < self.opts.retry.times => {
                    let delay = self.opts.retry.delay_for(*attempt);
                    tracing::warn!(op, attempt = *attempt + 1, ?delay, error = %e, "token request failed, retrying");
                    tokio::time::sleep(delay).await;
                    *attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn url(&self, base: &Url, path: &str) -> Result<Url, RegistryError> {
        base.join(path).map_err(|e| RegistryError::Protocol {
            op: path.to_string(),
            reason: e.to_string(),
        })
    }

    /// Send a replayable request: authorised for `scopes` on `repo`, retried on
    /// transient failures, re-authorised once on 401. The caller checks the status.
    pub(super) async fn send(
        &self,
        op: &str,
        repo: &str,
        scopes: BTreeSet<String>,
        make: impl Fn(&reqwest::Client, &Url) -> Result<RequestBuilder, RegistryError>,
    ) -> Result<Response, RegistryError> {
        let mut scopes = scopes;
        let mut reauthed = false;
        let mut attempt = 0;
        loop {
            let base = self.ping().await?;
            let auth = self.authorization_retried(op, repo, &scopes, &mut attempt).await?;
            let rb = Authorization::apply(auth, make(&self.http, base)?);
            let result = rb.send().await;
            let retryable = match &result {
                Err(e) => super::error::transient_http(e),
                Ok(r) => {
                    let s = r.status().as_u16();
                    s >= 500 || s == 429 || s == 408
                }
            };
            if retryable && attempt < self.opts.retry.times {
                let delay = self.opts.retry.delay_for(attempt);
                tracing::warn!(
                    op,
                    attempt = attempt + 1,
                    ?delay,
                    "transient registry failure, retrying"
                );
                tokio::time::sleep(delay).await;
                attempt += 1;
                continue;
            }
            let resp = result.map_err(net(op))?;
            if resp.status() == StatusCode::UNAUTHORIZED && !reauthed {
                // A bearer token may have expired or lack a scope the new
                // challenge names, or the registry wants auth only for some
                // repositories: adopt the challenge and try once more.
                let fresh = resp
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|h| h.to_str().ok())
                    .and_then(parse_challenge);
                if let Some(Challenge::Bearer { scope: Some(extra), .. }) = &fresh {
                    for s in extra.split(' ') {
                        scopes.insert(s.to_string());
                    }
                }
                self.tokens
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .invalidate(&scope_key(&scopes));
                let mut current = self.challenge.lock().unwrap_or_else(|p| p.into_inner());
                let changed = match fresh {
                    Some(c) if std::mem::discriminant(&c) != std::mem::discriminant(&*current) => {
                        *current = c;
                        true
                    }
                    _ => false,
                };
                let bearer = matches!(*current, Challenge::Bearer { .. });
                drop(current);
                if changed || bearer {
                    reauthed = true;
                    continue;
                }
            }
            return Ok(resp);
        }
    }

    /// Authorise and send a request that cannot be replayed (a streaming upload).
    pub(super) async fn send_once(
        &self,
        op: &str,
        repo: &str,
        scopes: BTreeSet<String>,
        rb: impl FnOnce(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let auth = self.authorization_retried(op, repo, &scopes, &mut 0).await?;
        Authorization::apply(auth, rb(&self.http)).send().await.map_err(net(op))
    }

    pub(super) async fn base(&self) -> Result<Url, RegistryError> {
        Ok(self.ping().await?.clone())
    }

    fn scopes(repo: &str, push: bool) -> BTreeSet<String> {
        BTreeSet::from([repo_scope(repo, push)])
    }

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
            && !d.matches(&body)
        {
            let mut h = crate::digest::Hasher::new(d.algorithm());
            h.update(&body);
            return Err(RegistryError::DigestMismatch {
                op,
                expected: d,
                actual: h.finish(),
            });
        }
        let mime = if mime.is_empty() || mime == "application/json" || mime == "text/plain" {
            guess_mime_type(&body)
        } else {
            mime
        };
        Ok((body, mime))
    }

    /// HEAD a manifest; `None` when it does not exist.
    pub async fn head_manifest(&self, repo: &str, reference: &str) -> Result<Option<ManifestHead>, RegistryError> {
        let op = format!("checking manifest {reference} in {}/{repo}", self.registry);
        let path = format!("v2/{repo}/manifests/{reference}");
        let resp = self
            .send(&op, repo, Self::scopes(repo, false), |c, base| {
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
                break;
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
        Ok(())
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

    /// HEAD a blob; its size when present.
    pub async fn head_blob(&self, repo: &str, digest: &Digest) -> Result<Option<u64>, RegistryError> {
        let op = format!("checking blob {digest} in {}/{repo}", self.registry);
        let path = format!("v2/{repo}/blobs/{digest}");
        let resp = self
            .send(&op, repo, Self::scopes(repo, false), |c, base| {
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
        let mut url = upload;
        url.query_pairs_mut().append_pair("digest", &digest.to_string());
        let resp = self
            .send_once(&op, repo, Self::scopes(repo, true), |c| {
                c.request(Method::PUT, url)
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, size)
                    .body(body)
            })
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(error_from(&op, resp).await);
        }
        Ok(())
    }

    /// Check that the configured credentials are accepted (`login`).
    pub async fn check_auth(&self) -> Result<(), RegistryError> {
        let op = format!("authenticating to {}", self.registry);
        let resp = self
            .send(&op, "", BTreeSet::new(), |c, base| Ok(c.get(self.url(base, "v2/")?)))
            .await?;
        if resp.status().is_success() {
            return Ok(());
        }
        Err(error_from(&op, resp).await)
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
        let upload = self.start_upload(repo).await?;
        let op = format!("uploading a blob to {}/{repo}", self.registry);
        let resp = self
            .send_once(&op, repo, Self::scopes(repo, true), |c| {
                c.request(Method::PATCH, upload)
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .body(body)
            })
            .await?;
        if resp.status() != StatusCode::ACCEPTED && resp.status() != StatusCode::NO_CONTENT {
            return Err(error_from(&op, resp).await);
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

    /// All tags of `repo`, following `Link` pagination.
    pub async fn list_tags(&self, repo: &str) -> Result<Vec<String>, RegistryError> {
        self.list_tags_paged(repo, None).await
    }

    /// All tags of `repo`, asking for pages of `page_size` (the registry's
    /// default when `None`) and following `Link` headers.
    pub async fn list_tags_paged(&self, repo: &str, page_size: Option<usize>) -> Result<Vec<String>, RegistryError> {
        let op = format!("listing tags of {}/{repo}", self.registry);
        let first = match page_size {
            Some(n) => format!("v2/{repo}/tags/list?n={n}"),
            None => format!("v2/{repo}/tags/list"),
        };
        self.paged_list(&op, repo, Self::scopes(repo, false), first, "tags")
            .await
    }

    /// Repository names from the registry's `_catalog` (where it offers one).
    pub async fn list_repositories(&self) -> Result<Vec<String>, RegistryError> {
        let op = format!("listing repositories of {}", self.registry);
        let scopes = BTreeSet::from(["registry:catalog:*".to_string()]);
        self.paged_list(&op, "", scopes, "v2/_catalog?n=1000".into(), "repositories")
            .await
    }

    /// GET `first` and every `Link: rel="next"` page after it; collect the
    /// string array `field` of each JSON page.
    async fn paged_list(
        &self,
        op: &str,
        repo: &str,
        scopes: BTreeSet<String>,
        first: String,
        field: &str,
    ) -> Result<Vec<String>, RegistryError> {
        let mut items = vec![];
        let mut next = Some(first);
        let mut pages = 0;
        while let Some(path) = next.take() {
            pages += 1;
            if pages > 10_000 {
                return Err(RegistryError::Protocol {
                    op: op.to_string(),
                    reason: "too many pages".into(),
                });
            }
            let resp = self
                .send(op, repo, scopes.clone(), |c, base| Ok(c.get(self.url(base, &path)?)))
                .await?;
            if !resp.status().is_success() {
                return Err(error_from(op, resp).await);
            }
            next = resp
                .headers()
                .get(LINK)
                .and_then(|h| h.to_str().ok())
                .and_then(parse_next_link)
                .map(|l| l.trim_start_matches('/').to_string());
            let body = read_limited(op, resp, 64 << 20).await?;
            let page: serde_json::Value = serde_json::from_slice(&body).map_err(|e| RegistryError::Protocol {
                op: op.to_string(),
                reason: format!("bad list: {e}"),
            })?;
            match page.get(field) {
                Some(serde_json::Value::Array(a)) => {
                    items.extend(a.iter().filter_map(|v| v.as_str().map(str::to_string)));
                }
                None | Some(serde_json::Value::Null) => {}
                Some(_) => {
                    return Err(RegistryError::Protocol {
                        op: op.to_string(),
                        reason: format!("{field} is not a list"),
                    });
                }
            }
        }
        Ok(items)
    }
}

/// The `rel="next"` target of a `Link` header.
fn parse_next_link(h: &str) -> Option<String> {
    h.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"" || p.trim() == "rel=next")
            .then(|| target.trim().trim_start_matches('<').trim_end_matches('>').to_string())
    })
}

/// Up to `limit` bytes of a body; what follows, or a broken connection, ends it.
pub(super) async fn read_at_most(mut resp: Response, limit: usize) -> Bytes {
    let mut buf = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        let room = limit - buf.len();
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if buf.len() >= limit {
            break;
        }
    }
    buf.into()
}

pub(super) async fn read_limited(op: &str, mut resp: Response, limit: usize) -> Result<Bytes, RegistryError> {
    let mut buf = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(net(op))? {
        if buf.len() + chunk.len() > limit {
            return Err(RegistryError::Protocol {
                op: op.to_string(),
                reason: format!("response larger than {limit} bytes"),
            });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_link_next() {
        assert_eq!(
            parse_next_link(r#"</v2/a/tags/list?n=2&last=b>; rel="next""#).as_deref(),
            Some("/v2/a/tags/list?n=2&last=b")
        );
        assert_eq!(parse_next_link(r#"<x>; rel="prev""#), None);
    }

    #[test]
    fn retry_delays() {
        let r = RetryOptions { times: 3, delay: None };
        assert_eq!(r.delay_for(0), Duration::from_secs(1));
        assert_eq!(r.delay_for(2), Duration::from_secs(4));
        let r = RetryOptions {
            times: 3,
            delay: Some(Duration::from_millis(5)),
        };
        assert_eq!(r.delay_for(9), Duration::from_millis(5));
    }
}
