//! `docker-daemon:name:tag` / `docker-daemon:sha256:…`: images in a Docker
//! Engine, through its API on `unix:///var/run/docker.sock`, `DOCKER_HOST`,
//! or `--src-daemon-host`/`--dest-daemon-host` (unix:// or tcp://).
//!
//! Reading exports the image (`GET /images/{name}/get`) into a temporary
//! file and serves it as a docker-archive: the export puts manifest.json
//! last, so nothing can be copied before the whole stream has arrived.
//! Writing builds a docker-archive in a temporary file and streams it to
//! `POST /images/load` at commit, so the daemon sees nothing of a failed copy.

use super::docker_archive::{DockerArchiveDestination, DockerArchiveSource};
use super::{BlobInfo, BlobStream, ImageDestination, ImageSource, LayerCompression, RegistryLocation, TransportError};
use crate::digest::Digest;
use crate::reference::{ArchiveTarget, DaemonTarget};
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

/// What a destination asks of the daemon, for messages.
const LOADING: &str = "loading the image";

/// A Docker Engine API endpoint.
struct Daemon {
    http: reqwest::Client,
    base: String,
    /// As given (`unix:///var/run/docker.sock`), for messages.
    host: String,
}

/// A request to the daemon during `action` that got no answer.
fn unreachable(action: impl Into<String>) -> impl FnOnce(reqwest::Error) -> TransportError {
    move |source| TransportError::DaemonNetwork {
        action: action.into(),
        source,
    }
}

impl Daemon {
    fn new(host: Option<&str>) -> Result<Daemon, TransportError> {
        let env = std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty());
        let host = host
            .map(str::to_string)
            .or(env)
            .unwrap_or_else(|| "unix:///var/run/docker.sock".into());
        let builder = reqwest::Client::builder().user_agent(concat!("kopeo/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = host.strip_prefix("unix://") {
            let http = builder
                .unix_socket(path)
                .build()
                .map_err(unreachable(format!("connecting to {host}")))?;
            return Ok(Daemon {
                http,
                base: "http://docker".into(),
                host,
            });
        }
        if let Some(addr) = host.strip_prefix("tcp://").or_else(|| host.strip_prefix("http://")) {
            let http = builder.build().map_err(unreachable(format!("connecting to {host}")))?;
            let base = format!("http://{}", addr.trim_end_matches('/'));
            return Ok(Daemon { http, base, host });
        }
        Err(TransportError::DaemonHost(host))
    }

    /// A request during `action` that got no answer: docker's own words
    /// when nothing listens at the daemon's address, as skopeo prints them.
    fn no_answer(&self, action: impl Into<String>) -> impl FnOnce(reqwest::Error) -> TransportError {
        let (host, action) = (self.host.clone(), action.into());
        move |source| {
            if source.is_connect() {
                TransportError::DaemonUnreachable(host)
            } else {
                unreachable(action)(source)
            }
        }
    }

    async fn error(resp: reqwest::Response) -> String {
        let status = resp.status();
        let body = resp.bytes().await.unwrap_or_default();
        let msg = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_string());
        format!("HTTP {}: {msg}", status.as_u16())
    }
}

/// Reads an image from the daemon (via a temporary export).
pub struct DaemonSource {
    name: String,
    archive: DockerArchiveSource,
    _spool: tempfile::TempPath,
}

impl DaemonSource {
    /// Export `target` from the daemon at `host`.
    pub async fn open(target: &DaemonTarget, host: Option<&str>) -> Result<Self, TransportError> {
        let daemon = Daemon::new(host)?;
        let (id, pick) = match target {
            DaemonTarget::Reference(r) => (r.familiar(), Some(ArchiveTarget::Reference(r.clone()))),
            DaemonTarget::Id(d) => (d.to_string(), None),
        };
        let url = format!(
            "{}/images/{}/get",
            daemon.base,
            url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
        );
        let resp = daemon
            .http
            .get(&url)
            .send()
            .await
            .map_err(daemon.no_answer(format!("exporting {id}")))?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Err(TransportError::ImageNotFound(format!(
                "docker daemon has no image {id}: {}",
                Daemon::error(resp).await
            )));
        }
        if !resp.status().is_success() {
            return Err(TransportError::DaemonRefused {
                action: format!("exporting {id}"),
                message: Daemon::error(resp).await,
            });
        }
        let spool = tempfile::Builder::new()
            .prefix("kopeo-daemon-")
            .suffix(".tar")
            .tempfile()
            .map_err(TransportError::io("creating a temporary file in", std::env::temp_dir()))?
            .into_temp_path();
        let mut f = tokio::fs::File::create(&spool)
            .await
            .map_err(TransportError::io("creating", spool.to_path_buf()))?;
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(unreachable(format!("exporting {id}")))?;
            f.write_all(&chunk)
                .await
                .map_err(TransportError::io("writing", spool.to_path_buf()))?;
        }
        f.flush()
            .await
            .map_err(TransportError::io("writing", spool.to_path_buf()))?;
        drop(f);
        // Images exported by ID carry their tags; take the only image.
        let archive = DockerArchiveSource::open(&spool, pick.as_ref()).await?;
        Ok(DaemonSource {
            name: format!("docker-daemon:{id}"),
            archive,
            _spool: spool,
        })
    }
}

