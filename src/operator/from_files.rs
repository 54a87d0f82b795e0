//! `kopeo run -f PATH`: reconcile ImageCopy, ImageSync and
//! RegistryCredential manifests once, without a cluster, through the same
//! reconcile code as the controllers. Secrets come from the same manifests.

use super::condition::{Condition, set};
use super::image_copy::ImageCopy;
use super::image_copy::reconcile::{CopyEnv, reconcile};
use super::image_sync::ImageSync;
use super::registry_credential::render::Rendered;
use super::registry_credential::{RegistryCredential, RegistryCredentialStatus};
use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why the manifests could not be reconciled.
#[derive(Debug, thiserror::Error)]
pub enum FromFilesError {
    #[error("reading {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", .path.display())]
    Yaml {
        path: PathBuf,
        #[source]
        source: serde_yaml_ng::Error,
    },
    /// A document of a known kind that does not fit its type.
    #[error("{}: {kind} {name}: {source}", .path.display())]
    Object {
        path: PathBuf,
        kind: String,
        name: String,
        #[source]
        source: serde_json::Error,
    },
    /// A document that is not a mapping with (if any) a mapping for `metadata`.
    #[error("{}: document {number} is not a Kubernetes object ({what})", .path.display())]
    NotAnObject {
        path: PathBuf,
        number: usize,
        what: &'static str,
    },
    #[error("{}: unsupported kind {kind} ({api_version})", .path.display())]
    UnsupportedKind {
        path: PathBuf,
        kind: String,
        api_version: String,
    },
    #[error("writing the statuses: {0}")]
    Output(#[from] serde_yaml_ng::Error),
}

/// Everything read from the manifests.
#[derive(Default)]
struct Manifests {
    secrets: Vec<Secret>,
    config_maps: Vec<k8s_openapi::api::core::v1::ConfigMap>,
    creds: Vec<RegistryCredential>,
    copies: Vec<ImageCopy>,
    syncs: Vec<ImageSync>,
}

impl Manifests {
    /// Secret `name` of namespace `ns` (objects resolve only in their own namespace).
    fn secret(&self, ns: &str, name: &str) -> Option<&Secret> {
        self.secrets
            .iter()
            .find(|s| s.namespace().as_deref() == Some(ns) && s.name_any() == name)
    }
    /// The keys `verify` and `sign` name, found in namespace `ns` only, and
    /// the operator's default signature storage.
    fn signature_env(
        &self,
        ns: &str,
        verify: Option<&crate::options::verify::VerifySettings>,
        sign: Option<&crate::options::sign::SignSettings>,
        crypt: (
            Option<&crate::options::encryption::EncryptionSettings>,
            Option<&crate::options::encryption::DecryptionSettings>,
        ),
    ) -> crate::operator::verify_keys::SignatureEnv {
        crate::operator::verify_keys::env_from(
            |n| self.secret(ns, n),
            |n| self.config_map(ns, n),
            verify,
            sign,
            crypt,
            Arc::new(crate::operator::context::default_signature_storage()),
        )
    }
    /// ConfigMap `name` of namespace `ns`.
    fn config_map(&self, ns: &str, name: &str) -> Option<&k8s_openapi::api::core::v1::ConfigMap> {
        self.config_maps
            .iter()
            .find(|c| c.namespace().as_deref() == Some(ns) && c.name_any() == name)
    }
}

fn read_error(path: &Path) -> impl FnOnce(std::io::Error) -> FromFilesError {
    let path = path.to_path_buf();
    move |source| FromFilesError::Read { path, source }
}

fn files(path: &Path) -> Result<Vec<PathBuf>, FromFilesError> {
    if path.is_dir() {
        let mut out: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(read_error(path))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml" || x == "json"))
            .collect();
        out.sort();
        Ok(out)
    } else {
        Ok(vec![path.to_path_buf()])
    }
}

fn load(paths: &[PathBuf]) -> Result<Manifests, FromFilesError> {
    let mut m = Manifests::default();
    for p in paths.iter().map(|p| files(p)).collect::<Result<Vec<_>, _>>()?.concat() {
        let text = std::fs::read_to_string(&p).map_err(read_error(&p))?;
        parse_documents(&p, &text, &mut m)?;
    }
    Ok(m)
}

/// Add the resources of one file's YAML documents (read from `p`) to `m`.
fn parse_documents(p: &Path, text: &str, m: &mut Manifests) -> Result<(), FromFilesError> {
    use serde::Deserialize as _;
    let p = p.to_path_buf();
    for (number, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let mut v = Value::deserialize(doc).map_err(|source| FromFilesError::Yaml {
            path: p.clone(),
            source,
        })?;
        if v.is_null() {
            continue;
        }
        // Found by fuzzing: a scalar document, or a scalar `metadata`, made
        // the namespace defaulting below panic.
        let not_object = |what| FromFilesError::NotAnObject {
            path: p.clone(),
            number: number + 1,
            what,
        };
        if !v.is_object() {
            return Err(not_object("not a mapping"));
        }
        if v.get("metadata").is_some_and(|m| !m.is_object()) {
            return Err(not_object("metadata is not a mapping"));
        }
        if v.pointer("/metadata/namespace").is_none() {
            v["metadata"]["namespace"] = json!("default");
        }
        let api_version = v["apiVersion"].as_str().unwrap_or("").to_string();
        let kind_name = v["kind"].as_str().unwrap_or("").to_string();
        let obj_name = v
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        let err = |source: serde_json::Error| FromFilesError::Object {
            path: p.clone(),
            kind: kind_name.clone(),
            name: obj_name.clone(),
            source,
        };
        match (api_version.as_str(), kind_name.as_str()) {
            ("v1", "Secret") => {
                // Fold stringData into data, as the API server does.
                // A `data` that is not a mapping is left for the Secret type
                // to refuse (found by fuzzing: folding into it panicked).
                let foldable = v.get("data").is_none_or(|d| d.is_object() || d.is_null());
                if let Some(Value::Object(sd)) = v.as_object_mut().and_then(|o| o.remove("stringData"))
                    && foldable
                {
                    for (k, val) in sd {
                        let enc = base64::engine::general_purpose::STANDARD.encode(val.as_str().unwrap_or(""));
                        v["data"][k] = Value::String(enc);
                    }
                }
                m.secrets.push(serde_json::from_value(v.clone()).map_err(err)?);
            }
            ("v1", "ConfigMap") => m.config_maps.push(serde_json::from_value(v.clone()).map_err(err)?),
            ("kopeo.dev/v1alpha1", "RegistryCredential") => {
                m.creds.push(serde_json::from_value(v.clone()).map_err(err)?)
            }
            ("kopeo.dev/v1alpha1", "ImageCopy") => m.copies.push(serde_json::from_value(v.clone()).map_err(err)?),
            ("kopeo.dev/v1alpha1", "ImageSync") => m.syncs.push(serde_json::from_value(v.clone()).map_err(err)?),
            (a, k) => {
                return Err(FromFilesError::UnsupportedKind {
                    path: p.clone(),
                    kind: k.to_string(),
                    api_version: a.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// The process's request budgets (one `kopeo run`, all its namespaces).
fn budgets() -> std::sync::Arc<crate::registry::budget::Budgets> {
    static BUDGETS: std::sync::OnceLock<std::sync::Arc<crate::registry::budget::Budgets>> = std::sync::OnceLock::new();
    BUDGETS.get_or_init(Default::default).clone()
}

fn render(ns: &str, m: &Manifests, statuses: &mut Vec<(String, String, String, Value)>, now: &str) -> Rendered {
    let creds: Vec<&RegistryCredential> = m
        .creds
        .iter()
        .filter(|c| c.namespace().as_deref() == Some(ns))
        .collect();
    // Credentials resolve only within their own namespace.
    let secret = |name: &str| m.secret(ns, name);
    let rendered = Rendered::new(creds.iter().copied(), secret).with_budgets(budgets(), ns);
    for (c, (name, verdict)) in creds.iter().zip(&rendered.verdicts) {
        let generation = c.metadata.generation;
        let (status, reason, message) = match verdict {
            Ok(()) => ("True", "SecretValid", String::new()),
            Err(p) => ("False", p.reason, p.message.clone()),
        };
        let mut st = RegistryCredentialStatus {
            observed_generation: generation,
            ..Default::default()
        };
        set(
            &mut st.conditions,
            Condition {
                type_: "Ready".into(),
                status: status.into(),
                reason: reason.into(),
                message,
                observed_generation: generation,
                last_transition_time: now.into(),
            },
        );
        statuses.push((
            "RegistryCredential".into(),
            ns.into(),
            name.clone(),
            serde_json::to_value(&st).unwrap_or_default(),
        ));
    }
    rendered
}

/// Parse one file's documents and render the credentials of each
/// namespace, as `kopeo run` does before it copies (the fuzz target's way in:
/// no network, no files).
pub(crate) fn parse_and_render(text: &str) -> Result<(), FromFilesError> {
    let mut m = Manifests::default();
    parse_documents(Path::new("input.yaml"), text, &mut m)?;
    let namespaces: std::collections::BTreeSet<String> = m.creds.iter().filter_map(|c| c.namespace()).collect();
    let mut statuses = vec![];
    for ns in namespaces {
        render(&ns, &m, &mut statuses, "2026-01-01T00:00:00Z");
    }
    Ok(())
}

fn ready(status: &Value) -> bool {
    status["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// Reconcile every resource in `paths` once; the statuses as YAML, and whether all are Ready.
pub async fn run(paths: &[PathBuf], now: &str) -> Result<(String, bool), FromFilesError> {
    let m = load(paths)?;
    let mut namespaces: Vec<String> = m
        .creds
        .iter()
        .map(|c| c.namespace())
        .chain(m.copies.iter().map(|c| c.namespace()))
        .chain(m.syncs.iter().map(|s| s.namespace()))
        .flatten()
        .collect();
    namespaces.sort();
    namespaces.dedup();
    let mut statuses: Vec<(String, String, String, Value)> = vec![];
    for ns in &namespaces {
        let rendered = render(ns, &m, &mut statuses, now);
        for c in m
            .copies
            .iter()
            .filter(|c| c.namespace().as_deref() == Some(ns.as_str()))
        {
            let mut env = CopyEnv {
                src: rendered.side(&c.spec.source),
                dest: rendered.side(&c.spec.destination),
                // `kopeo run` acts for its user: every transport, paths as written.
                local: Default::default(),
                verify_keys: None,
                sign_key: None,
                crypt: Default::default(),
                default_policy: None,
            };
            let crypt = (c.spec.encryption.as_ref(), c.spec.decryption.as_ref());
            let sig = m.signature_env(ns, c.spec.verify.as_ref(), c.spec.sign.as_ref(), crypt);
            (env.verify_keys, env.sign_key, env.crypt) = (sig.verify_keys, sig.sign_key, sig.crypt);
            // … and reaches OpenShift's image API as its kubeconfig's user.
            (env.src.atomic, env.dest.atomic) = Default::default();
            env.src.signature_storage = sig.storage.clone();
            env.dest.signature_storage = sig.storage;
            let st = reconcile(c, &env, now, None).await;
            statuses.push((
                "ImageCopy".into(),
                ns.clone(),
                c.name_any(),
                serde_json::to_value(&st).unwrap_or_default(),
            ));
        }
        for s in m.syncs.iter().filter(|s| s.namespace().as_deref() == Some(ns.as_str())) {
            let crypt = (s.spec.encryption.as_ref(), s.spec.decryption.as_ref());
            let sig = m.signature_env(ns, s.spec.verify.as_ref(), s.spec.sign.as_ref(), crypt);
            let st = super::image_sync::reconcile::reconcile(s, &rendered, &sig, now, None).await;
            statuses.push((
                "ImageSync".into(),
                ns.clone(),
                s.name_any(),
                serde_json::to_value(&st).unwrap_or_default(),
            ));
        }
    }
    let mut out = String::new();
    let mut all_ready = true;
    for (kind, ns, name, status) in statuses {
        all_ready &= ready(&status);
        let doc = json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": kind, "metadata": {"name": name, "namespace": ns}, "status": status});
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(&doc)?);
    }
    Ok((out, all_ready))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_that_are_not_objects_are_refused_not_panicked_on() {
        for (text, what) in [
            ("just text", "document 1 is not a Kubernetes object (not a mapping)"),
            (
                "---\n- a\n- b\n",
                "document 1 is not a Kubernetes object (not a mapping)",
            ),
            ("kind: Secret\nmetadata: x\n", "(metadata is not a mapping)"),
            (
                "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: text\nstringData: {a: b}\n",
                "Secret s: invalid type: string",
            ),
            (
                "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n---\n7\n",
                "document 2 is not a Kubernetes object",
            ),
        ] {
            let err = parse_and_render(text).unwrap_err().to_string();
            assert!(err.contains(what), "{text:?}: {err}");
        }
    }
}
