//! Rendering a namespace's RegistryCredentials and their Secrets into one
//! auth.json (what the copies use), and judging each credential's Secret.

use super::registry_credential::RegistryCredential;
use crate::reference::ImageReference;
use crate::transport::OpenOptions;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use serde_json::{Map, Value, json};
use std::path::PathBuf;

/// Why a credential cannot be used (the condition reason and a message; never the secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialProblem {
    pub reason: &'static str,
    pub message: String,
}

fn string(secret: &Secret, key: &str) -> Option<String> {
    let b = secret.data.as_ref()?.get(key)?;
    String::from_utf8(b.0.clone()).ok()
}

/// The auth.json entries (`key → {"auth": …}` or identity token) one credential contributes.
pub fn entries(cred: &RegistryCredential, secret: Option<&Secret>) -> Result<Map<String, Value>, CredentialProblem> {
    let Some(secret_ref) = &cred.spec.secret_ref else {
        if cred.spec.tls.is_none() {
            // The CRD refuses this too; `kopeo run` has no API server to.
            return Err(CredentialProblem {
                reason: "InvalidSpec",
                message: "set secretRef, tls, or both".into(),
            });
        }
        return Ok(Map::new());
    };
    let name = &secret_ref.name;
    let Some(secret) = secret else {
        return Err(CredentialProblem {
            reason: "SecretNotFound",
            message: format!("Secret {name:?} does not exist in this namespace"),
        });
    };
    let bad = |what: &str| CredentialProblem {
        reason: "SecretMalformed",
        message: format!("Secret {name:?}: {what}"),
    };
    let key = cred.spec.registry.clone();
    let mut out = Map::new();
    match secret.type_.as_deref().unwrap_or("Opaque") {
        "kubernetes.io/dockerconfigjson" => {
            let raw = string(secret, ".dockerconfigjson").ok_or_else(|| bad("has no .dockerconfigjson key"))?;
            let v: Value = serde_json::from_str(&raw).map_err(|_| bad(".dockerconfigjson is not JSON"))?;
            let auths = v
                .get("auths")
                .and_then(Value::as_object)
                .ok_or_else(|| bad(".dockerconfigjson has no auths"))?;
            // Only the entries for this credential's registry (or below it) are taken.
            for (k, e) in auths {
                let norm = k
                    .trim_start_matches("https://")
                    .trim_start_matches("http://")
                    .trim_end_matches('/');
                if norm == key || norm.starts_with(&format!("{key}/")) || key.starts_with(&format!("{norm}/")) {
                    out.insert(norm.to_string(), e.clone());
                }
            }
            if out.is_empty() {
                return Err(bad(&format!("has no entry for {key}")));
            }
        }
        "kubernetes.io/basic-auth" | "Opaque" => {
            match (
                string(secret, "username"),
                string(secret, "password"),
                string(secret, "token"),
            ) {
                (Some(u), Some(p), _) => {
                    out.insert(key, json!({"auth": B64.encode(format!("{u}:{p}"))}));
                }
                (_, _, Some(t)) => {
                    out.insert(key, json!({"registrytoken": t}));
                }
                _ => return Err(bad("needs username and password, or token")),
            }
        }
        other => return Err(bad(&format!("has unsupported type {other}"))),
    }
    Ok(out)
}

/// The auth.json document for a set of credential entries.
pub fn auth_json(entries: Map<String, Value>) -> Value {
    json!({ "auths": entries })
}

/// A namespace's credentials rendered for copies: an auth.json in a private
/// temporary directory, and the registries to reach without TLS checks.
pub struct Rendered {
    _dir: tempfile::TempDir,
    authfile: PathBuf,
    insecure: Vec<String>,
    /// The merged auth.json document (also kept as a pull Secret).
    pub document: Value,
    /// Each credential's verdict, by name.
    pub verdicts: Vec<(String, Result<(), CredentialProblem>)>,
}

impl Rendered {
    /// Render `creds`, finding each one's Secret with `secret` (same namespace only).
    pub fn new<'a>(
        creds: impl IntoIterator<Item = &'a RegistryCredential>,
        secret: impl Fn(&str) -> Option<&'a Secret>,
    ) -> Result<Rendered, String> {
        let mut all = Map::new();
        let mut insecure = vec![];
        let mut verdicts = vec![];
        for c in creds {
            let found = c.spec.secret_ref.as_ref().and_then(|r| secret(&r.name));
            let verdict = entries(c, found).map(|e| all.extend(e));
            verdicts.push((c.name_any(), verdict));
            if c.spec.tls.as_ref().is_some_and(|t| t.insecure) {
                insecure.push(c.spec.registry.clone());
            }
        }
        let document = auth_json(all);
        let dir = tempfile::Builder::new()
            .prefix("kopeo-auth-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let authfile = dir.path().join("auth.json");
        let mut f = crate::auth::AuthFile::empty(&authfile);
        f.replace_all(document.clone());
        f.save().map_err(|e| e.to_string())?;
        Ok(Rendered {
            _dir: dir,
            authfile,
            insecure,
            document,
            verdicts,
        })
    }

    /// Open options for one side of a copy whose reference is `reference`.
    pub fn side(&self, reference: &str) -> OpenOptions {
        let mut o = OpenOptions::default();
        o.registry.auth.authfile = Some(self.authfile.clone());
        if let Ok(ImageReference::Docker(d)) = reference.parse::<ImageReference>() {
            if self.insecure.iter().any(|k| k.split('/').next() == Some(d.domain())) {
                o.registry.tls.verify = Some(false);
            }
        }
        o
    }
}
