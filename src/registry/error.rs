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
    /// A network error during `op`, its URL stripped of query string and
    /// user info: presigned blob URLs carry credentials in their query, and
    /// these messages reach status, Events and logs.
    pub fn network(op: impl Into<String>, source: reqwest::Error) -> RegistryError {
        RegistryError::Network {
            op: op.into(),
            source: redact_error(source),
        }
    }

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

/// `e` with its URL passed through [`redact_url`].
pub fn redact_error(mut e: reqwest::Error) -> reqwest::Error {
    if let Some(u) = e.url_mut() {
        redact_url(u);
    }
    e
}

/// Remove what may be secret from a URL shown to people: user info, query
/// string and fragment.
pub fn redact_url(u: &mut reqwest::Url) {
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
}

/// [`redact_url`] for a URL as text; text that is not a URL loses everything
/// after a `?`.
pub fn redacted(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            redact_url(&mut u);
            u.to_string()
        }
        Err(_) => url.split('?').next().unwrap_or_default().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_credentials_and_queries() {
        assert_eq!(
            redacted("https://user:pw@s3.example/bucket/blob?X-Amz-Signature=abc&X-Amz-Credential=k#f"),
            "https://s3.example/bucket/blob"
        );
        assert_eq!(redacted("/v2/a/blobs/uploads/x?_state=secret"), "/v2/a/blobs/uploads/x");
    }

    #[tokio::test]
    async fn network_errors_name_the_url_without_its_secrets() {
        // Nothing listens on port 1 of loopback: the request fails at once.
        let e = reqwest::Client::new()
            .get("http://user:pw@127.0.0.1:1/bucket/blob?X-Amz-Signature=deadbeefsecret")
            .send()
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("deadbeefsecret"),
            "reqwest's own message carries the query: {e}"
        );
        let shown = RegistryError::network("fetching blob", e).to_string();
        assert!(shown.contains("127.0.0.1:1/bucket/blob"), "{shown}");
        assert!(!shown.contains("deadbeefsecret") && !shown.contains("pw@"), "{shown}");
    }
}
