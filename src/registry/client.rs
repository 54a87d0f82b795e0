//! Requests against one registry: ping, authorisation, retries, and the
//! manifest / blob / tag endpoints.

use super::response::{error_from, net};
use super::tls::{TlsOptions, build_client};
use super::token_auth::{Challenge, TokenCache, fetch_token, parse_challenge, repo_scope, scope_key};
use super::{RegistryError, endpoint_host};
use crate::auth::{AuthOptions, Credentials};
use crate::digest::Digest;
use reqwest::header::WWW_AUTHENTICATE;
use reqwest::{RequestBuilder, Response, StatusCode, Url};
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
    /// The process's per-host request budgets, if it keeps any.
    pub budgets: Option<Arc<super::budget::Budgets>>,
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
    pub(super) registry: String,
    http: reqwest::Client,
    opts: RegistryOptions,
    ping: tokio::sync::OnceCell<Url>,
    /// This host's request budget, shared with every other client of it.
    budget: Option<Arc<super::budget::HostBudget>>,
    /// The ping announced the signature API extension (`X-Registry-Supports-Signatures: 1`).
    supports_signatures: std::sync::atomic::AtomicBool,
    /// The auth challenge: from the ping, updated when a later 401 names another.
    challenge: Mutex<Challenge>,
    tokens: Mutex<TokenCache>,
    /// One fetch at a time per scope set: concurrent first requests (a
    /// copy's blobs at once) wait for one token instead of each asking.
    token_fetches: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    creds: Mutex<HashMap<String, Credentials>>,
    /// One lock per (repository, blob) being made present, see [`RegistryClient::blob_lock`].
    blob_locks: Mutex<HashMap<(String, Digest), BlobLock>>,
    /// Blobs this client made or saw present, see [`RegistryClient::knows_blob`].
    known_blobs: Mutex<std::collections::HashSet<(String, Digest)>>,
}

/// Past this many remembered blobs the memory starts over (a sync of a
/// huge estate stays bounded; forgetting only costs a HEAD).
const KNOWN_BLOBS_LIMIT: usize = 100_000;

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

impl RegistryClient {
    /// A client for `registry` (as written in references, e.g. `127.0.0.1:5000`).
    pub fn new(registry: &str, opts: RegistryOptions) -> Result<Self, RegistryError> {
        let http = build_client(endpoint_host(registry), &opts.tls, &super::user_agent())?;
        let budget = opts.budgets.as_ref().map(|b| b.host(registry));
        Ok(RegistryClient {
            registry: registry.to_string(),
            http,
            opts,
            ping: tokio::sync::OnceCell::new(),
            budget,
            supports_signatures: std::sync::atomic::AtomicBool::new(false),
            challenge: Mutex::new(Challenge::None),
            tokens: Mutex::new(TokenCache::default()),
            token_fetches: Mutex::new(HashMap::new()),
            creds: Mutex::new(HashMap::new()),
            blob_locks: Mutex::new(HashMap::new()),
            known_blobs: Mutex::new(std::collections::HashSet::new()),
        })
    }

