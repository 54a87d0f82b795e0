//! HTTP: routing of API paths to the store, lists, watches, discovery and
//! Table output, with errors as `Status` objects.

use crate::authz::{Attributes, User};
use crate::discovery;
use crate::select::{FieldSelector, LabelSelector};
use crate::store::{ApiError, Event, PatchRequest, State, WriteOpts};
use crate::types::ResourceType;
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::Frame;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Shared server state plus settings.
pub struct Shared {
    pub state: Mutex<State>,
    /// When set, every request must carry `Authorization: Bearer <token>`
    /// (this one, the administrator's, or one of `users`).
    pub token: Option<String>,
    /// Further bearer tokens and the users they authenticate.
    pub users: Mutex<Vec<(String, User)>>,
    /// Authorize every user but the administrator by RBAC.
    pub rbac: bool,
    /// Where every request is recorded, when set.
    pub audit: Option<crate::audit::AuditLog>,
    /// Failures to answer with instead of serving (see [`crate::Fault`]).
    pub faults: Mutex<Vec<crate::Fault>>,
    /// OpenShift's image API, when served.
    pub openshift: Option<crate::openshift::ImageApi>,
}

/// The user a request authenticates as; `None` when its token is unknown.
fn authenticate(shared: &Shared, req: &Request<hyper::body::Incoming>) -> Option<User> {
    let presented = req
        .headers()
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "));
    authenticate_token(shared, presented)
}

/// The user `presented` (a bearer token) authenticates as.
pub(crate) fn authenticate_token(shared: &Shared, presented: Option<&str>) -> Option<User> {
    let users = shared.users.lock().unwrap_or_else(|p| p.into_inner());
    // Without a server token, requests without one are the administrator's
    // (tokens handed to pods still name their accounts).
    if shared.token.is_none() && (users.is_empty() || presented.is_none()) {
        return Some(User::admin());
    }
    let presented = presented?;
    if shared.token.as_deref() == Some(presented) {
        return Some(User::admin());
    }
    users.iter().find(|(t, _)| t == presented).map(|(_, u)| u.clone())
}

pub(crate) fn lock(s: &Shared) -> std::sync::MutexGuard<'_, State> {
    s.state.lock().unwrap_or_else(|p| p.into_inner())
}

fn json_response(code: u16, v: &Value) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(v.to_string())).boxed_unsync())
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed_unsync()))
}

fn error(e: ApiError) -> Response<Body> {
    json_response(e.code, &e.status())
}

/// A parsed resource path.
struct Target {
    rt: ResourceType,
    ns: Option<String>,
    name: Option<String>,
    status: bool,
}

fn route(state: &State, path: &str) -> Result<Option<Target>, ApiError> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Ok(None),
    };
    let not_found = || ApiError::new(404, "NotFound", "the server could not find the requested resource");
    let find = |plural: &str| state.find(group, version, plural).cloned().ok_or_else(not_found);
    let t = match rest {
        [] => return Ok(None),
        ["namespaces", ns, plural, more @ ..]
            if *plural != "status" && !(group.is_empty() && more.is_empty() && *plural == "finalize") =>
        {
            let rt = find(plural)?;
            if !rt.namespaced {
                return Err(not_found());
            }
            let (name, status) = match more {
                [] => (None, false),
                [n] => (Some(n.to_string()), false),
                [n, "status"] => (Some(n.to_string()), true),
                _ => return Err(not_found()),
            };
            Target {
                rt,
                ns: Some(ns.to_string()),
                name,
                status,
            }
        }
        [plural, more @ ..] => {
            let rt = find(plural)?;
            let (name, status) = match more {
                [] => (None, false),
                [n] => (Some(n.to_string()), false),
                [n, "status"] => (Some(n.to_string()), true),
                _ => return Err(not_found()),
            };
            if rt.namespaced && name.is_some() {
                return Err(not_found());
            }
            Target {
                rt,
                ns: None,
                name,
                status,
            }
        }
    };
    if t.status && !t.rt.status_subresource {
        return Err(not_found());
    }
    Ok(Some(t))
}

