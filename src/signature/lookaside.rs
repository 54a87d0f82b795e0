//! Signature storage beside a registry: registries.d configuration
//! (containers-registries.d(5)) and the lookaside layout
//! `BASE/repo@sha256=HEX/signature-N`, read from `file://` and `http(s)://`
//! and written to `file://`, as containers/image does.

use crate::digest::Digest;
use crate::reference::DockerReference;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why registries.d or a lookaside could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LookasideError {
    #[error("reading registries.d {}: {source}", .path.display())]
    ReadDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing {}: {message}", .path.display())]
    Parse { path: PathBuf, message: String },
    #[error("Error parsing signature storage configuration: \"default-docker\" defined both in {0:?} and {1:?}")]
    DefaultTwice(PathBuf, PathBuf),
    #[error(
        "Error parsing signature storage configuration: \"docker\" namespace {0:?} defined both in {1:?} and {2:?}"
    )]
    NamespaceTwice(String, PathBuf, PathBuf),
    #[error("Invalid signature storage URL {0}: {1}")]
    BadUrl(String, String),
    #[error("Writing directly to a {0} lookaside {1} is not supported. Configure a lookaside-staging: location")]
    HttpWrite(String, String),
    #[error("Unsupported scheme when writing signature to {0}")]
    UnsupportedScheme(String),
    #[error("{op} {}: {source}", .path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Write(Box<crate::transport::TransportError>),
    #[error("reading signature from {url}: {message}")]
    Http { url: String, message: String },
    #[error("signature {0} is larger than the 4 MiB a signature may have")]
    TooLarge(String),
}

/// One namespace's settings.
#[derive(Debug, Clone, Default, serde::Deserialize, PartialEq, Eq)]
pub struct Namespace {
    #[serde(default)]
    pub lookaside: String,
    #[serde(default, rename = "lookaside-staging")]
    pub lookaside_staging: String,
    /// Deprecated spelling of `lookaside`.
    #[serde(default)]
    pub sigstore: String,
    /// Deprecated spelling of `lookaside-staging`.
    #[serde(default, rename = "sigstore-staging")]
    pub sigstore_staging: String,
    #[serde(default, rename = "use-sigstore-attachments")]
    pub use_sigstore_attachments: Option<bool>,
}

impl Namespace {
    fn top_level(&self, write: bool) -> Option<&str> {
        let staging = [&self.lookaside_staging, &self.sigstore_staging];
        let read = [&self.lookaside, &self.sigstore];
        let order: Vec<&String> = if write {
            staging.into_iter().chain(read).collect()
        } else {
            read.to_vec()
        };
        order.into_iter().find(|s| !s.is_empty()).map(String::as_str)
    }
}

#[derive(Debug, serde::Deserialize)]
struct File {
    #[serde(default, rename = "default-docker")]
    default_docker: Option<Namespace>,
    #[serde(default)]
    docker: Option<BTreeMap<String, Namespace>>,
}

/// The merged registries.d configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistriesD {
    pub default_docker: Option<Namespace>,
    pub docker: BTreeMap<String, Namespace>,
}

/// The registries.d directory in force: `explicit`, else the user's
/// `$HOME/.config/containers/registries.d` if it exists, else `/etc/containers/registries.d`.
pub fn default_dir(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(home) = std::env::var_os("HOME") {
        let user = PathBuf::from(home).join(".config/containers/registries.d");
        if user.exists() {
            return user;
        }
    }
    PathBuf::from("/etc/containers/registries.d")
}

