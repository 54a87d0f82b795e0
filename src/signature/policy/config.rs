//! policy.json, read as containers/image reads it (containers-policy.json(5)):
//! every object checked for unknown and duplicate keys, each requirement for
//! the fields its type allows, and errors that name what is wrong.

use super::super::strict_json::{self, Value, exact_fields, field};
use crate::reference::DockerReference;
use std::path::{Path, PathBuf};

/// Why a policy could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PolicyConfigError {
    #[error("invalid policy in {path:?}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("reading policy {path:?}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no policy.json file found at any of the following: {0:?}, {1:?}")]
    NotFound(PathBuf, PathBuf),
}

/// A transport's scopes in file order, each with its requirements.
pub type Scopes = Vec<(String, Vec<Requirement>)>;

/// A parsed policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub default: Vec<Requirement>,
    /// Per transport name: scopes in file order, each with its requirements.
    pub transports: Vec<(String, Scopes)>,
}

/// One requirement of a policy.
#[derive(Debug, Clone, PartialEq)]
pub enum Requirement {
    InsecureAcceptAnything,
    Reject,
    SignedBy {
        key_type: String,
        keys: KeySource,
        identity: IdentityMatch,
    },
    SignedBaseLayer,
    /// Sigstore signatures by one of `keys` (PEM public keys). `keyless`:
    /// the requirement uses Fulcio/PKI certificates or Rekor, which kopeo
    /// does not verify yet — such a requirement refuses every image.
    SigstoreSigned {
        keys: Option<KeySources>,
        keyless: bool,
        identity: IdentityMatch,
    },
}

/// Sigstore keys: one or several files, or one or several data items.
#[derive(Debug, Clone, PartialEq)]
pub enum KeySources {
    Paths(Vec<PathBuf>),
    Datas(Vec<Vec<u8>>),
}

/// Where a requirement's keys come from.
#[derive(Debug, Clone, PartialEq)]
pub enum KeySource {
    Path(PathBuf),
    Paths(Vec<PathBuf>),
    Data(Vec<u8>),
}

/// How a signature's claimed identity must relate to the image's reference.
#[derive(Debug, Clone, PartialEq)]
pub enum IdentityMatch {
    MatchExact,
    MatchRepoDigestOrExact,
    MatchRepository,
    ExactReference(DockerReference),
    ExactRepository(DockerReference),
    RemapIdentity { prefix: String, signed_prefix: String },
}

/// The policy file in force: `explicit`, else the user's
/// `$HOME/.config/containers/policy.json`, else `/etc/containers/policy.json`.
pub fn default_path(explicit: Option<&Path>) -> Result<PathBuf, PolicyConfigError> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    let system = PathBuf::from("/etc/containers/policy.json");
    let user = std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".config/containers/policy.json"))
        .unwrap_or_default();
    if !user.as_os_str().is_empty() && user.exists() {
        return Ok(user);
    }
    if system.exists() {
        return Ok(system);
    }
    Err(PolicyConfigError::NotFound(user, system))
}

/// Read and parse the policy at `path`.
pub fn load(path: &Path) -> Result<Policy, PolicyConfigError> {
    let data = std::fs::read(path).map_err(|source| PolicyConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&data).map_err(|message| PolicyConfigError::Invalid {
        path: path.to_path_buf(),
        message,
    })
}

/// Parse policy JSON.
pub fn parse(data: &[u8]) -> Result<Policy, String> {
    let v = strict_json::parse(data)?;
    let mut default = None;
    let mut transports = Vec::new();
    for (k, v) in v.object()? {
        match k.as_str() {
            "default" => default = Some(requirements(v)?),
            "transports" => transports = transport_scopes(v)?,
            other => return Err(format!("Unknown key {other:?}")),
        }
    }
    Ok(Policy {
        default: default.ok_or("Default policy is missing")?,
        transports,
    })
}

fn transport_scopes(v: &Value) -> Result<Vec<(String, Scopes)>, String> {
    let mut out = Vec::new();
    for (transport, scopes) in v.object()? {
        let mut s = Vec::new();
        for (scope, reqs) in scopes.object()? {
            if !scope.is_empty() && !valid_scope(transport, scope) {
                // containers/image treats an invalid scope as an unknown key.
                return Err(format!("Unknown key {scope:?}"));
            }
            s.push((scope.clone(), requirements(reqs)?));
        }
        out.push((transport.clone(), s));
    }
    Ok(out)
}

