//! The operator's controllers, wired up: ImageCopy, ImageSync and
//! RegistryCredential on `kube::runtime::Controller` — level-triggered, one
//! reconcile per object at a time, a global concurrency limit, Secret and
//! credential changes requeueing the resources of their namespace, failures
//! backing off exponentially — plus leader election and shutdown. Each
//! kind's reconcile lives beside its type (`*_controller.rs`).

use super::credentials::{self, Rendered};
use super::image_copy::ImageCopy;
use super::image_copy_controller::reconcile_copy;
use super::image_sync::ImageSync;
use super::image_sync_controller::reconcile_sync;
use super::registry_credential::RegistryCredential;
use super::registry_credential_controller::reconcile_credential;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::ListParams;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt as _, watcher};

/// A Secret's metadata: Secrets are watched without their data.
type SecretMeta = kube::core::PartialObjectMeta<Secret>;

/// Changes of the Secrets in scope, metadata only.
fn secret_changes(
    client: &Client,
    ns: Option<&str>,
) -> impl futures::Stream<Item = Result<SecretMeta, watcher::Error>> + Send + 'static {
    watcher(scoped::<SecretMeta>(client, ns), watcher::Config::default())
        .default_backoff()
        .touched_objects()
}
use kube::{Api, Client, Resource, ResourceExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Why a reconcile failed (shown in logs; status carries the user-facing reason).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Render(String),
}

/// Where the leader-election Lease lives.
#[derive(Debug, Clone)]
pub struct LeaderElection {
    pub namespace: String,
    pub lease: String,
}

/// How the operator runs.
#[derive(Clone)]
pub struct OperatorOptions {
    /// Reconciles (copies) running at once across all resources.
    pub concurrency: u16,
    /// This replica's identity (Events, the Lease holder).
    pub instance: String,
    /// Run the controllers only while holding this Lease.
    pub leader_election: Option<LeaderElection>,
    /// Where metrics and readiness are recorded.
    pub metrics: Arc<super::metrics::Metrics>,
    /// Write a running copy's progress to status at most this often.
    pub progress_interval: Duration,
    /// Watch only these namespaces (all when empty).
    pub namespaces: Vec<String>,
    /// Which local transports ImageCopy may use (registries only by default).
    pub local: super::local_access::LocalAccess,
}

impl Default for OperatorOptions {
    fn default() -> Self {
        OperatorOptions {
            concurrency: 4,
            instance: std::env::var("POD_NAME").unwrap_or_else(|_| "kopeo".into()),
            leader_election: None,
            metrics: Arc::default(),
            progress_interval: Duration::from_secs(10),
            namespaces: vec![],
            local: super::local_access::LocalAccess::RegistriesOnly,
        }
    }
}

/// Shared by all reconciles.
pub struct Context {
    pub(super) client: Client,
    pub(super) metrics: Arc<super::metrics::Metrics>,
    pub(super) recorder: Recorder,
    /// Consecutive failures per object, for exponential backoff.
    pub(super) failures: Mutex<HashMap<String, Failures>>,
    /// When this process last brought each resource (by UID) up to date, at which generation.
    pub(super) verified: Mutex<HashMap<String, (Option<i64>, Instant)>>,
    pub(super) progress_interval: Duration,
    /// Copies and syncs running at once, across every controller and namespace.
    pub(super) work: tokio::sync::Semaphore,
    /// RegistryCredential caches (one per watched scope).
    pub(super) credentials: std::sync::RwLock<Vec<CredentialCache>>,
    /// Which local transports ImageCopy may use.
    pub(super) local: super::local_access::LocalAccess,
}

/// RegistryCredentials kept by a watch of their own, and whether it has
/// listed them once. (Not the controller's store: kube's store readiness
/// wakes only one waiter, and the controller itself waits on it.)
#[derive(Clone)]
pub(super) struct CredentialCache {
    store: kube::runtime::reflector::Store<RegistryCredential>,
    ready: tokio::sync::watch::Receiver<bool>,
}

pub(super) fn now() -> String {
    crate::timestamp::now_rfc3339()
}

/// Where to read a namespace's RegistryCredentials from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Read {
    /// The controllers' cache: no request per copy; may lag a moment.
    Cached,
    /// The API server: what the pull Secret is rendered from.
    Fresh,
}

