//! The RegistryCredential controller's reconcile: report whether each
//! credential's Secrets (login, CA, client certificate) exist and are
//! well-formed, and keep the namespace's
//! rendered auth.json as a `kubernetes.io/dockerconfigjson` pull Secret.

use crate::operator::condition::{Condition, set};
use crate::operator::context::{Context, Error, now};
use crate::operator::credential_cache::{Read, render_namespace};
use crate::operator::registry_credential::RegistryCredential;
use crate::operator::registry_credential::render as credentials;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use std::sync::Arc;

/// The namespace's rendered auth.json (what worker pods mount).
pub const PULL_SECRET: &str = "kopeo-registry-auth";

pub(crate) async fn reconcile_credential(c: Arc<RegistryCredential>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = c.namespace().unwrap_or_else(|| "default".into());
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let mut found = vec![];
    for name in credentials::secret_names(&c) {
        if let Some(s) = secrets.get_opt(&name).await? {
            found.push(s);
        }
    }
    let generation = c.meta().generation;
    let cond = match credentials::verdict(&c, |name| found.iter().find(|s| s.name_any() == name)) {
        Ok(_) => Condition {
            type_: "Ready".into(),
            status: "True".into(),
            reason: "SecretValid".into(),
            message: String::new(),
            observed_generation: generation,
            last_transition_time: now(),
        },
        Err(p) => Condition {
            type_: "Ready".into(),
            status: "False".into(),
            reason: p.reason.into(),
            message: p.message,
            observed_generation: generation,
            last_transition_time: now(),
        },
    };
    let mut st = c.status.clone().unwrap_or_default();
    let before = st.clone();
    set(&mut st.conditions, cond);
    st.observed_generation = generation;
    if st != before {
        let api: Api<RegistryCredential> = Api::namespaced(ctx.client.clone(), &ns);
        api.patch_status(
            &c.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({"status": st})),
        )
        .await?;
    }
    // The namespace's rendered auth.json, usable as an imagePullSecret.
    let rendered = render_namespace(&ctx, &ns, Read::Fresh).await?;
    let body = serde_json::to_string(&rendered.document).map_err(Error::RenderCredentials)?;
    // Owned by every credential in it: the garbage collector removes it with
    // the last one, and never while one is left.
    let pull = json!({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"name": PULL_SECRET, "labels": {"app.kubernetes.io/managed-by": "kopeo"},
                     "ownerReferences": rendered.owners},
        "stringData": {".dockerconfigjson": body},
    });
    secrets
        .patch(PULL_SECRET, &PatchParams::apply("kopeo").force(), &Patch::Apply(pull))
        .await?;
    Ok(Action::await_change())
}
