//! `docker-archive:path[:ref|:@N]`: the `docker save` format —
//! `manifest.json` naming each image's config and layer files, plus the
//! legacy `repositories` file and per-layer `VERSION`/`json`, which kopeo
//! writes as docker does. Read in place (layers are served from their tar
//! offsets, their digests are the config's diff_ids, verified while they
//! stream); written as one tar renamed into place at commit, or streamed into
//! a pipe. As in skopeo, an existing non-empty file is not overwritten.

use super::tar_archive::{JSON_LIMIT, Placement, TarIndex, TarWriter};
use super::{BlobInfo, BlobStream, ImageDestination, ImageSource, LayerCompression, RegistryLocation, TransportError};
use crate::compression::Compression;
use crate::digest::{Digest, Hasher};
use crate::manifest::{Manifest, media};
use crate::reference::{ArchiveTarget, DockerReference};
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tokio::sync::Mutex;

/// One image in `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ArchiveImage {
    pub config: String,
    #[serde(default)]
    pub repo_tags: Option<Vec<String>>,
    pub layers: Vec<String>,
}

/// Every image's tags in the archive at `path`, as `skopeo list-tags`
/// reports them: its `RepoTags` as written, `@N` for an untagged image.
pub async fn list_tags(path: &Path) -> Result<Vec<String>, TransportError> {
    let index = TarIndex::open(path).await?;
    let data = index.read_small("manifest.json", JSON_LIMIT).await?;
    let images: Vec<ArchiveImage> =
        serde_json::from_slice(&data).map_err(|e| invalid(path, format!("manifest.json: {e}")))?;
    Ok(images
        .iter()
        .enumerate()
        .flat_map(|(i, image)| match image.repo_tags.as_deref() {
            Some(tags) if !tags.is_empty() => tags.to_vec(),
            _ => vec![format!("@{i}")],
        })
        .collect())
}

/// Reads one image of a docker-archive file.
pub struct DockerArchiveSource {
    name: String,
    index: TarIndex,
    manifest: Bytes,
    /// Blob digest → member path.
    files: HashMap<Digest, String>,
    /// Each layer's compression as stored (its media type may say otherwise).
    actual: HashMap<Digest, Compression>,
}

fn invalid(path: &Path, why: String) -> TransportError {
    TransportError::MalformedArchive {
        format: "docker-archive",
        path: path.to_path_buf(),
        why,
    }
}

impl DockerArchiveSource {
    /// Open the archive at `path` and pick the image `target` names.
    pub async fn open(path: &Path, target: Option<&ArchiveTarget>) -> Result<Self, TransportError> {
        let index = TarIndex::open(path).await?;
        let data = index.read_small("manifest.json", JSON_LIMIT).await?;
        let images: Vec<ArchiveImage> =
            serde_json::from_slice(&data).map_err(|e| invalid(path, format!("manifest.json: {e}")))?;
        let image = match target {
            None => match images.as_slice() {
                [one] => one.clone(),
                other => return Err(TransportError::ArchiveNotSingle(other.len())),
            },
            Some(ArchiveTarget::Index(n)) => images.get(*n).cloned().ok_or(TransportError::ArchiveIndexOutOfRange {
                index: *n,
                count: images.len(),
            })?,
            Some(ArchiveTarget::Reference(want)) => images
                .iter()
                .find(|i| {
                    i.repo_tags.iter().flatten().any(|t| {
                        DockerReference::parse_normalized(t).is_ok_and(|r| r.with_default_tag() == want.clone())
                    })
                })
                .cloned()
                .ok_or_else(|| TransportError::ArchiveTagNotFound(want.to_string()))?,
        };
        let config = index.read_small(&image.config, JSON_LIMIT).await?;
        let config_digest = Digest::sha256_of(&config);
        let parsed: serde_json::Value =
            serde_json::from_slice(&config).map_err(|e| invalid(path, format!("config {}: {e}", image.config)))?;
        let diff_ids: Vec<Digest> = parsed
            .pointer("/rootfs/diff_ids")
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|d| d.as_str().and_then(|s| s.parse().ok()))
                    .collect()
            })
            .unwrap_or_default();
        if diff_ids.len() != image.layers.len() {
            return Err(invalid(
                path,
                format!(
                    "config lists {} layers, manifest.json {}",
                    diff_ids.len(),
                    image.layers.len()
                ),
            ));
        }
        let mut files = HashMap::from([(config_digest.clone(), image.config.clone())]);
        let mut layers = vec![];
        let mut actual = HashMap::new();
        let mut any_zstd = false;
        for (file, diff_id) in image.layers.iter().zip(&diff_ids) {
            let size = index.size(file)?;
            let compression = Compression::detect(&index.head(file, 4).await?);
            // Uncompressed layers are named by their diff_id, verified while
            // they stream; compressed ones (rare) need one hashing pass here.
            let digest = match compression {
                Compression::None => diff_id.clone(),
                _ => {
                    let mut h = Hasher::new(crate::digest::Algorithm::Sha256);
                    let mut s = index.stream(file).await?;
                    while let Some(c) = s.next().await {
                        h.update(&c?);
                    }
                    h.finish()
                }
            };
            any_zstd |= compression == Compression::Zstd;
            files.insert(digest.clone(), file.clone());
            actual.insert(digest.clone(), compression);
            layers.push((digest, size, compression));
        }
        let mt = if any_zstd {
            media::OCI_MANIFEST
        } else {
            media::DOCKER_V2S2
        };
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": mt,
            "config": {"mediaType": if any_zstd { media::OCI_CONFIG } else { media::DOCKER_CONFIG }, "size": config.len(), "digest": config_digest},
            // As containers/image presents them: uncompressed layers carry the
            // gzip type (so the manifest and its digest are skopeo's); their
            // true compression is told to the pipeline by `layer_compression`.
            "layers": layers.iter().map(|(d, size, c)| {
                let label = if *c == Compression::None { Compression::Gzip } else { *c };
                serde_json::json!({"mediaType": label.layer_media_type(mt), "size": size, "digest": d})
            }).collect::<Vec<_>>(),
        });
        let name = match target {
            Some(ArchiveTarget::Reference(r)) => format!("docker-archive:{}:{r}", path.display()),
            Some(ArchiveTarget::Index(n)) => format!("docker-archive:{}:@{n}", path.display()),
            None => format!("docker-archive:{}", path.display()),
        };
        Ok(DockerArchiveSource {
            name,
            index,
            manifest: Bytes::from(crate::manifest::to_bytes(&manifest)),
            files,
            actual,
        })
    }
}

