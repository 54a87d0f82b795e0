//! Signatures as containers/image stores them outside a registry (`dir:`'s
//! `signature-N`, lookaside files): a simple signature as its OpenPGP bytes,
//! anything else as `\0FORMAT\n` and the format's data — for sigstore, JSON
//! of the attachment's media type, payload and annotations.

use bytes::Bytes;
use std::collections::BTreeMap;

/// The sigstore format's name in a blob.
const SIGSTORE_FORMAT: &[u8] = b"sigstore-json";
const SIMPLE_FORMAT: &[u8] = b"simple-signing";

/// The media type of a sigstore signature payload.
pub const SIGSTORE_MIME_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The annotation holding a sigstore signature (base64).
pub const SIGSTORE_SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

/// One signature, by format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signature {
    /// An OpenPGP message over a simple-signing payload.
    Simple(Bytes),
    /// A sigstore signature: what a `sha256-HEX.sig` attachment's layer holds.
    Sigstore(Sigstore),
}

/// A sigstore signature's parts, unverified.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Sigstore {
    #[serde(rename = "mimeType")]
    pub mime_type: String,
    #[serde(with = "base64_bytes")]
    pub payload: Vec<u8>,
    #[serde(default, deserialize_with = "null_is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Signature {
    /// Read a blob (containers/image's `signature.FromBlob`).
    pub fn from_blob(blob: &[u8]) -> Result<Signature, String> {
        match blob.first() {
            None => Err("empty signature blob".into()),
            // OpenPGP packet tags a signed message starts with: compressed
            // data, one-pass signature, signature (old and new formats).
            Some(0xA0..=0xA3 | 0xC8 | 0x90..=0x92 | 0x3d | 0xC4 | 0x88..=0x8B | 0xC2) => {
                Ok(Signature::Simple(Bytes::copy_from_slice(blob)))
            }
            Some(0) => {
                let rest = &blob[1..];
                let nl = rest
                    .iter()
                    .position(|b| *b == b'\n')
                    .ok_or("invalid signature format, missing newline")?;
                let (format, chunk) = (&rest[..nl], &rest[nl + 1..]);
                if let Some(b) = format.iter().find(|b| **b < 32 || **b >= 0x7f) {
                    return Err(format!("invalid signature format, non-ASCII byte {b:#x}"));
                }
                match format {
                    SIMPLE_FORMAT => Ok(Signature::Simple(Bytes::copy_from_slice(chunk))),
                    SIGSTORE_FORMAT => serde_json::from_slice(chunk)
                        .map(Signature::Sigstore)
                        .map_err(|e| e.to_string()),
                    other => Err(format!(
                        "unrecognized signature format {:?}",
                        String::from_utf8_lossy(other)
                    )),
                }
            }
            Some(b) => Err(format!("unrecognized signature format, starting with binary {b:#x}")),
        }
    }

    /// The blob to store (containers/image's `signature.Blob`).
    pub fn to_blob(&self) -> Bytes {
        match self {
            Signature::Simple(b) => b.clone(),
            Signature::Sigstore(s) => {
                let mut out = vec![0];
                out.extend_from_slice(SIGSTORE_FORMAT);
                out.push(b'\n');
                // Go marshals the struct in field order, the map sorted.
                out.extend(serde_json::to_vec(s).unwrap_or_default());
                out.into()
            }
        }
    }
}

fn null_is_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    use serde::Deserialize as _;
    Ok(Option::<BTreeMap<String, String>>::deserialize(d)?.unwrap_or_default())
}

mod base64_bytes {
    use base64::Engine as _;
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = Option::<String>::deserialize(d)?.unwrap_or_default();
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_as_containers_image_writes_them() {
        let s = Signature::Sigstore(Sigstore {
            mime_type: SIGSTORE_MIME_TYPE.into(),
            payload: b"{}".to_vec(),
            annotations: [(SIGSTORE_SIGNATURE_ANNOTATION.to_string(), "c2ln".to_string())].into(),
        });
        let blob = s.to_blob();
        assert_eq!(
            &blob[..],
            &b"\0sigstore-json\n{\"mimeType\":\"application/vnd.dev.cosign.simplesigning.v1+json\",\"payload\":\"e30=\",\"annotations\":{\"dev.cosignproject.cosign/signature\":\"c2ln\"}}"[..]
        );
        assert_eq!(Signature::from_blob(&blob).unwrap(), s);
        assert_eq!(
            Signature::from_blob(b"\xa3\x01x").unwrap(),
            Signature::Simple(Bytes::from_static(b"\xa3\x01x"))
        );
        assert_eq!(
            Signature::from_blob(b"\0simple-signing\n\x90x").unwrap(),
            Signature::Simple(Bytes::from_static(b"\x90x"))
        );
        for bad in [&b""[..], b"\0x", b"\0\x01\n", b"\0other\nx", b"{}"] {
            assert!(Signature::from_blob(bad).is_err(), "{bad:?}");
        }
        let null = br#"{"mimeType":"m","payload":"","annotations":null}"#;
        let mut b = b"\0sigstore-json\n".to_vec();
        b.extend_from_slice(null);
        assert!(matches!(Signature::from_blob(&b), Ok(Signature::Sigstore(s)) if s.annotations.is_empty()));
    }
}
