//! The controllers: ImageCopy and RegistryCredential reconciled with
//! `kube::runtime::Controller` — level-triggered, one reconcile per object at
//! a time, a global concurrency limit, Secret and credential changes
//! requeueing the resources of their namespace, failures backing off
//! exponentially, and status written only when it changed.

use super::condition::{Condition, set};
use super::credentials::{self, Rendered};
use super::image_copy::ImageCopy;
use super::image_copy_reconcile::{CopyEnv, copying, reconcile};
use super::image_sync::ImageSync;
use super::progress::{CopyProgress, Tally};
use super::registry_credential::RegistryCredential;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
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
        }
    }
}

/// Shared by all reconciles.
pub struct Context {
    client: Client,
    metrics: Arc<super::metrics::Metrics>,
    recorder: Recorder,
    /// Consecutive failures per object, for exponential backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// When each ImageCopy was last found up to date, and at which generation.
    verified: Mutex<HashMap<String, (Option<i64>, Instant)>>,
    progress_interval: Duration,
    /// Copies and syncs running at once, across every controller and namespace.
    work: tokio::sync::Semaphore,
}

fn now() -> String {
    crate::timestamp::now_rfc3339()
}

/// Render every RegistryCredential of `ns` (Secrets looked up in `ns` only).
pub async fn render_namespace(client: &Client, ns: &str) -> Result<Rendered, Error> {
    let creds = Api::<RegistryCredential>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await?
        .items;
    // Only the Secrets the credentials name are read: a namespace may hold
    // many, and this runs on every reconcile.
    let api = Api::<Secret>::namespaced(client.clone(), ns);
    let mut secrets = vec![];
    for name in creds
        .iter()
        .filter_map(|c| c.spec.secret_ref.as_ref())
        .map(|r| r.name.clone())
    {
        if let Some(s) = api.get_opt(&name).await? {
            secrets.push(s);
        }
    }
    Rendered::new(&creds, |name| secrets.iter().find(|s| s.name_any() == name)).map_err(Error::Render)
}

fn backoff(ctx: &Context, key: &str, failed: bool) -> Option<Duration> {
    let mut f = ctx.failures.lock().unwrap_or_else(|p| p.into_inner());
    if !failed {
        f.remove(key);
        return None;
    }
    let n = f.entry(key.to_string()).or_insert(0);
    *n += 1;
    // 1 s, 2 s, 4 s, … capped at 5 minutes: never a hot loop.
    Some(Duration::from_secs((1u64 << (*n - 1).min(8)).min(300)))
}

/// Resolves when `ic` is deleted or its spec changes (polled: cheap, and
/// independent of the controller's own watch).
async fn superseded(client: &Client, ic: &ImageCopy) -> &'static str {
    let api: Api<ImageCopy> = Api::namespaced(client.clone(), &ic.namespace().unwrap_or_else(|| "default".into()));
    let name = ic.name_any();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        match api.get_opt(&name).await {
            Ok(None) => return "deleted",
            Ok(Some(o)) if o.meta().deletion_timestamp.is_some() => return "deleted",
            Ok(Some(o)) if o.meta().generation != ic.meta().generation => return "spec changed",
            _ => {}
        }
    }
}

/// Write a running copy's progress to status: first after a short grace
/// (copies faster than that never show it), then at most every `every` and
/// only when it moved. Returns when `done` fires, never in the middle of a
/// write (one landing after the final status would undo it).
async fn report_progress(
    api: Api<ImageCopy>,
    ic: &ImageCopy,
    tally: Arc<Tally>,
    every: Duration,
    done: &tokio::sync::Notify,
) {
    let name = ic.name_any();
    let mut last: Option<CopyProgress> = None;
    loop {
        let wait = if last.is_none() {
            every.min(Duration::from_secs(1))
        } else {
            every
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = done.notified() => return,
        }
        let Some(p) = tally.snapshot() else { continue };
        if last.as_ref() == Some(&p) {
            continue;
        }
        let patch = if last.is_none() {
            // The first write also says that a copy runs (kstatus Progressing).
            json!({"status": copying(ic, &now(), p.clone())})
        } else {
            json!({"status": {"progress": p}})
        };
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => last = Some(p),
            Err(e) => tracing::debug!(imagecopy = %name, error = %e, "writing progress"),
        }
    }
}

