//! OpenShift's image API (`image.openshift.io/v1`), for `atomic:` tests.
//!
//! ImageStream (namespaced, with status) and Image (cluster-scoped) are
//! stored objects like any other. The resources OpenShift's API server
//! computes are served here with its shapes and messages:
//! - `imagestreamimages/STREAM@DIGEST` (get): the Image, signatures
//!   included, when the stream's tag history names it;
//! - `imagestreammappings` (create): how the integrated registry registers
//!   a pushed manifest: the Image is created (kept if it exists) and a tag
//!   event is put first in the tag's history;
//! - `imagesignatures` (create, delete): signatures live inside the Image,
//!   named `IMAGE@NAME`.
//!
//! OpenShift 4 (and 3.6 on) serves this under `/apis/image.openshift.io/v1`;
//! before 3.6 only under the legacy `/oapi/v1`, which [`Paths::LegacyOnly`]
//! reproduces.

use crate::store::{ApiError, State, WriteOpts};
use crate::types::ResourceType;
use serde_json::{Value, json};

/// The group path, and the legacy one.
pub const GROUP_PREFIX: &str = "/apis/image.openshift.io/v1";
const LEGACY_PREFIX: &str = "/oapi/v1";
const API_VERSION: &str = "image.openshift.io/v1";

/// Which paths the image API is served under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Paths {
    /// `/apis/image.openshift.io/v1` (OpenShift ≥ 3.6, every 4.x).
    #[default]
    Group,
    /// Only `/oapi/v1` (OpenShift < 3.6).
    LegacyOnly,
}

/// How the image API is served.
#[derive(Debug, Clone, Default)]
pub struct ImageApi {
    pub paths: Paths,
    /// The registry's in-cluster address recorded in tag events and
    /// `status.dockerImageRepository`, as OpenShift records its service's.
    pub internal_registry: String,
}

/// The stored image types.
pub fn types() -> Vec<ResourceType> {
    let mut stream = ResourceType::builtin(
        "image.openshift.io",
        "v1",
        "ImageStream",
        "imagestreams",
        true,
        &["is"],
        true,
    );
    stream.categories = vec!["all".into()];
    let image = ResourceType::builtin("image.openshift.io", "v1", "Image", "images", false, &[], false);
    vec![stream, image]
}

/// The path as the group path, or `None` when this server does not serve it
/// (the group path on a legacy-only server).
pub fn normalise(api: &ImageApi, path: &str) -> Option<String> {
    match api.paths {
        Paths::Group => Some(path.to_string()),
        Paths::LegacyOnly if path.starts_with("/apis/image.openshift.io") => None,
        Paths::LegacyOnly => Some(match path.strip_prefix(LEGACY_PREFIX) {
            Some(rest) => format!("{GROUP_PREFIX}{rest}"),
            None => path.to_string(),
        }),
    }
}

/// A request for one of the computed resources.
pub enum Virtual {
    /// `GET namespaces/NS/imagestreamimages/STREAM@DIGEST`
    StreamImage { ns: String, name: String },
    /// `POST namespaces/NS/imagestreammappings`
    Mapping { ns: String },
    /// `POST imagesignatures`
    AddSignature,
    /// `DELETE imagesignatures/NAME`
    RemoveSignature { name: String },
}

impl Virtual {
    /// The request `method path` names, if it is one of these.
    pub fn parse(method: &str, path: &str) -> Option<Virtual> {
        let rest = path.strip_prefix(GROUP_PREFIX)?;
        let segs: Vec<&str> = rest.trim_matches('/').split('/').collect();
        match (method, segs.as_slice()) {
            ("GET", ["namespaces", ns, "imagestreamimages", name]) => Some(Virtual::StreamImage {
                ns: ns.to_string(),
                name: name.to_string(),
            }),
            ("POST", ["namespaces", ns, "imagestreammappings"]) => Some(Virtual::Mapping { ns: ns.to_string() }),
            ("POST", ["imagesignatures"]) => Some(Virtual::AddSignature),
            ("DELETE", ["imagesignatures", name]) => Some(Virtual::RemoveSignature { name: name.to_string() }),
            _ => None,
        }
    }

