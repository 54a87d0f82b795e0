//! An ImageSync with `spec.workers`, run as a Kubernetes Indexed Job: the
//! controller starts the Job (one pod per shard, `kopeo worker image-sync`
//! in each), watches it, and adds up what the shards report into the
//! ImageSync's status; the cluster schedules, retries
//! (`backoffLimitPerIndex`) and spreads the pods. A retried shard plans
//! again and copies only what is not at the destination yet. Suspending
//! the ImageSync suspends the Job; a spec change replaces it; deleting the
//! ImageSync deletes it (owner reference).

use crate::operator::condition::{Condition, set};
use crate::operator::context::{Context, Error, now};
use crate::operator::image_sync::reconcile::{Outcome, conclude};
use crate::operator::image_sync::throttle::{HostPause, HostThrottling};
use crate::operator::image_sync::{ImageSync, ImageSyncStatus, SyncFailure};
use crate::operator::progress::SyncProgress;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Where a worker pod finds the namespace's pull Secret.
pub const AUTH_MOUNT: &str = "/var/run/kopeo/auth";
/// Where a worker pod finds its registries' CA and client certificates.
pub const CERTS_MOUNT: &str = "/var/run/kopeo/certs";
/// Where a worker pod finds the Secrets and ConfigMaps its keys are in
/// (`verify_keys::mount_path`).
pub const KEYS_MOUNT: &str = "/var/run/kopeo/keys";
/// The annotation holding the hash of the spec a Job runs ([`spec_hash`]).
pub const SPEC_HASH: &str = "kopeo.dev/spec-hash";

/// What a Job runs: the spec without `suspend` (suspending and resuming a
/// sync goes on with the same Job; any other change is another sync).
pub fn spec_hash(spec: &crate::operator::image_sync::ImageSyncSpec) -> String {
    use sha2::Digest as _;
    let mut spec = spec.clone();
    spec.suspend = false;
    let bytes = serde_json::to_vec(&spec).unwrap_or_default();
    let d = sha2::Sha256::digest(&bytes);
    d.iter().take(8).map(|b| format!("{b:02x}")).collect()
}
/// Tries of one shard (the first and its retries) before the Job gives it up.
const TRIES_PER_SHARD: i32 = 3;

fn preserve(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
}

fn preserve_list(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}})
}

/// The worker pods' scheduling and size (pod spec fields, as in a pod).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerPod {
    /// The worker container's resources (requests, limits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve")]
    pub resources: Option<Value>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "preserve_list")]
    pub tolerations: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    /// A ServiceAccount of your own (it needs `get` on imagesyncs and
    /// `patch` on imagesyncs/status); default: the operator's worker account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
}

impl WorkerPod {
    /// These settings, with `defaults` for the fields not set here.
    pub fn over(self, defaults: &WorkerPod) -> WorkerPod {
        let d = defaults.clone();
        WorkerPod {
            resources: self.resources.or(d.resources),
            node_selector: if self.node_selector.is_empty() {
                d.node_selector
            } else {
                self.node_selector
            },
            tolerations: if self.tolerations.is_empty() {
                d.tolerations
            } else {
                self.tolerations
            },
            priority_class_name: self.priority_class_name.or(d.priority_class_name),
            service_account_name: self.service_account_name.or(d.service_account_name),
        }
    }
}

/// What one shard reported.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShardStatus {
    /// The Job whose pod reported this.
    pub job: String,
    /// Running, Succeeded or Failed.
    pub state: String,
    #[serde(default)]
    pub seen: u64,
    #[serde(default)]
    pub done: u64,
    #[serde(default)]
    pub copied: u64,
    #[serde(default)]
    pub already_present: u64,
    #[serde(default)]
    pub failed: u64,
    #[serde(default)]
    pub pruned: u64,
    #[serde(default)]
    pub rejected: u64,
    /// The first failures (at most 5).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<SyncFailure>,
    /// The pod that reported (a retried shard's next pod counts afresh).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pod: String,
    /// What held this pod's requests back, per registry host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub throttled: Vec<HostThrottling>,
    /// Hosts a 429 told this pod to leave alone, and until when: the
    /// other shards hold their requests to them as well.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paused: Vec<HostPause>,
}