/// A JSON merge patch taking status `old` to `new`: fields `new` drops are
/// removed (a merge patch keeps what it does not mention), and `clear` too.
fn status_patch<T: serde::Serialize>(old: Option<&T>, new: &T, clear: &[&str]) -> Result<serde_json::Value, Error> {
    let to_value = |v| serde_json::to_value(v).map_err(|e: serde_json::Error| Error::Render(e.to_string()));
    let mut patch = to_value(new)?;
    let old = match old {
        Some(o) => to_value(o)?,
        None => serde_json::Value::Null,
    };
    let dropped = old.as_object().into_iter().flat_map(|o| o.keys().map(String::as_str));
    if let Some(p) = patch.as_object_mut() {
        for k in dropped.chain(clear.iter().copied()) {
            if !p.contains_key(k) {
                p.insert(k.to_string(), serde_json::Value::Null);
            }
        }
    }
    Ok(json!({ "status": patch }))
}

async fn reconcile_copy(ic: Arc<ImageCopy>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = ic.namespace().unwrap_or_else(|| "default".into());
    let name = ic.name_any();
    let key = format!("ImageCopy/{ns}/{name}");
    let refresh = ic
        .spec
        .refresh_interval
        .as_deref()
        .and_then(|r| crate::duration::parse_duration(r).ok());
    if let Some(action) = still_verified(&ctx, &key, &ic, refresh) {
        return Ok(action);
    }
    // The semaphore is never closed; were it, trying later is right.
    let Ok(_permit) = ctx.work.acquire().await else {
        return Ok(Action::requeue(Duration::from_secs(5)));
    };
    let rendered = render_namespace(&ctx.client, &ns).await?;
    let env = CopyEnv {
        src: rendered.side(&ic.spec.source),
        dest: rendered.side(&ic.spec.destination),
    };
    ctx.metrics.in_flight.inc();
    let started = std::time::Instant::now();
    // A spec change or a deletion cancels the running copy: dropping it
    // leaves nothing committed (every destination commits atomically), and
    // the controller runs again for the new generation.
    let at = now();
    let tally = Arc::new(Tally::default());
    let api: Api<ImageCopy> = Api::namespaced(ctx.client.clone(), &ns);
    let done = tokio::sync::Notify::new();
    let work = async {
        let copy = async {
            let s = reconcile(&ic, &env, &at, Some(tally.clone())).await;
            // `notify_one` keeps a permit should the writer be mid-write.
            done.notify_one();
            s
        };
        let progress = report_progress(api.clone(), &ic, tally.clone(), ctx.progress_interval, &done);
        tokio::join!(copy, progress).0
    };
    let outcome = tokio::select! {
        s = work => Some(s),
        why = superseded(&ctx.client, &ic) => {
            tracing::info!(imagecopy = %name, why, "copy cancelled");
            None
        }
    };
    ctx.metrics.in_flight.dec();
    let Some(status) = outcome else {
        ctx.metrics
            .record("ImageCopy", "cancelled", started.elapsed().as_secs_f64(), 0);
        return Ok(Action::await_change());
    };
    let previous_copy = ic.status.as_ref().and_then(|s| s.last_copy_time.clone());
    if status.last_copy_time != previous_copy {
        ctx.metrics.record(
            "ImageCopy",
            "copied",
            started.elapsed().as_secs_f64(),
            status.bytes_copied,
        );
    } else if let Some(r) = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "False")
    {
        ctx.metrics
            .record("ImageCopy", &r.reason, started.elapsed().as_secs_f64(), 0);
    }
    // A copy that ran may have written progress: always clear it.
    let copied = tally.snapshot().is_some();
    if copied || ic.status.as_ref() != Some(&status) {
        let patch = status_patch(ic.status.as_ref(), &status, if copied { &["progress"] } else { &[] })?;
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await?;
        if let Some(ready) = status.conditions.iter().find(|c| c.type_ == "Ready") {
            let was = ic
                .status
                .as_ref()
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
                .map(|c| (c.status.clone(), c.reason.clone()));
            if was != Some((ready.status.clone(), ready.reason.clone())) {
                let ev = Event {
                    type_: if ready.status == "True" {
                        EventType::Normal
                    } else {
                        EventType::Warning
                    },
                    reason: ready.reason.clone(),
                    note: Some(ready.message.chars().take(1000).collect()),
                    action: "Copy".into(),
                    secondary: None,
                };
                ctx.recorder.publish(&ev, &ic.object_ref(&())).await?;
            }
        }
    }
    let ready = status
        .conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    let stalled = status
        .conditions
        .iter()
        .any(|c| c.type_ == "Stalled" && c.status == "True");
    {
        let mut verified = ctx.verified.lock().unwrap_or_else(|p| p.into_inner());
        if ready {
            verified.insert(key.clone(), (ic.meta().generation, Instant::now()));
        } else {
            verified.remove(&key);
        }
    }
    if let Some(wait) = backoff(&ctx, &key, !ready && !ic.spec.suspend) {
        return Ok(Action::requeue(if stalled {
            wait.max(Duration::from_secs(60))
        } else {
            wait
        }));
    }
    Ok(match refresh {
        Some(d) if !ic.spec.suspend => Action::requeue(d),
        _ => Action::await_change(),
    })
}

