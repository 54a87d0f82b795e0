//! One shard of a sharded ImageSync, in a worker pod (`kopeo worker
//! image-sync`): read the ImageSync, plan its shard (the same split every
//! shard computes from the spec), copy what is not at the destination yet,
//! and report through the API — `status.shards.<index>` of the ImageSync,
//! at most once per report interval and once at the end.

use crate::operator::image_sync::reconcile::{Outcome, Prepared, prepare, tally};
use crate::operator::image_sync::throttle;
use crate::operator::image_sync::workers::ShardStatus;
use crate::operator::image_sync::{ImageSync, ImageSyncStatus};
use crate::operator::progress::SyncTally;
use crate::sync::shard::Shard;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// How often the worker looks for a new 429 pause to tell the other shards of.
const PAUSE_CHECK: Duration = Duration::from_millis(200);

/// What a worker is told by its Job.
#[derive(Debug, Clone)]
pub struct WorkerJob {
    pub namespace: String,
    pub name: String,
    /// The hash of the spec the Job was made for (`workers::spec_hash`).
    pub spec_hash: String,
    pub job: String,
    /// This pod's name (its reports carry it).
    pub pod: String,
    pub shard: Shard,
    /// The mounted pull Secret's `.dockerconfigjson` (absent: no credentials).
    pub authfile: Option<std::path::PathBuf>,
    /// Where the Secrets and ConfigMaps of the sync's keys are mounted.
    pub keys_dir: Option<std::path::PathBuf>,
    /// Where the registries' CA and client certificates are (`HOST/FILE`).
    pub certs_dir: Option<std::path::PathBuf>,
    /// Registries to reach without TLS checks.
    pub insecure: Vec<String>,
    /// This worker's share of the hosts' request budgets.
    pub limits: Vec<crate::options::rate_limit::HostRateLimit>,
    pub report_interval: Duration,
}

/// Why a worker could not do its shard.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("reading ImageSync {0}: {1}")]
    Read(String, #[source] kube::Error),
    #[error("ImageSync {name} changed since Job {job} was made for it")]
    Changed { name: String, job: String },
    #[error("reading the credentials {path}: {why}")]
    AuthFile { path: String, why: String },
    #[error("reading the mounted keys: {0}")]
    Keys(String),
    #[error("reading the mounted certificates: {0}")]
    Certs(String),
    #[error("{0}: {1}")]
    Spec(&'static str, String),
    #[error("planning the shard: {0}")]
    Plan(String),
    #[error("reporting to ImageSync {0}: {1}")]
    Report(String, #[source] kube::Error),
}

fn auth_document(path: Option<&std::path::Path>) -> Result<serde_json::Value, WorkerError> {
    let Some(path) = path else {
        return Ok(json!({"auths": {}}));
    };
    match std::fs::read(path) {
        // The Secret is optional: a namespace without RegistryCredentials has none.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(json!({"auths": {}})),
        Err(e) => Err(WorkerError::AuthFile {
            path: path.display().to_string(),
            why: e.to_string(),
        }),
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| WorkerError::AuthFile {
            path: path.display().to_string(),
            why: e.to_string(),
        }),
    }
}

/// The merge patch writing `status` as shard `index`'s report. A merge
/// patch keeps what it leaves out, so the lists and the pod a report may
/// omit are cleared by name: a retried shard's report must not keep its
/// previous pod's failures or pauses.
fn report_patch(index: usize, status: &ShardStatus) -> serde_json::Value {
    let mut v = serde_json::to_value(status).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        for k in ["failures", "pod", "throttled", "paused"] {
            o.entry(k).or_insert(serde_json::Value::Null);
        }
    }
    json!({"status": {"shards": {index.to_string(): v}}})
}