fn query(req: &Request<hyper::body::Incoming>) -> HashMap<String, String> {
    req.uri()
        .query()
        .map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// Handle one request (and record it in the audit log).
pub async fn handle(shared: Arc<Shared>, req: Request<hyper::body::Incoming>) -> Result<Response<Body>, Infallible> {
    let user = authenticate(&shared, &req);
    let Some(audit) = shared.audit.is_some().then(|| {
        let watch = query(&req).get("watch").is_some_and(|w| w == "true" || w == "1");
        let accept = req.headers().get("accept").and_then(|h| h.to_str().ok()).unwrap_or("");
        // Which shape was asked for: whole objects, metadata only, or a Table.
        let shape = if accept.contains("as=PartialObjectMetadata") {
            "PartialObjectMetadata"
        } else if accept.contains("as=Table") {
            "Table"
        } else {
            "Object"
        };
        (req.method().to_string(), req.uri().to_string(), watch, shape)
    }) else {
        return serve(shared, req, user).await;
    };
    let name = user.as_ref().map(|u| u.name.clone()).unwrap_or_default();
    let response = serve(shared.clone(), req, user).await;
    if let (Some(log), Ok(r)) = (&shared.audit, &response) {
        log.record(&audit.0, &audit.1, audit.2, r.status().as_u16(), &name, audit.3);
    }
    response
}

/// The answer of the first fault that matches, counting it down.
fn injected_fault(shared: &Shared, method: &Method, path: &str, body: &[u8]) -> Option<Response<Body>> {
    let mut faults = shared.faults.lock().unwrap_or_else(|p| p.into_inner());
    let i = faults.iter().position(|f| f.matches(method.as_str(), path, body))?;
    let code = faults[i].code;
    if let Some(n) = faults[i].times.as_mut() {
        *n -= 1;
        if *n == 0 {
            faults.remove(i);
        }
    }
    Some(error(ApiError::new(code, "InternalError", "injected fault")))
}

async fn serve(
    shared: Arc<Shared>,
    req: Request<hyper::body::Incoming>,
    user: Option<User>,
) -> Result<Response<Body>, Infallible> {
    let Some(user) = user else {
        return Ok(error(ApiError::new(401, "Unauthorized", "Unauthorized")));
    };
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let path = match &shared.openshift {
        Some(api) => match crate::openshift::normalise(api, &path) {
            Some(p) => p,
            None => {
                return Ok(error(ApiError::new(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                )));
            }
        },
        None => path,
    };
    if let (Some(api), Some(v)) = (
        &shared.openshift,
        crate::openshift::Virtual::parse(method.as_str(), &path),
    ) {
        return Ok(serve_image_api(&shared, api, v, req, &user, &path).await);
    }
    let q = query(&req);
    let accept = req
        .headers()
        .get("accept")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    let ctype = req
        .headers()
        .get("content-type")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    if method == Method::GET {
        if let Some(v) = discovery::serve(&lock(&shared), &path) {
            return Ok(match v {
                Ok(v) => json_response(200, &v),
                Err(e) => error(e),
            });
        }
    }
    let target = match route(&lock(&shared), &path) {
        Ok(Some(t)) => t,
        Ok(None) => {
            return Ok(error(ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )));
        }
        Err(e) => return Ok(error(e)),
    };
    let watching = q.get("watch").is_some_and(|w| w == "true" || w == "1");
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(error(ApiError::new(400, "BadRequest", "could not read the body"))),
    };
    if let Some(r) = injected_fault(&shared, &method, &path, &body) {
        return Ok(r);
    }
    if shared.rbac {
        let verb = match (&method, &target.name) {
            (&Method::GET, None) if watching => "watch",
            (&Method::GET, None) => "list",
            (&Method::GET, Some(_)) => "get",
            (&Method::POST, _) => "create",
            (&Method::PUT, _) => "update",
            (&Method::PATCH, _) => "patch",
            (&Method::DELETE, None) => "deletecollection",
            (&Method::DELETE, Some(_)) => "delete",
            _ => "unknown",
        };
        let attrs = Attributes {
            verb,
            group: &target.rt.group,
            resource: &target.rt.plural,
            subresource: target.status.then_some("status"),
            namespace: target.ns.as_deref(),
            name: target.name.as_deref(),
        };
        let state = lock(&shared);
        let mut refused = (!crate::authz::allowed(&state, &user, &attrs)).then_some(verb);
        // A server-side apply that creates the object is also authorized as create.
        if refused.is_none() && verb == "patch" && ctype.starts_with("application/apply-patch") {
            if let Some(name) = &target.name {
                let ns = target.ns.clone().unwrap_or_default();
                let create = Attributes {
                    verb: "create",
                    ..attrs.clone()
                };
                if state.get(&target.rt, &ns, name).is_err() && !crate::authz::allowed(&state, &user, &create) {
                    refused = Some("create");
                }
            }
        }
        drop(state);
        if let Some(verb) = refused {
            let kind_group = if target.rt.group.is_empty() {
                target.rt.plural.clone()
            } else {
                format!("{}.{}", target.rt.plural, target.rt.group)
            };
            let msg = crate::authz::forbidden_message(&user, &Attributes { verb, ..attrs }, &kind_group);
            return Ok(error(ApiError::new(403, "Forbidden", msg)));
        }
    }
    let opts = WriteOpts {
        dry_run: q.get("dryRun").is_some_and(|d| d == "All"),
        strict: q.get("fieldValidation").is_some_and(|v| v == "Strict"),
        field_manager: q.get("fieldManager").cloned(),
    };
    let ns = target.ns.clone().unwrap_or_default();
    let parse = |b: &Bytes| -> Result<Value, ApiError> {
        if b.is_empty() {
            return Ok(Value::Null);
        }
        if crate::protobuf::is_protobuf(&ctype) {
            return crate::protobuf::decode(b).map_err(|r| match r {
                crate::protobuf::Refusal::Malformed(e) => {
                    ApiError::new(400, "BadRequest", format!("the body could not be decoded: {e}"))
                }
                crate::protobuf::Refusal::Unsupported(e) => ApiError::new(415, "UnsupportedMediaType", e),
            });
        }
        serde_json::from_slice(b)
            .or_else(|_| serde_yaml_ng::from_slice::<Value>(b))
            .map_err(|e| ApiError::new(400, "BadRequest", format!("the body could not be decoded: {e}")))
    };
    let result = match (&method, &target.name) {
        (&Method::GET, None) if watching => {
            return Ok(watch(shared, target, q, &accept));
        }
        (&Method::GET, None) => list(&shared, &target, &q, &accept),
        (&Method::GET, Some(name)) => {
            let o = lock(&shared).get(&target.rt, &ns, name);
            o.map(|o| {
                if accept.contains("as=Table") {
                    crate::table::table(&target.rt, vec![o])
                } else if accept.contains("as=PartialObjectMetadata") {
                    metadata_only(&o)
                } else {
                    o
                }
            })
        }
        (&Method::POST, None) => parse(&body).and_then(|o| lock(&shared).create(&target.rt, &ns, o, &opts)),
        (&Method::PUT, Some(name)) => {
            parse(&body).and_then(|o| lock(&shared).update(&target.rt, &ns, name, o, target.status, &opts))
        }
        (&Method::PATCH, Some(name)) => {
            let kind = match ctype.split(';').next().unwrap_or("").trim() {
                "application/merge-patch+json" => "merge",
                "application/json-patch+json" => "json",
                "application/strategic-merge-patch+json" if !target.rt.custom => "strategic",
                "application/apply-patch+yaml" | "application/apply-patch+json" => "apply",
                other => {
                    return Ok(error(ApiError::new(
                        415,
                        "UnsupportedMediaType",
                        format!(
                            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {other:?})"
                        ),
                    )));
                }
            };
            if kind == "apply" && opts.field_manager.is_none() {
                return Ok(error(ApiError::new(
                    400,
                    "BadRequest",
                    "PATCH, application/apply-patch+yaml: fieldManager is required for apply requests",
                )));
            }
            let force = q.get("force").is_some_and(|f| f == "true");
            let mut state = lock(&shared);
            let existed = state.get(&target.rt, &ns, name).is_ok();
            let r = parse(&body).and_then(|p| {
                state.patch(
                    &target.rt,
                    &ns,
                    name,
                    &PatchRequest {
                        kind,
                        status: target.status,
                        force,
                    },
                    &p,
                    &opts,
                )
            });
            drop(state);
            if !existed {
                return Ok(match r {
                    Ok(v) => json_response(201, &v),
                    Err(e) => error(e),
                });
            }
            r
        }
        (&Method::DELETE, Some(name)) => {
            let opts_body = parse(&body).unwrap_or(Value::Null);
            let pre = opts_body.get("preconditions").cloned().unwrap_or(Value::Null);
            lock(&shared).delete(&target.rt, &ns, name, &pre, &opts)
        }
        _ => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!("{method} is not allowed here"),
        )),
    };
    Ok(match result {
        Ok(v) => json_response(if method == Method::POST { 201 } else { 200 }, &v),
        Err(e) => error(e),
    })
}

