//! Reading registry answers: error bodies (errcode JSON, cut at 1 MiB),
//! and bodies read whole up to a limit.

use super::RegistryError;
use bytes::Bytes;
use reqwest::Response;

/// containers/image reads at most this much of an error body (iolimits.MaxErrorBodySize).
pub(super) const MAX_ERROR_BODY: usize = 1 << 20;

pub(super) fn net(op: &str) -> impl Fn(reqwest::Error) -> RegistryError + '_ {
    move |source| RegistryError::network(op, source)
}

/// The first `{"errors":[{"code","message"}]}` entry of an error body, or
/// (no code) the body's first 300 characters.
pub(super) fn error_body(body: &[u8]) -> (Option<String>, String) {
    #[derive(serde::Deserialize)]
    struct Errs {
        errors: Vec<Err1>,
    }
    #[derive(serde::Deserialize)]
    struct Err1 {
        code: Option<String>,
        message: Option<String>,
    }
    match serde_json::from_slice::<Errs>(body) {
        Ok(e) if !e.errors.is_empty() => (
            e.errors[0].code.clone(),
            e.errors[0].message.clone().unwrap_or_default(),
        ),
        _ => (None, String::from_utf8_lossy(body).trim().chars().take(300).collect()),
    }
}

/// Turn an error response into a [`RegistryError`], reading the registry's
/// `{"errors":[{"code","message"}]}` body.
pub(super) async fn error_from(op: &str, resp: Response) -> RegistryError {
    let status = resp.status().as_u16();
    // An endless or huge error body is cut off: its first MiB says enough.
    let body = read_at_most(resp, MAX_ERROR_BODY).await;
    let (code, message) = error_body(&body);
    if status == 401 {
        // Without an errcode body, distribution reports UNAUTHORIZED.
        let message = if code.is_some() { message } else { String::new() };
        return RegistryError::Unauthorized {
            op: op.to_string(),
            detail: crate::skopeo_texts::unauthorized(code.as_deref(), &message),
        };
    }
    RegistryError::Status {
        op: op.to_string(),
        status,
        code,
        message,
    }
}

/// Up to `limit` bytes of a body; what follows, or a broken connection, ends it.
pub(super) async fn read_at_most(mut resp: Response, limit: usize) -> Bytes {
    let mut buf = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        let room = limit - buf.len();
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if buf.len() >= limit {
            break;
        }
    }
    buf.into()
}

pub(super) async fn read_limited(op: &str, mut resp: Response, limit: usize) -> Result<Bytes, RegistryError> {
    let mut buf = Vec::new();
    let announced = resp.content_length();
    loop {
        let chunk = match resp.chunk().await {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(e) => return Err(super::error::body_error(op, e, buf.len() as u64, announced)),
        };
        if buf.len() + chunk.len() > limit {
            return Err(RegistryError::Protocol {
                op: op.to_string(),
                reason: format!("response larger than {limit} bytes"),
            });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.into())
}