/// Skip a reconcile that cannot change anything: `ic` is Ready at this
/// generation and this process verified that within its refresh interval.
/// Its own status write and Secret changes in the namespace trigger such
/// reconciles; each would otherwise render credentials and ask the source.
fn still_verified(ctx: &Context, key: &str, ic: &ImageCopy, refresh: Option<Duration>) -> Option<Action> {
    let st = ic.status.as_ref()?;
    let ready = st.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True");
    if ic.spec.suspend || !ready || st.observed_generation != ic.meta().generation {
        return None;
    }
    let verified = ctx.verified.lock().unwrap_or_else(|p| p.into_inner());
    let (generation, at) = verified.get(key)?;
    if *generation != ic.meta().generation {
        return None;
    }
    match refresh {
        None => Some(Action::await_change()),
        Some(d) => d.checked_sub(at.elapsed()).map(Action::requeue),
    }
}

async fn reconcile_credential(c: Arc<RegistryCredential>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = c.namespace().unwrap_or_else(|| "default".into());
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let secret = match &c.spec.secret_ref {
        Some(r) => secrets.get_opt(&r.name).await?,
        None => None,
    };
    let generation = c.meta().generation;
    let cond = match credentials::entries(&c, secret.as_ref()) {
        Ok(_) => Condition {
            type_: "Ready".into(),
            status: "True".into(),
            reason: "SecretValid".into(),
            message: String::new(),
            observed_generation: generation,
            last_transition_time: now(),
        },
        Err(p) => Condition {
            type_: "Ready".into(),
            status: "False".into(),
            reason: p.reason.into(),
            message: p.message,
            observed_generation: generation,
            last_transition_time: now(),
        },
    };
    let mut st = c.status.clone().unwrap_or_default();
    let before = st.clone();
    set(&mut st.conditions, cond);
    st.observed_generation = generation;
    if st != before {
        let api: Api<RegistryCredential> = Api::namespaced(ctx.client.clone(), &ns);
        api.patch_status(
            &c.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({"status": st})),
        )
        .await?;
    }
    // The namespace's rendered auth.json, usable as an imagePullSecret.
    let rendered = render_namespace(&ctx.client, &ns).await?;
    let body = serde_json::to_string(&rendered.document).map_err(|e| Error::Render(e.to_string()))?;
    let pull = json!({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"name": "kopeo-registry-auth", "labels": {"app.kubernetes.io/managed-by": "kopeo"}},
        "stringData": {".dockerconfigjson": body},
    });
    secrets
        .patch(
            "kopeo-registry-auth",
            &PatchParams::apply("kopeo").force(),
            &Patch::Apply(pull),
        )
        .await?;
    Ok(Action::await_change())
}

