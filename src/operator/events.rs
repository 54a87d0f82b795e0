//! Events a human reads in `kubectl describe`: one per change of a
//! resource's Ready condition.

use super::condition::Condition;
use super::context::{Context, Error};

/// Publish an Event when the Ready condition changed status or reason
/// (Warning unless it became True): what `kubectl describe` shows.
pub(crate) async fn announce(
    ctx: &Context,
    object: &k8s_openapi::api::core::v1::ObjectReference,
    before: &[Condition],
    after: &[Condition],
    action: &str,
) -> Result<(), Error> {
    let ready = |cs: &[Condition]| cs.iter().find(|c| c.type_ == "Ready").cloned();
    let Some(now) = ready(after) else { return Ok(()) };
    if ready(before).is_some_and(|b| b.status == now.status && b.reason == now.reason) {
        return Ok(());
    }
    let ev = kube::runtime::events::Event {
        type_: if now.status == "True" {
            kube::runtime::events::EventType::Normal
        } else {
            kube::runtime::events::EventType::Warning
        },
        reason: now.reason.clone(),
        note: Some(now.message.chars().take(1000).collect()),
        action: action.into(),
        secondary: None,
    };
    ctx.recorder.publish(&ev, object).await?;
    Ok(())
}