#[async_trait]
impl ImageSource for DockerArchiveSource {
    fn describe(&self) -> String {
        self.name.clone()
    }

    async fn manifest(&self, instance: Option<&Digest>) -> Result<(Bytes, String), TransportError> {
        if let Some(d) = instance {
            return Err(TransportError::NotAList {
                transport: "docker-archive",
                digest: d.clone(),
            });
        }
        let mime = crate::manifest::guess_mime_type(&self.manifest);
        Ok((self.manifest.clone(), mime))
    }

    fn layer_compression(&self, digest: &Digest) -> Option<Compression> {
        self.actual.get(digest).copied()
    }

    async fn blob(&self, info: &BlobInfo) -> Result<BlobStream, TransportError> {
        let file = self
            .files
            .get(&info.digest)
            .ok_or_else(|| TransportError::BlobNotInArchive {
                archive: self.name.clone(),
                digest: info.digest.clone(),
            })?;
        self.index.stream(file).await
    }
}

/// Writes one image (with any additional tags) into a new docker-archive.
pub struct DockerArchiveDestination {
    path: PathBuf,
    tags: Vec<DockerReference>,
    tar: Mutex<TarWriter>,
    manifest: Mutex<Option<Vec<u8>>>,
}

fn config_file(d: &Digest) -> String {
    format!("{}.json", d.hex())
}

fn layer_file(d: &Digest) -> String {
    format!("{}.tar", d.hex())
}

impl DockerArchiveDestination {
    /// Start the archive at `path` for an image tagged `tags` (may be empty).
    pub async fn create(path: &Path, tags: Vec<DockerReference>) -> Result<Self, TransportError> {
        let placement = Placement::decide(path, async |_: &Path| Err(TransportError::ArchiveExists)).await?;
        let tar = TarWriter::create(placement).await?;
        Ok(DockerArchiveDestination {
            path: path.to_path_buf(),
            tags,
            tar: Mutex::new(tar),
            manifest: Mutex::new(None),
        })
    }

    /// The archive being written, for the daemon destination to send on.
    pub(super) async fn close_for_load(&self) -> Result<PathBuf, TransportError> {
        let mut tar = self.tar.lock().await;
        self.write_metadata(&mut tar).await?;
        tar.close().await?;
        Ok(tar.temp_path().to_path_buf())
    }

