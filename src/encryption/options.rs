//! The block cipher options as ocicrypt marshals them with Go's
//! `encoding/json`: byte slices as padded standard base64, maps with
//! sorted keys. The private ones are what each recipient's key wraps; the
//! public ones go, base64 again, into `org.opencontainers.image.enc.pubopts`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;

/// `PrivateLayerBlockCipherOptions`: secret.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct PrivateOptions {
    #[serde(with = "b64", default)]
    pub symkey: Vec<u8>,
    #[serde(default, deserialize_with = "null_default")]
    pub digest: String,
    #[serde(with = "b64map", default)]
    pub cipheroptions: BTreeMap<String, Vec<u8>>,
}

impl std::fmt::Debug for PrivateOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateOptions")
            .field("symkey", &"<redacted>")
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

impl Drop for PrivateOptions {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.symkey);
    }
}

/// `PublicLayerBlockCipherOptions`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PublicOptions {
    #[serde(default, deserialize_with = "null_default")]
    pub cipher: String,
    #[serde(with = "b64", default)]
    pub hmac: Vec<u8>,
    #[serde(with = "b64map", default)]
    pub cipheroptions: BTreeMap<String, Vec<u8>>,
}

fn null_default<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

mod b64 {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(vec![]),
            Some(s) => STANDARD.decode(s).map_err(serde::de::Error::custom),
        }
    }
}

mod b64map {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    pub fn serialize<S: Serializer>(v: &BTreeMap<String, Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        let m: BTreeMap<&str, String> = v.iter().map(|(k, v)| (k.as_str(), STANDARD.encode(v))).collect();
        m.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Vec<u8>>, D::Error> {
        let m = Option::<BTreeMap<String, Option<String>>>::deserialize(d)?.unwrap_or_default();
        m.into_iter()
            .map(|(k, v)| {
                let v = v
                    .map(|v| STANDARD.decode(v))
                    .transpose()
                    .map_err(serde::de::Error::custom)?;
                Ok((k, v.unwrap_or_default()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_shapes() {
        let p = PrivateOptions {
            symkey: vec![1, 2, 3],
            digest: "sha256:ab".into(),
            cipheroptions: [("nonce".to_string(), vec![255])].into(),
        };
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"symkey":"AQID","digest":"sha256:ab","cipheroptions":{"nonce":"/w=="}}"#
        );
        let q = PublicOptions {
            cipher: "AES_256_CTR_HMAC_SHA256".into(),
            hmac: vec![0; 2],
            cipheroptions: Default::default(),
        };
        assert_eq!(
            serde_json::to_string(&q).unwrap(),
            r#"{"cipher":"AES_256_CTR_HMAC_SHA256","hmac":"AAA=","cipheroptions":{}}"#
        );
        let back: PublicOptions = serde_json::from_str(r#"{"cipher":"c","hmac":null,"cipheroptions":null}"#).unwrap();
        assert!(back.hmac.is_empty() && back.cipheroptions.is_empty());
        assert!(!format!("{p:?}").contains("AQID") && !format!("{p:?}").contains("[1, 2, 3]"));
    }
}