async fn reconcile_sync(s: Arc<ImageSync>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = s.namespace().unwrap_or_else(|| "default".into());
    let name = s.name_any();
    let interval = s
        .spec
        .interval
        .as_deref()
        .and_then(|i| crate::duration::parse_duration(i).ok())
        .unwrap_or(Duration::from_secs(3600));
    if s.spec.suspend {
        return Ok(Action::await_change());
    }
    // Level-triggered, but a sync is expensive: run it when the spec changed
    // or the interval has passed since the last one.
    let st = s.status.clone().unwrap_or_default();
    let same_spec = st.observed_generation == s.meta().generation;
    let due = st
        .last_sync_time
        .as_deref()
        .and_then(crate::timestamp::parse_rfc3339)
        .map(|last| crate::timestamp::now_unix() - last >= interval.as_secs() as i64)
        .unwrap_or(true);
    if same_spec && !due {
        let left = st
            .last_sync_time
            .as_deref()
            .and_then(crate::timestamp::parse_rfc3339)
            .map(|last| interval.as_secs() as i64 - (crate::timestamp::now_unix() - last))
            .unwrap_or(60);
        return Ok(Action::requeue(Duration::from_secs(left.max(1) as u64)));
    }
    let Ok(_permit) = ctx.work.acquire().await else {
        return Ok(Action::requeue(Duration::from_secs(5)));
    };
    let rendered = render_namespace(&ctx.client, &ns).await?;
    ctx.metrics.in_flight.inc();
    let started = std::time::Instant::now();
    let mut status = super::image_sync_reconcile::reconcile(&s, &rendered, &now()).await;
    ctx.metrics.in_flight.dec();
    let result = if status.failed > 0 { "failed" } else { "synced" };
    ctx.metrics
        .record("ImageSync", result, started.elapsed().as_secs_f64(), 0);
    status.next_sync_time = Some(crate::timestamp::format_unix(
        crate::timestamp::now_unix() + interval.as_secs() as i64,
    ));
    let api: Api<ImageSync> = Api::namespaced(ctx.client.clone(), &ns);
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(json!({"status": status})))
        .await?;
    let failed = status.failed > 0;
    if let Some(wait) = backoff(&ctx, &format!("ImageSync/{ns}/{name}"), failed) {
        return Ok(Action::requeue(wait.min(interval)));
    }
    Ok(Action::requeue(interval))
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
/// Lease is released, so that another replica takes over at once.
pub async fn run_until(client: Client, opts: OperatorOptions, shutdown: impl std::future::Future<Output = ()>) {
    opts.metrics.ready.store(true, std::sync::atomic::Ordering::SeqCst);
    let Some(le) = opts.leader_election.clone() else {
        tokio::select! {
            _ = controllers(client, opts) => {}
            _ = shutdown => tracing::info!("shutting down"),
        }
        return;
    };
    let manager = kube_lease_manager::LeaseManagerBuilder::new(client.clone(), &le.lease)
        .with_namespace(&le.namespace)
        .with_identity(&opts.instance)
        .with_duration(15)
        .with_grace(5)
        .build()
        .await;
    let manager = match manager {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(error = %e, "leader election unavailable");
            return;
        }
    };
    let (leading, task) = manager.watch().await;
    tokio::select! {
        _ = lead(client, &opts, leading) => {}
        _ = shutdown => tracing::info!(instance = %opts.instance, "shutting down"),
    }
    opts.metrics.leader.set(0);
    // `lead` dropped the last receiver: the manager releases the Lease.
    match tokio::time::timeout(Duration::from_secs(5), task).await {
        Ok(Ok(Ok(_))) => tracing::info!(instance = %opts.instance, "released the lease"),
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "releasing the lease"),
        Ok(Err(e)) => tracing::warn!(error = %e, "lease manager task"),
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
    let copies =
        Controller::new(scoped::<ImageCopy>(&client, ns), watcher::Config::default()).with_config(config.clone());
    let store = copies.store();
    let (s1, s2) = (store.clone(), store);
    let copies = copies
        .watches(
            scoped::<Secret>(&client, ns),
            watcher::Config::default(),
            move |s: Secret| all_in(&s1, s.namespace()),
        )
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

    let creds = Controller::new(scoped::<RegistryCredential>(&client, ns), watcher::Config::default())
        .with_config(config.clone());
    let cstore = creds.store();
    let creds = creds
        .watches(
            scoped::<Secret>(&client, ns),
            watcher::Config::default().labels("!app.kubernetes.io/managed-by"),
            move |s: Secret| all_in(&cstore, s.namespace()),
        )
        .run(reconcile_credential, error_policy, ctx.clone())
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "registrycredential controller");
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
    futures::future::join3(copies, creds, syncs).await;
}

#[cfg(test)]
mod tests {
    use super::status_patch;
    use serde_json::json;

    #[test]
    fn status_patches_remove_what_the_new_status_drops() {
        let old = json!({"message": "m", "progress": {"bytesDone": 1}, "keep": 1});
        let new = json!({"keep": 2});
        assert_eq!(
            status_patch(Some(&old), &new, &[]).unwrap(),
            json!({"status": {"keep": 2, "message": null, "progress": null}})
        );
        // Without a previous status, only what is named is cleared.
        assert_eq!(
            status_patch(None, &new, &["progress"]).unwrap(),
            json!({"status": {"keep": 2, "progress": null}})
        );
    }
}