#[async_trait]
impl ImageSource for DaemonSource {
    fn describe(&self) -> String {
        self.name.clone()
    }
    async fn manifest(&self, instance: Option<&Digest>) -> Result<(Bytes, String), TransportError> {
        self.archive.manifest(instance).await
    }
    fn layer_compression(&self, digest: &Digest) -> Option<crate::compression::Compression> {
        self.archive.layer_compression(digest)
    }
    async fn blob(&self, info: &BlobInfo) -> Result<BlobStream, TransportError> {
        self.archive.blob(info).await
    }
}

/// Writes an image into the daemon (through a temporary docker-archive).
pub struct DaemonDestination {
    name: String,
    daemon: Daemon,
    archive: DockerArchiveDestination,
    _dir: tempfile::TempDir,
}

impl DaemonDestination {
    /// Prepare to load an image tagged `target` into the daemon at `host`.
    pub async fn create(target: &DaemonTarget, host: Option<&str>) -> Result<Self, TransportError> {
        let DaemonTarget::Reference(r) = target else {
            return Err(TransportError::DestinationById {
                transport: "docker-daemon",
            });
        };
        let daemon = Daemon::new(host)?;
        let dir = tempfile::Builder::new()
            .prefix("kopeo-load-")
            .tempdir()
            .map_err(TransportError::io(
                "creating a temporary directory in",
                std::env::temp_dir(),
            ))?;
        let archive = DockerArchiveDestination::create(&dir.path().join("image.tar"), vec![r.clone()]).await?;
        Ok(DaemonDestination {
            name: format!("docker-daemon:{}", r.familiar()),
            daemon,
            archive,
            _dir: dir,
        })
    }
}

#[async_trait]
impl ImageDestination for DaemonDestination {
    fn supports_signatures(&self) -> Result<(), TransportError> {
        Err(TransportError::SignaturesUnsupported(
            "Storing signatures for docker tar files is not supported",
        ))
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
    fn supported_manifest_types(&self) -> Vec<&'static str> {
        self.archive.supported_manifest_types()
    }
    fn supports_lists(&self) -> bool {
        self.archive.supports_lists()
    }
    fn desired_layer_compression(&self) -> LayerCompression {
        self.archive.desired_layer_compression()
    }
    fn concurrent_blobs(&self) -> bool {
        self.archive.concurrent_blobs()
    }
    async fn try_reuse_blob(&self, info: &BlobInfo, from: Option<&RegistryLocation>) -> Result<bool, TransportError> {
        self.archive.try_reuse_blob(info, from).await
    }
    async fn put_blob(&self, info: &BlobInfo, stream: BlobStream) -> Result<(), TransportError> {
        self.archive.put_blob(info, stream).await
    }
    async fn put_blob_computed(&self, media_type: &str, stream: BlobStream) -> Result<(Digest, u64), TransportError> {
        self.archive.put_blob_computed(media_type, stream).await
    }
    async fn put_manifest(
        &self,
        manifest: &[u8],
        media_type: &str,
        instance: Option<&Digest>,
    ) -> Result<(), TransportError> {
        self.archive.put_manifest(manifest, media_type, instance).await
    }
    async fn commit(&self) -> Result<(), TransportError> {
        let path = self.archive.close_for_load().await?;
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(TransportError::io("opening", &path))?;
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024));
        let resp = self
            .daemon
            .http
            .post(format!("{}/images/load?quiet=1", self.daemon.base))
            .header(reqwest::header::CONTENT_TYPE, "application/x-tar")
            .body(body)
            .send()
            .await
            .map_err(self.daemon.no_answer(LOADING))?;
        if !resp.status().is_success() {
            return Err(TransportError::DaemonRefused {
                action: LOADING.into(),
                message: Daemon::error(resp).await,
            });
        }
        // The reply is a JSON message stream; a failed load reports "error" in it.
        let text = resp.text().await.map_err(unreachable(LOADING))?;
        for line in text.lines() {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(line)
                && let Some(e) = v.get("error").and_then(|e| e.as_str())
            {
                return Err(TransportError::DaemonRefused {
                    action: LOADING.into(),
                    message: e.to_string(),
                });
            }
        }
        Ok(())
    }
}