    async fn write_metadata(&self, tar: &mut TarWriter) -> Result<(), TransportError> {
        let manifest = self
            .manifest
            .lock()
            .await
            .clone()
            .ok_or(TransportError::CommitWithoutManifest)?;
        let Manifest::Image(m) = Manifest::parse(&manifest, "")? else {
            return Err(TransportError::CannotHoldList {
                transport: "docker-archive",
            });
        };
        // Legacy per-layer directories, as `docker save` wrote them:
        // <id>/layer.tar (a link to the layer), <id>/VERSION, <id>/json.
        let mut parent: Option<String> = None;
        let mut legacy_layers = vec![];
        for l in &m.layers {
            let id = match &parent {
                None => l.digest.hex().to_string(),
                Some(p) => Digest::sha256_of(format!("{p} {}", l.digest).as_bytes())
                    .hex()
                    .to_string(),
            };
            tar.add_dir(&format!("{id}/")).await?;
            tar.add_symlink(&format!("{id}/layer.tar"), &format!("../{}", layer_file(&l.digest)))
                .await?;
            tar.add_file(&format!("{id}/VERSION"), b"1.0").await?;
            let mut json = serde_json::json!({"id": id, "created": "1970-01-01T00:00:00Z", "container_config": {}});
            if let Some(p) = &parent {
                json["parent"] = serde_json::Value::String(p.clone());
            }
            tar.add_file(&format!("{id}/json"), json.to_string().as_bytes()).await?;
            legacy_layers.push(id.clone());
            parent = Some(id);
        }
        let repo_tags: Vec<String> = self.tags.iter().map(DockerReference::familiar).collect();
        let entry = ArchiveImage {
            config: config_file(&m.config.digest),
            repo_tags: Some(repo_tags),
            layers: m.layers.iter().map(|l| layer_file(&l.digest)).collect(),
        };
        tar.add_file(
            "manifest.json",
            &serde_json::to_vec(&[entry]).map_err(TransportError::encode("manifest.json"))?,
        )
        .await?;
        let mut repositories = serde_json::Map::new();
        if let Some(top) = legacy_layers.last() {
            for t in &self.tags {
                let name = t.familiar();
                let (repo, tag) = match t.tag() {
                    Some(tag) => (name.trim_end_matches(&format!(":{tag}")).to_string(), tag.to_string()),
                    None => (name, "latest".to_string()),
                };
                let e = repositories.entry(repo).or_insert_with(|| serde_json::json!({}));
                e[tag] = serde_json::Value::String(top.clone());
            }
        }
        tar.add_file(
            "repositories",
            serde_json::Value::Object(repositories).to_string().as_bytes(),
        )
        .await
    }
}

#[async_trait]
impl ImageDestination for DockerArchiveDestination {
    fn supports_signatures(&self) -> Result<(), TransportError> {
        Err(TransportError::SignaturesUnsupported(
            "Storing signatures for docker tar files is not supported",
        ))
    }

    fn describe(&self) -> String {
        format!("docker-archive:{}", self.path.display())
    }

    fn supported_manifest_types(&self) -> Vec<&'static str> {
        vec![media::DOCKER_V2S2]
    }

    fn supports_lists(&self) -> bool {
        false
    }

    fn desired_layer_compression(&self) -> LayerCompression {
        LayerCompression::Decompress
    }

    fn concurrent_blobs(&self) -> bool {
        false
    }

    async fn try_reuse_blob(&self, info: &BlobInfo, _from: Option<&RegistryLocation>) -> Result<bool, TransportError> {
        let tar = self.tar.lock().await;
        Ok(tar.has(&layer_file(&info.digest)) || tar.has(&config_file(&info.digest)))
    }

    async fn put_blob(&self, info: &BlobInfo, stream: BlobStream) -> Result<(), TransportError> {
        let is_config = info.media_type == media::DOCKER_CONFIG || info.media_type == media::OCI_CONFIG;
        let name = if is_config {
            config_file(&info.digest)
        } else {
            layer_file(&info.digest)
        };
        self.tar.lock().await.add_stream(stream, |_| Ok(name)).await.map(|_| ())
    }

    async fn put_blob_computed(&self, _media_type: &str, stream: BlobStream) -> Result<(Digest, u64), TransportError> {
        let (stream, slot) = super::hashing(stream);
        let mut tar = self.tar.lock().await;
        tar.add_stream(stream, |_| super::hashed(&slot).map(|(d, _)| layer_file(&d)))
            .await?;
        super::hashed(&slot)
    }

    async fn put_manifest(
        &self,
        manifest: &[u8],
        _media_type: &str,
        instance: Option<&Digest>,
    ) -> Result<(), TransportError> {
        if instance.is_some() {
            return Err(TransportError::CannotHoldList {
                transport: "docker-archive",
            });
        }
        *self.manifest.lock().await = Some(manifest.to_vec());
        Ok(())
    }

    async fn commit(&self) -> Result<(), TransportError> {
        let mut tar = self.tar.lock().await;
        self.write_metadata(&mut tar).await?;
        tar.finish().await
    }
}
