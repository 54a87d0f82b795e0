//! Reading Docker schema1 images: they are converted to schema2 while they
//! are copied, as containers/image does. Schema1 has no config blob and no
//! layer sizes; the layers' uncompressed digests (diff_ids) are computed by
//! decompressing each layer on the side while its compressed bytes stream
//! through unchanged, and the config is built from the `v1Compatibility`
//! history.

use super::{CopyError, CopyOptions, Stats, verify};
use crate::digest::{Algorithm, Digest, Hasher};
use crate::manifest::{self, media};
use crate::transport::{BlobInfo, ImageDestination, ImageSource, TransportError};
use bytes::Bytes;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FsLayer {
    blob_sum: Digest,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct History {
    v1_compatibility: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Schema1 {
    fs_layers: Vec<FsLayer>,
    history: Vec<History>,
}

/// A `Write` that hashes what it is given (the decompressed layer).
struct HashSink(Hasher);

impl std::io::Write for HashSink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.update(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Copy one schema1 layer unchanged, computing its diff_id on the side.
async fn copy_layer(
    src: &dyn ImageSource,
    dst: &dyn ImageDestination,
    blob: &Digest,
) -> Result<(u64, Digest), TransportError> {
    let info = BlobInfo {
        digest: blob.clone(),
        size: None,
        media_type: media::DOCKER_LAYER_GZIP.into(),
    };
    let tap = Arc::new(Mutex::new(Some(flate2::write::MultiGzDecoder::new(HashSink(
        Hasher::new(Algorithm::Sha256),
    )))));
    let failed = Arc::new(AtomicBool::new(false));
    let (t, f) = (tap.clone(), failed.clone());
    let stream = verify(src.blob(&info).await?, &info, Default::default(), None)
        .map(move |chunk| {
            if let Ok(c) = &chunk
                && let Some(d) = t.lock().unwrap_or_else(|p| p.into_inner()).as_mut()
                && d.write_all(c).is_err()
            {
                f.store(true, Ordering::SeqCst);
            }
            chunk
        })
        .boxed();
    let (digest, size) = dst.put_blob_computed(media::DOCKER_LAYER_GZIP, stream).await?;
    if digest != *blob {
        return Err(TransportError::Schema1LayerMismatch {
            blob: blob.clone(),
            actual: digest,
        });
    }
    let decoder = tap.lock().unwrap_or_else(|p| p.into_inner()).take();
    let diff_id = match decoder.map(|d| d.finish()) {
        Some(Ok(sink)) if !failed.load(Ordering::SeqCst) => sink.0.finish(),
        _ => {
            return Err(TransportError::Schema1LayerNotGzip(blob.clone()));
        }
    };
    Ok((size, diff_id))
}

/// A schema1 manifest and each history entry's `v1Compatibility` object
/// (top layer first), checked to describe one layer each.
pub(crate) fn parse(bytes: &[u8]) -> Result<(Schema1, Vec<Map<String, Value>>), CopyError> {
    let s1: Schema1 = serde_json::from_slice(bytes).map_err(manifest::ManifestError::from)?;
    if s1.fs_layers.len() != s1.history.len() || s1.fs_layers.is_empty() {
        return Err(CopyError::Schema1Inconsistent);
    }
    let v1s = s1
        .history
        .iter()
        .map(|h| serde_json::from_str(&h.v1_compatibility).map_err(manifest::ManifestError::from))
        .collect::<Result<Vec<Map<String, Value>>, _>>()?;
    Ok((s1, v1s))
}

/// The history (bottom first, as schema2 has it) of a schema1 image, and
/// the blobs of its non-empty layers, bottom first.
pub(crate) fn history_and_layers(s1: &Schema1, v1s: &[Map<String, Value>]) -> (Vec<Value>, Vec<Digest>) {
    let mut history = vec![];
    let mut blobs = vec![];
    // Schema1 lists the top layer first.
    for (fs, v1) in s1.fs_layers.iter().zip(v1s).rev() {
        let empty = v1.get("throwaway").and_then(Value::as_bool).unwrap_or(false);
        let created_by = v1
            .get("container_config")
            .and_then(|c| c.get("Cmd"))
            .and_then(Value::as_array)
            .map(|c| c.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" "))
            .unwrap_or_default();
        let mut entry =
            serde_json::json!({"created": v1.get("created").cloned().unwrap_or(Value::Null), "created_by": created_by});
        for k in ["author", "comment"] {
            if let Some(v) = v1.get(k) {
                entry[k] = v.clone();
            }
        }
        if empty {
            entry["empty_layer"] = Value::Bool(true);
        } else {
            blobs.push(fs.blob_sum.clone());
        }
        history.push(entry);
    }
    (history, blobs)
}

/// The schema2 config of a schema1 image: its top `v1Compatibility` less
/// the v1 fields, with `history` and these `diff_ids`.
pub(crate) fn config(
    v1s: Vec<Map<String, Value>>,
    history: Vec<Value>,
    diff_ids: Vec<Value>,
) -> Result<Vec<u8>, CopyError> {
    let mut config = v1s.into_iter().next().ok_or(CopyError::Schema1Inconsistent)?;
    for k in ["id", "parent", "parent_id", "layer_id", "Size", "throwaway"] {
        config.remove(k);
    }
    config.insert(
        "rootfs".into(),
        serde_json::json!({"type": "layers", "diff_ids": diff_ids}),
    );
    config.insert("history".into(), Value::Array(history));
    Ok(serde_json::to_vec(&Value::Object(config)).map_err(manifest::ManifestError::from)?)
}

/// Copy a schema1 image as schema2; returns the schema2 manifest to write.
pub(super) async fn copy(
    src: &dyn ImageSource,
    dst: &dyn ImageDestination,
    bytes: &[u8],
    opts: &CopyOptions,
    stats: &Stats,
) -> Result<(Bytes, String), CopyError> {
    if opts.preserve_digests {
        return Err(CopyError::Schema1ChangesDigest {
            image: src.describe(),
            reason: opts.keep_reason,
        });
    }
    let (s1, v1s) = parse(bytes)?;
    let (history, blobs) = history_and_layers(&s1, &v1s);
    let mut layers = vec![];
    let mut diff_ids = vec![];
    for blob in blobs {
        let (size, diff_id) = copy_layer(src, dst, &blob).await?;
        stats.copied.fetch_add(1, Ordering::Relaxed);
        stats.bytes.fetch_add(size, Ordering::Relaxed);
        layers.push(serde_json::json!({"mediaType": media::DOCKER_LAYER_GZIP, "size": size, "digest": blob}));
        diff_ids.push(serde_json::json!(diff_id));
    }
    let config = config(v1s, history, diff_ids)?;
    let config_info = BlobInfo {
        digest: Digest::sha256_of(&config),
        size: Some(config.len() as u64),
        media_type: media::DOCKER_CONFIG.into(),
    };
    if !dst.try_reuse_blob(&config_info, None).await? {
        let body = Bytes::from(config.clone());
        dst.put_blob(&config_info, futures::stream::once(async move { Ok(body) }).boxed())
            .await?;
    }
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::DOCKER_V2S2,
        "config": {"mediaType": media::DOCKER_CONFIG, "size": config.len(), "digest": config_info.digest},
        "layers": layers,
    });
    let out = Bytes::from(manifest::to_bytes(&m));
    Ok((out, media::DOCKER_V2S2.to_string()))
}