impl RegistriesD {
    /// Read and merge every `*.yaml` in `dir` (a missing directory is an empty configuration).
    pub fn load(dir: &Path) -> Result<RegistriesD, LookasideError> {
        let mut out = RegistriesD::default();
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(source) => {
                return Err(LookasideError::ReadDir {
                    path: dir.to_path_buf(),
                    source,
                });
            }
        };
        let mut names: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        names.sort();
        let mut default_from: Option<PathBuf> = None;
        let mut ns_from: BTreeMap<String, PathBuf> = BTreeMap::new();
        for path in names {
            let data = match std::fs::read(&path) {
                Ok(d) => d,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(LookasideError::Io {
                        op: "reading",
                        path,
                        source,
                    });
                }
            };
            let f = Self::parse_file(&data).map_err(|message| LookasideError::Parse {
                path: path.clone(),
                message,
            })?;
            if let Some(d) = f.default_docker {
                if let Some(prev) = &default_from {
                    return Err(LookasideError::DefaultTwice(prev.clone(), path));
                }
                out.default_docker = Some(d);
                default_from = Some(path.clone());
            }
            for (name, ns) in f.docker {
                if let Some(prev) = ns_from.get(&name) {
                    return Err(LookasideError::NamespaceTwice(name, prev.clone(), path));
                }
                ns_from.insert(name.clone(), path.clone());
                out.docker.insert(name, ns);
            }
        }
        Ok(out)
    }

    /// One registries.d file's settings (an empty file has none).
    pub fn parse_file(data: &[u8]) -> Result<RegistriesD, String> {
        let f: Option<File> = serde_yaml_ng::from_slice(data).map_err(|e| e.to_string())?;
        Ok(f.map(|f| RegistriesD {
            default_docker: f.default_docker,
            docker: f.docker.unwrap_or_default(),
        })
        .unwrap_or_default())
    }

    /// The namespaces that apply to `r`, most specific first, then the default.
    fn applicable<'a>(&'a self, r: &DockerReference) -> impl Iterator<Item = &'a Namespace> + 'a {
        let (identity, namespaces) =
            crate::signature::policy::policy_identity(&crate::reference::ImageReference::Docker(r.clone()));
        let named: Vec<&Namespace> = std::iter::once(identity)
            .chain(namespaces)
            .filter_map(|n| self.docker.get(&n))
            .collect();
        named.into_iter().chain(self.default_docker.iter())
    }

    /// The lookaside base URL for `r`'s repository, for reading or writing;
    /// the built-in default directory when nothing is configured.
    pub fn lookaside_base(&self, r: &DockerReference, write: bool) -> Result<url::Url, LookasideError> {
        let top = self.applicable(r).find_map(|ns| ns.top_level(write));
        let mut base = match top {
            Some(t) => url::Url::parse(t).map_err(|e| LookasideError::BadUrl(t.to_string(), e.to_string()))?,
            None => builtin_default(),
        };
        let path = format!("{}/{}", base.path().trim_end_matches('/'), r.path());
        base.set_path(&path);
        Ok(base)
    }

    /// Whether sigstore attachments are read and written for `r`.
    pub fn use_sigstore_attachments(&self, r: &DockerReference) -> bool {
        self.applicable(r)
            .find_map(|ns| ns.use_sigstore_attachments)
            .unwrap_or(false)
    }
}

/// Signature storage for registry images: the registries.d configuration
/// and a client for `http(s)://` lookasides.
pub struct SignatureStorage {
    pub config: RegistriesD,
    http: reqwest::Client,
}

impl SignatureStorage {
    /// Storage as `config` describes it.
    pub fn new(config: RegistriesD) -> SignatureStorage {
        SignatureStorage {
            config,
            http: reqwest::Client::new(),
        }
    }

    /// The registries.d configuration this storage follows.
    pub fn config(&self) -> &RegistriesD {
        &self.config
    }

    /// The signatures of `r`'s manifest `digest` in its lookaside.
    pub async fn read(&self, r: &DockerReference, digest: &Digest) -> Result<Vec<Bytes>, LookasideError> {
        read_all(&self.config.lookaside_base(r, false)?, digest, &self.http).await
    }

    /// Store `signatures` of `r`'s manifest `digest` in its (staging) lookaside.
    pub async fn write(
        &self,
        r: &DockerReference,
        digest: &Digest,
        signatures: &[Bytes],
    ) -> Result<(), LookasideError> {
        write_all(&self.config.lookaside_base(r, true)?, digest, signatures).await
    }
}

impl std::fmt::Debug for SignatureStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignatureStorage")
            .field("config", &self.config)
            .finish()
    }
}

/// `/var/lib/containers/sigstore` for root, `$HOME/.local/share/containers/sigstore` otherwise.
fn builtin_default() -> url::Url {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let dir = if euid == 0 {
        PathBuf::from("/var/lib/containers/sigstore")
    } else {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".local/share/containers/sigstore")
    };
    url::Url::from_file_path(&dir)
        .unwrap_or_else(|_| url::Url::parse("file:///var/lib/containers/sigstore").expect("a valid URL"))
}

/// `BASE@sha256=HEX/signature-N` (N from 1).
pub fn signature_url(base: &url::Url, digest: &Digest, index: usize) -> url::Url {
    let mut u = base.clone();
    let path = format!(
        "{}@{}={}/signature-{}",
        u.path(),
        digest.algorithm().as_str(),
        digest.hex(),
        index + 1
    );
    u.set_path(&path);
    u
}

/// Read every signature of `digest` under `base`, stopping at the first missing one.
pub async fn read_all(base: &url::Url, digest: &Digest, http: &reqwest::Client) -> Result<Vec<Bytes>, LookasideError> {
    let mut out = Vec::new();
    loop {
        let u = signature_url(base, digest, out.len());
        let got = match u.scheme() {
            "file" => read_file(&u).await?,
            "http" | "https" => read_http(&u, http).await?,
            _ => return Err(LookasideError::UnsupportedScheme(redacted(&u))),
        };
        match got {
            Some(b) => out.push(b),
            None => return Ok(out),
        }
    }
}

