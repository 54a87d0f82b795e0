//! containers-tls-details.yaml(5) (`--tls-details`): the minimum TLS
//! version, TLS 1.2 cipher suites and key exchange groups used throughout
//! the program, with the names Go's crypto/tls gives them. As in Go, TLS 1.3
//! suites are not configurable (listing one is allowed and changes nothing).

use rustls::crypto::CryptoProvider;
use serde::Deserialize;
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// The file's contents (unknown keys refused, as skopeo refuses them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TlsDetails {
    #[serde(default)]
    pub min_version: Option<String>,
    #[serde(default)]
    pub cipher_suites: Option<Vec<String>>,
    #[serde(default)]
    pub named_groups: Option<Vec<String>>,
}

/// Why a TLS details file was refused.
#[derive(Debug, thiserror::Error)]
pub enum TlsDetailsError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing {path}: {reason}")]
    Parse { path: String, reason: String },
    #[error("parsing TLS details {path}: unrecognized TLS minimum version {version:?}")]
    MinVersion { path: String, version: String },
    #[error("parsing TLS details {path}: unrecognized TLS cipher suite {suite:?}")]
    CipherSuite { path: String, suite: String },
    #[error("parsing TLS details {path}: unrecognized TLS named group {group:?}")]
    NamedGroup { path: String, group: String },
}

/// What the file asks of every TLS connection.
#[derive(Debug, Clone)]
pub struct TlsPolicy {
    /// Only TLS 1.3 (`minVersion: "1.3"`).
    pub tls13_only: bool,
    pub provider: Arc<CryptoProvider>,
}

static POLICY: OnceLock<TlsPolicy> = OnceLock::new();

/// Apply `--tls-details` to every registry connection of this process.
pub fn install(path: &Path) -> Result<(), TlsDetailsError> {
    let policy = load(path)?;
    let _ = POLICY.set(policy);
    Ok(())
}

/// The policy in force: the file's, or aws-lc's defaults.
pub fn policy() -> TlsPolicy {
    POLICY.get().cloned().unwrap_or_else(|| TlsPolicy {
        tls13_only: false,
        provider: Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
    })
}

/// Go's name of a rustls cipher suite (`TLS13_AES_128_GCM_SHA256` is Go's `TLS_AES_128_GCM_SHA256`).
fn go_name(suite: rustls::CipherSuite) -> String {
    let name = format!("{suite:?}");
    match name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => name,
    }
}

/// Read and check the file at `path`.
pub fn load(path: &Path) -> Result<TlsPolicy, TlsDetailsError> {
    let p = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| TlsDetailsError::Read {
        path: p.clone(),
        source,
    })?;
    let details: TlsDetails = if text.trim().is_empty() {
        TlsDetails::default()
    } else {
        serde_yaml_ng::from_str(&text).map_err(|e| TlsDetailsError::Parse {
            path: p.clone(),
            reason: e.to_string(),
        })?
    };
    let tls13_only = match details.min_version.as_deref() {
        // rustls speaks nothing older than TLS 1.2.
        None | Some("1.0" | "1.1" | "1.2") => false,
        Some("1.3") => true,
        Some(other) => {
            return Err(TlsDetailsError::MinVersion {
                path: p,
                version: other.to_string(),
            });
        }
    };
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    if let Some(names) = &details.cipher_suites {
        let all = rustls::crypto::aws_lc_rs::ALL_CIPHER_SUITES;
        for n in names {
            if !all.iter().any(|s| go_name(s.suite()) == *n) {
                return Err(TlsDetailsError::CipherSuite {
                    path: p,
                    suite: n.clone(),
                });
            }
        }
        provider.cipher_suites = all
            .iter()
            .filter(|s| s.tls13().is_some() || names.contains(&go_name(s.suite())))
            .copied()
            .collect();
    }
    if let Some(names) = &details.named_groups {
        let mut groups = vec![];
        for n in names {
            let found = rustls::crypto::aws_lc_rs::ALL_KX_GROUPS
                .iter()
                .find(|g| format!("{:?}", g.name()).eq_ignore_ascii_case(n))
                .ok_or_else(|| TlsDetailsError::NamedGroup {
                    path: p.clone(),
                    group: n.clone(),
                })?;
            groups.push(*found);
        }
        provider.kx_groups = groups;
    }
    Ok(TlsPolicy {
        tls13_only,
        provider: Arc::new(provider),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<TlsPolicy, TlsDetailsError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tls.yaml");
        std::fs::write(&p, text).unwrap();
        load(&p)
    }

    #[test]
    fn go_names_select_versions_suites_and_groups() {
        let p = load_text("minVersion: \"1.3\"\n").unwrap();
        assert!(p.tls13_only);
        let p = load_text(
            "cipherSuites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_AES_128_GCM_SHA256]\nnamedGroups: [x25519, secp256r1]\n",
        )
        .unwrap();
        let tls12: Vec<String> = p
            .provider
            .cipher_suites
            .iter()
            .filter(|s| s.tls13().is_none())
            .map(|s| go_name(s.suite()))
            .collect();
        assert_eq!(tls12, ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]);
        assert_eq!(p.provider.kx_groups.len(), 2);
        assert!(matches!(
            load_text("minVersion: \"2.0\"\n"),
            Err(TlsDetailsError::MinVersion { .. })
        ));
        assert!(matches!(
            load_text("cipherSuites: [TLS_RSA_WITH_RC4_128_SHA]\n"),
            Err(TlsDetailsError::CipherSuite { .. })
        ));
        assert!(matches!(load_text("bogus: 1\n"), Err(TlsDetailsError::Parse { .. })));
    }
}
