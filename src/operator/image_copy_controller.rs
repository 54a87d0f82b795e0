//! The ImageCopy controller's reconcile: copy when the spec changed or the
//! source tag moved, report progress at a bounded rate, cancel a copy whose
//! resource changed or went away, and write status only when it changed.

use super::condition::is_true;
use super::controller::{Context, Error, Read, announce, backoff, now, remember, remembered, render_namespace};
use super::image_copy::ImageCopy;
use super::image_copy_reconcile::{CopyEnv, copying, reconcile};
use super::progress::{CopyProgress, Tally};
use super::running::{Reporting, status_patch, supervise};
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

pub(super) async fn reconcile_copy(ic: Arc<ImageCopy>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = ic.namespace().unwrap_or_else(|| "default".into());
    let name = ic.name_any();
    let key = format!("ImageCopy/{ns}/{name}");
    let refresh = ic
        .spec
        .refresh_interval
        .as_deref()
        .and_then(|r| crate::duration::parse_duration(r).ok());
    if let Some(action) = still_verified(&ctx, &ic, refresh) {
        return Ok(action);
    }
    // The semaphore is never closed; were it, trying later is right.
    let Ok(_permit) = ctx.work.acquire().await else {
        return Ok(Action::requeue(Duration::from_secs(5)));
    };
    let rendered = render_namespace(&ctx, &ns, Read::Cached).await?;
    let env = CopyEnv {
        src: rendered.side(&ic.spec.source),
        dest: rendered.side(&ic.spec.destination),
        local: ctx.local.clone(),
    };
    ctx.metrics.in_flight.inc();
    let started = std::time::Instant::now();
    // A spec change or a deletion cancels the running copy: dropping it
    // leaves nothing committed (every destination commits atomically), and
    // the controller runs again for the new generation.
    let at = now();
    let tally = Arc::new(Tally::default());
    let api: Api<ImageCopy> = Api::namespaced(ctx.client.clone(), &ns);
    let reporting = Reporting {
        every: ctx.progress_interval,
        snapshot: || tally.snapshot(),
        // The first write also says that a copy runs (kstatus Progressing).
        patch: |p: &CopyProgress, first: bool| match first {
            true => json!({"status": copying(&ic, &now(), p.clone())}),
            false => json!({"status": {"progress": p}}),
        },
    };
    let outcome = match supervise(&api, &*ic, reporting, reconcile(&ic, &env, &at, Some(tally.clone()))).await {
        Ok(s) => Some(s),
        Err(why) => {
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
    let ready = is_true(&status.conditions, "Ready");
    let stalled = is_true(&status.conditions, "Stalled");
    // A copy ran when the engine reported the image's blobs.
    let copied = tally.snapshot().is_some();
    let seconds = started.elapsed().as_secs_f64();
    if copied && ready {
        ctx.metrics.record("ImageCopy", "copied", seconds, status.bytes_copied);
    } else if let Some(r) = status.conditions.iter().find(|c| c.type_ == "Ready" && !ready) {
        ctx.metrics.record("ImageCopy", &r.reason, seconds, 0);
    }
    // A copy that ran may have written progress: always clear it.
    if copied || ic.status.as_ref() != Some(&status) {
        let patch = status_patch(ic.status.as_ref(), &status, if copied { &["progress"] } else { &[] })?;
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await?;
        let before = ic.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
        announce(&ctx, &ic.object_ref(&()), before, &status.conditions, "Copy").await?;
    }
    remember(&ctx, &*ic, ready);
    if let Some(wait) = backoff(&ctx, &key, ic.meta().generation, !ready && !ic.spec.suspend) {
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

/// Skip a reconcile that cannot change anything: this process wrote `ic`
/// Ready at its generation within its refresh interval. Its own status
/// write and Secret changes in the namespace trigger such reconciles, often
/// with an object from before that write; each would otherwise render
/// credentials, ask the source and perhaps copy again.
fn still_verified(ctx: &Context, ic: &ImageCopy, refresh: Option<Duration>) -> Option<Action> {
    if ic.spec.suspend {
        return None;
    }
    let since = remembered(ctx, ic)?;
    match refresh {
        None => Some(Action::await_change()),
        Some(d) => d.checked_sub(since).map(Action::requeue),
    }
}
