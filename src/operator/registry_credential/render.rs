//! Rendering a namespace's RegistryCredentials and their Secrets into one
//! auth.json (what the copies use), and judging each credential's Secret.

use crate::operator::registry_credential::RegistryCredential;
use crate::reference::ImageReference;
use crate::registry::TlsMaterial;
use crate::transport::OpenOptions;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use serde_json::{Map, Value, json};

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
    let key = crate::auth::normalize_key(&cred.spec.registry);
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
            // Keys as `kubectl create secret docker-registry` writes them
            // (`https://index.docker.io/v1/`) match as docker reads them.
            for (k, e) in auths {
                let norm = crate::auth::normalize_key(k);
                if norm == key || norm.starts_with(&format!("{key}/")) || key.starts_with(&format!("{norm}/")) {
                    out.insert(norm, e.clone());
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

/// The Secrets `cred` names (credentials, CA, client certificate).
pub fn secret_names(cred: &RegistryCredential) -> Vec<String> {
    let tls = cred.spec.tls.as_ref();
    [
        cred.spec.secret_ref.as_ref(),
        tls.and_then(|t| t.ca_secret_ref.as_ref()),
        tls.and_then(|t| t.client_cert_secret_ref.as_ref()),
    ]
    .into_iter()
    .flatten()
    .map(|r| r.name.clone())
    .collect()
}

/// TLS material from a credential's Secrets: a CA (`ca.crt` of
/// `caSecretRef`) and a client pair (`tls.crt`/`tls.key` of the
/// `kubernetes.io/tls` Secret `clientCertSecretRef`).
pub fn tls_material<'a>(
    cred: &RegistryCredential,
    secret: impl Fn(&str) -> Option<&'a Secret>,
) -> Result<Option<TlsMaterial>, CredentialProblem> {
    let Some(tls) = &cred.spec.tls else {
        return Ok(None);
    };
    let find = |name: &str| {
        secret(name).ok_or_else(|| CredentialProblem {
            reason: "SecretNotFound",
            message: format!("Secret {name:?} does not exist in this namespace"),
        })
    };
    let key = |s: &Secret, name: &str, k: &str| {
        s.data
            .as_ref()
            .and_then(|d| d.get(k))
            .map(|b| b.0.clone())
            .filter(|b| !b.is_empty())
            .ok_or_else(|| CredentialProblem {
                reason: "SecretMalformed",
                message: format!("Secret {name:?} has no {k} key"),
            })
    };
    let mut m = TlsMaterial::default();
    if let Some(r) = &tls.ca_secret_ref {
        m.roots.push(key(find(&r.name)?, &r.name, "ca.crt")?);
    }
    if let Some(r) = &tls.client_cert_secret_ref {
        let s = find(&r.name)?;
        m.client = Some((key(s, &r.name, "tls.crt")?, key(s, &r.name, "tls.key")?));
    }
    Ok((m != TlsMaterial::default()).then_some(m))
}

/// One Secret key of a host's TLS material, and the file a worker pod
/// finds it in under its certificates directory (`HOST/FILE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFile {
    pub host: String,
    pub secret: String,
    pub key: String,
    pub file: String,
}

/// Add `cred`'s TLS Secret keys for `host` to `files`: every CA, and the
/// last client pair named (as the material itself keeps the last).
fn tls_files_of(files: &mut Vec<TlsFile>, host: &str, cred: &RegistryCredential) {
    let Some(tls) = &cred.spec.tls else {
        return;
    };
    let file = |secret: &str, key: &str, file: String| TlsFile {
        host: host.to_string(),
        secret: secret.to_string(),
        key: key.to_string(),
        file,
    };
    if let Some(r) = &tls.ca_secret_ref {
        let n = files.iter().filter(|f| f.host == host && f.key == "ca.crt").count();
        files.push(file(&r.name, "ca.crt", format!("ca-{n}.crt")));
    }
    if let Some(r) = &tls.client_cert_secret_ref {
        files.retain(|f| !(f.host == host && f.file.starts_with("client.")));
        files.push(file(&r.name, "tls.crt", "client.cert".into()));
        files.push(file(&r.name, "tls.key", "client.key".into()));
    }
}