/// The operator's settings for worker Jobs.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// The image the worker pods run (the operator's own); without it
    /// `spec.workers` is refused.
    pub image: Option<String>,
    /// The ServiceAccount made in each namespace for worker pods.
    pub service_account: String,
    /// The ClusterRole it is bound to there (the chart's worker role).
    pub cluster_role: String,
    /// How often a worker writes its shard's status.
    pub report_interval: Duration,
    /// Pod settings for every worker (the chart's `workers.pod`); an
    /// ImageSync's `workerPod` fields override them one by one.
    pub pod: WorkerPod,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            image: None,
            service_account: "kopeo-worker".into(),
            cluster_role: "kopeo-worker".into(),
            report_interval: Duration::from_secs(10),
            pod: WorkerPod::default(),
        }
    }
}

fn finished(job: &Job) -> Option<bool> {
    let conds = job.status.as_ref()?.conditions.as_ref()?;
    let is = |t: &str| conds.iter().any(|c| c.type_ == t && c.status == "True");
    if is("Complete") {
        Some(true)
    } else if is("Failed") {
        Some(false)
    } else {
        None
    }
}

/// The counts of every shard that reported for `job`.
fn aggregate(st: &mut ImageSyncStatus, job: &str) -> (Outcome, SyncProgress, usize) {
    let mine: Vec<&ShardStatus> = st.shards.values().filter(|s| s.job == job).collect();
    let sum = |f: fn(&ShardStatus) -> u64| mine.iter().map(|s| f(s)).sum::<u64>();
    let progress = SyncProgress {
        images_done: sum(|s| s.done),
        images_total: sum(|s| s.seen),
        copied: sum(|s| s.copied),
        failed: sum(|s| s.failed),
    };
    let outcome = Outcome {
        rejected: sum(|s| s.rejected),
        planned: 0,
        planned_prunes: 0,
    };
    let (seen, copied, present, failed, pruned) = (
        sum(|s| s.seen),
        sum(|s| s.copied),
        sum(|s| s.already_present),
        sum(|s| s.failed),
        sum(|s| s.pruned),
    );
    let failures: Vec<SyncFailure> = mine.iter().flat_map(|s| s.failures.clone()).take(20).collect();
    let reported = mine.len();
    st.throttled = crate::operator::image_sync::throttle::sum(mine.iter().map(|s| &s.throttled[..]));
    st.seen = seen;
    st.copied = copied;
    st.already_present = present;
    st.failed = failed;
    st.pruned = pruned;
    st.failures = failures;
    (outcome, progress, reported)
}

/// Count the throttling `job`'s shards reported in the operator's metrics.
fn count_throttling(ctx: &Context, sync: &str, st: &ImageSyncStatus, job: &str) {
    for (index, s) in st.shards.iter().filter(|(_, s)| s.job == job) {
        ctx.metrics
            .shard_throttling(&format!("{sync}/{index}"), &s.pod, &s.throttled);
    }
}

fn progressing(st: &mut ImageSyncStatus, s: &ImageSync, message: String) {
    set(
        &mut st.conditions,
        Condition {
            type_: "Progressing".into(),
            status: "True".into(),
            reason: "WorkersRunning".into(),
            message,
            observed_generation: s.metadata.generation,
            last_transition_time: now(),
        },
    );
}

/// Why `s` cannot run in workers (with this operator), if it cannot.
fn refusal(s: &ImageSync, ctx: &Context) -> Option<String> {
    let sp = &s.spec;
    if ctx.workers.image.is_none() {
        return Some("spec.workers: the operator was started without --worker-image".into());
    }
    // Key providers are the operator pod's commands and sidecars, which a
    // worker pod does not have.
    let providers = [
        ("encryption.recipients", sp.encryption.as_ref().map(|e| &e.recipients)),
        ("decryption.keys", sp.decryption.as_ref().map(|d| &d.keys)),
    ];
    for (field, sources) in providers {
        if sources.into_iter().flatten().any(|k| k.provider.is_some()) {
            return Some(format!(
                "spec.workers cannot be combined with key providers in spec.{field} (they run beside the operator, not in worker pods)"
            ));
        }
    }
    if ctx.default_policy.is_some() {
        return Some(
            "spec.workers: the operator's --policy is not given to worker pods; use the in-process sync".into(),
        );
    }
    if ctx.signatures.config() != crate::operator::context::default_signature_storage().config() {
        return Some(
            "spec.workers: the operator's --registries.d is not given to worker pods; use the in-process sync".into(),
        );
    }
    None
}

