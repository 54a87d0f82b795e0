//! The ImageSync controller's reconcile: sync on spec changes, every
//! interval, and after a failure once its backoff has passed; within the
//! operator's global concurrency limit, with progress in status at a
//! bounded rate; a spec change or deletion cancels the sync.

use crate::operator::condition::is_true;
use crate::operator::context::{Context, Error, now};
use crate::operator::image_sync::ImageSync;
use crate::operator::image_sync::reconcile::{reconcile, syncing};
use crate::operator::memory::{backoff, failure_wait, remember, remembered};
use crate::operator::progress::{SyncProgress, SyncTally};
use crate::operator::supervise::{Ran, Reporting, finish, run_supervised};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

pub(crate) async fn reconcile_sync(s: Arc<ImageSync>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = s.namespace().unwrap_or_else(|| "default".into());
    let name = s.name_any();
    let interval = s
        .spec
        .interval
        .as_deref()
        .and_then(|i| crate::duration::parse_duration(i).ok())
        .unwrap_or(Duration::from_secs(3600));
    let key = format!("ImageSync/{ns}/{name}");
    let generation = s.meta().generation;
    // A dry run only plans: the controller does that itself, workers or not.
    let sharded = (s.spec.workers.is_some() && !s.spec.dry_run) || s.status.as_ref().is_some_and(|st| st.job.is_some());
    if sharded {
        let due = due_in(&s, &ctx, &ns, &key, interval);
        return crate::operator::image_sync::workers::reconcile(s, ctx, interval, due).await;
    }
    if s.spec.suspend {
        return Ok(Action::await_change());
    }
    let wait = due_in(&s, &ctx, &ns, &key, interval);
    if let Some(left) = wait.filter(|w| !w.is_zero()) {
        return Ok(Action::requeue(left.max(Duration::from_secs(1))));
    }
    let api: Api<ImageSync> = Api::namespaced(ctx.client.clone(), &ns);
    let tally = Arc::new(SyncTally::default());
    let counter = tally.clone();
    let on_done: crate::sync::OnDone =
        Arc::new(move |r: &crate::sync::ImageResult, total: usize| counter.done(r, total));
    let reporting = Reporting {
        every: ctx.progress_interval,
        snapshot: || tally.snapshot(),
        // The first write also says that a sync runs (kstatus Progressing).
        patch: |p: &SyncProgress, first: bool| match first {
            true => json!({"status": syncing(&s, &now(), p.clone())}),
            false => json!({"status": {"progress": p}}),
        },
    };
    let at = now();
    let run = run_supervised(&ctx, &api, &*s, "ImageSync", reporting, |rendered| {
        let (s, at) = (s.clone(), at.clone());
        let (client, storage, policy) = (ctx.client.clone(), ctx.signatures.clone(), ctx.default_policy.clone());
        let ns = s.namespace().unwrap_or_else(|| "default".into());
        async move {
            let mut sig = crate::operator::verify_keys::lookup_env(
                &client,
                &ns,
                s.spec.verify.as_ref(),
                s.spec.sign.as_ref(),
                (s.spec.encryption.as_ref(), s.spec.decryption.as_ref()),
                storage,
            )
            .await;
            sig.default_policy = policy;
            reconcile(&s, &rendered, &sig, &at, Some(on_done)).await
        }
    })
    .await?;
    let (mut status, took) = match run {
        Ran::Busy => return Ok(Action::requeue(Duration::from_secs(5))),
        Ran::Cancelled => return Ok(Action::await_change()),
        Ran::Done(st, took) => (st, took),
    };
    // A plan that could not be made fails as much as an image that could not be copied.
    let failed = !is_true(&status.conditions, "Ready");
    let result = if failed { "failed" } else { "synced" };
    ctx.metrics.record("ImageSync", result, took.as_secs_f64(), 0);
    status.next_sync_time = Some(crate::timestamp::format_unix(
        crate::timestamp::now_unix() + interval.as_secs() as i64,
    ));
    finish(
        &ctx,
        &api,
        &*s,
        s.status.as_ref(),
        &status,
        |st| &st.conditions,
        &["progress"],
        "Sync",
    )
    .await?;
    remember(&ctx, &*s, !failed);
    if let Some(wait) = backoff(&ctx, &key, generation, failed) {
        return Ok(Action::requeue(wait.min(interval)));
    }
    Ok(Action::requeue(interval))
}

/// How long until `s` is due to sync (`None` or zero: now). Level-triggered,
/// but a sync is expensive: run it when the spec changed, when a failed
/// run's backoff has passed, or when the interval has passed since the last
/// run — as this process remembers it (a reconcile may see an object older
/// than its own last status write), else as the status says.
fn due_in(s: &ImageSync, ctx: &Context, ns: &str, key: &str, interval: Duration) -> Option<Duration> {
    let generation = s.meta().generation;
    let st = s.status.clone().unwrap_or_default();
    let synced_here = remembered(ctx, s);
    let from_status = (st.observed_generation == generation)
        .then(|| st.last_sync_time.as_deref().and_then(crate::timestamp::parse_rfc3339))
        .flatten()
        .map(|last| Duration::from_secs((crate::timestamp::now_unix() - last).max(0) as u64));
    if let Some(left) = failure_wait(ctx, ns, key, generation) {
        Some(left)
    } else if let Some(since) = synced_here {
        interval.checked_sub(since)
    } else if st.observed_generation == generation && !is_true(&st.conditions, "Ready") {
        // It failed before this process started: try again now.
        None
    } else {
        from_status.and_then(|since| interval.checked_sub(since))
    }
}