/// One of the image API's computed resources (see [`crate::openshift`]).
async fn serve_image_api(
    shared: &Shared,
    api: &crate::openshift::ImageApi,
    v: crate::openshift::Virtual,
    req: Request<hyper::body::Incoming>,
    user: &User,
    path: &str,
) -> Response<Body> {
    let method = req.method().clone();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return error(ApiError::new(400, "BadRequest", "could not read the body")),
    };
    if let Some(r) = injected_fault(shared, &method, path, &body) {
        return r;
    }
    let (verb, resource, namespace) = v.authorization();
    if shared.rbac {
        let attrs = Attributes {
            verb,
            group: "image.openshift.io",
            resource,
            subresource: None,
            namespace,
            name: None,
        };
        if !crate::authz::allowed(&lock(shared), user, &attrs) {
            let msg = crate::authz::forbidden_message(user, &attrs, &format!("{resource}.image.openshift.io"));
            return error(ApiError::new(403, "Forbidden", msg));
        }
    }
    let parsed = match body.is_empty() {
        true => Value::Null,
        false => match serde_json::from_slice::<Value>(&body) {
            Ok(v) => v,
            Err(e) => {
                return error(ApiError::new(
                    400,
                    "BadRequest",
                    format!("the body could not be decoded: {e}"),
                ));
            }
        },
    };
    match v.serve(&mut lock(shared), api, &parsed) {
        Ok((code, v)) => json_response(code, &v),
        Err(e) => error(e),
    }
}