/// Reconcile an ImageSync with `spec.workers` (or with a Job still
/// running from when it had them); `due` is how long until the next sync
/// is due (`None`: now).
pub(crate) async fn reconcile(
    s: Arc<ImageSync>,
    ctx: Arc<Context>,
    interval: Duration,
    due: Option<Duration>,
) -> Result<Action, Error> {
    let ns = s.namespace().unwrap_or_else(|| "default".into());
    let name = s.name_any();
    let api: Api<ImageSync> = Api::namespaced(ctx.client.clone(), &ns);
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let old = s.status.clone().unwrap_or_default();
    let generation = s.metadata.generation;
    if let Some(job_name) = old.job.clone() {
        let job = jobs.get_opt(&job_name).await?;
        let runs_this_spec = job
            .as_ref()
            .is_some_and(|j| j.annotations().get(SPEC_HASH) == Some(&spec_hash(&s.spec)) && s.spec.workers.is_some());
        match job {
            Some(job) if runs_this_spec => {
                let suspended = job.spec.as_ref().and_then(|j| j.suspend).unwrap_or(false);
                if suspended != s.spec.suspend {
                    jobs.patch(
                        &job_name,
                        &PatchParams::default(),
                        &Patch::Merge(json!({"spec": {"suspend": s.spec.suspend}})),
                    )
                    .await?;
                }
                let Some(ok) = finished(&job) else {
                    // A suspend or resume is this spec, seen and acted on.
                    let mut st = ImageSyncStatus {
                        observed_generation: generation,
                        ..old.clone()
                    };
                    let (_, progress, reported) = aggregate(&mut st, &job_name);
                    count_throttling(&ctx, &format!("{ns}/{name}"), &st, &job_name);
                    st.progress = Some(progress);
                    let shards = s.spec.workers.unwrap_or(1);
                    let msg = match s.spec.suspend {
                        true => format!("Job {job_name} is suspended"),
                        false => format!("Job {job_name}: {reported} of {shards} shards reported"),
                    };
                    progressing(&mut st, &s, msg);
                    write(&api, &name, &old, &st).await?;
                    return Ok(Action::requeue(Duration::from_secs(60)));
                };
                // The Job may be seen finished before the shards' last
                // reports reach this process's cache: read them fresh, and
                // wait a little for any still in flight.
                let fresh = api.get_status(&name).await?.status.unwrap_or_default();
                let mut st = ImageSyncStatus {
                    shards: fresh.shards,
                    ..old.clone()
                };
                let (outcome, _, reported) = aggregate(&mut st, &job_name);
                count_throttling(&ctx, &format!("{ns}/{name}"), &st, &job_name);
                let shards = s.spec.workers.unwrap_or(1) as usize;
                let pending =
                    reported < shards || st.shards.values().any(|x| x.job == job_name && x.state == "Running");
                let finished_for = job
                    .status
                    .as_ref()
                    .and_then(|j| j.completion_time.as_ref().map(|t| t.0.as_second()))
                    .map(|t| crate::timestamp::now_unix() - t)
                    .unwrap_or(0);
                if ok && pending && finished_for < 30 {
                    return Ok(Action::requeue(Duration::from_secs(1)));
                }
                st.progress = None;
                st.last_sync_time = Some(now());
                st.next_sync_time = Some(crate::timestamp::format_unix(
                    crate::timestamp::now_unix() + interval.as_secs() as i64,
                ));
                st.last_job = Some(job_name.clone());
                st.job = None;
                st.observed_generation = generation;
                if !ok && st.failed == 0 {
                    // The Job gave up on shards that never said why.
                    let failed_indexes = job
                        .status
                        .as_ref()
                        .and_then(|j| j.failed_indexes.clone())
                        .unwrap_or_default();
                    st.failed = 1;
                    st.failures.push(SyncFailure {
                        source: format!("Job {job_name}"),
                        reason: format!(
                            "shards {failed_indexes} failed {TRIES_PER_SHARD} times; {reported} of {shards} shards reported (see the pods' logs)"
                        ),
                    });
                }
                conclude(&mut st, outcome, false, generation, &now());
                let failed = st.failed > 0;
                ctx.metrics
                    .record("ImageSync", if failed { "failed" } else { "synced" }, 0.0, 0);
                settle(&ctx, &api, &s, &st, &["progress", "job"]).await?;
                // Reports of earlier runs' shards go now that this run's are all in.
                let stale: serde_json::Map<String, Value> = st
                    .shards
                    .iter()
                    .filter(|(_, x)| x.job != job_name)
                    .map(|(k, _)| (k.clone(), Value::Null))
                    .collect();
                if !stale.is_empty() {
                    let patch = json!({"status": {"shards": stale}});
                    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(patch))
                        .await?;
                }
                crate::operator::memory::remember(&ctx, &*s, !failed);
                let key = format!("ImageSync/{ns}/{name}");
                if let Some(wait) = crate::operator::memory::backoff(&ctx, &key, generation, failed) {
                    return Ok(Action::requeue(wait.min(interval)));
                }
                return Ok(Action::requeue(interval));
            }
            Some(_) => {
                // The spec changed (or no longer asks for workers): stop the old run.
                let dp = DeleteParams {
                    propagation_policy: Some(PropagationPolicy::Background),
                    ..Default::default()
                };
                let _ = jobs.delete(&job_name, &dp).await;
            }
            None => {}
        }
        let mut st = old.clone();
        st.job = None;
        st.progress = None;
        settle(&ctx, &api, &s, &st, &["job", "progress"]).await?;
        return Ok(Action::requeue(Duration::from_millis(100)));
    }
    if s.spec.suspend || s.spec.workers.is_none() {
        return Ok(Action::await_change());
    }
    if let Some(left) = due.filter(|d| !d.is_zero()) {
        return Ok(Action::requeue(left.max(Duration::from_secs(1))));
    }
    let rendered =
        crate::operator::credential_cache::render_namespace(&ctx, &ns, crate::operator::credential_cache::Read::Cached)
            .await?;
    if let Some(why) = refusal(&s, &ctx) {
        let mut st = ImageSyncStatus {
            observed_generation: generation,
            ..old.clone()
        };
        crate::operator::image_sync::reconcile::fail(&mut st, generation, &now(), "InvalidSpec", why);
        settle(&ctx, &api, &s, &st, &["progress"]).await?;
        return Ok(Action::await_change());
    }
    let account = match s.spec.worker_pod.as_ref().and_then(|p| p.service_account_name.clone()) {
        Some(own) => own,
        None => {
            ensure_account(&ctx, &ns).await?;
            ctx.workers.service_account.clone()
        }
    };
    let job = job_for(&s, &ctx, &account, &rendered).map_err(Error::BuildWorkerObject)?;
    let job_name = job.name_any();
    match jobs.create(&PostParams::default(), &job).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {
            // This run's Job exists: made by a reconcile whose status write
            // this one does not see yet, or made just before a crash. Adopt
            // it if it is this ImageSync's for this spec.
            let theirs = jobs.get_opt(&job_name).await?;
            let ours = theirs.as_ref().is_some_and(|j| {
                j.owner_references()
                    .iter()
                    .any(|o| Some(&o.uid) == s.metadata.uid.as_ref())
                    && j.annotations().get(SPEC_HASH) == Some(&spec_hash(&s.spec))
            });
            if !ours {
                return Err(Error::Kube(kube::Error::Api(e)));
            }
            if old.job.as_deref() == Some(job_name.as_str()) {
                return Ok(Action::requeue(Duration::from_secs(1)));
            }
        }
        Err(e) => return Err(e.into()),
    }
    // The previous run's Job goes when the next one starts (its pods with it).
    if let Some(previous) = old.last_job.as_deref().filter(|p| *p != job_name) {
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..Default::default()
        };
        let _ = jobs.delete(previous, &dp).await;
    }
    tracing::info!(namespace = %ns, name = %name, job = %job_name, shards = s.spec.workers, "sync started as a Job");
    let mut st = ImageSyncStatus {
        observed_generation: generation,
        job: Some(job_name.clone()),
        progress: Some(SyncProgress::default()),
        ..old.clone()
    };
    progressing(&mut st, &s, format!("Job {job_name} started"));
    // The shards' reports are left alone: this run's workers may have written
    // theirs already (an earlier run's go when this one ends).
    write(&api, &name, &old, &st).await?;
    Ok(Action::requeue(Duration::from_secs(60)))
}