/// The TLS material of each host in a certificates directory laid out
/// as [`Rendered::tls_files`] says: `*.crt` are CAs, `client.cert` and
/// `client.key` the client pair.
pub fn read_tls_dir(
    dir: &std::path::Path,
) -> Result<std::collections::HashMap<String, std::sync::Arc<TlsMaterial>>, String> {
    let fail = |p: &std::path::Path, e: std::io::Error| format!("reading {}: {e}", p.display());
    let mut out = std::collections::HashMap::new();
    let hosts = match std::fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        r => r.map_err(|e| fail(dir, e))?,
    };
    for h in hosts {
        let h = h.map_err(|e| fail(dir, e))?;
        let host = h.file_name().to_string_lossy().into_owned();
        if host.starts_with("..") || !h.path().is_dir() {
            continue;
        }
        let mut m = TlsMaterial::default();
        let mut names: Vec<_> = std::fs::read_dir(h.path())
            .map_err(|e| fail(&h.path(), e))?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        names.sort();
        for n in names.iter().filter(|n| n.ends_with(".crt")) {
            let p = h.path().join(n);
            m.roots.push(std::fs::read(&p).map_err(|e| fail(&p, e))?);
        }
        let (cert, key) = (h.path().join("client.cert"), h.path().join("client.key"));
        if cert.exists() || key.exists() {
            let c = std::fs::read(&cert).map_err(|e| fail(&cert, e))?;
            let k = std::fs::read(&key).map_err(|e| fail(&key, e))?;
            m.client = Some((c, k));
        }
        out.insert(host, std::sync::Arc::new(m));
    }
    Ok(out)
}

/// Whether `cred` can be used: its Secrets exist and are well-formed.
pub fn verdict<'a>(
    cred: &RegistryCredential,
    secret: impl Fn(&str) -> Option<&'a Secret>,
) -> Result<(), CredentialProblem> {
    let auth = cred.spec.secret_ref.as_ref().and_then(|r| secret(&r.name));
    entries(cred, auth)?;
    tls_material(cred, secret).map(|_| ())
}

/// The auth.json document for a set of credential entries.
pub fn auth_json(entries: Map<String, Value>) -> Value {
    json!({ "auths": entries })
}

/// A namespace's credentials rendered for copies, in memory: one auth.json
/// document, the registries to reach without TLS checks, and the CA and
/// client certificates per registry host. Nothing is written to disk.
pub struct Rendered {
    auth: std::sync::Arc<crate::auth::AuthFile>,
    insecure: Vec<String>,
    tls: std::collections::HashMap<String, std::sync::Arc<TlsMaterial>>,
    /// Where that material is, Secret key by key (what worker pods mount).
    tls_files: Vec<TlsFile>,
    /// The merged auth.json document (also kept as a pull Secret).
    pub document: Value,
    /// Each credential's verdict, by name.
    pub verdicts: Vec<(String, Result<(), CredentialProblem>)>,
    /// Owner references to the credentials rendered (for the pull Secret).
    pub owners: Vec<Value>,
    /// The rate limits the credentials set per host.
    limits: Vec<(String, crate::options::rate_limit::RateLimitSettings)>,
    /// The process's request budgets, which copies opened here honour.
    budgets: Option<std::sync::Arc<crate::registry::budget::Budgets>>,
}

