//! What every reconcile shares: the client, metrics, the Event recorder,
//! the concurrency limit, the per-resource memory and the credential
//! caches; how the operator runs (its options); why a reconcile failed.

use super::credential_cache::CredentialCache;
use super::local_access::LocalAccess;
use super::memory::Memory;
use super::metrics::Metrics;
use kube::Client;
use kube::runtime::controller::Action;
use kube::runtime::events::Recorder;
use std::sync::Arc;
use std::time::Duration;

/// Why a reconcile failed (shown in logs; status carries the user-facing reason).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("rendering the namespace's auth.json: {0}")]
    RenderCredentials(#[source] serde_json::Error),
    #[error("encoding a status: {0}")]
    EncodeStatus(#[source] serde_json::Error),
    #[error("building the worker Job or its account: {0}")]
    BuildWorkerObject(#[source] serde_json::Error),
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
    pub metrics: Arc<Metrics>,
    /// Write a running copy's progress to status at most this often.
    pub progress_interval: Duration,
    /// Watch only these namespaces (all when empty).
    pub namespaces: Vec<String>,
    /// Which local transports ImageCopy may use (registries only by default).
    pub local: LocalAccess,
    /// Where signatures of registry images are read and written.
    pub signatures: Arc<crate::signature::lookaside::SignatureStorage>,
    /// The trust policy (policy.json) for ImageCopy and ImageSync without
    /// `spec.verify` (`--policy`, the chart's `policy`); none accepts anything.
    pub default_policy: Option<std::sync::Arc<crate::signature::policy::Policy>>,
    /// Request budgets per registry host, across all the operator's work
    /// (`--registry-rate-limit`, RegistryCredential `spec.rateLimit`).
    pub budgets: Arc<crate::registry::budget::Budgets>,
    /// How ImageSyncs with `spec.workers` get their Jobs (`--worker-image`).
    pub workers: crate::operator::image_sync::workers::WorkerSettings,
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
            local: LocalAccess::RegistriesOnly,
            signatures: Arc::new(default_signature_storage()),
            default_policy: None,
            budgets: Arc::default(),
            workers: Default::default(),
        }
    }
}

/// The operator's signature storage when no registries.d is given: sigstore
/// attachments (cosign's, kept in the registries themselves) are read and
/// carried along; a pod has no lookaside directory of its own.
pub fn default_signature_storage() -> crate::signature::lookaside::SignatureStorage {
    use crate::signature::lookaside::{Namespace, RegistriesD, SignatureStorage};
    SignatureStorage::new(RegistriesD {
        default_docker: Some(Namespace {
            use_sigstore_attachments: Some(true),
            ..Default::default()
        }),
        docker: Default::default(),
    })
}

/// Shared by all reconciles.
pub struct Context {
    pub(crate) client: Client,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) recorder: Recorder,
    /// Per resource: failures (for backoff) and when it was last brought up to date.
    pub(crate) memory: Memory,
    pub(crate) progress_interval: Duration,
    /// Copies and syncs running at once, across every controller and namespace.
    pub(crate) work: tokio::sync::Semaphore,
    /// RegistryCredential caches (one per watched scope).
    pub(crate) credentials: std::sync::RwLock<Vec<CredentialCache>>,
    /// Which local transports ImageCopy may use.
    pub(crate) local: LocalAccess,
    /// Where signatures of registry images are read and written.
    pub(crate) signatures: Arc<crate::signature::lookaside::SignatureStorage>,
    /// The policy for resources without `spec.verify`.
    pub(crate) default_policy: Option<std::sync::Arc<crate::signature::policy::Policy>>,
    /// Request budgets per registry host.
    pub(crate) budgets: Arc<crate::registry::budget::Budgets>,
    /// How ImageSyncs with `spec.workers` get their Jobs.
    pub(crate) workers: crate::operator::image_sync::workers::WorkerSettings,
}

pub(crate) fn now() -> String {
    crate::timestamp::now_rfc3339()
}

pub(crate) fn error_policy<K>(_: Arc<K>, e: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(error = %e, "reconcile failed");
    let reason = match e {
        Error::Kube(_) => "KubernetesApi",
        Error::RenderCredentials(_) => "CredentialRendering",
        Error::EncodeStatus(_) => "StatusEncoding",
        Error::BuildWorkerObject(_) => "WorkerObjectEncoding",
    };
    ctx.metrics
        .errors
        .get_or_create(&super::metrics::Reason { reason: reason.into() })
        .inc();
    Action::requeue(Duration::from_secs(5))
}