/// The status without the shards' reports: the controller never writes
/// those (its copy may be older than a worker's last write).
fn without_shards(st: &ImageSyncStatus) -> ImageSyncStatus {
    ImageSyncStatus {
        shards: BTreeMap::new(),
        ..st.clone()
    }
}

/// Patch the status from `old` to `new` when they differ (shards aside).
async fn write(api: &Api<ImageSync>, name: &str, old: &ImageSyncStatus, new: &ImageSyncStatus) -> Result<(), Error> {
    let (old, new) = (without_shards(old), without_shards(new));
    if old == new {
        return Ok(());
    }
    let patch = crate::operator::supervise::status_patch(Some(&old), &new, &[])?;
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(patch))
        .await?;
    Ok(())
}

/// Write a concluding status (shards aside, `clear`ed fields removed) and
/// announce a changed Ready condition.
async fn settle(
    ctx: &Context,
    api: &Api<ImageSync>,
    s: &ImageSync,
    st: &ImageSyncStatus,
    clear: &[&str],
) -> Result<(), Error> {
    let old = s.status.as_ref().map(without_shards);
    crate::operator::supervise::finish(
        ctx,
        api,
        s,
        old.as_ref(),
        &without_shards(st),
        |x| &x.conditions,
        clear,
        "Sync",
    )
    .await
}

