//! The ImageCopy controller's reconcile: copy when the spec changed or the
//! source tag moved, report progress at a bounded rate, cancel a copy whose
//! resource changed or went away, and write status only when it changed.

use crate::operator::condition::is_true;
use crate::operator::context::{Context, Error, now};
use crate::operator::image_copy::ImageCopy;
use crate::operator::image_copy::reconcile::{CopyEnv, copying, reconcile};
use crate::operator::memory::{backoff, remember, remembered};
use crate::operator::progress::{CopyProgress, Tally};
use crate::operator::supervise::{Ran, Reporting, finish, run_supervised};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

pub(crate) async fn reconcile_copy(ic: Arc<ImageCopy>, ctx: Arc<Context>) -> Result<Action, Error> {
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
    let run = run_supervised(&ctx, &api, &*ic, "ImageCopy", reporting, |rendered| {
        let mut env = CopyEnv {
            src: rendered.side(&ic.spec.source),
            dest: rendered.side(&ic.spec.destination),
            local: ctx.local.clone(),
            verify_keys: None,
            sign_key: None,
            crypt: Default::default(),
            default_policy: ctx.default_policy.clone(),
        };
        env.src.signature_storage = Some(ctx.signatures.clone());
        env.dest.signature_storage = Some(ctx.signatures.clone());
        let (ic, at, tally) = (ic.clone(), at.clone(), tally.clone());
        let (client, ns, storage) = (ctx.client.clone(), ns.clone(), ctx.signatures.clone());
        async move {
            let sig = crate::operator::verify_keys::lookup_env(
                &client,
                &ns,
                ic.spec.verify.as_ref(),
                ic.spec.sign.as_ref(),
                (ic.spec.encryption.as_ref(), ic.spec.decryption.as_ref()),
                storage,
            )
            .await;
            (env.verify_keys, env.sign_key, env.crypt) = (sig.verify_keys, sig.sign_key, sig.crypt);
            reconcile(&ic, &env, &at, Some(tally)).await
        }
    })
    .await?;
    let (status, took) = match run {
        Ran::Busy => return Ok(Action::requeue(Duration::from_secs(5))),
        Ran::Cancelled => return Ok(Action::await_change()),
        Ran::Done(s, took) => (s, took),
    };
    let ready = is_true(&status.conditions, "Ready");
    let stalled = is_true(&status.conditions, "Stalled");
    // A copy ran when the engine reported the image's blobs.
    let copied = tally.snapshot().is_some();
    let seconds = took.as_secs_f64();
    if copied && ready {
        ctx.metrics.record("ImageCopy", "copied", seconds, status.bytes_copied);
    } else if let Some(r) = status.conditions.iter().find(|c| c.type_ == "Ready" && !ready) {
        ctx.metrics.record("ImageCopy", &r.reason, seconds, 0);
    }
    // A copy that ran may have written progress: always clear it.
    if copied || ic.status.as_ref() != Some(&status) {
        let clear: &[&str] = if copied { &["progress"] } else { &[] };
        finish(
            &ctx,
            &api,
            &*ic,
            ic.status.as_ref(),
            &status,
            |s| &s.conditions,
            clear,
            "Copy",
        )
        .await?;
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