/// Render every RegistryCredential of `ns` (Secrets looked up in `ns` only).
pub(super) async fn render_namespace(ctx: &Context, ns: &str, read: Read) -> Result<Rendered, Error> {
    let client = &ctx.client;
    // A credential being deleted is no longer used.
    let creds: Vec<RegistryCredential> = namespace_credentials(ctx, ns, read)
        .await?
        .into_iter()
        .filter(|c| c.metadata.deletion_timestamp.is_none())
        .collect();
    // Only the Secrets the credentials name are read: a namespace may hold
    // many, and this runs on every reconcile.
    let api = Api::<Secret>::namespaced(client.clone(), ns);
    let mut names: Vec<String> = creds.iter().flat_map(credentials::secret_names).collect();
    names.sort();
    names.dedup();
    let mut secrets = vec![];
    for name in names {
        if let Some(s) = api.get_opt(&name).await? {
            secrets.push(s);
        }
    }
    Rendered::new(&creds, |name| secrets.iter().find(|s| s.name_any() == name)).map_err(Error::Render)
}

/// The RegistryCredentials of `ns`: from the credential controllers' caches
/// (no API request per copy), or listed. A credential the cache has not
/// seen yet requeues the copies of its namespace when it arrives, as any
/// credential change does; the pull Secret, which nothing would correct
/// later, is rendered from a fresh list.
async fn namespace_credentials(ctx: &Context, ns: &str, read: Read) -> Result<Vec<RegistryCredential>, Error> {
    let caches = match read {
        Read::Cached => ctx.credentials.read().unwrap_or_else(|p| p.into_inner()).clone(),
        Read::Fresh => vec![],
    };
    let mut cached = !caches.is_empty();
    for c in &caches {
        let mut ready = c.ready.clone();
        cached &= ready.wait_for(|r| *r).await.is_ok();
    }
    if cached {
        return Ok(caches
            .iter()
            .flat_map(|c| c.store.state())
            .filter(|c| c.namespace().as_deref() == Some(ns))
            .map(|c| (*c).clone())
            .collect());
    }
    Ok(Api::<RegistryCredential>::namespaced(ctx.client.clone(), ns)
        .list(&ListParams::default())
        .await?
        .items)
}

/// Entries kept per in-memory map before it is emptied: deleted resources
/// leave entries behind, and forgetting costs only a re-check (or a reset
/// backoff) per resource.
const REMEMBERED: usize = 100_000;

/// Note that this process brought `obj` up to date at its generation (or
/// forget it, when it is not). Keyed by UID: a resource deleted and created
/// again under its name starts afresh.
pub(super) fn remember<K: Resource>(ctx: &Context, obj: &K, up_to_date: bool) {
    let mut verified = ctx.verified.lock().unwrap_or_else(|p| p.into_inner());
    if !up_to_date {
        verified.remove(&memory_key(obj));
        return;
    }
    if verified.len() >= REMEMBERED {
        verified.clear();
    }
    verified.insert(memory_key(obj), (obj.meta().generation, Instant::now()));
}

/// How long ago this process brought `obj` up to date at its current generation.
pub(super) fn remembered<K: Resource>(ctx: &Context, obj: &K) -> Option<Duration> {
    let verified = ctx.verified.lock().unwrap_or_else(|p| p.into_inner());
    let (generation, at) = verified.get(&memory_key(obj))?;
    (*generation == obj.meta().generation).then(|| at.elapsed())
}

fn memory_key<K: Resource>(obj: &K) -> String {
    obj.meta()
        .uid
        .clone()
        .unwrap_or_else(|| format!("{:?}/{}", obj.namespace(), obj.name_any()))
}

/// Publish an Event when the Ready condition changed status or reason
/// (Warning unless it became True): what `kubectl describe` shows.
pub(super) async fn announce(
    ctx: &Context,
    object: &k8s_openapi::api::core::v1::ObjectReference,
    before: &[super::condition::Condition],
    after: &[super::condition::Condition],
    action: &str,
) -> Result<(), Error> {
    let ready = |cs: &[super::condition::Condition]| cs.iter().find(|c| c.type_ == "Ready").cloned();
    let Some(now) = ready(after) else { return Ok(()) };
    if ready(before).is_some_and(|b| b.status == now.status && b.reason == now.reason) {
        return Ok(());
    }
    let ev = kube::runtime::events::Event {
        type_: if now.status == "True" {
            kube::runtime::events::EventType::Normal
        } else {
            kube::runtime::events::EventType::Warning
        },
        reason: now.reason.clone(),
        note: Some(now.message.chars().take(1000).collect()),
        action: action.into(),
        secondary: None,
    };
    ctx.recorder.publish(&ev, object).await?;
    Ok(())
}