/// The worker ServiceAccount of `ns` and its RoleBinding to the worker ClusterRole.
async fn ensure_account(ctx: &Context, ns: &str) -> Result<(), Error> {
    let w = &ctx.workers;
    let labels = json!({"app.kubernetes.io/managed-by": "kopeo"});
    let sa: ServiceAccount = serde_json::from_value(json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": w.service_account, "labels": labels}}))
    .map_err(Error::BuildWorkerObject)?;
    let rb: RoleBinding = serde_json::from_value(
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": w.service_account, "labels": labels},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": w.cluster_role},
        "subjects": [{"kind": "ServiceAccount", "name": w.service_account, "namespace": ns}]}),
    )
    .map_err(Error::BuildWorkerObject)?;
    let pp = PostParams::default();
    created(
        Api::<ServiceAccount>::namespaced(ctx.client.clone(), ns)
            .create(&pp, &sa)
            .await,
    )?;
    created(
        Api::<RoleBinding>::namespaced(ctx.client.clone(), ns)
            .create(&pp, &rb)
            .await,
    )?;
    Ok(())
}

/// A create that found the object there already succeeded too.
fn created<T>(r: Result<T, kube::Error>) -> Result<(), Error> {
    match r {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(Error::from(e)),
    }
}

/// The hosts a sync reaches and each worker's share of their budgets.
fn budget_args(s: &ImageSync, budgets: &crate::registry::budget::Budgets, shards: u32) -> Vec<String> {
    let dest_host = s.spec.destination.split('/').next().unwrap_or_default().to_string();
    let mut hosts = vec![s.spec.registry.clone(), dest_host];
    hosts.dedup();
    let mut out = vec![];
    for h in hosts {
        let l = budgets.limit(&h);
        let share = |n: Option<u32>| n.map(|n| (n / shards).max(1).to_string()).unwrap_or_default();
        if l.requests_per_second.is_some() || l.concurrent_blobs.is_some() {
            out.push("--registry-rate-limit".into());
            out.push(format!(
                "{h}={}/{}",
                share(l.requests_per_second),
                share(l.concurrent_blobs)
            ));
        }
    }
    out
}

