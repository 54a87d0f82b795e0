//! Finding the keys a resource's copies need — `spec.verify.keys`,
//! `spec.sign`'s Secret, `spec.encryption` recipients and `spec.decryption`
//! keys: each one key of a Secret or ConfigMap in the resource's own
//! namespace (never another's), read when a copy runs.

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
    /// The data of `spec.encryption` and `spec.decryption` keys.
    pub crypt: CryptKeys,
    /// The operator's policy for a resource without `spec.verify`.
    pub default_policy: Option<std::sync::Arc<crate::signature::policy::Policy>>,
}

/// The data of `spec.encryption.recipients` and `spec.decryption.keys`
/// (Secret and ConfigMap keys in order; providers need none), or why not.
#[derive(Clone, Default)]
pub struct CryptKeys {
    pub recipients: Option<Result<Vec<Vec<u8>>, String>>,
    pub private: Option<Result<Vec<Vec<u8>>, String>>,
}

impl CryptKeys {
    /// The engine's encryption and decryption options for these specs.
    pub fn options(
        &self,
        encryption: Option<&crate::options::encryption::EncryptionSettings>,
        decryption: Option<&crate::options::encryption::DecryptionSettings>,
    ) -> Result<crate::options::encryption::CryptOptions, String> {
        let data = |d: &Option<Result<Vec<Vec<u8>>, String>>| d.clone().unwrap_or(Ok(vec![]));
        let (r, p) = (data(&self.recipients)?, data(&self.private)?);
        crate::options::encryption::from_specs(encryption, decryption, &r, &p)
    }
}