    /// The RBAC attributes of the request: verb, resource, namespace.
    pub fn authorization(&self) -> (&'static str, &'static str, Option<&str>) {
        match self {
            Virtual::StreamImage { ns, .. } => ("get", "imagestreamimages", Some(ns)),
            Virtual::Mapping { ns } => ("create", "imagestreammappings", Some(ns)),
            Virtual::AddSignature => ("create", "imagesignatures", None),
            Virtual::RemoveSignature { .. } => ("delete", "imagesignatures", None),
        }
    }

    /// Serve the request: the status code and body.
    pub fn serve(&self, state: &mut State, api: &ImageApi, body: &Value) -> Result<(u16, Value), ApiError> {
        match self {
            Virtual::StreamImage { ns, name } => stream_image(state, ns, name).map(|v| (200, v)),
            Virtual::Mapping { ns } => {
                let stream = body
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let tag = body.get("tag").and_then(Value::as_str).unwrap_or_default();
                let image = body.get("image").cloned().unwrap_or(Value::Null);
                map_image(state, api, ns, stream, tag, image)?;
                Ok((201, success(201)))
            }
            Virtual::AddSignature => add_signature(state, body).map(|v| (201, v)),
            Virtual::RemoveSignature { name } => remove_signature(state, name).map(|_| (200, success(200))),
        }
    }
}

fn success(code: u16) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code})
}

fn rt(state: &State, plural: &str) -> Result<ResourceType, ApiError> {
    state
        .find("image.openshift.io", "v1", plural)
        .cloned()
        .ok_or_else(|| ApiError::new(404, "NotFound", "the server could not find the requested resource"))
}

fn not_found(what: &str, name: &str) -> ApiError {
    let mut e = ApiError::new(
        404,
        "NotFound",
        format!("{what}.image.openshift.io \"{name}\" not found"),
    );
    e.details = Some(json!({"name": name, "group": "image.openshift.io", "kind": what}));
    e
}

fn invalid(kind: &str, name: &str, why: &str) -> ApiError {
    ApiError::new(
        422,
        "Invalid",
        format!("{kind}.image.openshift.io \"{name}\" is invalid: {why}"),
    )
}

/// Whether any tag's history in `stream` names `image`.
fn stream_names(stream: &Value, image: &str) -> bool {
    stream
        .pointer("/status/tags")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("items").and_then(Value::as_array))
        .flatten()
        .any(|e| e.get("image").and_then(Value::as_str) == Some(image))
}

pub(crate) fn stream_image(state: &State, ns: &str, name: &str) -> Result<Value, ApiError> {
    let Some((stream_name, image_name)) = name.split_once('@') else {
        return Err(ApiError::new(
            400,
            "BadRequest",
            format!("\"name\" must be in the format <stream_name>@<id>: {name:?}"),
        ));
    };
    let stream = state
        .get(&rt(state, "imagestreams")?, ns, stream_name)
        .map_err(|_| not_found("imagestreams", stream_name))?;
    if !stream_names(&stream, image_name) {
        return Err(not_found("imagestreamimage", name));
    }
    let image = state
        .get(&rt(state, "images")?, "", image_name)
        .map_err(|_| not_found("images", image_name))?;
    let created = image
        .pointer("/metadata/creationTimestamp")
        .cloned()
        .unwrap_or(Value::Null);
    Ok(json!({
        "kind": "ImageStreamImage", "apiVersion": API_VERSION,
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": created},
        "image": image,
    }))
}