fn selectors(q: &HashMap<String, String>) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let bad = |e: String| ApiError::new(400, "BadRequest", e);
    Ok((
        LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or("")).map_err(bad)?,
        FieldSelector::parse(q.get("fieldSelector").map(String::as_str).unwrap_or("")).map_err(bad)?,
    ))
}

fn list(shared: &Shared, t: &Target, q: &HashMap<String, String>, accept: &str) -> Result<Value, ApiError> {
    let (ls, fs) = selectors(q)?;
    let state = lock(shared);
    let mut items: Vec<Value> = state
        .list(&t.rt, t.ns.as_deref())
        .into_iter()
        .filter(|o| ls.matches(o) && fs.matches(o))
        .collect();
    let rv = state.rv.to_string();
    drop(state);
    // limit/continue: the token is the position after which to go on.
    let start: usize = q.get("continue").and_then(|c| c.parse().ok()).unwrap_or(0);
    let limit: usize = q
        .get("limit")
        .and_then(|l| l.parse().ok())
        .filter(|l| *l > 0)
        .unwrap_or(usize::MAX);
    let total = items.len();
    items = items.into_iter().skip(start).take(limit).collect();
    let mut metadata = json!({"resourceVersion": rv});
    if start + items.len() < total {
        metadata["continue"] = Value::String((start + items.len()).to_string());
        metadata["remainingItemCount"] = json!(total - start - items.len());
    }
    if accept.contains("as=Table") {
        let mut table = crate::table::table(&t.rt, items);
        table["metadata"] = metadata;
        return Ok(table);
    }
    if accept.contains("as=PartialObjectMetadataList") {
        let items: Vec<Value> = items.iter().map(metadata_only).collect();
        return Ok(
            json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList", "metadata": metadata, "items": items}),
        );
    }
    Ok(
        json!({"apiVersion": t.rt.api_version(), "kind": format!("{}List", t.rt.kind), "metadata": metadata, "items": items}),
    )
}

fn watch_event(kind: &str, object: &Value) -> Bytes {
    Bytes::from(format!("{}\n", json!({"type": kind, "object": object})))
}

/// A chunked stream of watch events: replay, then live events.
/// An object as `Accept: …;as=PartialObjectMetadata` asks for it: metadata only.
fn metadata_only(o: &Value) -> Value {
    json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": o.get("metadata").cloned().unwrap_or(Value::Null)})
}

