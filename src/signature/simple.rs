//! The simple-signing payload ("atomic container signature"): what an
//! OpenPGP-signed message says about an image — its manifest digest and the
//! reference it was signed for — byte-compatible with containers/image.

use super::strict_json::{self, Value, exact_fields, field};
use crate::digest::Digest;

/// The payload's `critical.type`.
pub const SIGNATURE_TYPE: &str = "atomic container signature";

/// The `critical.type` of a sigstore payload.
pub const SIGSTORE_SIGNATURE_TYPE: &str = "cosign container image signature";

/// A payload, not yet trusted: parsed from a signature whose signer may or
/// may not be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    pub manifest_digest: Digest,
    pub docker_reference: String,
    pub creator: Option<String>,
    pub timestamp: Option<i64>,
}

impl Payload {
    /// A payload for a new signature, made now by kopeo.
    pub fn new(manifest_digest: Digest, docker_reference: String) -> Payload {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        Payload {
            manifest_digest,
            docker_reference,
            creator: Some(format!("kopeo {}", env!("CARGO_PKG_VERSION"))),
            timestamp: Some(now),
        }
    }

    /// The JSON containers/image writes: keys in Go's sorted map order.
    pub fn to_json(&self) -> Vec<u8> {
        self.to_json_typed(SIGNATURE_TYPE)
    }

    /// As [`Payload::to_json`], with `signature_type` as `critical.type`.
    pub fn to_json_typed(&self, signature_type: &str) -> Vec<u8> {
        let mut optional = serde_json::Map::new();
        if let Some(c) = &self.creator {
            optional.insert("creator".into(), c.clone().into());
        }
        if let Some(t) = self.timestamp {
            optional.insert("timestamp".into(), t.into());
        }
        let v = serde_json::json!({
            "critical": {
                "identity": {"docker-reference": self.docker_reference},
                "image": {"docker-manifest-digest": self.manifest_digest.to_string()},
                "type": signature_type,
            },
            "optional": optional,
        });
        v.to_string().into_bytes()
    }

    /// Parse a signed payload as strictly as containers/image does: exactly
    /// the known critical fields, any optional ones.
    pub fn parse(data: &[u8]) -> Result<Payload, String> {
        Self::parse_typed(data, SIGNATURE_TYPE)
    }

    /// Parse a payload whose `critical.type` must be `signature_type`
    /// (sigstore's is [`SIGSTORE_SIGNATURE_TYPE`]; its `optional` may be null).
    pub fn parse_typed(data: &[u8], signature_type: &str) -> Result<Payload, String> {
        let v = strict_json::parse(data)?;
        let [critical, optional] = exact_fields(&v, ["critical", "optional"])?;
        let opt = match optional {
            Value::Null if signature_type == SIGSTORE_SIGNATURE_TYPE => &[][..],
            o => o.object()?,
        };
        let creator = match field(opt, "creator") {
            Some(c) => Some(c.string("optional.creator")?.to_string()),
            None => None,
        };
        let timestamp = match field(opt, "timestamp") {
            Some(Value::Number(n)) => {
                let i = *n as i64;
                if i as f64 != *n {
                    return Err("Field optional.timestamp is not an integer".into());
                }
                Some(i)
            }
            Some(other) => return Err(strict_json::cannot_unmarshal(other, "optional.timestamp", "float64")),
            None => None,
        };
        let [t, image, identity] = exact_fields(critical, ["type", "image", "identity"])?;
        let t = t.string("critical.type")?;
        if t != signature_type {
            return Err(format!("Unrecognized signature type {t}"));
        }
        let [d] = exact_fields(image, ["docker-manifest-digest"])?;
        let d = d.string("critical.image.docker-manifest-digest")?;
        let manifest_digest = d
            .parse::<Digest>()
            .map_err(|e| format!("invalid docker-manifest-digest value {d:?}: {e}"))?;
        let [r] = exact_fields(identity, ["docker-reference"])?;
        Ok(Payload {
            manifest_digest,
            docker_reference: r.string("critical.identity.docker-reference")?.to_string(),
            creator,
            timestamp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn writes_what_containers_image_writes() {
        let p = Payload {
            manifest_digest: D.parse().unwrap(),
            docker_reference: "example.com/a/b:1".into(),
            creator: Some("atomic 5.36.2".into()),
            timestamp: Some(1700000000),
        };
        // The bytes Go's json.Marshal of containers/image's maps produce.
        let want = format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"example.com/a/b:1"}},"image":{{"docker-manifest-digest":"{D}"}},"type":"atomic container signature"}},"optional":{{"creator":"atomic 5.36.2","timestamp":1700000000}}}}"#
        );
        assert_eq!(String::from_utf8(p.to_json()).unwrap(), want);
        assert_eq!(Payload::parse(want.as_bytes()).unwrap(), p);
    }

    #[test]
    fn refuses_what_containers_image_refuses() {
        let ok = format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"x"}},"image":{{"docker-manifest-digest":"{D}"}},"type":"atomic container signature"}},"optional":{{"x":[1]}}}}"#
        );
        assert!(Payload::parse(ok.as_bytes()).is_ok());
        for (bad, why) in [
            (ok.replace("\"optional\"", "\"extra\""), "Unknown key \"extra\""),
            (
                ok.replace("atomic container signature", "other"),
                "Unrecognized signature type other",
            ),
            (ok.replace("{\"x\":[1]}", "{\"timestamp\":1.5}"), "not an integer"),
            (ok.replace(D, "sha256:12"), "invalid docker-manifest-digest"),
            (ok.replace("\"type\"", "\"type\":\"x\",\"type\""), "Duplicate key"),
            (
                ok.replace("\"docker-reference\":\"x\"", "\"docker-reference\":1"),
                "cannot unmarshal number",
            ),
        ] {
            let e = Payload::parse(bad.as_bytes()).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
