//! The signature API extension of OpenShift's registry (and others that
//! announce `X-Registry-Supports-Signatures: 1` when pinged):
//! `/extensions/v2/<name>/signatures/<digest>`, a JSON list to GET and one
//! signature per PUT. Only simple signing signatures ("atomic") live there.

use super::RegistryError;
use super::client::RegistryClient;
use super::response::{error_from, read_limited};
use crate::digest::Digest;
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};

/// The list's schema version containers/image reads and writes.
const SCHEMA_VERSION: i64 = 2;
/// The type of a simple signing signature in the list.
const TYPE_ATOMIC: &str = "atomic";
/// containers/image's iolimits.MaxSignatureListBodySize.
const MAX_LIST_SIZE: usize = 4 << 20;

/// One entry of the list, as OpenShift's signature dispatcher serves it
/// (`content` is base64, as Go encodes `[]byte`).
#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    #[serde(rename = "schemaVersion", default)]
    version: i64,
    /// `DIGEST@NAME`.
    #[serde(default)]
    name: String,
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default, with = "base64_bytes")]
    content: Vec<u8>,
}

#[derive(Debug, Deserialize)]
struct List {
    #[serde(default)]
    signatures: Vec<Entry>,
}

mod base64_bytes {
    use base64::Engine as _;

    pub fn serialize<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(b))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text: Option<String> = serde::Deserialize::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.unwrap_or_default())
            .map_err(serde::de::Error::custom)
    }
}

/// The entries of a signature list as the extension answers it.
fn parse_list(body: &[u8]) -> Result<Vec<Entry>, String> {
    let list: List = serde_json::from_slice(body).map_err(|e| format!("the signature list is not valid JSON: {e}"))?;
    Ok(list.signatures)
}

/// The simple signing signatures among `entries` (entries of another schema
/// or type are left out, as upstream does).
fn simple(entries: Vec<Entry>) -> Vec<Vec<u8>> {
    entries
        .into_iter()
        .filter(|e| e.version == SCHEMA_VERSION && e.kind == TYPE_ATOMIC)
        .map(|e| e.content)
        .collect()
}

/// The simple signatures of an extension answer, for the fuzzer.
pub(crate) fn simple_signatures_of(body: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    Ok(simple(parse_list(body)?))
}

impl RegistryClient {
    fn extension_path(repo: &str, digest: &Digest) -> String {
        format!("extensions/v2/{repo}/signatures/{digest}")
    }

    /// Every entry the extension lists for `digest` in `repo`.
    async fn extension_list(&self, repo: &str, digest: &Digest, push: bool) -> Result<Vec<Entry>, RegistryError> {
        let op = format!("downloading signatures for {digest} in {}/{repo}", self.registry);
        let path = Self::extension_path(repo, digest);
        let resp = self
            .send(&op, repo, Self::scopes(repo, push), |c, base| {
                Ok(c.get(self.url(base, &path)?))
            })
            .await?;
        if resp.status() != StatusCode::OK {
            return Err(error_from(&op, resp).await);
        }
        let body = read_limited(&op, resp, MAX_LIST_SIZE).await?;
        parse_list(&body).map_err(|reason| RegistryError::Protocol { op, reason })
    }

    /// The simple signing signatures the extension holds for `digest`.
    pub async fn extension_signatures(&self, repo: &str, digest: &Digest) -> Result<Vec<Vec<u8>>, RegistryError> {
        Ok(simple(self.extension_list(repo, digest, false).await?))
    }

    /// Add `signatures` of `digest` through the extension: each unless an
    /// identical one is there, under a new random name (the API keeps
    /// signatures shared, so nothing is replaced or removed).
    pub async fn put_extension_signatures(
        &self,
        repo: &str,
        digest: &Digest,
        signatures: &[&[u8]],
    ) -> Result<(), RegistryError> {
        if signatures.is_empty() {
            return Ok(());
        }
        let existing = self.extension_list(repo, digest, true).await?;
        let mut names: std::collections::HashSet<String> = existing.iter().map(|e| e.name.clone()).collect();
        for sig in signatures {
            let present = existing
                .iter()
                .any(|e| e.version == SCHEMA_VERSION && e.kind == TYPE_ATOMIC && e.content == *sig);
            if present {
                continue;
            }
            let name = crate::signature::fresh_signature_name(&digest.to_string(), &mut names);
            let entry = Entry {
                version: SCHEMA_VERSION,
                name,
                kind: TYPE_ATOMIC.into(),
                content: sig.to_vec(),
            };
            let body = serde_json::to_vec(&entry).map_err(|e| RegistryError::Protocol {
                op: "encoding a signature".into(),
                reason: e.to_string(),
            })?;
            let path = Self::extension_path(repo, digest);
            let op = format!("uploading signature to /{path} in {}", self.registry);
            let resp = self
                .send(&op, repo, Self::scopes(repo, true), |c, base| {
                    Ok(c.put(self.url(base, &path)?)
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(body.clone()))
                })
                .await?;
            if resp.status() != StatusCode::CREATED {
                return Err(error_from(&op, resp).await);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    #[test]
    fn entries_read_as_openshift_serves_them() {
        let sig = base64::engine::general_purpose::STANDARD.encode(b"sig");
        let text = format!(
            r#"{{"signatures":[{{"schemaVersion":2,"name":"sha256:aa@x","type":"atomic","content":"{sig}"}},
               {{"schemaVersion":1,"name":"sha256:aa@y","type":"atomic","content":""}}]}}"#
        );
        let list: List = serde_json::from_str(&text).unwrap();
        assert_eq!(list.signatures[0].content, b"sig");
        assert_eq!(list.signatures[1].version, 1);
        let bad: Result<List, _> = serde_json::from_str(r#"{"signatures":[{"content":"%%"}]}"#);
        assert!(bad.is_err());
        let written = serde_json::to_value(&list.signatures[0]).unwrap();
        assert_eq!(
            written,
            serde_json::json!({"schemaVersion": 2, "name": "sha256:aa@x", "type": "atomic", "content": sig})
        );
    }
}
