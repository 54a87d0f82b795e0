//! The signature API extension of OpenShift's integrated registry
//! (openshift/image-registry's signature dispatcher), served by the
//! registry front: `GET /extensions/v2/NS/NAME/signatures/DIGEST` lists the
//! signatures of the image the stream `NS/NAME` holds (404 when it holds no
//! such image), `PUT` with one `{"schemaVersion": 2, "name", "type",
//! "content"}` creates an ImageSignature through the image API as the
//! requesting user (201, no body; `SIGNATURE_INVALID` 400 for a bad body or
//! schema, `SIGNATURE_EXISTS` 409 for a name taken). The registry announces
//! it on every answer with `X-Registry-Supports-Signatures: 1`.

use crate::authz::{Attributes, User};
use crate::http::Shared;
use crate::openshift;
use crate::store::ApiError;
use serde_json::{Value, json};

/// The path prefix of the extension.
pub const PREFIX: &str = "/extensions/v2/";

/// `NS/NAME/signatures/DIGEST` → (NS, NAME, DIGEST).
pub(crate) fn parse(path: &str) -> Option<(String, String, String)> {
    let rest = path.strip_prefix(PREFIX)?;
    let (repo, digest) = rest.rsplit_once("/signatures/")?;
    let (ns, name) = repo.split_once('/')?;
    (!ns.is_empty() && !name.is_empty() && !digest.is_empty()).then(|| (ns.into(), name.into(), digest.into()))
}

/// What the dispatcher answers: status, errcode (code, message, detail) or JSON body.
pub(crate) enum Answer {
    Ok(Value),
    Created,
    NotFound,
    Error(u16, &'static str, &'static str, String),
}

fn may(shared: &Shared, user: &User, verb: &str, resource: &str, ns: Option<&str>) -> bool {
    !shared.rbac
        || crate::authz::allowed(
            &crate::http::lock(shared),
            user,
            &Attributes {
                verb,
                group: "image.openshift.io",
                resource,
                subresource: None,
                namespace: ns,
                name: None,
            },
        )
}

fn api_error(e: ApiError) -> Answer {
    match e.code {
        404 => Answer::NotFound,
        401 | 403 => Answer::Error(401, "UNAUTHORIZED", "authentication required", e.message),
        409 => Answer::Error(409, "SIGNATURE_EXISTS", "image signature already exists", e.message),
        400 | 422 => Answer::Error(400, "SIGNATURE_INVALID", "invalid image signature", e.message),
        _ => Answer::Error(500, "UNKNOWN", "unknown error", e.message),
    }
}

/// The signatures of `ns/name@digest`, as the dispatcher's GET lists them.
pub(crate) fn get(shared: &Shared, user: &User, ns: &str, name: &str, digest: &str) -> Answer {
    if !may(shared, user, "get", "imagestreamimages", Some(ns)) {
        return Answer::Error(
            401,
            "UNAUTHORIZED",
            "authentication required",
            "not authorized to get image signature".into(),
        );
    }
    let state = crate::http::lock(shared);
    let image = match openshift::stream_image(&state, ns, &format!("{name}@{digest}")) {
        Ok(i) => i,
        Err(e) => return api_error(e),
    };
    let signatures: Vec<Value> = image
        .pointer("/image/signatures")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|s| {
            json!({"schemaVersion": 2, "name": s.pointer("/metadata/name").cloned().unwrap_or(Value::Null),
                   "type": s.get("type").cloned().unwrap_or(Value::Null),
                   "content": s.get("content").cloned().unwrap_or(Value::Null)})
        })
        .collect();
    Answer::Ok(json!({ "signatures": signatures }))
}

/// Create the signature `body` describes, as the dispatcher's PUT does.
pub(crate) fn put(shared: &Shared, user: &User, body: &[u8]) -> Answer {
    let invalid = |why: String| Answer::Error(400, "SIGNATURE_INVALID", "invalid image signature", why);
    let sig: Value = match serde_json::from_slice(body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return invalid("the body is not a signature object".into()),
        Err(e) => return invalid(e.to_string()),
    };
    let kind = match sig.get("type").and_then(Value::as_str) {
        Some(t) if !t.is_empty() => t.to_string(),
        _ => "AtomicImageV1".to_string(),
    };
    if sig.get("schemaVersion").and_then(Value::as_i64) != Some(2) {
        return invalid("only schemaVersion=2 is currently supported".into());
    }
    if !may(shared, user, "create", "imagesignatures", None) {
        return Answer::Error(
            401,
            "UNAUTHORIZED",
            "authentication required",
            "not authorized to create image signatures".into(),
        );
    }
    let request = json!({"metadata": {"name": sig.get("name").cloned().unwrap_or(Value::Null)},
                         "type": kind, "content": sig.get("content").cloned().unwrap_or(Value::Null)});
    let mut state = crate::http::lock(shared);
    match openshift::add_signature(&mut state, &request) {
        Ok(_) => Answer::Created,
        Err(e) => api_error(e),
    }
}
