//! The digest of a manifest as registries and signatures name it: that of
//! its bytes — except a signed Docker schema1 manifest, whose digest is that
//! of its payload without the JWS signatures. The payload is recovered as
//! libtrust's "pretty signature" format records it: the first
//! `formatLength` bytes of the manifest followed by `formatTail`, both from
//! each signature's protected header (containers/image's manifest.Digest).

use crate::digest::{Algorithm, Digest, Hasher};
use base64::Engine as _;
use serde::Deserialize;

/// Why a signed schema1 manifest's payload cannot be recovered (libtrust's texts).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Schema1PayloadError {
    #[error("error unmarshalling content: {0}")]
    Content(String),
    #[error("missing signature key")]
    MissingSignatures,
    #[error("error unmarshalling signatures: {0}")]
    Signatures(String),
    #[error("base64 decode error: {0}")]
    ProtectedBase64(String),
    #[error("error unmarshalling protected header: {0}")]
    ProtectedHeader(String),
    #[error("missing formatted length")]
    MissingLength,
    #[error("missing formatted tail")]
    MissingTail,
    #[error("base64 decode error on tail: {0}")]
    TailBase64(String),
    #[error("conflicting format length")]
    ConflictingLength,
    #[error("conflicting format tail")]
    ConflictingTail,
    #[error("invalid format length")]
    InvalidLength,
}

/// The digest (SHA-256) a registry or a signature gives `manifest`.
pub fn manifest_digest(manifest: &[u8]) -> Result<Digest, Schema1PayloadError> {
    manifest_digest_with(manifest, Algorithm::Sha256)
}

/// [`manifest_digest`] with `algorithm`.
pub fn manifest_digest_with(manifest: &[u8], algorithm: Algorithm) -> Result<Digest, Schema1PayloadError> {
    let mut h = Hasher::new(algorithm);
    if crate::manifest::guess_mime_type(manifest) == crate::manifest::media::DOCKER_V2S1_SIGNED {
        h.update(&schema1_payload(manifest)?);
    } else {
        h.update(manifest);
    }
    Ok(h.finish())
}

/// Whether `manifest` is the one `expected` names (containers/image's MatchesDigest).
pub fn matches(manifest: &[u8], expected: &Digest) -> bool {
    manifest_digest_with(manifest, expected.algorithm()).is_ok_and(|d| d == *expected)
}

#[derive(Deserialize)]
struct Block {
    #[serde(default)]
    protected: String,
}

/// base64url without padding, as JOSE writes it (libtrust's joseBase64UrlDecode).
fn jose_decode(s: &str) -> Result<Vec<u8>, String> {
    if s.len() % 4 == 1 {
        return Err("illegal base64url string".into());
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|e| e.to_string())
}

