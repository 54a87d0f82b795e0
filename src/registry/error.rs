//! Errors of the registry client, with the cause a user needs to act on.

use crate::digest::Digest;

/// What went wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{op}: {source}")]
    Network {
        op: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{op}: {}", describe(.code, .message, *.status))]
    Status {
        op: String,
        status: u16,
        code: Option<String>,
        message: String,
    },
    #[error("{op}: authentication required: {detail}")]
    Unauthorized { op: String, detail: String },
    #[error("{op}: unable to retrieve auth token from {realm}: {reason}")]
    Token { op: String, realm: String, reason: String },
    #[error("pinging container registry {registry}: {reason}")]
    Ping { registry: String, reason: String },
    #[error("TLS configuration for {registry}: {reason}")]
    Tls { registry: String, reason: String },
    #[error("{op}: content digest {actual} does not match the expected {expected}")]
    DigestMismatch {
        op: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("{op}: {reason}")]
    Protocol { op: String, reason: String },
}

fn describe(code: &Option<String>, message: &str, status: u16) -> String {
    match code.as_deref() {
        Some(c) => {
            let c = c.to_lowercase().replace('_', " ");
            if message.is_empty() || message == c {
                c
            } else {
                format!("{c}: {message}")
            }
        }
        None if message.is_empty() => format!("unexpected HTTP status {status}"),
        None => format!("unexpected HTTP status {status}: {message}"),
    }
}

impl RegistryError {
    /// True when the registry said the manifest, repository or blob does not exist.
    pub fn is_not_found(&self) -> bool {
        match self {
            RegistryError::Status { status, code, .. } => {
                matches!(
                    code.as_deref(),
                    Some("MANIFEST_UNKNOWN" | "NAME_UNKNOWN" | "BLOB_UNKNOWN")
                ) || (*status == 404 && code.is_none())
            }
            _ => false,
        }
    }

    /// True for failures worth retrying: network errors, 5xx, 429.
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Network { source, .. } => transient_http(source),
            RegistryError::Status { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            _ => false,
        }
    }
}

/// Connection failures, timeouts and broken bodies are worth another try;
/// malformed requests and redirect loops are not.
pub(super) fn transient_http(e: &reqwest::Error) -> bool {
    !e.is_builder() && !e.is_redirect() && !e.is_decode() && !e.is_status()
}