/// Register `image` as the newest of `stream:tag` (an ImageStreamMapping).
pub fn map_image(
    state: &mut State,
    api: &ImageApi,
    ns: &str,
    stream_name: &str,
    tag: &str,
    mut image: Value,
) -> Result<(), ApiError> {
    let image_name = image
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if image_name.is_empty() {
        return Err(invalid(
            "ImageStreamMapping",
            stream_name,
            "image.metadata.name: Required value",
        ));
    }
    if tag.is_empty() {
        return Err(invalid("ImageStreamMapping", stream_name, "tag: Required value"));
    }
    let (streams, images) = (rt(state, "imagestreams")?, rt(state, "images")?);
    let mut stream = state
        .get(&streams, ns, stream_name)
        .map_err(|_| not_found("imagestreams", stream_name))?;
    let opts = WriteOpts::default();
    if state.get(&images, "", &image_name).is_err() {
        image["kind"] = json!("Image");
        image["apiVersion"] = json!(API_VERSION);
        state.create(&images, "", image, &opts)?;
    }
    let reference = format!("{}/{ns}/{stream_name}@{image_name}", api.internal_registry);
    let generation = stream.pointer("/metadata/generation").cloned().unwrap_or(json!(1));
    let status = stream
        .as_object_mut()
        .map(|o| o.entry("status").or_insert_with(|| json!({})));
    let Some(status) = status else {
        return Err(ApiError::new(
            500,
            "InternalError",
            "stored image stream is not an object",
        ));
    };
    status["dockerImageRepository"] = json!(format!("{}/{ns}/{stream_name}", api.internal_registry));
    if !status.get("tags").is_some_and(Value::is_array) {
        status["tags"] = json!([]);
    }
    let Some(tags) = status["tags"].as_array_mut() else {
        return Err(ApiError::new(500, "InternalError", "stored tags are not a list"));
    };
    let event = json!({"created": crate::time::now(), "dockerImageReference": reference,
                       "image": image_name, "generation": generation});
    match tags
        .iter_mut()
        .find(|t| t.get("tag").and_then(Value::as_str) == Some(tag))
    {
        Some(t) => {
            let items = t.as_object_mut().map(|o| o.entry("items").or_insert_with(|| json!([])));
            if let Some(Value::Array(items)) = items {
                // Pushing the image the tag already names changes nothing.
                if items.first().and_then(|e| e.get("image")).and_then(Value::as_str) != Some(&image_name) {
                    items.insert(0, event);
                }
            }
        }
        None => tags.push(json!({"tag": tag, "items": [event]})),
    }
    state.update(&streams, ns, stream_name, stream, true, &opts)?;
    Ok(())
}

pub(crate) fn add_signature(state: &mut State, body: &Value) -> Result<Value, ApiError> {
    let name = body
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let Some((image_name, _)) = name.split_once('@') else {
        return Err(invalid(
            "ImageSignature",
            &name,
            "metadata.name: Invalid value: must be of format <imageName>@<signatureName>",
        ));
    };
    if body.get("type").and_then(Value::as_str).unwrap_or_default().is_empty() {
        return Err(invalid("ImageSignature", &name, "type: Required value"));
    }
    if body
        .get("content")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .is_empty()
    {
        return Err(invalid("ImageSignature", &name, "content: Required value"));
    }
    let images = rt(state, "images")?;
    let mut image = state
        .get(&images, "", image_name)
        .map_err(|_| not_found("images", image_name))?;
    let mut sig = json!({"metadata": {"name": name, "creationTimestamp": crate::time::now()},
                         "type": body["type"], "content": body["content"]});
    if let Some(o) = sig.as_object_mut() {
        o.insert("kind".into(), json!("ImageSignature"));
        o.insert("apiVersion".into(), json!(API_VERSION));
    }
    let list = image
        .as_object_mut()
        .map(|o| o.entry("signatures").or_insert_with(|| json!([])));
    let Some(Value::Array(list)) = list else {
        return Err(ApiError::new(500, "InternalError", "stored signatures are not a list"));
    };
    if list
        .iter()
        .any(|s| s.pointer("/metadata/name").and_then(Value::as_str) == Some(&name))
    {
        return Err(ApiError::new(
            409,
            "AlreadyExists",
            format!("imagesignatures.image.openshift.io \"{name}\" already exists"),
        ));
    }
    list.push(sig.clone());
    state.update(&images, "", image_name, image, false, &WriteOpts::default())?;
    Ok(sig)
}

fn remove_signature(state: &mut State, name: &str) -> Result<(), ApiError> {
    let gone = || not_found("imagesignatures", name);
    let (image_name, _) = name.split_once('@').ok_or_else(gone)?;
    let images = rt(state, "images")?;
    let mut image = state.get(&images, "", image_name).map_err(|_| gone())?;
    let Some(list) = image.get_mut("signatures").and_then(Value::as_array_mut) else {
        return Err(gone());
    };
    let before = list.len();
    list.retain(|s| s.pointer("/metadata/name").and_then(Value::as_str) != Some(name));
    if list.len() == before {
        return Err(gone());
    }
    state.update(&images, "", image_name, image, false, &WriteOpts::default())?;
    Ok(())
}