/// The next run's id, from the spec and the last run's Job: a reconcile
/// that sees a stale status makes the same name and finds it taken, so one
/// run never gets two Jobs.
fn run_id(s: &ImageSync, hash: &str) -> String {
    use sha2::Digest as _;
    let last = s.status.as_ref().and_then(|st| st.last_job.clone()).unwrap_or_default();
    let seed = format!("{}/{hash}/{last}", s.metadata.uid.clone().unwrap_or_default());
    sha2::Sha256::digest(seed.as_bytes())
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The Indexed Job running `s` in `spec.workers` shards.
fn job_for(
    s: &ImageSync,
    ctx: &Context,
    account: &str,
    rendered: &crate::operator::registry_credential::render::Rendered,
) -> Result<Job, serde_json::Error> {
    let insecure = rendered.insecure_hosts();
    let ns = s.namespace().unwrap_or_else(|| "default".into());
    let name = s.name_any();
    let shards = s.spec.workers.unwrap_or(1);
    let hash = spec_hash(&s.spec);
    // Short enough for the job-name label (63) with the pods' suffixes.
    let stem: String = name.chars().take(40).collect();
    let job_name = format!("{}-sync-{}", stem.trim_end_matches('-'), run_id(s, &hash));
    let mut args: Vec<String> = [
        "worker",
        "image-sync",
        "--namespace",
        &ns,
        "--name",
        &name,
        "--spec-hash",
        &hash,
        "--job",
        &job_name,
        "--shards",
        &shards.to_string(),
        "--authfile",
        &format!("{AUTH_MOUNT}/.dockerconfigjson"),
        "--report-interval",
        &format!("{}ms", ctx.workers.report_interval.as_millis()),
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    for h in insecure {
        args.push("--insecure-registry".into());
        args.push(h.clone());
    }
    args.extend(budget_args(s, &ctx.budgets, shards));
    // The Secrets and ConfigMaps of verify, sign, encryption and decryption
    // keys, mounted read-only (optional: a missing one is the worker's
    // error to report, as it is the in-process sync's).
    let mut named = crate::operator::verify_keys::KeyObjects::key_objects(s);
    named.sort();
    named.dedup();
    let (mut mounts, mut volumes) = (
        vec![
            json!({"name": "auth", "mountPath": AUTH_MOUNT, "readOnly": true}),
            json!({"name": "tmp", "mountPath": "/tmp"}),
        ],
        vec![
            json!({"name": "auth", "secret": {"secretName": crate::operator::registry_credential::controller::PULL_SECRET, "optional": true}}),
            json!({"name": "tmp", "emptyDir": {}}),
        ],
    );
    for (i, (kind, object)) in named.iter().enumerate() {
        let volume = format!("key-{i}");
        let path = crate::operator::verify_keys::mount_path(KEYS_MOUNT, kind, object);
        mounts.push(json!({"name": volume, "mountPath": path, "readOnly": true}));
        volumes.push(match *kind {
            "Secret" => json!({"name": volume, "secret": {"secretName": object, "optional": true}}),
            _ => json!({"name": volume, "configMap": {"name": object, "optional": true}}),
        });
    }
    if !named.is_empty() {
        args.extend(["--keys-dir".to_string(), KEYS_MOUNT.to_string()]);
    }
    // The credentials' CA and client certificates, from their Secrets, as
    // one directory of HOST/FILE (a projected volume: several Secrets).
    let files = rendered.tls_files();
    if !files.is_empty() {
        let mut by_secret: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
        for f in files {
            by_secret
                .entry(&f.secret)
                .or_default()
                .push(json!({"key": f.key, "path": format!("{}/{}", f.host, f.file)}));
        }
        let sources: Vec<Value> = by_secret
            .into_iter()
            .map(|(name, items)| json!({"secret": {"name": name, "items": items}}))
            .collect();
        volumes.push(json!({"name": "certs", "projected": {"sources": sources}}));
        mounts.push(json!({"name": "certs", "mountPath": CERTS_MOUNT, "readOnly": true}));
        args.extend(["--certs-dir".to_string(), CERTS_MOUNT.to_string()]);
    }
    let pod = s.spec.worker_pod.clone().unwrap_or_default().over(&ctx.workers.pod);
    let owner = s
        .controller_owner_ref(&())
        .map(|o| serde_json::to_value(o).unwrap_or(Value::Null));
    let labels = json!({"app.kubernetes.io/managed-by": "kopeo", "app.kubernetes.io/component": "worker", "kopeo.dev/image-sync": name});
    let mut container = json!({
        "name": "worker",
        "image": ctx.workers.image.clone().unwrap_or_default(),
        "args": args,
        // Its reports name the pod: a retried shard's new pod counts afresh.
        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "volumeMounts": mounts,
        "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                            "capabilities": {"drop": ["ALL"]}},
    });
    if let Some(r) = &pod.resources {
        container["resources"] = r.clone();
    }
    let mut spec = json!({
        "restartPolicy": "Never",
        "serviceAccountName": account,
        // As the chart runs the operator itself.
        "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": volumes,
    });
    if !pod.node_selector.is_empty() {
        spec["nodeSelector"] = json!(pod.node_selector);
    }
    if !pod.tolerations.is_empty() {
        spec["tolerations"] = json!(pod.tolerations);
    }
    if let Some(p) = &pod.priority_class_name {
        spec["priorityClassName"] = json!(p);
    }
    let job = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name,
            "namespace": ns,
            "labels": labels,
            "annotations": {SPEC_HASH: hash},
            "ownerReferences": owner.into_iter().collect::<Vec<_>>(),
        },
        "spec": {
            "completionMode": "Indexed",
            "completions": shards,
            "parallelism": s.spec.worker_parallelism.unwrap_or(shards).min(shards),
            "backoffLimitPerIndex": TRIES_PER_SHARD - 1,
            "suspend": s.spec.suspend,
            "template": {"metadata": {"labels": labels}, "spec": spec},
        },
    });
    serde_json::from_value(job)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_split_the_hosts_budgets_among_themselves() {
        let s: ImageSync = serde_json::from_value(json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "ImageSync",
            "metadata": {"name": "m", "namespace": "ns"},
            "spec": {"registry": "src:5000", "images": {"a": []}, "destination": "dst:5000/mirror", "workers": 4}}))
        .unwrap();
        let budgets = crate::registry::budget::Budgets::default();
        let limit = |rps, blobs| crate::options::rate_limit::RateLimitSettings {
            requests_per_second: Some(rps),
            concurrent_blobs: blobs,
        };
        budgets.set_limits(
            "flags",
            [
                ("src:5000".to_string(), limit(10, Some(8))),
                ("dst:5000".to_string(), limit(2, None)),
            ],
        );
        assert_eq!(
            budget_args(&s, &budgets, 4),
            [
                "--registry-rate-limit",
                "src:5000=2/2",
                "--registry-rate-limit",
                "dst:5000=1/"
            ]
        );
        let unlimited = crate::registry::budget::Budgets::default();
        assert!(budget_args(&s, &unlimited, 4).is_empty());
    }

    #[test]
    fn a_run_has_one_job_name_whoever_computes_it() {
        let mut s: ImageSync = serde_json::from_value(json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "ImageSync",
            "metadata": {"name": "m", "namespace": "ns", "uid": "u-1"},
            "spec": {"registry": "src:5000", "images": {"a": []}, "destination": "dst:5000/mirror", "workers": 4}}))
        .unwrap();
        let hash = spec_hash(&s.spec);
        let first = run_id(&s, &hash);
        assert_eq!(first, run_id(&s, &hash), "a stale reconcile names the same Job");
        s.spec.suspend = true;
        assert_eq!(spec_hash(&s.spec), hash, "suspending is the same run");
        s.status = Some(ImageSyncStatus {
            last_job: Some(format!("m-sync-{first}")),
            ..Default::default()
        });
        assert_ne!(run_id(&s, &hash), first, "the next run is another Job");
    }

    #[test]
    fn shard_reports_add_up_for_their_own_job_only() {
        let mut st = ImageSyncStatus::default();
        for (i, job, copied) in [("0", "j1", 3), ("1", "j1", 4), ("2", "j0", 100)] {
            st.shards.insert(
                i.into(),
                ShardStatus {
                    job: job.into(),
                    state: "Succeeded".into(),
                    seen: copied,
                    done: copied,
                    copied,
                    ..Default::default()
                },
            );
        }
        let (_, progress, reported) = aggregate(&mut st, "j1");
        assert_eq!((st.copied, st.seen, reported), (7, 7, 2));
        assert_eq!(progress.images_done, 7);
    }
}