/// The signed payload of a schema1 manifest in libtrust's pretty signature format.
fn schema1_payload(content: &[u8]) -> Result<Vec<u8>, Schema1PayloadError> {
    use Schema1PayloadError as E;
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(content).map_err(|e| E::Content(e.to_string()))?;
    let signatures = map.get("signatures").ok_or(E::MissingSignatures)?;
    let blocks: Vec<Block> = serde_json::from_value(signatures.clone()).map_err(|e| E::Signatures(e.to_string()))?;
    let (mut length, mut tail): (usize, Vec<u8>) = (0, vec![]);
    for block in &blocks {
        let protected = jose_decode(&block.protected).map_err(E::ProtectedBase64)?;
        let header: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&protected).map_err(|e| E::ProtectedHeader(e.to_string()))?;
        // A JSON number, truncated as Go's int(float64) does; a negative one
        // cannot cut the manifest.
        let l = header
            .get("formatLength")
            .and_then(|v| v.as_f64())
            .ok_or(E::MissingLength)?;
        if l < 0.0 {
            return Err(E::InvalidLength);
        }
        let l = l as usize;
        let t = header
            .get("formatTail")
            .and_then(|v| v.as_str())
            .ok_or(E::MissingTail)?;
        let t = jose_decode(t).map_err(E::TailBase64)?;
        if length == 0 {
            length = l;
        } else if length != l {
            return Err(E::ConflictingLength);
        }
        if tail.is_empty() {
            tail = t;
        } else if tail != t {
            return Err(E::ConflictingTail);
        }
    }
    if length > content.len() {
        return Err(E::InvalidLength);
    }
    let mut payload = content[..length].to_vec();
    payload.extend_from_slice(&tail);
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jose(b: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    }

    /// A manifest signed as libtrust formats it: the payload less its
    /// closing "\n}", the signatures, then "}".
    fn signed(payload: &str, headers: &[String]) -> Vec<u8> {
        let cut = payload.len() - 2;
        let sigs: Vec<String> = headers
            .iter()
            .map(|h| {
                format!(
                    r#"{{"header":{{"alg":"ES256"}},"signature":"c2ln","protected":"{}"}}"#,
                    jose(h.as_bytes())
                )
            })
            .collect();
        format!("{},\n   \"signatures\": [{}]\n}}", &payload[..cut], sigs.join(",")).into_bytes()
    }

    #[test]
    fn a_signed_schema1_digest_is_its_payloads() {
        let payload = "{\n   \"schemaVersion\": 1,\n   \"name\": \"a/b\",\n   \"fsLayers\": []\n}";
        let header = format!(
            r#"{{"formatLength":{},"formatTail":"{}"}}"#,
            payload.len() - 2,
            jose(b"\n}")
        );
        let m = signed(payload, &[header.clone(), header.clone()]);
        assert_eq!(manifest_digest(&m).unwrap(), Digest::sha256_of(payload.as_bytes()));
        assert!(matches(&m, &Digest::sha256_of(payload.as_bytes())));
        assert!(!matches(&m, &Digest::sha256_of(&m)));
        // Unsigned manifests are their bytes.
        assert_eq!(
            manifest_digest(payload.as_bytes()).unwrap(),
            Digest::sha256_of(payload.as_bytes())
        );
        // No signature blocks: the empty payload, as libtrust gives it.
        let none = b"{\"schemaVersion\": 1, \"signatures\": []}";
        assert_eq!(manifest_digest(none).unwrap(), Digest::sha256_of(b""));
    }

    #[test]
    fn broken_headers_are_named() {
        let payload = "{\n   \"schemaVersion\": 1\n}";
        let ok = format!(
            r#"{{"formatLength":{},"formatTail":"{}"}}"#,
            payload.len() - 2,
            jose(b"\n}")
        );
        let cases = [
            (vec![r#"{"formatTail":"fQ"}"#.to_string()], "missing formatted length"),
            (vec![r#"{"formatLength":3}"#.to_string()], "missing formatted tail"),
            (
                vec![r#"{"formatLength":99999,"formatTail":"fQ"}"#.to_string()],
                "invalid format length",
            ),
            (
                vec![r#"{"formatLength":-4,"formatTail":"fQ"}"#.to_string()],
                "invalid format length",
            ),
            (
                vec![ok.clone(), r#"{"formatLength":5,"formatTail":"fQ"}"#.to_string()],
                "conflicting format length",
            ),
            (vec!["not json".to_string()], "error unmarshalling protected header"),
        ];
        for (headers, want) in cases {
            let e = manifest_digest(&signed(payload, &headers)).unwrap_err();
            assert!(e.to_string().starts_with(want), "{e} for {headers:?}");
        }
        let bad = br#"{"schemaVersion": 1, "signatures": [{"protected": "!!"}]}"#;
        assert!(
            manifest_digest(bad)
                .unwrap_err()
                .to_string()
                .starts_with("base64 decode error")
        );
        let bad = br#"{"schemaVersion": 1, "signatures": {"a": 1}}"#;
        assert!(
            manifest_digest(bad)
                .unwrap_err()
                .to_string()
                .starts_with("error unmarshalling signatures")
        );
    }
}
