//! Sigstore signatures attached in the registry, as cosign and
//! containers/image keep them: an OCI manifest tagged `sha256-HEX.sig` in
//! the image's repository, one layer per signature (the payload, its media
//! type, the signature in the layer's annotations), appended to, never
//! duplicated.

use super::TransportError;
use crate::digest::Digest;
use crate::manifest::media;
use crate::registry::{RegistryClient, RegistryError};
use crate::signature::blob::Sigstore;
use bytes::Bytes;
use futures::StreamExt;
use std::sync::Arc;

/// The attachment tag of the manifest `d` (`sha256:HEX` → `sha256-HEX.sig`).
pub fn tag(d: &Digest) -> String {
    format!("{}-{}.sig", d.algorithm().as_str(), d.hex())
}

/// Why an attachment could not be used.
fn bad(repo: &str, d: &Digest, why: impl std::fmt::Display) -> TransportError {
    TransportError::Attachment(format!("sigstore attachment {repo}:{}: {why}", tag(d)))
}

/// The attachment manifest of `d`, if there is one.
async fn manifest(
    client: &RegistryClient,
    repo: &str,
    d: &Digest,
) -> Result<Option<serde_json::Value>, TransportError> {
    let (bytes, mime) = match client.get_manifest(repo, &tag(d)).await {
        Ok(m) => m,
        Err(e) => {
            let e = TransportError::from(e);
            return if e.is_image_not_found() { Ok(None) } else { Err(e) };
        }
    };
    if mime != media::OCI_MANIFEST {
        return Err(bad(repo, d, format!("unexpected MIME type {mime:?}")));
    }
    serde_json::from_slice(&bytes).map(Some).map_err(|e| bad(repo, d, e))
}

/// A small blob, read whole and checked against its digest.
async fn small_blob(client: &Arc<RegistryClient>, repo: &str, d: &Digest) -> Result<Vec<u8>, TransportError> {
    let mut s = client.blob_stream(repo, d);
    let mut out = Vec::new();
    while let Some(chunk) = s.next().await {
        out.extend_from_slice(&chunk?);
        if out.len() > crate::signature::openpgp::MAX_SIGNATURE_SIZE {
            return Err(bad(repo, d, "a signature larger than 4 MiB"));
        }
    }
    if !d.matches(&out) {
        return Err(bad(repo, d, format!("blob {d} does not match its digest")));
    }
    Ok(out)
}

fn descriptor_digest(layer: &serde_json::Value) -> Option<Digest> {
    layer.get("digest")?.as_str()?.parse().ok()
}

/// The sigstore signatures attached to manifest `d` of `repo`.
pub async fn read(client: &Arc<RegistryClient>, repo: &str, d: &Digest) -> Result<Vec<Sigstore>, TransportError> {
    let Some(m) = manifest(client, repo, d).await? else {
        return Ok(vec![]);
    };
    let mut out = Vec::new();
    for layer in m.get("layers").and_then(|l| l.as_array()).into_iter().flatten() {
        let digest = descriptor_digest(layer).ok_or_else(|| bad(repo, d, "a layer without a valid digest"))?;
        let payload = small_blob(client, repo, &digest).await?;
        let annotations = layer
            .get("annotations")
            .and_then(|a| serde_json::from_value(a.clone()).ok())
            .unwrap_or_default();
        out.push(Sigstore {
            mime_type: layer
                .get("mediaType")
                .and_then(|m| m.as_str())
                .unwrap_or_default()
                .to_string(),
            payload,
            annotations,
        });
    }
    Ok(out)
}

/// Upload `data` as a blob of `repo` unless it is there; its descriptor.
async fn put_small(
    client: &RegistryClient,
    repo: &str,
    data: &[u8],
    media_type: &str,
) -> Result<serde_json::Value, RegistryError> {
    let digest = Digest::sha256_of(data);
    if client.head_blob(repo, &digest, true).await?.is_none() {
        let upload = client.start_upload(repo).await?;
        client
            .put_blob(
                repo,
                upload,
                &digest,
                data.len() as u64,
                Bytes::copy_from_slice(data).into(),
            )
            .await?;
    }
    Ok(serde_json::json!({"mediaType": media_type, "digest": digest.to_string(), "size": data.len()}))
}

/// Attach `sigs` to manifest `d` of `repo`: appended to the attachment
/// manifest there, each unless an identical one is attached already.
pub async fn write(
    client: &Arc<RegistryClient>,
    repo: &str,
    d: &Digest,
    sigs: &[Sigstore],
) -> Result<(), TransportError> {
    if sigs.is_empty() {
        return Ok(());
    }
    let existing = manifest(client, repo, d).await?;
    let (mut layers, mut config) = match &existing {
        Some(m) => {
            let layers = m.get("layers").and_then(|l| l.as_array()).cloned().unwrap_or_default();
            let cd = m
                .pointer("/config/digest")
                .and_then(|x| x.as_str())
                .and_then(|x| x.parse::<Digest>().ok())
                .ok_or_else(|| bad(repo, d, "a manifest without a config"))?;
            let config: serde_json::Value =
                serde_json::from_slice(&small_blob(client, repo, &cd).await?).map_err(|e| bad(repo, d, e))?;
            (layers, config)
        }
        // What containers/image writes for a new one: an empty image config.
        None => (
            vec![],
            serde_json::json!({"architecture": "", "os": "", "config": {}, "rootfs": {"type": "layers", "diff_ids": []}}),
        ),
    };
    let mut added = false;
    for s in sigs {
        let digest = Digest::sha256_of(&s.payload);
        let same = |l: &serde_json::Value| {
            l.get("mediaType").and_then(|m| m.as_str()) == Some(s.mime_type.as_str())
                && l.get("size").and_then(|x| x.as_u64()) == Some(s.payload.len() as u64)
                && descriptor_digest(l).as_ref() == Some(&digest)
                && l.get("annotations")
                    .and_then(|a| serde_json::from_value::<std::collections::BTreeMap<String, String>>(a.clone()).ok())
                    .unwrap_or_default()
                    == s.annotations
        };
        if layers.iter().any(same) {
            continue;
        }
        let mut desc = put_small(client, repo, &s.payload, &s.mime_type).await?;
        if !s.annotations.is_empty() {
            desc["annotations"] = serde_json::to_value(&s.annotations).unwrap_or_default();
        }
        layers.push(desc);
        if let Some(ids) = config.pointer_mut("/rootfs/diff_ids").and_then(|x| x.as_array_mut()) {
            ids.push(digest.to_string().into());
        }
        added = true;
    }
    if !added {
        return Ok(());
    }
    let config_bytes = serde_json::to_vec(&config).map_err(|e| bad(repo, d, e))?;
    let config_desc = put_small(client, repo, &config_bytes, media::OCI_CONFIG).await?;
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": config_desc,
        "layers": layers,
    });
    let bytes = serde_json::to_vec(&m).map_err(|e| bad(repo, d, e))?;
    client.put_manifest(repo, &tag(d), &bytes, media::OCI_MANIFEST).await?;
    Ok(())
}
