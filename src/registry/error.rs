//! Errors of the registry client, with the cause a user needs to act on.

use crate::digest::Digest;

/// What went wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{op}: {}", causes(.source))]
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
    /// A 401, or a token server refusing the credentials; `detail` is said as skopeo says it.
    #[error("{op}: {detail}")]
    Unauthorized { op: String, detail: String },
    #[error("{op}: unable to retrieve auth token from {realm}: {reason}")]
    Token { op: String, realm: String, reason: String },
    /// The token endpoint could not be reached or answered 5xx/429: worth another try.
    #[error("{op}: unable to retrieve auth token from {realm}: {reason}")]
    TokenUnavailable { op: String, realm: String, reason: String },
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
    /// The registry sent nothing for the read time-out (see `registry::tls`).
    #[error("{op}: the registry sent nothing for {} s (KOPEO_READ_TIMEOUT)", .secs)]
    Stalled { op: String, secs: u64 },
    /// The connection closed before the body's announced length arrived.
    #[error("{op}: the registry closed the connection after {received} bytes{}: the answer was cut short", announced.map(|a| format!(" of the {a} it announced")).unwrap_or_default())]
    CutShort {
        op: String,
        received: u64,
        announced: Option<u64>,
    },
    /// Sending a blob's bytes failed. Such a request cannot be replayed by
    /// the client (the body is a stream): the copy sends the blob again.
    #[error("{0}")]
    Upload(Box<RegistryError>),
}

fn describe(code: &Option<String>, message: &str, status: u16) -> String {
    match code.as_deref() {
        Some(c) => crate::skopeo_texts::registry_error(c, message),
        None if message.is_empty() => format!("unexpected HTTP status {status}"),
        None => format!("unexpected HTTP status {status}: {message}"),
    }
}

impl RegistryError {
    /// A network error during `op`, its URL stripped of query string and
    /// user info: presigned blob URLs carry credentials in their query, and
    /// these messages reach status, Events and logs.
    pub fn network(op: impl Into<String>, source: reqwest::Error) -> RegistryError {
        // Only reads time out (connecting has its own, longer, limit): say how long it waited.
        if source.is_timeout() && !source.is_connect() {
            return RegistryError::Stalled {
                op: op.into(),
                secs: super::tls::read_timeout().as_secs(),
            };
        }
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

    /// True when the registry or its token server refused the credentials
    /// (or asked for some): a credential fix, not a retry, helps.
    pub fn is_unauthorized(&self) -> bool {
        match self {
            RegistryError::Unauthorized { .. } => true,
            RegistryError::Upload(e) => e.is_unauthorized(),
            _ => false,
        }
    }

    /// True when sending a blob's bytes failed transiently: the one failure
    /// the copy pipeline retries itself (requests the client can replay,
    /// and interrupted downloads, are retried by the client).
    pub fn is_retryable_upload(&self) -> bool {
        matches!(self, RegistryError::Upload(e) if e.is_transient())
    }

    /// True for failures worth retrying: network errors, 5xx, 429.
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Network { source, .. } => transient_http(source),
            RegistryError::Status { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            RegistryError::TokenUnavailable { .. } | RegistryError::CutShort { .. } | RegistryError::Stalled { .. } => {
                true
            }
            RegistryError::Upload(e) => e.is_transient(),
            _ => false,
        }
    }
}

/// Whether reading a body failed because the connection closed before the
/// length the server announced (hyper says so with an `UnexpectedEof` I/O
/// error, or an "incomplete message").
pub(super) fn cut_short(e: &reqwest::Error) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(cause) = next {
        let eof = cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::UnexpectedEof);
        if eof
            || cause
                .downcast_ref::<hyper::Error>()
                .is_some_and(hyper::Error::is_incomplete_message)
        {
            return true;
        }
        next = cause.source();
    }
    false
}

/// A failure reading a body: said plainly when the body was cut short.
pub(super) fn body_error(op: &str, e: reqwest::Error, received: u64, announced: Option<u64>) -> RegistryError {
    if cut_short(&e) {
        return RegistryError::CutShort {
            op: op.to_string(),
            received,
            announced,
        };
    }
    RegistryError::network(op, e)
}

/// Connection failures, timeouts and broken bodies are worth another try;
/// malformed requests and redirect loops are not.
pub(super) fn transient_http(e: &reqwest::Error) -> bool {
    !e.is_builder() && !e.is_redirect() && !e.is_decode() && !e.is_status()
}

/// An error and its causes, as one line: reqwest's own message says only
/// "error sending request"; what went wrong (a refused certificate, a reset
/// connection) is further down the chain.
pub fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = match tls_error(cause) {
            Some(t) => {
                // Say it as Go (and so skopeo) says it: scripts grep for these.
                let said = certificate_problem(t).unwrap_or_else(|| t.to_string());
                out = out.replace(&t.to_string(), "");
                said
            }
            None => cause.to_string(),
        };
        if !out.contains(&text) {
            out = out.trim_end_matches([':', ' ']).to_string();
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    out.replace('\n', " ")
}

/// The rustls error `e` is or wraps (I/O errors carry it as their payload,
/// sometimes one inside another).
fn tls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(t) = e.downcast_ref::<rustls::Error>() {
        return Some(t);
    }
    let inner = e.downcast_ref::<std::io::Error>()?.get_ref()?;
    tls_error(inner)
}

/// A refused server certificate in the words of Go's crypto/x509.
fn certificate_problem(e: &rustls::Error) -> Option<String> {
    use rustls::CertificateError as C;
    let rustls::Error::InvalidCertificate(c) = e else {
        return None;
    };
    let why = match c {
        C::UnknownIssuer => "x509: certificate signed by unknown authority".to_string(),
        // webpki's word for a self-signed (CA:TRUE) certificate that is not trusted.
        C::Other(o)
            if matches!(
                o.0.downcast_ref::<webpki::Error>(),
                Some(webpki::Error::CaUsedAsEndEntity)
            ) =>
        {
            "x509: certificate signed by unknown authority".to_string()
        }
        C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. } => {
            "x509: certificate has expired or is not yet valid".to_string()
        }
        C::NotValidForNameContext { expected, presented } => {
            // `presented` reads like `DnsName("localhost")`: keep the names.
            let names: Vec<&str> = presented.iter().filter_map(|p| p.split('"').nth(1)).collect();
            let expected = match expected {
                rustls::pki_types::ServerName::DnsName(d) => d.as_ref().to_string(),
                rustls::pki_types::ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
                other => format!("{other:?}"),
            };
            let any_ip = presented.iter().any(|p| p.starts_with("IpAddress"));
            if expected.parse::<std::net::IpAddr>().is_ok() && !any_ip {
                format!("x509: cannot validate certificate for {expected} because it doesn't contain any IP SANs")
            } else {
                format!("x509: certificate is valid for {}, not {expected}", names.join(", "))
            }
        }
        C::NotValidForName => "x509: certificate is not valid for this host name".to_string(),
        _ => return None,
    };
    Some(format!("tls: failed to verify certificate: {why}"))
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