impl Rendered {
    /// Render `creds`, finding each one's Secret with `secret` (same namespace only).
    pub fn new<'a>(
        creds: impl IntoIterator<Item = &'a RegistryCredential>,
        secret: impl Fn(&str) -> Option<&'a Secret>,
    ) -> Rendered {
        let mut all = Map::new();
        let mut insecure = vec![];
        let mut tls: std::collections::HashMap<String, TlsMaterial> = Default::default();
        let mut tls_files: Vec<TlsFile> = vec![];
        let mut verdicts = vec![];
        let mut owners = vec![];
        let mut limits = vec![];
        for c in creds {
            if let Some(uid) = &c.metadata.uid {
                owners.push(json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "RegistryCredential", "name": c.name_any(), "uid": uid}));
            }
            let host = c.spec.registry.split('/').next().unwrap_or_default().to_string();
            let found = c.spec.secret_ref.as_ref().and_then(|r| secret(&r.name));
            let verdict = entries(c, found).and_then(|e| Ok((e, tls_material(c, &secret)?)));
            let verdict = match verdict {
                Ok((e, material)) => {
                    all.extend(e);
                    if let Some(m) = material {
                        // Several credentials may name one host: their certificates add up.
                        let t = tls.entry(host.clone()).or_default();
                        t.roots.extend(m.roots);
                        if m.client.is_some() {
                            t.client = m.client;
                        }
                        tls_files_of(&mut tls_files, &host, c);
                    }
                    Ok(())
                }
                Err(p) => Err(p),
            };
            verdicts.push((c.name_any(), verdict));
            if let Some(l) = c.spec.rate_limit {
                limits.push((host.clone(), l));
            }
            if c.spec.tls.as_ref().is_some_and(|t| t.insecure) {
                insecure.push(host);
            }
        }
        let document = auth_json(all);
        Rendered {
            auth: std::sync::Arc::new(crate::auth::AuthFile::from_document(
                "RegistryCredentials",
                document.clone(),
            )),
            insecure,
            tls: tls.into_iter().map(|(h, m)| (h, std::sync::Arc::new(m))).collect(),
            tls_files,
            document,
            verdicts,
            owners,
            limits,
            budgets: None,
        }
    }

    /// Copies opened here honour `budgets`, which learn the limits these
    /// credentials (all of namespace `ns`: a namespace without any sets none) set.
    pub fn with_budgets(mut self, budgets: std::sync::Arc<crate::registry::budget::Budgets>, ns: &str) -> Rendered {
        budgets.set_limits(&format!("namespace/{ns}"), self.limits.iter().cloned());
        self.budgets = Some(budgets);
        self
    }

    /// Credentials for a worker pod: the auth.json it was given (the pull
    /// Secret, mounted), the registries to reach without TLS checks, and
    /// the request budgets its share of the hosts' limits is set in.
    pub fn for_worker(
        document: Value,
        insecure: Vec<String>,
        tls: std::collections::HashMap<String, std::sync::Arc<TlsMaterial>>,
        budgets: std::sync::Arc<crate::registry::budget::Budgets>,
    ) -> Rendered {
        Rendered {
            auth: std::sync::Arc::new(crate::auth::AuthFile::from_document(
                "the mounted pull Secret",
                document.clone(),
            )),
            insecure,
            tls,
            tls_files: vec![],
            document,
            verdicts: vec![],
            owners: vec![],
            limits: vec![],
            budgets: Some(budgets),
        }
    }

    /// The registries these credentials reach without TLS checks.
    pub fn insecure_hosts(&self) -> &[String] {
        &self.insecure
    }

    /// The Secret keys holding the credentials' CA and client
    /// certificates, and where under a certificates directory a worker
    /// pod finds each (`HOST/ca-N.crt`, `HOST/client.cert`, `HOST/client.key`).
    pub fn tls_files(&self) -> &[TlsFile] {
        &self.tls_files
    }

    /// Open options for one side of a copy whose reference is `reference`.
    /// `atomic:` goes to OpenShift's image API with the token of the
    /// RegistryCredential for its host, never with the operator's own.
    pub fn side(&self, reference: &str) -> OpenOptions {
        let mut o = OpenOptions::default();
        o.registry.auth.inline = Some(self.auth.clone());
        o.registry.budgets = self.budgets.clone();
        o.atomic = crate::transport::atomic::AtomicAccess::RegistryCredentials;
        if let Ok(ImageReference::Docker(d) | ImageReference::Atomic(d)) = reference.parse::<ImageReference>() {
            if self.insecure.iter().any(|h| h == d.domain()) {
                o.registry.tls.verify = Some(false);
            }
            o.registry.tls.material = self.tls.get(d.domain()).cloned();
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credential(registry: &str) -> RegistryCredential {
        serde_json::from_value(json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "RegistryCredential",
            "metadata": {"name": "hub", "namespace": "ns"},
            "spec": {"registry": registry, "secretRef": {"name": "pull"}}}))
        .unwrap()
    }

    /// What `kubectl create secret docker-registry --docker-server=SERVER` makes.
    fn docker_registry_secret(server: &str) -> Secret {
        let config = json!({"auths": {server: {"username": "u", "password": "p", "auth": B64.encode("u:p")}}});
        serde_json::from_value(
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pull"},
            "type": "kubernetes.io/dockerconfigjson",
            "data": {".dockerconfigjson": B64.encode(config.to_string())}}),
        )
        .unwrap()
    }

    #[test]
    fn docker_hub_keys_match_however_they_are_written() {
        for server in [
            "https://index.docker.io/v1/",
            "index.docker.io",
            "registry-1.docker.io",
            "docker.io",
            "http://docker.io/v2/",
        ] {
            for registry in ["docker.io", "index.docker.io"] {
                let got = entries(&credential(registry), Some(&docker_registry_secret(server)))
                    .unwrap_or_else(|p| panic!("{server} for {registry}: {}", p.message));
                assert_eq!(got.keys().collect::<Vec<_>>(), ["docker.io"], "{server} for {registry}");
            }
        }
        let other = entries(&credential("docker.io"), Some(&docker_registry_secret("quay.io")));
        assert_eq!(other.unwrap_err().reason, "SecretMalformed");
    }

    #[test]
    fn worker_pods_find_every_ca_and_the_last_client_pair_of_a_host() {
        let cred = |name: &str, ca: &str, client: &str| -> RegistryCredential {
            serde_json::from_value(json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "RegistryCredential",
                "metadata": {"name": name, "namespace": "ns"},
                "spec": {"registry": "reg:5000/team", "tls": {"caSecretRef": {"name": ca}, "clientCertSecretRef": {"name": client}}}}))
            .unwrap()
        };
        let secret = |name: &str, data: Value| -> Secret {
            serde_json::from_value(
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": data}),
            )
            .unwrap()
        };
        let b = |s: &str| B64.encode(s);
        let secrets = [
            secret("ca1", json!({"ca.crt": b("CA1")})),
            secret("ca2", json!({"ca.crt": b("CA2")})),
            secret("c1", json!({"tls.crt": b("C1"), "tls.key": b("K1")})),
            secret("c2", json!({"tls.crt": b("C2"), "tls.key": b("K2")})),
        ];
        let creds = [cred("a", "ca1", "c1"), cred("b", "ca2", "c2")];
        let r = Rendered::new(&creds, |n| {
            secrets.iter().find(|s| s.metadata.name.as_deref() == Some(n))
        });
        let files: Vec<(&str, &str, &str)> = r
            .tls_files()
            .iter()
            .map(|f| (f.secret.as_str(), f.key.as_str(), f.file.as_str()))
            .collect();
        assert_eq!(
            files,
            [
                ("ca1", "ca.crt", "ca-0.crt"),
                ("ca2", "ca.crt", "ca-1.crt"),
                ("c2", "tls.crt", "client.cert"),
                ("c2", "tls.key", "client.key")
            ]
        );
        // Laid out as a pod's projected volume would be, they read back as the material.
        let dir = std::env::temp_dir().join(format!("kopeo-certs-{}", std::process::id()));
        for f in r.tls_files() {
            let s = secrets
                .iter()
                .find(|s| s.metadata.name.as_deref() == Some(&f.secret))
                .unwrap();
            let at = dir.join(&f.host).join(&f.file);
            std::fs::create_dir_all(at.parent().unwrap()).unwrap();
            std::fs::write(at, &s.data.as_ref().unwrap()[&f.key].0).unwrap();
        }
        let read = read_tls_dir(&dir).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(read.len(), 1);
        assert_eq!(*read["reg:5000"], *r.tls["reg:5000"]);
        assert_eq!(read["reg:5000"].roots, [b"CA1".to_vec(), b"CA2".to_vec()]);
    }
}
