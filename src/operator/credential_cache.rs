//! RegistryCredentials as the reconciles read them: from caches kept by
//! watches of their own (no request per copy), or listed fresh; and a
//! namespace's credentials rendered with the Secrets they name.

use super::context::{Context, Error};
use super::registry_credential::RegistryCredential;
use super::registry_credential::render::{self as credentials, Rendered};
use k8s_openapi::api::core::v1::Secret;
use kube::api::ListParams;
use kube::{Api, ResourceExt};

/// RegistryCredentials kept by a watch of their own, and whether it has
/// listed them once. (Not the controller's store: kube's store readiness
/// wakes only one waiter, and the controller itself waits on it.)
#[derive(Clone)]
pub(crate) struct CredentialCache {
    pub(crate) store: kube::runtime::reflector::Store<RegistryCredential>,
    pub(crate) ready: tokio::sync::watch::Receiver<bool>,
}

/// Where to read a namespace's RegistryCredentials from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Read {
    /// The controllers' cache: no request per copy; may lag a moment.
    Cached,
    /// The API server: what the pull Secret is rendered from.
    Fresh,
}

/// Render every RegistryCredential of `ns` (Secrets looked up in `ns` only).
pub(crate) async fn render_namespace(ctx: &Context, ns: &str, read: Read) -> Result<Rendered, Error> {
    let client = &ctx.client;
    // A credential being deleted is no longer used.
    let creds: Vec<RegistryCredential> = namespace_credentials(ctx, ns, read)
        .await?
        .into_iter()
        .filter(|c| c.metadata.deletion_timestamp.is_none())
        .collect();
    // Only the Secrets the credentials name are read: a namespace may hold
    // many, and this runs on every reconcile.
    let api = Api::<Secret>::namespaced(client.clone(), ns);
    let mut names: Vec<String> = creds.iter().flat_map(credentials::secret_names).collect();
    names.sort();
    names.dedup();
    let mut secrets = vec![];
    for name in names {
        if let Some(s) = api.get_opt(&name).await? {
            secrets.push(s);
        }
    }
    Ok(
        Rendered::new(&creds, |name| secrets.iter().find(|s| s.name_any() == name))
            .with_budgets(ctx.budgets.clone(), ns),
    )
}

/// The RegistryCredentials of `ns`: from the credential controllers' caches
/// (no API request per copy), or listed. A credential the cache has not
/// seen yet requeues the copies of its namespace when it arrives, as any
/// credential change does; the pull Secret, which nothing would correct
/// later, is rendered from a fresh list.
async fn namespace_credentials(ctx: &Context, ns: &str, read: Read) -> Result<Vec<RegistryCredential>, Error> {
    let caches = match read {
        Read::Cached => ctx.credentials.read().unwrap_or_else(|p| p.into_inner()).clone(),
        Read::Fresh => vec![],
    };
    let mut cached = !caches.is_empty();
    for c in &caches {
        let mut ready = c.ready.clone();
        cached &= ready.wait_for(|r| *r).await.is_ok();
    }
    if cached {
        return Ok(caches
            .iter()
            .flat_map(|c| c.store.state())
            .filter(|c| c.namespace().as_deref() == Some(ns))
            .map(|c| (*c).clone())
            .collect());
    }
    Ok(Api::<RegistryCredential>::namespaced(ctx.client.clone(), ns)
        .list(&ListParams::default())
        .await?
        .items)
}