/// Whether `scope` is one `transport` accepts (as its `ValidatePolicyConfigurationScope`).
fn valid_scope(transport: &str, scope: &str) -> bool {
    match transport {
        "dir" | "oci" | "oci-archive" => {
            let path = scope.split(':').next().unwrap_or(scope);
            path.starts_with('/')
                && path != "/"
                && Path::new(path)
                    .components()
                    .all(|c| !matches!(c, std::path::Component::ParentDir | std::path::Component::CurDir))
                && !path.ends_with('/')
        }
        // `^[^/]*(/[^:/]*(/[^:/]*(:[^:/]*)?)?)?$`: host, namespace, stream, tag.
        "atomic" => {
            let mut parts = scope.splitn(3, '/');
            let _host = parts.next();
            let namespace_ok = parts.next().is_none_or(|ns| !ns.contains(':'));
            let stream_ok = parts.next().is_none_or(|rest| {
                let (stream, tag) = rest.split_once(':').unwrap_or((rest, ""));
                !stream.contains('/') && !tag.contains(['/', ':'])
            });
            namespace_ok && stream_ok
        }
        _ => true,
    }
}

fn requirements(v: &Value) -> Result<Vec<Requirement>, String> {
    let Value::Array(items) = v else {
        return Err(format!(
            "json: cannot unmarshal {} into Go value of type []json.RawMessage",
            v.kind()
        ));
    };
    if items.is_empty() {
        return Err("List of verification policy requirements must not be empty".into());
    }
    items.iter().map(requirement).collect()
}

fn type_of(v: &Value) -> Result<String, String> {
    match field(v.object()?, "type") {
        Some(t) => Ok(t.string("type")?.to_string()),
        None => Ok(String::new()),
    }
}

fn requirement(v: &Value) -> Result<Requirement, String> {
    let t = type_of(v)?;
    match t.as_str() {
        "insecureAcceptAnything" => {
            exact_fields(v, ["type"])?;
            Ok(Requirement::InsecureAcceptAnything)
        }
        "reject" => {
            exact_fields(v, ["type"])?;
            Ok(Requirement::Reject)
        }
        "signedBy" => signed_by(v),
        "signedBaseLayer" => {
            let [_, id] = exact_fields(v, ["type", "baseLayerIdentity"])?;
            identity(id)?;
            Ok(Requirement::SignedBaseLayer)
        }
        "sigstoreSigned" => sigstore_signed(v),
        other => Err(format!("Unknown policy requirement type {other:?}")),
    }
}

fn sigstore_signed(v: &Value) -> Result<Requirement, String> {
    use base64::Engine as _;
    let b64 = |x: &Value, what: &str| -> Result<Vec<u8>, String> {
        base64::engine::general_purpose::STANDARD
            .decode(x.string(what)?)
            .map_err(|e| format!("illegal base64 data in {what}: {e}"))
    };
    let list = |x: &Value, what: &str| -> Result<Vec<Value>, String> {
        match x {
            Value::Array(a) if a.is_empty() => Err(format!("{what:?} contains no entries")),
            Value::Array(a) => Ok(a.clone()),
            other => Err(strict_json::cannot_unmarshal(other, what, "[]string")),
        }
    };
    let mut sources: Vec<KeySources> = Vec::new();
    let mut keyless = 0;
    let mut rekor = false;
    let mut id = None;
    for (k, x) in v.object()? {
        match k.as_str() {
            "type" => {}
            "keyPath" => sources.push(KeySources::Paths(vec![PathBuf::from(x.string("keyPath")?)])),
            "keyPaths" => sources.push(KeySources::Paths(
                list(x, "keyPaths")?
                    .iter()
                    .map(|p| p.string("keyPaths").map(PathBuf::from))
                    .collect::<Result<_, _>>()?,
            )),
            "keyData" => sources.push(KeySources::Datas(vec![b64(x, "keyData")?])),
            "keyDatas" => sources.push(KeySources::Datas(
                list(x, "keyDatas")?
                    .iter()
                    .map(|d| b64(d, "keyDatas"))
                    .collect::<Result<_, _>>()?,
            )),
            "fulcio" | "pki" => {
                x.object()?;
                keyless += 1;
            }
            "rekorPublicKeyPath" | "rekorPublicKeyPaths" | "rekorPublicKeyData" | "rekorPublicKeyDatas" => rekor = true,
            "signedIdentity" => id = Some(identity(x)?),
            other => return Err(format!("Unknown key {other:?}")),
        }
    }
    if sources.len() + keyless != 1 {
        return Err("exactly one of keyPath, keyPaths, keyData, keyDatas, fulcio, and pki must be specified".into());
    }
    Ok(Requirement::SigstoreSigned {
        keyless: keyless > 0 || rekor,
        keys: sources.pop(),
        identity: id.ok_or("signedIdentity not specified")?,
    })
}

