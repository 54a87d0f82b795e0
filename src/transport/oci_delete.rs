//! `delete oci:path[:ref]`: remove an image's entry from index.json and the
//! blobs no other image of the layout uses, as containers/image does, in the
//! safe order: the entry goes first (atomically, under the index lock), the
//! blobs after, so an interruption leaves unreferenced blobs, never an entry
//! whose blobs are gone. A blob reachable from any remaining entry stays,
//! whatever media type names it. As upstream, blobs in a shared blob
//! directory are never deleted (other layouts may use them).

use super::TransportError;
use super::local::{read_small, sync_dir, write_atomic};
use super::oci::{IndexLock, REF_NAME};
use crate::digest::Digest;
use crate::manifest::media;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const INDEX_LIMIT: u64 = 64 << 20;
const MANIFEST_LIMIT: u64 = 4 << 20;
/// Deeper than any real image (an index of manifests, or of indexes).
const MAX_DEPTH: usize = 8;

fn blob_path(blobs: &Path, d: &Digest) -> PathBuf {
    blobs.join(d.algorithm().as_str()).join(d.hex())
}

/// Every `"digest"` in a JSON document (descriptors at any depth), and
/// whether the blob may name others in turn: layers and configs (by their
/// descriptor's media type) are not read, anything else is.
fn digests_in(v: &Value, out: &mut Vec<(Digest, bool)>) {
    match v {
        Value::Object(o) => {
            if let Some(d) = o.get("digest").and_then(Value::as_str).and_then(|d| d.parse().ok()) {
                let mt = o.get("mediaType").and_then(Value::as_str).unwrap_or("");
                let leaf = mt.contains(".layer.") || mt.contains("rootfs.") || mt.contains("config");
                out.push((d, !leaf));
            }
            o.values().for_each(|c| digests_in(c, out));
        }
        Value::Array(a) => a.iter().for_each(|c| digests_in(c, out)),
        _ => {}
    }
}

/// The blobs reachable from `d` (itself included), read from `blobs`. Any
/// descriptor inside a manifest counts (config, layers, subject, instances),
/// so a manifest type kopeo does not know still keeps what it names. A blob
/// that is missing or not JSON references nothing further.
async fn reachable(blobs: &Path, d: &Digest, out: &mut BTreeSet<Digest>) -> Result<(), TransportError> {
    let mut todo = vec![(d.clone(), true, 0usize)];
    while let Some((d, read, depth)) = todo.pop() {
        if !out.insert(d.clone()) || !read || depth > MAX_DEPTH {
            continue;
        }
        let path = blob_path(blobs, &d);
        let Ok(meta) = tokio::fs::metadata(&path).await else {
            continue;
        };
        if meta.len() > MANIFEST_LIMIT {
            continue; // a layer, not a manifest
        }
        let Ok(bytes) = read_small(&path, MANIFEST_LIMIT).await else {
            continue;
        };
        let Ok(doc) = serde_json::from_slice::<Value>(&bytes) else {
            continue;
        };
        let mut children = vec![];
        digests_in(&doc, &mut children);
        todo.extend(children.into_iter().map(|(c, read)| (c, read, depth + 1)));
    }
    Ok(())
}

/// An index entry's `org.opencontainers.image.ref.name`.
fn ref_name(v: &Value) -> Option<&str> {
    v.get("annotations")
        .and_then(|a| a.get(REF_NAME))
        .and_then(Value::as_str)
}

/// The index entry `image` names (or the only entry), as an index into `manifests`.
fn find_entry(manifests: &[Value], image: Option<&str>, path: &Path) -> Result<usize, TransportError> {
    let name = ref_name;
    match image {
        Some(i) => manifests.iter().position(|m| name(m) == Some(i)).ok_or_else(|| {
            TransportError::ImageNotFound(format!("no descriptor found for reference {i:?} in {}", path.display()))
        }),
        None => match manifests.len() {
            1 => Ok(0),
            0 => Err(TransportError::ImageNotFound(format!(
                "no images in {}",
                path.display()
            ))),
            _ => Err(TransportError::AmbiguousImage {
                transport: "oci",
                path: path.to_path_buf(),
            }),
        },
    }
}