/// Record whether `key`'s run at `generation` failed; the wait before the
/// next attempt if it did: 1 s, 2 s, 4 s, … capped at 5 minutes (never a
/// hot loop).
pub(super) fn backoff(ctx: &Context, key: &str, generation: Option<i64>, failed: bool) -> Option<Duration> {
    let mut f = ctx.failures.lock().unwrap_or_else(|p| p.into_inner());
    if !failed {
        f.remove(key);
        return None;
    }
    if f.len() >= REMEMBERED && !f.contains_key(key) {
        f.clear();
    }
    let e = f.entry(key.to_string()).or_insert(Failures {
        count: 0,
        at: Instant::now(),
        generation,
    });
    if e.generation != generation {
        e.count = 0;
    }
    e.count += 1;
    e.at = Instant::now();
    e.generation = generation;
    Some(e.delay())
}

/// How long `key` must still wait after its last failure at `generation`
/// (zero once the backoff has passed); `None` when it did not fail.
pub(super) fn failure_wait(ctx: &Context, key: &str, generation: Option<i64>) -> Option<Duration> {
    let f = ctx.failures.lock().unwrap_or_else(|p| p.into_inner());
    let e = f.get(key).filter(|e| e.generation == generation)?;
    Some(e.delay().saturating_sub(e.at.elapsed()))
}

/// Consecutive failures of one resource.
pub(super) struct Failures {
    count: u32,
    at: Instant,
    generation: Option<i64>,
}

impl Failures {
    fn delay(&self) -> Duration {
        Duration::from_secs((1u64 << self.count.saturating_sub(1).min(8)).min(300))
    }
}

fn error_policy<K>(_: Arc<K>, e: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(error = %e, "reconcile failed");
    let reason = match e {
        Error::Kube(_) => "KubernetesApi",
        Error::Render(_) => "CredentialRendering",
    };
    ctx.metrics
        .errors
        .get_or_create(&super::metrics::Reason { reason: reason.into() })
        .inc();
    Action::requeue(Duration::from_secs(5))
}

/// The RegistryCredentials that name Secret `s` (login, CA or client certificate).
fn naming(
    creds: &kube::runtime::reflector::Store<RegistryCredential>,
    s: &SecretMeta,
) -> impl Iterator<Item = Arc<RegistryCredential>> {
    let (ns, name) = (s.namespace(), s.name_any());
    creds
        .state()
        .into_iter()
        .filter(move |c| c.namespace() == ns && credentials::secret_names(c).contains(&name))
}

/// Every object of kind `K` in `ns`, as controller references.
fn all_in<K: Resource<DynamicType = ()> + Clone>(
    store: &kube::runtime::reflector::Store<K>,
    ns: Option<String>,
) -> Vec<ObjectRef<K>> {
    store
        .state()
        .iter()
        .filter(|o| o.namespace() == ns)
        .map(|o| ObjectRef::from_obj(o.as_ref()))
        .collect()
}

/// Run the controllers until the process is asked to stop; with leader
/// election, only while this replica holds the Lease (standing by otherwise).
pub async fn run(client: Client, opts: OperatorOptions) {
    run_until(client, opts, std::future::pending()).await
}

/// [`run`] until `shutdown` resolves: running copies are dropped (nothing
/// half-committed: every destination commits atomically, last) and a held
/// Lease is released; a standby replica sees that and takes it at once.
pub async fn run_until(client: Client, opts: OperatorOptions, shutdown: impl std::future::Future<Output = ()>) {
    opts.metrics.ready.store(true, std::sync::atomic::Ordering::SeqCst);
    let Some(le) = opts.leader_election.clone() else {
        tokio::select! {
            _ = controllers(client, opts) => {}
            _ = shutdown => tracing::info!("shutting down"),
        }
        return;
    };
    let elector = super::leader::Elector::new(client.clone(), &le.namespace, &le.lease, &opts.instance);
    let (leading, rx) = tokio::sync::watch::channel(false);
    tokio::select! {
        _ = elector.campaign(leading) => {}
        _ = elector.watch_releases() => {}
        _ = lead(client.clone(), &opts, rx) => {}
        _ = shutdown => tracing::info!(instance = %opts.instance, "shutting down"),
    }
    // The controllers are dropped: no copy runs any more.
    opts.metrics.leader.set(0);
    match tokio::time::timeout(Duration::from_secs(5), elector.release()).await {
        Ok(Ok(true)) => tracing::info!(instance = %opts.instance, "released the lease"),
        Ok(Ok(false)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "releasing the lease"),
        Err(_) => tracing::warn!("releasing the lease timed out"),
    }
}

