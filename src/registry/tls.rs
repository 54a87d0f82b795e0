//! Per-registry HTTP clients: TLS verification, certs.d-style CA and client
//! certificate directories.

use super::RegistryError;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// TLS settings for one side of an operation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// `--tls-verify`: `Some(false)` skips certificate checks and allows plain HTTP.
    pub verify: Option<bool>,
    /// `--cert-dir`: `*.crt` CAs, `*.cert` + `*.key` client certificate pairs.
    pub cert_dir: Option<PathBuf>,
}

impl TlsOptions {
    /// Whether certificates are verified (the default).
    pub fn verifies(&self) -> bool {
        self.verify.unwrap_or(true)
    }
}

/// The certificate directories that apply to `host` when none was given.
fn default_cert_dirs(host: &str) -> Vec<PathBuf> {
    let mut dirs = vec![];
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".config/containers/certs.d").join(host));
    }
    dirs.push(Path::new("/etc/containers/certs.d").join(host));
    dirs.push(Path::new("/etc/docker/certs.d").join(host));
    dirs
}

/// Build the HTTP client for `host` with `tls`.
pub fn build_client(host: &str, tls: &TlsOptions, user_agent: &str) -> Result<reqwest::Client, RegistryError> {
    let err = |reason: String| RegistryError::Tls {
        registry: host.to_string(),
        reason,
    };
    let mut builder = reqwest::Client::builder()
        .user_agent(user_agent)
        .connect_timeout(Duration::from_secs(30))
        .pool_idle_timeout(Duration::from_secs(90))
        // Redirects are followed by hand for blobs (auth must not leak to
        // another host); reqwest drops Authorization on cross-host redirects.
        .redirect(reqwest::redirect::Policy::limited(10))
        // A redirect target (object storage) learns nothing of the registry URL.
        .referer(false);
    if !tls.verifies() {
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    let dirs = match &tls.cert_dir {
        Some(d) => vec![d.clone()],
        None => default_cert_dirs(host),
    };
    let mut roots = vec![];
    for dir in dirs {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && tls.cert_dir.is_none() => {
                continue;
            }
            Err(e) => return Err(err(format!("reading {}: {e}", dir.display()))),
        };
        let mut names: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        names.sort();
        for path in names {
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            let read = |p: &Path| std::fs::read(p).map_err(|e| err(format!("reading {}: {e}", p.display())));
            match ext {
                "crt" => {
                    let pem = read(&path)?;
                    let certs = reqwest::Certificate::from_pem_bundle(&pem)
                        .map_err(|e| err(format!("{}: {e}", path.display())))?;
                    roots.extend(certs);
                }
                "cert" => {
                    let key = path.with_extension("key");
                    if !key.exists() {
                        return Err(err(format!(
                            "missing key {} for client certificate {}",
                            key.display(),
                            path.display()
                        )));
                    }
                    let mut pem = read(&path)?;
                    pem.push(b'\n');
                    pem.extend(read(&key)?);
                    let id = reqwest::Identity::from_pem(&pem)
                        .map_err(|e| err(format!("client certificate {}: {e}", path.display())))?;
                    builder = builder.identity(id);
                }
                "key" if !path.with_extension("cert").exists() => {
                    return Err(err(format!(
                        "missing client certificate {} for key {}",
                        path.with_extension("cert").display(),
                        path.display()
                    )));
                }
                _ => {}
            }
        }
    }
    if !roots.is_empty() {
        builder = builder.tls_certs_merge(roots);
    }
    builder.build().map_err(|e| err(e.to_string()))
}