/// Delete the image `image` (or the only image) of the layout at `path`.
pub async fn delete(path: &Path, image: Option<&str>, shared_blobs: Option<&Path>) -> Result<(), TransportError> {
    let index_path = path.join("index.json");
    if tokio::fs::metadata(&index_path).await.is_err() {
        return Err(TransportError::ImageNotFound(format!(
            "{} is not an OCI layout (no index.json)",
            path.display()
        )));
    }
    let _lock = IndexLock::take(path).await?;
    let data = read_small(&index_path, INDEX_LIMIT).await?;
    let mut index: Value = serde_json::from_slice(&data).map_err(|source| TransportError::MalformedIndex {
        path: index_path.clone(),
        source,
    })?;
    let manifests = index
        .get_mut("manifests")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| TransportError::IndexWithoutManifests(index_path.clone()))?;
    let at = find_entry(manifests, image, path)?;
    let removed = manifests.remove(at);
    let blobs = shared_blobs.map_or_else(|| path.join("blobs"), Path::to_path_buf);
    let digest_of = |v: &Value| {
        v.get("digest")
            .and_then(Value::as_str)
            .and_then(|d| d.parse::<Digest>().ok())
    };
    let mut keep = BTreeSet::new();
    for m in manifests.iter() {
        if let Some(d) = digest_of(m) {
            reachable(&blobs, &d, &mut keep).await?;
        }
    }
    let mut gone = BTreeSet::new();
    if let Some(d) = digest_of(&removed) {
        reachable(&blobs, &d, &mut gone).await?;
    }
    let body = serde_json::to_vec(&index).map_err(TransportError::encode("index.json"))?;
    write_atomic(&index_path, &body).await?;
    sync_dir(path).await?;
    if shared_blobs.is_some() {
        tracing::debug!("blobs in a shared blob directory are kept");
        return Ok(());
    }
    for d in gone.difference(&keep) {
        let p = blob_path(&blobs, d);
        match tokio::fs::remove_file(&p).await {
            Ok(()) => tracing::debug!(digest = %d, "deleted blob"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(TransportError::io("deleting", &p)(e)),
        }
    }
    Ok(())
}

/// Every blob the image `top` needs is still in `blobs`: checked under the
/// index lock before an entry is written, so that a concurrent `delete` of
/// another image sharing a blob fails this copy cleanly instead of leaving
/// an entry whose blob is gone. Needed are the manifests, configs and
/// layers (not foreign layers, which live at their URLs, nor a subject).
pub(super) async fn check_complete(blobs: &Path, top: &Digest) -> Result<(), TransportError> {
    let mut todo = vec![(top.clone(), 0usize)];
    while let Some((d, depth)) = todo.pop() {
        let path = blob_path(blobs, &d);
        if tokio::fs::metadata(&path).await.is_err() {
            return Err(TransportError::BlobVanished(d));
        }
        let Ok(bytes) = read_small(&path, MANIFEST_LIMIT).await else {
            continue;
        };
        let Ok(doc) = serde_json::from_slice::<Value>(&bytes) else {
            continue;
        };
        let descriptors = |key: &str| doc.get(key).and_then(Value::as_array).cloned().unwrap_or_default();
        let digest_of = |v: &Value| {
            v.get("digest")
                .and_then(Value::as_str)
                .and_then(|d| d.parse::<Digest>().ok())
        };
        let mime = crate::manifest::guess_mime_type(&bytes);
        if crate::manifest::is_list_type(&mime) {
            if depth < MAX_DEPTH {
                todo.extend(
                    descriptors("manifests")
                        .iter()
                        .filter_map(digest_of)
                        .map(|c| (c, depth + 1)),
                );
            }
        } else if mime == media::OCI_MANIFEST || mime == media::DOCKER_V2S2 {
            let config = doc.get("config").and_then(digest_of);
            let layers = descriptors("layers");
            let local = layers.iter().filter(|l| l.get("urls").is_none()).filter_map(digest_of);
            for b in config.into_iter().chain(local) {
                if tokio::fs::metadata(blob_path(blobs, &b)).await.is_err() {
                    return Err(TransportError::BlobVanished(b));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::oci::OciDestination;
    use crate::transport::{BlobInfo, ImageDestination};
    use futures::StreamExt;

    async fn put(dst: &OciDestination, data: &'static [u8], media_type: &str) -> Value {
        let info = BlobInfo {
            digest: Digest::sha256_of(data),
            size: Some(data.len() as u64),
            media_type: media_type.into(),
        };
        let stream = futures::stream::once(async move { Ok(bytes::Bytes::from_static(data)) }).boxed();
        dst.put_blob(&info, stream).await.unwrap();
        serde_json::json!({"mediaType": media_type, "digest": info.digest.to_string(), "size": data.len()})
    }

    #[tokio::test]
    async fn a_blob_deleted_under_a_copy_fails_its_commit_and_writes_no_entry() {
        let dir = tempfile::tempdir().unwrap();
        let dst = OciDestination::open(dir.path(), Some("t".into()), None).await.unwrap();
        let config = put(&dst, br#"{"architecture":"amd64","os":"linux"}"#, media::OCI_CONFIG).await;
        let layer = put(&dst, b"layer bytes", media::OCI_LAYER).await;
        let manifest = serde_json::json!({"schemaVersion": 2, "mediaType": media::OCI_MANIFEST, "config": config, "layers": [layer]});
        dst.put_manifest(manifest.to_string().as_bytes(), media::OCI_MANIFEST, None)
            .await
            .unwrap();
        // Another process's delete took the layer meanwhile.
        let gone: Digest = layer["digest"].as_str().unwrap().parse().unwrap();
        std::fs::remove_file(blob_path(&dir.path().join("blobs"), &gone)).unwrap();
        let err = dst.commit().await.unwrap_err();
        assert!(matches!(&err, TransportError::BlobVanished(d) if *d == gone), "{err}");
        assert!(!dir.path().join("index.json").exists(), "no entry written");
    }
}