fn signed_by(v: &Value) -> Result<Requirement, String> {
    let obj = v.object()?;
    let mut key_type = None;
    let mut path = None;
    let mut paths = None;
    let mut data = None;
    let mut id = None;
    for (k, x) in obj {
        match k.as_str() {
            "type" => {}
            "keyType" => key_type = Some(x.string("keyType")?.to_string()),
            "keyPath" => path = Some(PathBuf::from(x.string("keyPath")?)),
            "keyPaths" => {
                let Value::Array(a) = x else {
                    return Err(strict_json::cannot_unmarshal(x, "keyPaths", "[]string"));
                };
                paths = Some(
                    a.iter()
                        .map(|p| p.string("keyPaths").map(PathBuf::from))
                        .collect::<Result<Vec<_>, _>>()?,
                );
            }
            "keyData" => {
                use base64::Engine as _;
                let s = x.string("keyData")?;
                data = Some(
                    base64::engine::general_purpose::STANDARD
                        .decode(s)
                        .map_err(|e| format!("illegal base64 data in keyData: {e}"))?,
                );
            }
            "signedIdentity" => id = Some(identity(x)?),
            other => return Err(format!("Unknown key {other:?}")),
        }
    }
    let key_type = key_type.unwrap_or_default();
    if !matches!(
        key_type.as_str(),
        "GPGKeys" | "signedByGPGKeys" | "X509Certificates" | "signedByX509CAs"
    ) {
        return Err(format!("Unrecognized keyType value {key_type:?}"));
    }
    let keys = match (path, paths, data) {
        (Some(p), None, None) => KeySource::Path(p),
        (None, Some(p), None) => KeySource::Paths(p),
        (None, None, Some(d)) => KeySource::Data(d),
        (None, None, None) => {
            return Err("Exactly one of keyPath, keyPaths and keyData must be specified, none of them present".into());
        }
        _ => {
            return Err("Exactly one of keyPath, keyPaths and keyData must be specified, more than one present".into());
        }
    };
    Ok(Requirement::SignedBy {
        key_type,
        keys,
        identity: id.unwrap_or(IdentityMatch::MatchRepoDigestOrExact),
    })
}

fn identity(v: &Value) -> Result<IdentityMatch, String> {
    let t = type_of(v)?;
    let unexpected = || format!("Unexpected policy requirement type {t:?}");
    match t.as_str() {
        "matchExact" => exact_fields(v, ["type"]).map(|_| IdentityMatch::MatchExact),
        "matchRepoDigestOrExact" => exact_fields(v, ["type"]).map(|_| IdentityMatch::MatchRepoDigestOrExact),
        "matchRepository" => exact_fields(v, ["type"]).map(|_| IdentityMatch::MatchRepository),
        "exactReference" => {
            let [_, r] = exact_fields(v, ["type", "dockerReference"])?;
            let r = r.string("dockerReference")?;
            let parsed = DockerReference::parse_normalized(r)
                .map_err(|e| format!("Invalid format of dockerReference {r:?}: {e}"))?;
            if parsed.is_name_only() {
                return Err(format!("dockerReference {r:?} contains neither a tag nor digest"));
            }
            Ok(IdentityMatch::ExactReference(parsed))
        }
        "exactRepository" => {
            let [_, r] = exact_fields(v, ["type", "dockerRepository"])?;
            let r = r.string("dockerRepository")?;
            let parsed = DockerReference::parse_normalized(r)
                .map_err(|e| format!("Invalid format of dockerRepository {r:?}: {e}"))?;
            Ok(IdentityMatch::ExactRepository(parsed))
        }
        "remapIdentity" => {
            let [_, p, s] = exact_fields(v, ["type", "prefix", "signedPrefix"])?;
            let (p, s) = (p.string("prefix")?, s.string("signedPrefix")?);
            for x in [p, s] {
                if !valid_remap_prefix(x) {
                    return Err(format!("prefix {x:?} is not valid"));
                }
            }
            Ok(IdentityMatch::RemapIdentity {
                prefix: p.to_string(),
                signed_prefix: s.to_string(),
            })
        }
        "" => Err(unexpected()),
        other => Err(format!("Unknown policy reference match type {other:?}")),
    }
}

/// A remapIdentity prefix: a host (`example.com`, `localhost:5000`), or a
/// repository name that starts with one (`example.com/ns`).
fn valid_remap_prefix(s: &str) -> bool {
    match s.split_once('/') {
        None => is_domain(s),
        Some((host, _)) => is_domain(host) && DockerReference::parse_qualified(s).is_ok_and(|r| r.is_name_only()),
    }
}

/// distribution's domain grammar: DNS labels (or a bracketed IPv6
/// address) and an optional port.
fn is_domain(s: &str) -> bool {
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || s.starts_with('[') => (h, Some(p)),
        _ => (s, None),
    };
    let (host, port) = if s.starts_with('[') && !host.ends_with(']') {
        (s, None)
    } else {
        (host, port)
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let label = |l: &str| {
        !l.is_empty()
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let host_ok = if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        inner.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        host.split('.').all(label)
    };
    port_ok && host_ok
}
