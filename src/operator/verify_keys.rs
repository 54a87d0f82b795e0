//! Finding `spec.verify.keys`: one key of a Secret or ConfigMap in the
//! resource's own namespace (never another's), read when a copy runs.

use crate::options::verify::KeySelector;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};

/// `spec.sign`'s private key and passphrase as found in the namespace, or why not.
pub type SignKey = Result<(Vec<u8>, Vec<u8>), String>;

/// What the signature stages of a resource's copies need from the operator:
/// the verify keys found (or why not) and where signatures are stored.
#[derive(Clone, Default)]
pub struct SignatureEnv {
    pub verify_keys: Option<Result<Vec<u8>, String>>,
    /// `spec.sign`'s private key and passphrase, as found (or why not).
    pub sign_key: Option<SignKey>,
    pub storage: Option<std::sync::Arc<crate::signature::lookaside::SignatureStorage>>,
}

/// `key` of a Secret's data (or of its stringData, as written in a file).
fn secret_value(s: &Secret, key: &str) -> Option<Vec<u8>> {
    s.data
        .as_ref()
        .and_then(|d| d.get(key).map(|b| b.0.clone()))
        .or_else(|| {
            s.string_data
                .as_ref()
                .and_then(|d| d.get(key))
                .map(|v| v.clone().into_bytes())
        })
}

/// The key data `sel` names, given the namespace's objects by name.
pub(crate) fn pick<'a>(
    sel: &KeySelector,
    secret: impl Fn(&str) -> Option<&'a Secret>,
    config_map: impl Fn(&str) -> Option<&'a ConfigMap>,
) -> Result<Vec<u8>, String> {
    let (kind, nk) = sel.target()?;
    let found = match kind {
        "Secret" => secret(&nk.name).map(|s| secret_value(s, &nk.key)),
        _ => config_map(&nk.name).map(|c| {
            c.data
                .as_ref()
                .and_then(|d| d.get(&nk.key).map(|v| v.clone().into_bytes()))
                .or_else(|| c.binary_data.as_ref().and_then(|d| d.get(&nk.key)).map(|b| b.0.clone()))
        }),
    };
    match found {
        None => Err(format!("verify.keys: {kind} {:?} not found", nk.name)),
        Some(None) => Err(format!("verify.keys: {kind} {:?} has no key {:?}", nk.name, nk.key)),
        Some(Some(d)) => Ok(d),
    }
}

/// Look `sel` up in namespace `ns` through the API.
pub(crate) async fn lookup(client: &kube::Client, ns: &str, sel: &KeySelector) -> Result<Vec<u8>, String> {
    let (kind, nk) = sel.target()?;
    let fail = |e: kube::Error| format!("verify.keys: reading {kind} {:?}: {e}", nk.name);
    let (mut secret, mut config_map) = (None, None);
    if kind == "Secret" {
        secret = kube::Api::<Secret>::namespaced(client.clone(), ns)
            .get_opt(&nk.name)
            .await
            .map_err(fail)?;
    } else {
        config_map = kube::Api::<ConfigMap>::namespaced(client.clone(), ns)
            .get_opt(&nk.name)
            .await
            .map_err(fail)?;
    }
    pick(sel, |_| secret.as_ref(), |_| config_map.as_ref())
}

/// `spec.sign`'s key and passphrase from `secret` (named `sign.secret_name`).
pub(crate) fn sign_key(
    sign: &crate::options::sign::SignSettings,
    secret: Option<&Secret>,
) -> Result<(Vec<u8>, Vec<u8>), String> {
    let Some(s) = secret else {
        return Err(format!("sign: Secret {:?} not found", sign.secret_name));
    };
    let (k, p) = sign.keys();
    let get = |name: &str| {
        secret_value(s, name).ok_or_else(|| format!("sign: Secret {:?} has no key {name:?}", sign.secret_name))
    };
    Ok((get(k)?, get(p)?))
}

/// Look `sign`'s Secret up in namespace `ns` through the API.
pub(crate) async fn lookup_sign_key(
    client: &kube::Client,
    ns: &str,
    sign: &crate::options::sign::SignSettings,
) -> SignKey {
    let secret = kube::Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(&sign.secret_name)
        .await
        .map_err(|e| format!("sign: reading Secret {:?}: {e}", sign.secret_name))?;
    sign_key(sign, secret.as_ref())
}

/// The keys `verify` and `sign` name, looked up in namespace `ns` through
/// the API, with `storage` for signatures.
pub(crate) async fn lookup_env(
    client: &kube::Client,
    ns: &str,
    verify: Option<&crate::options::verify::VerifySettings>,
    sign: Option<&crate::options::sign::SignSettings>,
    storage: std::sync::Arc<crate::signature::lookaside::SignatureStorage>,
) -> SignatureEnv {
    SignatureEnv {
        verify_keys: match verify {
            Some(v) => Some(lookup(client, ns, &v.keys).await),
            None => None,
        },
        sign_key: match sign {
            Some(k) => Some(lookup_sign_key(client, ns, k).await),
            None => None,
        },
        storage: Some(storage),
    }
}
