//! The ImageSync controller's reconcile: sync on spec changes and every
//! interval, within the operator's global concurrency limit.

use super::controller::{Context, Error, backoff, now, render_namespace};
use super::image_sync::ImageSync;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

pub(super) async fn reconcile_sync(s: Arc<ImageSync>, ctx: Arc<Context>) -> Result<Action, Error> {
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
