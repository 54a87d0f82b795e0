//! OpenShift's integrated registry in front of a real Distribution
//! registry: it authenticates with the API server's tokens (a token as the
//! password, any user name, or as a bearer token), authorizes
//! `imagestreams/layers` in the repository's namespace (get to pull, update
//! to push) when the server runs RBAC, and registers every manifest pushed
//! by tag in the image stream `NAMESPACE/NAME` before answering the push,
//! as OpenShift's registry creates its ImageStreamMapping synchronously
//! (creating the stream on first push). Everything else is passed through.

use crate::authz::{Attributes, User};
use crate::http::{Body, Shared};
use crate::openshift;
use base64::Engine as _;
use bytes::Bytes;
use futures::StreamExt as _;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::Frame;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::json;
use std::convert::Infallible;
use std::sync::Arc;

/// A running registry front; stops with the API server.
pub struct IntegratedRegistry {
    /// `127.0.0.1:PORT`.
    pub host: String,
}

/// Start serving in front of `upstream` (`HOST:PORT`, plain HTTP) on the API server's runtime.
pub(crate) fn start(
    shared: Arc<Shared>,
    api: openshift::ImageApi,
    upstream: &str,
    rt: &tokio::runtime::Handle,
) -> IntegratedRegistry {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding the integrated registry");
    std_listener.set_nonblocking(true).expect("nonblocking listener");
    let host = std_listener.local_addr().expect("local address").to_string();
    let front = Arc::new(Front {
        shared,
        api,
        upstream: upstream.to_string(),
        host: host.clone(),
        http: reqwest::Client::new(),
    });
    rt.spawn(async move {
        let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else {
            return;
        };
        while let Ok((stream, _)) = listener.accept().await {
            let front = front.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| serve(front.clone(), req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    IntegratedRegistry { host }
}

struct Front {
    shared: Arc<Shared>,
    api: openshift::ImageApi,
    upstream: String,
    host: String,
    http: reqwest::Client,
}

fn registry_error(code: u16, error: &str, message: &str) -> Response<Body> {
    let body = json!({"errors": [{"code": error, "message": message, "detail": null}]}).to_string();
    let mut r = Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .header("docker-distribution-api-version", "registry/2.0");
    if code == 401 {
        r = r.header("www-authenticate", "Basic realm=\"openshift\"");
    }
    r.body(Full::new(Bytes::from(body)).boxed_unsync())
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed_unsync()))
}

/// The token a registry request carries: a basic password or a bearer token.
fn presented_token(req: &Request<hyper::body::Incoming>) -> Option<String> {
    let h = req.headers().get("authorization")?.to_str().ok()?;
    if let Some(t) = h.strip_prefix("Bearer ") {
        return Some(t.to_string());
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(h.strip_prefix("Basic ")?)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    text.split_once(':').map(|(_, p)| p.to_string())
}

/// `/v2/NS/NAME/(manifests|blobs|tags)/…` → (NS, NAME, kind, rest).
fn repository(path: &str) -> Option<(String, String, String, String)> {
    let rest = path.strip_prefix("/v2/")?;
    for kind in ["/manifests/", "/blobs/", "/tags/"] {
        if let Some((repo, tail)) = rest.split_once(kind) {
            let (ns, name) = repo.split_once('/')?;
            return Some((ns.into(), name.into(), kind.trim_matches('/').into(), tail.into()));
        }
    }
    None
}

async fn serve(front: Arc<Front>, req: Request<hyper::body::Incoming>) -> Result<Response<Body>, Infallible> {
    let mut answer = serve_request(front, req).await?;
    // OpenShift's registry advertises the extension on every answer.
    answer.headers_mut().insert(
        "x-registry-supports-signatures",
        hyper::header::HeaderValue::from_static("1"),
    );
    Ok(answer)
}

async fn serve_request(front: Arc<Front>, req: Request<hyper::body::Incoming>) -> Result<Response<Body>, Infallible> {
    let user = presented_token(&req).and_then(|t| crate::http::authenticate_token(&front.shared, Some(&t)));
    let Some(user) = user else {
        return Ok(registry_error(401, "UNAUTHORIZED", "authentication required"));
    };
    let path = req.uri().path().to_string();
    if let Some((ns, name, digest)) = crate::registry_signatures::parse(&path) {
        if !may(&front.shared, &user, req.method(), &ns) {
            return Ok(registry_error(
                403,
                "DENIED",
                "requested access to the resource is denied",
            ));
        }
        return Ok(signatures(&front, &user, req, &ns, &name, &digest).await);
    }
    let repo = repository(&path);
    if let Some((ns, _, _, _)) = &repo
        && !may(&front.shared, &user, req.method(), ns)
    {
        return Ok(registry_error(
            403,
            "DENIED",
            "requested access to the resource is denied",
        ));
    }
    let pushed_tag = match (&repo, req.method().as_str()) {
        (Some((ns, name, kind, tail)), "PUT") if kind == "manifests" && !tail.contains(':') => {
            Some((ns.clone(), name.clone(), tail.clone()))
        }
        _ => None,
    };
    Ok(forward(&front, req, pushed_tag)
        .await
        .unwrap_or_else(|e| registry_error(502, "UNKNOWN", &e)))
}

/// The signature API extension (see [`crate::registry_signatures`]).
async fn signatures(
    front: &Front,
    user: &User,
    req: Request<hyper::body::Incoming>,
    ns: &str,
    name: &str,
    digest: &str,
) -> Response<Body> {
    use crate::registry_signatures::{Answer, get, put};
    let answer = match req.method().as_str() {
        "GET" => get(&front.shared, user, ns, name, digest),
        "PUT" => match req.into_body().collect().await {
            Ok(body) => put(&front.shared, user, &body.to_bytes()),
            Err(e) => Answer::Error(400, "SIGNATURE_INVALID", "invalid image signature", e.to_string()),
        },
        _ => return registry_error(405, "UNSUPPORTED", "The operation is unsupported."),
    };
    let reply = |code: u16, body: Bytes| {
        Response::builder()
            .status(code)
            .header("content-type", "application/json; charset=utf-8")
            .body(Full::new(body).boxed_unsync())
            .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed_unsync()))
    };
    match answer {
        Answer::Ok(v) => reply(200, Bytes::from(v.to_string())),
        Answer::Created => reply(201, Bytes::new()),
        Answer::NotFound => reply(404, Bytes::new()),
        Answer::Error(code, error, message, detail) => {
            let body = json!({"errors": [{"code": error, "message": message, "detail": detail}]});
            reply(code, Bytes::from(body.to_string()))
        }
    }
}

/// Whether `user` may pull (GET, HEAD) or push in namespace `ns`.
fn may(shared: &Shared, user: &User, method: &hyper::Method, ns: &str) -> bool {
    if !shared.rbac {
        return true;
    }
    let verb = match *method {
        hyper::Method::GET | hyper::Method::HEAD => "get",
        _ => "update",
    };
    let attrs = Attributes {
        verb,
        group: "image.openshift.io",
        resource: "imagestreams",
        subresource: Some("layers"),
        namespace: Some(ns),
        name: None,
    };
    crate::authz::allowed(&crate::http::lock(shared), user, &attrs)
}

async fn forward(
    front: &Front,
    req: Request<hyper::body::Incoming>,
    pushed_tag: Option<(String, String, String)>,
) -> Result<Response<Body>, String> {
    let uri = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let url = format!("http://{}{uri}", front.upstream);
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes()).map_err(|e| e.to_string())?;
    let mut out = front.http.request(method, &url);
    for (k, v) in req.headers() {
        if !matches!(
            k.as_str(),
            "authorization" | "host" | "content-length" | "transfer-encoding"
        ) {
            out = out.header(k.as_str(), v.as_bytes());
        }
    }
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let mut manifest = None;
    if pushed_tag.is_some() {
        let bytes = req.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        manifest = Some(bytes.clone());
        out = out.body(bytes);
    } else {
        if let Some(len) = req.headers().get("content-length").cloned() {
            out = out.header("content-length", len);
        }
        out = out.body(reqwest::Body::wrap_stream(req.into_body().into_data_stream()));
    }
    let res = out.send().await.map_err(|e| e.to_string())?;
    let status = res.status().as_u16();
    if let (Some((ns, name, tag)), Some(manifest), 201) = (&pushed_tag, &manifest, status) {
        let digest = res
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        if let Err(e) = register(front, ns, name, tag, &digest, &content_type, manifest) {
            return Ok(registry_error(
                500,
                "UNKNOWN",
                &format!("registering the image: {}", e.message),
            ));
        }
    }
    let mut r = Response::builder().status(status);
    for (k, v) in res.headers() {
        if k.as_str() == "location" {
            // Distribution names itself in upload locations.
            let own = format!("http://{}", front.upstream);
            let text = v
                .to_str()
                .unwrap_or("")
                .replace(&own, &format!("http://{}", front.host));
            r = r.header("location", text);
        } else if k.as_str() != "transfer-encoding" {
            r = r.header(k.as_str(), v.as_bytes());
        }
    }
    // A broken upstream body ends the response early: the client sees it short.
    let stream = res
        .bytes_stream()
        .take_while(|chunk| std::future::ready(chunk.is_ok()))
        .map(|chunk| Ok::<_, Infallible>(Frame::data(chunk.unwrap_or_default())));
    r.body(StreamBody::new(stream).boxed_unsync())
        .map_err(|e| e.to_string())
}

fn register(
    front: &Front,
    ns: &str,
    name: &str,
    tag: &str,
    digest: &str,
    media_type: &str,
    manifest: &Bytes,
) -> Result<(), crate::store::ApiError> {
    let mut state = crate::http::lock(&front.shared);
    let streams = state
        .find("image.openshift.io", "v1", "imagestreams")
        .cloned()
        .ok_or_else(|| crate::store::ApiError::new(500, "InternalError", "no image API"))?;
    if state.get(&streams, ns, name).is_err() {
        let stream = json!({"apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
                            "metadata": {"name": name, "namespace": ns}});
        state.create(&streams, ns, stream, &Default::default())?;
    }
    let image = json!({
        "metadata": {"name": digest, "annotations": {"openshift.io/image.managed": "true"}},
        "dockerImageReference": format!("{}/{ns}/{name}@{digest}", front.api.internal_registry),
        "dockerImageManifestMediaType": media_type,
        "dockerImageManifest": String::from_utf8_lossy(manifest),
        "dockerImageMetadata": {"kind": "DockerImage", "apiVersion": "1.0"},
    });
    openshift::map_image(&mut state, &front.api, ns, name, tag, image)
}
