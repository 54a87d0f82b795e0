//! The run of a copy or a sync, as both controllers do it: a permit of the
//! global concurrency limit, the namespace's credentials, the in-flight
//! metric; progress written to status at a bounded rate; cancellation when
//! the resource's spec changes or it goes away; then the status patch and
//! the Event. Each kind adds only what is its own (what to run, when next).

use super::condition::Condition;
use super::context::{Context, Error};
use super::credential_cache::{Read, render_namespace};
use super::registry_credential::render::Rendered;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

/// How a supervised run reports progress: a snapshot (`None` until there is
/// something to say) and the status patch for it (`first` for the write
/// that also says the run started).
pub(super) struct Reporting<S, F> {
    pub every: Duration,
    pub snapshot: S,
    pub patch: F,
}

/// How a supervised run ended.
pub(crate) enum Ran<T> {
    /// No permit could be had (the limit is never closed; were it, try later).
    Busy,
    /// The resource changed or went away: the run was dropped.
    Cancelled,
    /// It finished with this result, after this long.
    Done(T, Duration),
}

/// Run `work` for `obj` as every copy and sync runs: within the global
/// concurrency limit, with the namespace's credentials (read from the
/// cache), counted in flight, its progress reported and its cancellation
/// watched. A cancelled run is recorded in the metrics as `kind`/cancelled.
pub(crate) async fn run_supervised<K, P, T, S, F, Fut>(
    ctx: &Context,
    api: &Api<K>,
    obj: &K,
    kind: &'static str,
    reporting: Reporting<S, F>,
    work: impl FnOnce(Rendered) -> Fut,
) -> Result<Ran<T>, Error>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
    P: PartialEq,
    S: Fn() -> Option<P>,
    F: Fn(&P, bool) -> Value,
    Fut: Future<Output = T>,
{
    let Ok(_permit) = ctx.work.acquire().await else {
        return Ok(Ran::Busy);
    };
    let ns = obj.namespace().unwrap_or_else(|| "default".into());
    let rendered = render_namespace(ctx, &ns, Read::Cached).await?;
    ctx.metrics.in_flight.inc();
    let started = std::time::Instant::now();
    let outcome = supervise(api, obj, reporting, work(rendered)).await;
    ctx.metrics.in_flight.dec();
    Ok(match outcome {
        Ok(t) => Ran::Done(t, started.elapsed()),
        Err(why) => {
            tracing::info!(kind, name = %obj.name_any(), why, "run cancelled");
            ctx.metrics
                .record(kind, "cancelled", started.elapsed().as_secs_f64(), 0);
            Ran::Cancelled
        }
    })
}

/// Write `new` as `obj`'s status (clearing `clear` and what `new` dropped)
/// and publish an Event if its Ready condition changed.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn finish<K, St>(
    ctx: &Context,
    api: &Api<K>,
    obj: &K,
    old: Option<&St>,
    new: &St,
    conditions: impl Fn(&St) -> &[Condition],
    clear: &[&str],
    action: &str,
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    St: serde::Serialize,
{
    let patch = status_patch(old, new, clear)?;
    api.patch_status(&obj.name_any(), &PatchParams::default(), &Patch::Merge(patch))
        .await?;
    let before = old.map(&conditions).unwrap_or_default();
    super::events::announce(ctx, &obj.object_ref(&()), before, conditions(new), action).await
}

/// Run `work` for `obj`, writing its progress meanwhile; `Err` says why it
/// was cancelled (dropping `work` commits nothing: destinations commit
/// atomically, last). No progress write is left in flight when this returns.
pub(super) async fn supervise<K, P, T, S, F>(
    api: &Api<K>,
    obj: &K,
    reporting: Reporting<S, F>,
    work: impl Future<Output = T>,
) -> Result<T, &'static str>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
    P: PartialEq,
    S: Fn() -> Option<P>,
    F: Fn(&P, bool) -> Value,
{
    let done = tokio::sync::Notify::new();
    let name = obj.name_any();
    let run = async {
        let work = async {
            let t = work.await;
            // `notify_one` keeps a permit should the writer be mid-write.
            done.notify_one();
            t
        };
        tokio::join!(work, report(api, &name, &reporting, &done)).0
    };
    tokio::select! {
        t = run => Ok(t),
        why = superseded(api, obj) => Err(why),
    }
}

/// Write progress: first after a short grace (runs faster than that never
/// show it), then at most every `every` and only when it moved. Returns
/// when `done` fires, never in the middle of a write (one landing after
/// the final status would undo it).
async fn report<K, P, S, F>(api: &Api<K>, name: &str, r: &Reporting<S, F>, done: &tokio::sync::Notify)
where
    K: Clone + DeserializeOwned + Debug,
    P: PartialEq,
    S: Fn() -> Option<P>,
    F: Fn(&P, bool) -> Value,
{
    let mut last: Option<P> = None;
    loop {
        let wait = if last.is_none() {
            r.every.min(Duration::from_secs(1))
        } else {
            r.every
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = done.notified() => return,
        }
        let Some(p) = (r.snapshot)() else { continue };
        if last.as_ref() == Some(&p) {
            continue;
        }
        let patch = (r.patch)(&p, last.is_none());
        match api
            .patch_status(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => last = Some(p),
            Err(e) => tracing::debug!(name, error = %e, "writing progress"),
        }
    }
}

/// Resolves when `obj` is deleted or its spec changes (polled: cheap, and
/// independent of the controller's own watch).
async fn superseded<K>(api: &Api<K>, obj: &K) -> &'static str
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let name = obj.name_any();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        match api.get_opt(&name).await {
            Ok(None) => return "deleted",
            Ok(Some(o)) if o.meta().deletion_timestamp.is_some() => return "deleted",
            Ok(Some(o)) if o.meta().generation != obj.meta().generation => return "spec changed",
            _ => {}
        }
    }
}

/// A JSON merge patch taking status `old` to `new`: fields `new` drops are
/// removed (a merge patch keeps what it does not mention), and `clear` too.
pub(super) fn status_patch<T: serde::Serialize>(old: Option<&T>, new: &T, clear: &[&str]) -> Result<Value, Error> {
    let to_value = |v| serde_json::to_value(v).map_err(Error::EncodeStatus);
    let mut patch = to_value(new)?;
    let old = match old {
        Some(o) => to_value(o)?,
        None => Value::Null,
    };
    let dropped = old.as_object().into_iter().flat_map(|o| o.keys().map(String::as_str));
    if let Some(p) = patch.as_object_mut() {
        for k in dropped.chain(clear.iter().copied()) {
            if !p.contains_key(k) {
                p.insert(k.to_string(), Value::Null);
            }
        }
    }
    Ok(json!({ "status": patch }))
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