async fn read_file(u: &url::Url) -> Result<Option<Bytes>, LookasideError> {
    let path = PathBuf::from(u.path());
    match tokio::fs::metadata(&path).await {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(LookasideError::Io {
                op: "reading",
                path,
                source,
            });
        }
        Ok(m) if m.len() > crate::signature::openpgp::MAX_SIGNATURE_SIZE as u64 => {
            return Err(LookasideError::TooLarge(path.display().to_string()));
        }
        Ok(_) => {}
    }
    tokio::fs::read(&path)
        .await
        .map(|b| Some(Bytes::from(b)))
        .map_err(|source| LookasideError::Io {
            op: "reading",
            path,
            source,
        })
}

async fn read_http(u: &url::Url, http: &reqwest::Client) -> Result<Option<Bytes>, LookasideError> {
    let fail = |message: String| LookasideError::Http {
        url: redacted(u),
        message,
    };
    let mut res = http.get(u.clone()).send().await.map_err(|e| fail(e.to_string()))?;
    if res.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !res.status().is_success() {
        return Err(fail(format!("received unexpected HTTP status: {}", res.status())));
    }
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(|e| fail(e.to_string()))? {
        body.extend_from_slice(&chunk);
        if body.len() > crate::signature::openpgp::MAX_SIGNATURE_SIZE {
            return Err(LookasideError::TooLarge(redacted(u)));
        }
    }
    Ok(Some(body.into()))
}

/// Write `signatures` of `digest` under `base` (a `file://` URL), removing
/// any later ones a previous write left.
pub async fn write_all(base: &url::Url, digest: &Digest, signatures: &[Bytes]) -> Result<(), LookasideError> {
    if signatures.is_empty() {
        return Ok(());
    }
    for (i, sig) in signatures.iter().enumerate() {
        let u = signature_url(base, digest, i);
        match u.scheme() {
            "file" => {}
            s @ ("http" | "https") => return Err(LookasideError::HttpWrite(s.to_string(), redacted(&u))),
            _ => return Err(LookasideError::UnsupportedScheme(redacted(&u))),
        }
        let path = PathBuf::from(u.path());
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|source| LookasideError::Io {
                    op: "creating",
                    path: dir.to_path_buf(),
                    source,
                })?;
        }
        // Whole or not at all: a reader never sees half a signature.
        crate::transport::write_atomic(&path, sig)
            .await
            .map_err(|e| LookasideError::Write(Box::new(e)))?;
    }
    for i in signatures.len().. {
        let path = PathBuf::from(signature_url(base, digest, i).path());
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
            Err(source) => {
                return Err(LookasideError::Io {
                    op: "removing",
                    path,
                    source,
                });
            }
        }
    }
    Ok(())
}

/// A URL without its password, for messages.
fn redacted(u: &url::Url) -> String {
    let mut u = u.clone();
    if u.password().is_some() {
        let _ = u.set_password(Some("xxxxx"));
    }
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_order_and_layout_as_upstream() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.yaml"),
            "default-docker:\n  lookaside: file:///d\ndocker:\n  example.com/ns:\n    lookaside: https://sigs.example.com/x\n    lookaside-staging: file:///staging\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("b.yaml"),
            "docker:\n  example.com:\n    sigstore: file:///old\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("c.txt"), "not: [yaml").unwrap();
        let c = RegistriesD::load(dir.path()).unwrap();
        let r = |s: &str| DockerReference::parse_normalized(s).unwrap();
        assert_eq!(
            c.lookaside_base(&r("example.com/ns/a:1"), false).unwrap().as_str(),
            "https://sigs.example.com/x/ns/a"
        );
        assert_eq!(
            c.lookaside_base(&r("example.com/ns/a:1"), true).unwrap().as_str(),
            "file:///staging/ns/a"
        );
        assert_eq!(
            c.lookaside_base(&r("example.com/other:1"), false).unwrap().as_str(),
            "file:///old/other"
        );
        assert_eq!(
            c.lookaside_base(&r("quay.io/x/y"), true).unwrap().as_str(),
            "file:///d/x/y"
        );
        let d: Digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
            .parse()
            .unwrap();
        let base = c.lookaside_base(&r("quay.io/x/y"), false).unwrap();
        assert_eq!(
            signature_url(&base, &d, 0).as_str(),
            "file:///d/x/y@sha256=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef/signature-1"
        );
        std::fs::write(
            dir.path().join("d.yaml"),
            "docker:\n  example.com:\n    lookaside: file:///dup\n",
        )
        .unwrap();
        assert!(matches!(
            RegistriesD::load(dir.path()),
            Err(LookasideError::NamespaceTwice(..))
        ));
    }
}