/// The Secrets and ConfigMaps a resource's copies read keys from, so that
/// a change of one of them (a key created after the resource, or rotated)
/// runs the resource again at once.
pub trait KeyObjects {
    /// (kind, name) of each: `Secret` or `ConfigMap`, in the resource's namespace.
    fn key_objects(&self) -> Vec<(&'static str, String)>;
}

/// The objects `verify`, `sign`, `encryption` and `decryption` name.
pub(crate) fn named_objects(
    verify: Option<&crate::options::verify::VerifySettings>,
    sign: Option<&crate::options::sign::SignSettings>,
    encryption: Option<&crate::options::encryption::EncryptionSettings>,
    decryption: Option<&crate::options::encryption::DecryptionSettings>,
) -> Vec<(&'static str, String)> {
    let selectors = verify.map(|v| v.keys.clone()).into_iter().chain(
        encryption
            .map(|e| &e.recipients)
            .into_iter()
            .chain(decryption.map(|d| &d.keys))
            .flatten()
            .filter_map(|s| s.selector()),
    );
    let mut out: Vec<(&'static str, String)> = selectors
        .filter_map(|sel| sel.target().ok().map(|(kind, nk)| (kind, nk.name.clone())))
        .collect();
    out.extend(sign.map(|s| ("Secret", s.secret_name.clone())));
    out
}

/// Every key `sources` read from a Secret or ConfigMap, through `find`.
pub(crate) fn pick_all(
    label: &str,
    sources: &[crate::options::encryption::KeySource],
    mut find: impl FnMut(&KeySelector) -> Result<Vec<u8>, String>,
) -> Result<Vec<Vec<u8>>, String> {
    sources
        .iter()
        .filter_map(|s| s.selector())
        .map(|sel| find(&sel).map_err(|e| e.replacen("verify.keys", label, 1)))
        .collect()
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

/// The keys `verify`, `sign` and `crypt` name, found through `secret` and
/// `config_map` (the namespace's objects by name), with `storage` for signatures.
pub(crate) fn env_from<'a>(
    secret: impl Fn(&str) -> Option<&'a Secret> + Copy,
    config_map: impl Fn(&str) -> Option<&'a ConfigMap> + Copy,
    verify: Option<&crate::options::verify::VerifySettings>,
    sign: Option<&crate::options::sign::SignSettings>,
    crypt: (
        Option<&crate::options::encryption::EncryptionSettings>,
        Option<&crate::options::encryption::DecryptionSettings>,
    ),
    storage: std::sync::Arc<crate::signature::lookaside::SignatureStorage>,
) -> SignatureEnv {
    let find = |sel: &KeySelector| pick(sel, secret, config_map);
    SignatureEnv {
        crypt: CryptKeys {
            recipients: crypt.0.map(|e| pick_all("encryption.recipients", &e.recipients, find)),
            private: crypt.1.map(|d| pick_all("decryption.keys", &d.keys, find)),
        },
        verify_keys: verify.map(|v| pick(&v.keys, secret, config_map)),
        sign_key: sign.map(|k| sign_key(k, secret(&k.secret_name))),
        storage: Some(storage),
        default_policy: None,
    }
}

/// Where a worker pod finds the Secrets and ConfigMaps its sync reads keys
/// from: `DIR/secret/NAME/KEY` and `DIR/configmap/NAME/KEY`, as Secret and
/// ConfigMap volumes lay them out.
pub fn mount_path(dir: &str, kind: &str, name: &str) -> String {
    let kind = if kind == "Secret" { "secret" } else { "configmap" };
    format!("{dir}/{kind}/{name}")
}

/// The objects `named` as mounted under `dir` ([`mount_path`]); an object
/// whose directory is missing or empty (an optional volume of an object
/// that does not exist) is not found.
pub fn read_mounted(
    dir: &std::path::Path,
    named: &[(&'static str, String)],
) -> Result<(Vec<Secret>, Vec<ConfigMap>), String> {
    let (mut secrets, mut config_maps) = (vec![], vec![]);
    for (kind, name) in named {
        let at = std::path::PathBuf::from(mount_path(&dir.to_string_lossy(), kind, name));
        let entries = match std::fs::read_dir(&at) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("reading {}: {e}", at.display())),
            Ok(e) => e,
        };
        let mut data = std::collections::BTreeMap::new();
        for e in entries {
            let e = e.map_err(|e| format!("reading {}: {e}", at.display()))?;
            let key = e.file_name().to_string_lossy().into_owned();
            // The kubelet's `..data` and timestamped directories hold the same keys.
            if key.starts_with("..") || !e.path().is_file() {
                continue;
            }
            let bytes = std::fs::read(e.path()).map_err(|err| format!("reading {}: {err}", e.path().display()))?;
            data.insert(key, k8s_openapi::ByteString(bytes));
        }
        if data.is_empty() {
            continue;
        }
        let metadata = kube::api::ObjectMeta {
            name: Some(name.clone()),
            ..Default::default()
        };
        if *kind == "Secret" {
            secrets.push(Secret {
                metadata,
                data: Some(data),
                ..Default::default()
            });
        } else {
            config_maps.push(ConfigMap {
                metadata,
                binary_data: Some(data),
                ..Default::default()
            });
        }
    }
    Ok((secrets, config_maps))
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
    crypt: (
        Option<&crate::options::encryption::EncryptionSettings>,
        Option<&crate::options::encryption::DecryptionSettings>,
    ),
    storage: std::sync::Arc<crate::signature::lookaside::SignatureStorage>,
) -> SignatureEnv {
    let mut keys = CryptKeys::default();
    for (label, sources, slot) in [
        (
            "encryption.recipients",
            crypt.0.map(|e| &e.recipients),
            &mut keys.recipients,
        ),
        ("decryption.keys", crypt.1.map(|d| &d.keys), &mut keys.private),
    ] {
        if let Some(sources) = sources {
            let mut out = vec![];
            let mut failed = None;
            for sel in sources.iter().filter_map(|s| s.selector()) {
                match lookup(client, ns, &sel).await {
                    Ok(d) => out.push(d),
                    Err(e) => {
                        failed = Some(e.replacen("verify.keys", label, 1));
                        break;
                    }
                }
            }
            *slot = Some(failed.map_or(Ok(out), Err));
        }
    }
    SignatureEnv {
        crypt: keys,
        verify_keys: match verify {
            Some(v) => Some(lookup(client, ns, &v.keys).await),
            None => None,
        },
        sign_key: match sign {
            Some(k) => Some(lookup_sign_key(client, ns, k).await),
            None => None,
        },
        storage: Some(storage),
        default_policy: None,
    }
}
