//! OpenShift's image API as `atomic:` uses it (containers/image's openshift
//! client): the image stream a tag resolves through, the image with its
//! signatures (`imagestreamimages/STREAM@DIGEST`), and new signatures
//! (`imagesignatures`). Requests go through kube's client, so every way a
//! kubeconfig authenticates (tokens, token files, client certificates, exec
//! plugins) and verifies the server works as kubectl's does.
//!
//! Paths: OpenShift ≥ 3.6 (and every 4.x, which dropped the legacy `/oapi`)
//! serves `/apis/image.openshift.io/v1`; containers/image still asks
//! `/oapi/v1`, which only 3.x answers. kopeo asks discovery which is served.

use super::AtomicError;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::BodyExt as _;
use serde::Deserialize;
use serde_json::json;

/// containers/image's bound on an OpenShift answer (`MaxOpenShiftStatusBody`).
const BODY_LIMIT: usize = 4 << 20;
/// The group path, and the legacy one it replaced.
const GROUP_PREFIX: &str = "/apis/image.openshift.io/v1";
const LEGACY_PREFIX: &str = "/oapi/v1";

/// An image stream as far as `atomic:` reads it.
#[derive(Debug, Deserialize, Default)]
pub struct ImageStream {
    #[serde(default)]
    pub status: ImageStreamStatus,
}

/// `status` of an image stream: each tag's history, newest first.
#[derive(Debug, Deserialize, Default)]
pub struct ImageStreamStatus {
    #[serde(default)]
    pub tags: Vec<NamedTagEventList>,
}

/// One tag's history.
#[derive(Debug, Deserialize)]
pub struct NamedTagEventList {
    pub tag: String,
    #[serde(default)]
    pub items: Vec<TagEvent>,
}

/// One entry of a tag's history: where the image is and its name (digest).
#[derive(Debug, Deserialize)]
pub struct TagEvent {
    #[serde(rename = "dockerImageReference")]
    pub docker_image_reference: String,
    pub image: String,
}

#[derive(Debug, Deserialize)]
struct ImageStreamImage {
    image: Image,
}

/// An image as the API holds it; only its signatures matter here.
#[derive(Debug, Deserialize, Default)]
pub struct Image {
    #[serde(default)]
    pub signatures: Vec<ImageSignature>,
}

/// A stored signature: `content` is base64 in JSON (Go's `[]byte`).
#[derive(Debug, Deserialize)]
pub struct ImageSignature {
    #[serde(default)]
    pub metadata: Metadata,
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default, with = "base64_bytes")]
    pub content: Vec<u8>,
}

/// Object metadata: the name is all that is read.
#[derive(Debug, Deserialize, Default)]
pub struct Metadata {
    #[serde(default)]
    pub name: String,
}

mod base64_bytes {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = Option::<String>::deserialize(d)?.unwrap_or_default();
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(serde::de::Error::custom)
    }
}

/// The `Status` an API server answers a failure with.
#[derive(Debug, Deserialize)]
struct Status {
    #[serde(default)]
    message: String,
}

/// A client of one cluster's image API.
pub struct ImageApi {
    client: kube::Client,
    prefix: &'static str,
}

impl ImageApi {
    /// Connect with `config` and find which API path the cluster serves.
    pub async fn connect(config: kube::Config) -> Result<Self, AtomicError> {
        let server = config.cluster_url.to_string();
        let client = kube::Client::try_from(config).map_err(|e| AtomicError::Client {
            server: server.clone(),
            reason: e.to_string(),
        })?;
        let mut api = ImageApi {
            client,
            prefix: GROUP_PREFIX,
        };
        let (code, body) = api.send(http::Method::GET, GROUP_PREFIX.to_string(), None).await?;
        match code {
            200..=299 => {}
            404 => api.prefix = LEGACY_PREFIX,
            _ => return Err(api.failure("discovering the image API", code, &body)),
        }
        tracing::debug!(prefix = api.prefix, "image API");
        Ok(api)
    }

    /// One request; the status and (bounded) body.
    async fn send(
        &self,
        method: http::Method,
        path: String,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Bytes), AtomicError> {
        let transport = |reason: String| AtomicError::Request {
            path: path.clone(),
            reason,
        };
        let mut req = http::Request::builder()
            .method(method)
            .uri(&path)
            .header(http::header::ACCEPT, "application/json, */*");
        if body.is_some() {
            req = req.header(http::header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(kube::client::Body::from(body.unwrap_or_default()))
            .map_err(|e| transport(e.to_string()))?;
        let res = self.client.send(req).await.map_err(|e| transport(e.to_string()))?;
        let code = res.status().as_u16();
        let bytes = http_body_util::Limited::new(res.into_body(), BODY_LIMIT)
            .collect()
            .await
            .map_err(|e| transport(format!("reading the answer (at most {BODY_LIMIT} bytes): {e}")))?
            .to_bytes();
        Ok((code, bytes))
    }

    /// The error for a failed request: the `Status` message when there is
    /// one (as containers/image reports it), else the code and body.
    fn failure(&self, what: &str, code: u16, body: &[u8]) -> AtomicError {
        let message = match serde_json::from_slice::<Status>(body) {
            Ok(s) if !s.message.is_empty() => s.message,
            _ => {
                let text = String::from_utf8_lossy(body);
                let text: String = text.chars().take(512).collect();
                format!("HTTP error: status code: {code}, body: {text}")
            }
        };
        AtomicError::Api {
            what: what.to_string(),
            code,
            message,
        }
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, what: &str, path: String) -> Result<T, AtomicError> {
        let (code, body) = self.send(http::Method::GET, path, None).await?;
        if !(200..300).contains(&code) {
            return Err(self.failure(what, code, &body));
        }
        serde_json::from_slice(&body).map_err(|e| AtomicError::Decode {
            what: what.to_string(),
            reason: e.to_string(),
        })
    }

    /// `namespace/stream`'s image stream.
    pub async fn image_stream(&self, namespace: &str, stream: &str) -> Result<ImageStream, AtomicError> {
        let path = format!("{}/namespaces/{namespace}/imagestreams/{stream}", self.prefix);
        self.get(&format!("reading image stream {namespace}/{stream}"), path)
            .await
    }

    /// The image `name` (a manifest digest) as seen through `namespace/stream`.
    pub async fn image(&self, namespace: &str, stream: &str, name: &str) -> Result<Image, AtomicError> {
        let path = format!(
            "{}/namespaces/{namespace}/imagestreamimages/{stream}@{name}",
            self.prefix
        );
        let isi: ImageStreamImage = self
            .get(&format!("reading image {namespace}/{stream}@{name}"), path)
            .await?;
        Ok(isi.image)
    }

    /// Store a simple signature named `name` (`IMAGE@RANDOM`).
    pub async fn add_signature(&self, name: &str, content: &[u8]) -> Result<(), AtomicError> {
        let api_version = match self.prefix {
            LEGACY_PREFIX => "v1",
            _ => "image.openshift.io/v1",
        };
        let body = json!({
            "kind": "ImageSignature",
            "apiVersion": api_version,
            "metadata": {"name": name},
            "type": "atomic",
            "content": base64::engine::general_purpose::STANDARD.encode(content),
        });
        let path = format!("{}/imagesignatures", self.prefix);
        let (code, answer) = self
            .send(http::Method::POST, path, Some(body.to_string().into_bytes()))
            .await?;
        if !(200..300).contains(&code) {
            return Err(self.failure(&format!("storing signature {name}"), code, &answer));
        }
        Ok(())
    }
}
