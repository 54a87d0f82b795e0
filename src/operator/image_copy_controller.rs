//! The ImageCopy controller's reconcile: copy when the spec changed or the
//! source tag moved, report progress at a bounded rate, cancel a copy whose
//! resource changed or went away, and write status only when it changed.

use super::controller::{Context, Error, backoff, now, render_namespace};
use super::image_copy::ImageCopy;
use super::image_copy_reconcile::{CopyEnv, copying, reconcile};
use super::progress::{CopyProgress, Tally};
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
            verified.insert(verified_key(&ic), (ic.meta().generation, Instant::now()));
        } else {
            verified.remove(&verified_key(&ic));
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

/// Skip a reconcile that cannot change anything: this process wrote `ic`
/// Ready at its generation within its refresh interval. Its own status
/// write and Secret changes in the namespace trigger such reconciles, often
/// with an object from before that write; each would otherwise render
/// credentials, ask the source and perhaps copy again. Keyed by UID: a
/// resource deleted and created again under its name starts afresh.
fn still_verified(ctx: &Context, ic: &ImageCopy, refresh: Option<Duration>) -> Option<Action> {
    if ic.spec.suspend {
        return None;
    }
    let verified = ctx.verified.lock().unwrap_or_else(|p| p.into_inner());
    let (generation, at) = verified.get(&verified_key(ic))?;
    if *generation != ic.meta().generation {
        return None;
    }
    match refresh {
        None => Some(Action::await_change()),
        Some(d) => d.checked_sub(at.elapsed()).map(Action::requeue),
    }
}

fn verified_key(ic: &ImageCopy) -> String {
    ic.meta()
        .uid
        .clone()
        .unwrap_or_else(|| format!("{:?}/{}", ic.namespace(), ic.name_any()))
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