fn watch(shared: Arc<Shared>, t: Target, q: HashMap<String, String>, accept: &str) -> Response<Body> {
    let meta_only = accept.contains("as=PartialObjectMetadata");
    let shape = move |o: Value| if meta_only { metadata_only(&o) } else { o };
    let (ls, fs) = match selectors(&q) {
        Ok(s) => s,
        Err(e) => return error(e),
    };
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(1800);
    let bookmarks = q.get("allowWatchBookmarks").is_some_and(|b| b == "true");
    let initial = q.get("sendInitialEvents").is_some_and(|b| b == "true");
    let rv_param = q.get("resourceVersion").cloned().unwrap_or_default();
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(256);
    let matches = move |ns_filter: &Option<String>, ev_ns: &str, o: &Value| {
        ns_filter.as_ref().is_none_or(|n| n == ev_ns) && ls.matches(o) && fs.matches(o)
    };
    let type_key = t.rt.key();
    let ns_filter = if t.rt.namespaced { t.ns.clone() } else { None };
    let rt = t.rt.clone();
    // Subscribe before taking the snapshot so that nothing falls in between.
    let (mut live, snapshot, mut last) = {
        let state = lock(&shared);
        let live = state.tx.subscribe();
        let current = state.rv;
        let snapshot: Result<Vec<(&'static str, Value)>, ()> = if rv_param.is_empty() || rv_param == "0" || initial {
            Ok(state
                .list(&rt, ns_filter.as_deref())
                .into_iter()
                .map(|o| ("ADDED", o))
                .collect())
        } else {
            match rv_param.parse::<u64>() {
                Ok(rv) => state
                    .events_since(rv, &type_key)
                    .map(|evs| evs.into_iter().map(|e| (e.kind, present(&rt, &e.object))).collect())
                    .ok_or(()),
                Err(_) => Err(()),
            }
        };
        let base = if rv_param.is_empty() || rv_param == "0" || initial {
            current
        } else {
            rv_param.parse().unwrap_or(current)
        };
        (live, snapshot, base)
    };
    tokio::spawn(async move {
        match snapshot {
            Err(()) => {
                let status = ApiError::new(410, "Expired", format!("too old resource version: {rv_param}")).status();
                let _ = tx.send(watch_event("ERROR", &status)).await;
                return;
            }
            Ok(evs) => {
                for (kind, o) in evs {
                    let ns = o
                        .pointer("/metadata/namespace")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    if let Some(rv) = o
                        .pointer("/metadata/resourceVersion")
                        .and_then(Value::as_str)
                        .and_then(|s| s.parse::<u64>().ok())
                    {
                        if kind != "ADDED" {
                            last = last.max(rv);
                        }
                    }
                    if matches(&ns_filter, &ns, &o) && tx.send(watch_event(kind, &shape(o))).await.is_err() {
                        return;
                    }
                }
            }
        }
        if initial && bookmarks {
            let b = json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": {"resourceVersion": last.to_string(), "annotations": {"k8s.io/initial-events-end": "true"}}});
            if tx.send(watch_event("BOOKMARK", &b)).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return,
                _ = tick.tick(), if bookmarks => {
                    let b = json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": {"resourceVersion": last.to_string()}});
                    if tx.send(watch_event("BOOKMARK", &b)).await.is_err() { return; }
                }
                ev = live.recv() => match ev {
                    Ok(Event { rv, kind, type_key: k, namespace, object }) => {
                        if k != type_key || rv <= last { continue; }
                        last = rv;
                        let o = present(&rt, &object);
                        if matches(&ns_filter, &namespace, &o) && tx.send(watch_event(kind, &shape(o))).await.is_err() { return; }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        let status = ApiError::new(410, "Expired", "watch fell behind; relist").status();
                        let _ = tx.send(watch_event("ERROR", &status)).await;
                        return;
                    }
                    Err(_) => return,
                },
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .header("transfer-encoding", "chunked")
        .body(BodyExt::boxed_unsync(StreamBody::new(stream.boxed())))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed_unsync()))
}

fn present(rt: &ResourceType, o: &Value) -> Value {
    rt.present(o)
}