    /// Whether `digest` is known to be in `repo`: this client uploaded or
    /// mounted it, or a HEAD found it, earlier in this operation (the other
    /// images of a sync share a base layer). As containers/image's blob info
    /// cache, this saves the HEAD; if the registry lost the blob meanwhile,
    /// the manifest PUT fails with its BLOB_UNKNOWN, never silently.
    pub fn knows_blob(&self, repo: &str, digest: &Digest) -> bool {
        self.known_blobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&(repo.to_string(), digest.clone()))
    }

    /// Remember that `digest` is in `repo` (see [`RegistryClient::knows_blob`]).
    pub fn remember_blob(&self, repo: &str, digest: &Digest) {
        let mut known = self.known_blobs.lock().unwrap_or_else(|p| p.into_inner());
        if known.len() >= KNOWN_BLOBS_LIMIT {
            known.clear();
        }
        known.insert((repo.to_string(), digest.clone()));
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

    /// A permit for one blob transfer under the host's budget (none: unlimited).
    pub(super) async fn transfer_permit(
        &self,
        kind: super::budget::Transfer,
    ) -> Option<tokio::sync::OwnedSemaphorePermit> {
        match &self.budget {
            Some(b) => b.transfer(kind).await,
            None => None,
        }
    }

    /// Wait for the host's request budget.
    async fn budgeted(&self) {
        if let Some(b) = &self.budget {
            b.request().await;
        }
    }

    /// Wait for the request budget of a token realm's host (the registry's
    /// own when the registry issues its tokens itself).
    async fn realm_budgeted(&self, realm: &str) {
        let Some(budgets) = &self.opts.budgets else { return };
        let Ok(url) = Url::parse(realm) else { return };
        let Some(host) = url.host_str() else { return };
        let host = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        budgets.host(&host).request().await;
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
    /// HTTPS is preferred; where plain HTTP is allowed (`--tls-verify=false`)
    /// both are tried at once, and HTTP is used only when HTTPS fails, as
    /// containers/image decides it (trying them one after the other cost a
    /// TLS attempt's round trips on every plain-HTTP registry; the ping
    /// carries no credentials, so the plain attempt reveals nothing).
    async fn ping(&self) -> Result<&Url, RegistryError> {
        self.ping
            .get_or_try_init(|| async {
                let https = self.ping_scheme("https");
                let (first, plain) = if self.opts.tls.verifies() {
                    (https.await, None)
                } else {
                    let (a, b) = futures::join!(https, self.ping_scheme("http"));
                    (a, Some(b))
                };
                // When both fail, the plain attempt's failure is the one
                // reported, as containers/image reports its last attempt.
                let (base, challenge, extension) = match (first, plain) {
                    (Ok(found), _) | (Err(_), Some(Ok(found))) => found,
                    (Err(e), None) | (Err(_), Some(Err(e))) => return Err(self.ping_error(e)),
                };
                tracing::debug!(registry = %self.registry, scheme = base.scheme(), ?challenge, "pinged registry");
                *self.challenge.lock().unwrap_or_else(|p| p.into_inner()) = challenge.unwrap_or(Challenge::None);
                self.supports_signatures
                    .store(extension, std::sync::atomic::Ordering::Relaxed);
                Ok(base)
            })
            .await
    }

    fn ping_error(&self, reason: String) -> RegistryError {
        RegistryError::Ping {
            registry: self.registry.clone(),
            reason,
        }
    }

    /// Whether the registry keeps simple signatures itself, through the
    /// signature API extension (then no lookaside is used, as upstream).
    pub async fn supports_signatures(&self) -> Result<bool, RegistryError> {
        self.ping().await?;
        Ok(self.supports_signatures.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// `GET /v2/` over `scheme`: the base URL, challenge and signature
    /// extension of a registry that answers 2xx or 401, else why not.
    async fn ping_scheme(&self, scheme: &str) -> Result<(Url, Option<Challenge>, bool), String> {
        let host = endpoint_host(&self.registry);
        let base = Url::parse(&format!("{scheme}://{host}/")).map_err(|e| e.to_string())?;
        let url = base.join("v2/").map_err(|e| e.to_string())?;
        // The ping is a request to the host like any other: it waits its turn.
        self.budgeted().await;
        match self.http.get(url).send().await {
            Ok(resp) => {
                let status = resp.status();
                let challenge = resp
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|h| h.to_str().ok())
                    .and_then(parse_challenge);
                let extension = resp
                    .headers()
                    .get("x-registry-supports-signatures")
                    .is_some_and(|v| v.as_bytes() == b"1");
                if status.is_success() || status == StatusCode::UNAUTHORIZED {
                    Ok((base, challenge, extension))
                } else {
                    Err(format!("{scheme}: unexpected HTTP status {}", status.as_u16()))
                }
            }
            Err(e) => Err(super::error::causes(&super::error::redact_error(e))),
        }
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
                let cached = || self.tokens.lock().unwrap_or_else(|p| p.into_inner()).get(&key);
                if let Some(t) = cached() {
                    return Ok(Some(Authorization::Bearer(t)));
                }
                let gate = self
                    .token_fetches
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(key.clone())
                    .or_default()
                    .clone();
                let _fetching = gate.lock().await;
                // Fetched by whoever held the gate before, or fetched now.
                let token = match cached() {
                    Some(t) => t,
                    None => {
                        self.realm_budgeted(realm).await;
                        let (t, life) = fetch_token(&self.http, op, realm, service.as_deref(), scopes, &creds).await?;
                        self.tokens
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .put(key.clone(), t.clone(), life);
                        t
                    }
                };
                self.token_fetches
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&key);
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

    pub(super) fn url(&self, base: &Url, path: &str) -> Result<Url, RegistryError> {
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
            self.budgeted().await;
            let result = rb.send().await;
            let retryable = match &result {
                Err(e) => super::error::transient_http(e),
                Ok(r) => {
                    let s = r.status().as_u16();
                    s >= 500 || s == 429 || s == 408
                }
            };
            // A 429 slows the whole host down for its Retry-After (or the
            // backoff), whether or not this request is tried again.
            let asked = match &result {
                Ok(r) if r.status() == StatusCode::TOO_MANY_REQUESTS => {
                    let asked = super::budget::retry_after(r.headers());
                    if let Some(b) = &self.budget {
                        b.pause(asked.unwrap_or_else(|| self.opts.retry.delay_for(attempt)));
                    }
                    asked
                }
                _ => None,
            };
            if retryable && attempt < self.opts.retry.times {
                let delay = self.opts.retry.delay_for(attempt).max(asked.unwrap_or_default());
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
        self.budgeted().await;
        Authorization::apply(auth, rb(&self.http)).send().await.map_err(net(op))
    }

    pub(super) async fn base(&self) -> Result<Url, RegistryError> {
        Ok(self.ping().await?.clone())
    }

    pub(super) fn scopes(repo: &str, push: bool) -> BTreeSet<String> {
        BTreeSet::from([repo_scope(repo, push)])
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
