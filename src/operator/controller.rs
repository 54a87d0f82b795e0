//! The operator's controllers, wired up: ImageCopy, ImageSync and
//! RegistryCredential on `kube::runtime::Controller` — level-triggered, one
//! reconcile per object at a time, a global concurrency limit, Secret and
//! credential changes requeueing the resources of their namespace, failures
//! backing off exponentially — plus leader election and shutdown. Each
//! kind's reconcile lives beside its type (`<kind>/controller.rs`).

use super::context::{Context, error_policy};
pub use super::context::{LeaderElection, OperatorOptions};
use super::credential_cache::CredentialCache;
use super::image_copy::ImageCopy;
use super::image_copy::controller::reconcile_copy;
use super::image_sync::ImageSync;
use super::image_sync::controller::reconcile_sync;
use super::registry_credential::RegistryCredential;
use super::registry_credential::controller::reconcile_credential;
use super::registry_credential::render as credentials;
use super::verify_keys::KeyObjects;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt as _, watcher};

/// A Secret's metadata: Secrets are watched without their data.
type SecretMeta = kube::core::PartialObjectMeta<Secret>;

/// A ConfigMap's metadata: ConfigMaps are watched without their data.
type ConfigMapMeta = kube::core::PartialObjectMeta<ConfigMap>;

/// Changes of the objects of kind `K` in scope (Secrets, ConfigMaps), metadata only.
fn metadata_changes<K>(
    client: &Client,
    ns: Option<&str>,
) -> impl futures::Stream<Item = Result<kube::core::PartialObjectMeta<K>, watcher::Error>> + Send + 'static
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    kube::core::PartialObjectMeta<K>: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    watcher(
        scoped::<kube::core::PartialObjectMeta<K>>(client, ns),
        watcher::Config::default(),
    )
    .default_backoff()
    .touched_objects()
}

/// Changes of the Secrets in scope, metadata only.
fn secret_changes(
    client: &Client,
    ns: Option<&str>,
) -> impl futures::Stream<Item = Result<SecretMeta, watcher::Error>> + Send + 'static {
    metadata_changes::<Secret>(client, ns)
}

/// The objects in `store` that read keys from `kind` `name` of namespace `ns`.
fn reading_keys_of<K>(
    store: &kube::runtime::reflector::Store<K>,
    ns: Option<String>,
    kind: &str,
    name: &str,
) -> Vec<ObjectRef<K>>
where
    K: Resource<DynamicType = ()> + Clone + KeyObjects,
{
    store
        .state()
        .iter()
        .filter(|o| o.namespace() == ns && o.key_objects().iter().any(|(k, n)| *k == kind && n == name))
        .map(|o| ObjectRef::from_obj(o.as_ref()))
        .collect()
}
use kube::{Api, Client, Resource, ResourceExt};
use std::sync::Arc;
use std::time::Duration;

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
        memory: Default::default(),
        progress_interval: opts.progress_interval,
        work: tokio::sync::Semaphore::new(usize::from(opts.concurrency.max(1))),
        credentials: Default::default(),
        local: opts.local.clone(),
        signatures: opts.signatures.clone(),
        default_policy: opts.default_policy.clone(),
        budgets: opts.budgets.clone(),
        workers: opts.workers.clone(),
    });
    opts.metrics.watch_budgets(opts.budgets.clone());
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

/// `controller` requeueing every object of its namespace when a Secret that
/// a RegistryCredential there names, or a RegistryCredential, changes, and
/// the objects that read keys from a Secret or ConfigMap when it changes.
/// The change is noted in the per-resource memory, so a failed run is
/// retried at once rather than after its backoff.
fn on_credentials<K>(
    controller: Controller<K>,
    client: &Client,
    ns: Option<&str>,
    creds: kube::runtime::reflector::Store<RegistryCredential>,
    ctx: &Arc<Context>,
) -> Controller<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + KeyObjects
        + Send
        + Sync
        + 'static,
{
    let store = controller.store();
    let (s1, s2, s3) = (store.clone(), store.clone(), store);
    let (n1, n2, n3) = (ctx.clone(), ctx.clone(), ctx.clone());
    let changed =
        |ctx: &Context, ns: &Option<String>| ctx.memory.credentials_changed(ns.as_deref().unwrap_or_default());
    controller
        .watches_stream(secret_changes(client, ns), move |s: SecretMeta| {
            let ns = s.namespace();
            if naming(&creds, &s).next().is_some() {
                changed(&n1, &ns);
                return all_in(&s1, ns);
            }
            let readers = reading_keys_of(&s1, ns.clone(), "Secret", &s.name_any());
            if !readers.is_empty() {
                changed(&n1, &ns);
            }
            readers
        })
        .watches_stream(metadata_changes::<ConfigMap>(client, ns), move |c: ConfigMapMeta| {
            let ns = c.namespace();
            let readers = reading_keys_of(&s3, ns.clone(), "ConfigMap", &c.name_any());
            if !readers.is_empty() {
                changed(&n3, &ns);
            }
            readers
        })
        .watches(
            scoped::<RegistryCredential>(client, ns),
            watcher::Config::default(),
            move |c: RegistryCredential| {
                n2.memory
                    .credentials_changed(c.namespace().as_deref().unwrap_or_default());
                all_in(&s2, c.namespace())
            },
        )
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
    let (c1, c2, c3, c4) = (cstore.clone(), cstore.clone(), cstore.clone(), cstore);
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
    let copies = on_credentials(copies, &client, ns, c2, &ctx)
        .run(reconcile_copy, error_policy, ctx.clone())
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "imagecopy controller");
            }
        });
    // Worker Jobs report their state here (sharded syncs, see image_sync::workers).
    let syncs = Controller::new(scoped::<ImageSync>(&client, ns), watcher::Config::default())
        .with_config(config)
        .owns(
            scoped::<k8s_openapi::api::batch::v1::Job>(&client, ns),
            watcher::Config::default().labels("app.kubernetes.io/managed-by=kopeo"),
        );
    let syncs = on_credentials(syncs, &client, ns, c4, &ctx)
        .run(reconcile_sync, error_policy, ctx.clone())
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "imagesync controller");
            }
        });
    futures::future::join4(copies, creds, syncs, cache).await;
}