/// Run the controllers whenever `leading` says this replica holds the Lease.
async fn lead(client: Client, opts: &OperatorOptions, mut leading: tokio::sync::watch::Receiver<bool>) {
    loop {
        while !*leading.borrow_and_update() {
            if leading.changed().await.is_err() {
                return;
            }
        }
        tracing::info!(instance = %opts.instance, "leading");
        opts.metrics.leader.set(1);
        let lost = async {
            loop {
                if leading.changed().await.is_err() || !*leading.borrow() {
                    break;
                }
            }
        };
        // Losing the Lease drops the controllers: running copies stop, and
        // destinations only ever show committed images.
        tokio::select! {
            _ = controllers(client.clone(), opts.clone()) => {}
            _ = lost => tracing::warn!(instance = %opts.instance, "lost the lease, standing by"),
        }
        opts.metrics.leader.set(0);
    }
}

async fn controllers(client: Client, opts: OperatorOptions) {
    let reporter = Reporter {
        controller: "kopeo".into(),
        instance: Some(opts.instance.clone()),
    };
    let ctx = Arc::new(Context {
        client: client.clone(),
        metrics: opts.metrics.clone(),
        recorder: Recorder::new(client.clone(), reporter),
        failures: Mutex::new(HashMap::new()),
        verified: Mutex::new(HashMap::new()),
        progress_interval: opts.progress_interval,
        work: tokio::sync::Semaphore::new(usize::from(opts.concurrency.max(1))),
        credentials: Default::default(),
        local: opts.local.clone(),
    });
    // With watched namespaces, every watch is namespaced: a Role per
    // namespace is all the RBAC the operator needs.
    if opts.namespaces.is_empty() {
        controllers_in(client, ctx, None, opts.concurrency).await;
    } else {
        futures::future::join_all(
            opts.namespaces
                .iter()
                .map(|ns| controllers_in(client.clone(), ctx.clone(), Some(ns.clone()), opts.concurrency)),
        )
        .await;
    }
}

/// An Api over the whole cluster, or one namespace.
fn scoped<K>(client: &Client, ns: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as Resource>::DynamicType: Default,
{
    match ns {
        Some(n) => Api::namespaced(client.clone(), n),
        None => Api::all(client.clone()),
    }
}

/// The three controllers over the whole cluster or one namespace.
async fn controllers_in(client: Client, ctx: Arc<Context>, ns: Option<String>, concurrency: u16) {
    let ns = ns.as_deref();
    let config = ControllerConfig::default().concurrency(concurrency);
    let (store, writer) = kube::runtime::reflector::store();
    let (listed, ready) = tokio::sync::watch::channel(false);
    ctx.credentials
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .push(CredentialCache { store, ready });
    let cache = {
        watcher(scoped::<RegistryCredential>(&client, ns), watcher::Config::default())
            .default_backoff()
            .reflect(writer)
            .for_each(move |e| {
                if let Ok(watcher::Event::InitDone) = e {
                    let _ = listed.send(true);
                }
                futures::future::ready(())
            })
    };
    // The credentials' store decides which Secrets matter: only those a
    // RegistryCredential names (any labels: Helm or external-secrets may
    // manage them) requeue anything.
    let creds = Controller::new(scoped::<RegistryCredential>(&client, ns), watcher::Config::default())
        .with_config(config.clone());
    let cstore = creds.store();
    let (c1, c2, c3) = (cstore.clone(), cstore.clone(), cstore);
    let creds = creds
        .watches_stream(secret_changes(&client, ns), move |s: SecretMeta| {
            naming(&c1, &s)
                .map(|c| ObjectRef::from_obj(c.as_ref()))
                .collect::<Vec<_>>()
        })
        // A credential's change or deletion re-renders its namespace's pull
        // Secret through the others (a deleted one has no reconcile of its own).
        .watches(
            scoped::<RegistryCredential>(&client, ns),
            watcher::Config::default(),
            move |c: RegistryCredential| all_in(&c3, c.namespace()),
        )
        .run(reconcile_credential, error_policy, ctx.clone())
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "registrycredential controller");
            }
        });

    let copies =
        Controller::new(scoped::<ImageCopy>(&client, ns), watcher::Config::default()).with_config(config.clone());
    let store = copies.store();
    let (s1, s2) = (store.clone(), store);
    let copies = copies
        .watches_stream(secret_changes(&client, ns), move |s: SecretMeta| {
            match naming(&c2, &s).next() {
                Some(_) => all_in(&s1, s.namespace()),
                None => vec![],
            }
        })
        .watches(
            scoped::<RegistryCredential>(&client, ns),
            watcher::Config::default(),
            move |c: RegistryCredential| all_in(&s2, c.namespace()),
        )
        .run(reconcile_copy, error_policy, ctx.clone())
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "imagecopy controller");
            }
        });

    let syncs = Controller::new(scoped::<ImageSync>(&client, ns), watcher::Config::default())
        .with_config(config)
        .run(reconcile_sync, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "imagesync controller");
            }
        });
    futures::future::join4(copies, creds, syncs, cache).await;
}