async fn report(api: &Api<ImageSync>, w: &WorkerJob, status: &ShardStatus) -> Result<(), WorkerError> {
    let patch = report_patch(w.shard.index, status);
    tracing::debug!(shard = w.shard.index, state = %status.state, done = status.done, of = status.seen, "shard reported");
    api.patch_status(&w.name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map(|_| ())
        .map_err(|e| WorkerError::Report(w.name.clone(), e))
}

/// The report of a shard that could not start copying, saying why (in the
/// status, where the in-process sync would say it).
fn failed(w: &WorkerJob, source: String, reason: &str) -> ShardStatus {
    ShardStatus {
        job: w.job.clone(),
        state: "Failed".into(),
        failed: 1,
        pod: w.pod.clone(),
        failures: vec![crate::operator::image_sync::SyncFailure {
            source,
            reason: reason.to_string(),
        }],
        ..Default::default()
    }
}

/// Run the shard; `Ok(true)` when every image of it was copied or present.
pub async fn run(client: Client, w: WorkerJob) -> Result<bool, WorkerError> {
    let api: Api<ImageSync> = Api::namespaced(client, &w.namespace);
    let s = api
        .get(&w.name)
        .await
        .map_err(|e| WorkerError::Read(w.name.clone(), e))?;
    if crate::operator::image_sync::workers::spec_hash(&s.spec) != w.spec_hash {
        return Err(WorkerError::Changed {
            name: w.name.clone(),
            job: w.job.clone(),
        });
    }
    let budgets = Arc::new(crate::registry::budget::Budgets::default());
    budgets.set_limits("controller", w.limits.iter().map(|l| (l.host.clone(), l.limit)));
    let rendered = crate::operator::registry_credential::render::Rendered::for_worker(
        auth_document(w.authfile.as_deref())?,
        w.insecure.clone(),
        match &w.certs_dir {
            Some(dir) => crate::operator::registry_credential::render::read_tls_dir(dir).map_err(WorkerError::Certs)?,
            None => Default::default(),
        },
        budgets.clone(),
    );
    // The other shards' 429 pauses hold this one's requests too.
    let _follow = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(throttle::follow(
        api.clone(),
        w.name.clone(),
        w.shard.index.to_string(),
        w.job.clone(),
        budgets.clone(),
    )));
    // The keys, from the Secrets and ConfigMaps the Job mounted, found as
    // the in-process sync finds them through the API.
    let named = crate::operator::verify_keys::KeyObjects::key_objects(&s);
    let (secrets, config_maps) = match &w.keys_dir {
        Some(dir) => crate::operator::verify_keys::read_mounted(dir, &named).map_err(WorkerError::Keys)?,
        None => Default::default(),
    };
    let sig = crate::operator::verify_keys::env_from(
        |n| secrets.iter().find(|o| o.metadata.name.as_deref() == Some(n)),
        |n| config_maps.iter().find(|o| o.metadata.name.as_deref() == Some(n)),
        s.spec.verify.as_ref(),
        s.spec.sign.as_ref(),
        (s.spec.encryption.as_ref(), s.spec.decryption.as_ref()),
        Arc::new(crate::operator::context::default_signature_storage()),
    );
    let progress = Arc::new(SyncTally::default());
    let counter = progress.clone();
    let on_done: crate::sync::OnDone =
        Arc::new(move |r: &crate::sync::ImageResult, total: usize| counter.done(r, total));
    let Prepared {
        source,
        destination,
        mut opts,
    } = match prepare(&s, &rendered, &sig, Some(on_done)) {
        Ok(p) => p,
        Err((reason, msg)) => {
            let _ = report(&api, &w, &failed(&w, format!("ImageSync {} ({reason})", w.name), &msg)).await;
            return Err(WorkerError::Spec(reason, msg));
        }
    };
    opts.shard = Some(w.shard);
    let running = |p: Option<crate::operator::progress::SyncProgress>| {
        let p = p.unwrap_or_default();
        ShardStatus {
            job: w.job.clone(),
            state: "Running".into(),
            seen: p.images_total,
            done: p.images_done,
            copied: p.copied,
            failed: p.failed,
            pod: w.pod.clone(),
            throttled: throttle::counts(&budgets),
            paused: throttle::pauses(&budgets),
            ..Default::default()
        }
    };
    report(&api, &w, &running(None)).await?;
    let plan = match crate::sync::plan(&source, &destination, &opts).await {
        Ok(p) => p,
        Err(e) => {
            let why = e.to_string();
            let _ = report(&api, &w, &failed(&w, format!("planning shard {}", w.shard.index), &why)).await;
            return Err(WorkerError::Plan(why));
        }
    };
    tracing::info!(
        shard = w.shard.index,
        of = w.shard.count,
        images = plan.images.len(),
        "shard planned"
    );
    let work = crate::sync::execute(&plan, &opts);
    tokio::pin!(work);
    let mut last = running(None);
    let mut written = tokio::time::Instant::now();
    let report = loop {
        tokio::select! {
            r = &mut work => break r,
            _ = tokio::time::sleep(PAUSE_CHECK) => {
                let now = running(progress.snapshot());
                // Progress at the report interval; a new 429 pause at once
                // (the other shards wait on it), at most once a second.
                let since = written.elapsed();
                let due = since >= w.report_interval
                    || (now.paused != last.paused && !now.paused.is_empty() && since >= Duration::from_secs(1));
                // A failed progress write is not the shard's failure: the final one counts.
                if due && now != last && self::report(&api, &w, &now).await.is_ok() {
                    last = now;
                    written = tokio::time::Instant::now();
                }
            }
        }
    };
    let mut st = ImageSyncStatus::default();
    tally(&mut st, &plan, &report, false);
    let outcome = Outcome::of(&report);
    let ok = st.failed == 0;
    let done = ShardStatus {
        job: w.job.clone(),
        state: if ok { "Succeeded" } else { "Failed" }.into(),
        seen: st.seen,
        done: report.images.len() as u64,
        copied: st.copied,
        already_present: st.already_present,
        failed: st.failed,
        pruned: st.pruned,
        rejected: outcome.rejected,
        failures: st.failures.into_iter().take(5).collect(),
        pod: w.pod.clone(),
        throttled: throttle::counts(&budgets),
        paused: vec![],
    };
    self::report(&api, &w, &done).await?;
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_clears_what_the_shards_last_pod_said_and_this_one_does_not() {
        let p = report_patch(
            2,
            &ShardStatus {
                job: "j".into(),
                state: "Succeeded".into(),
                ..Default::default()
            },
        );
        let shard = &p["status"]["shards"]["2"];
        assert_eq!(shard["state"], "Succeeded");
        for k in ["failures", "pod", "throttled", "paused"] {
            assert!(shard.get(k).is_some_and(|v| v.is_null()), "{k}: {p}");
        }
    }
}
