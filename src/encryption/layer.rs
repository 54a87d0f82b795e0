//! What an encrypted layer carries in its descriptor, as ocicrypt writes
//! and reads it: the `+encrypted` media type suffix, the wrapped private
//! options per scheme (`org.opencontainers.image.enc.keys.*`, base64 entries
//! joined by commas) and the public options (`…enc.pubopts`).

use super::cipher::Sealed;
use super::keys::{PrivateKey, Recipient};
use super::options::{PrivateOptions, PublicOptions};
use super::{EncryptionError, jwe};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use std::collections::BTreeMap;

/// Every annotation ocicrypt owns starts so.
pub const PREFIX: &str = "org.opencontainers.image.enc";
/// JWE-wrapped keys.
pub const KEYS_JWE: &str = "org.opencontainers.image.enc.keys.jwe";
/// The public block cipher options.
pub const PUBOPTS: &str = "org.opencontainers.image.enc.pubopts";

/// Whether a layer media type is encrypted.
pub fn is_encrypted(media_type: &str) -> bool {
    media_type.ends_with("+encrypted")
}

/// The encrypted media type of a layer type (containers/image's
/// `getEncryptedMediaType`); `None` for a type that has no encrypted form.
pub fn encrypted_media_type(media_type: &str) -> Option<String> {
    let mut parts = media_type.split('+');
    let base = parts.next()?;
    if parts.any(|p| p == "encrypted") {
        return None;
    }
    matches!(
        base,
        "application/vnd.docker.image.rootfs.diff.tar"
            | "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
    )
    .then(|| format!("{media_type}+encrypted"))
}

/// The media type with `+encrypted` removed.
pub fn decrypted_media_type(media_type: &str) -> Option<&str> {
    media_type.strip_suffix("+encrypted")
}

/// The layer's annotations without ocicrypt's.
pub fn without_encryption(annotations: &BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    let kept: BTreeMap<String, String> = annotations
        .iter()
        .filter(|(k, _)| !k.starts_with(PREFIX))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    (!kept.is_empty()).then_some(kept)
}

/// The annotations an encrypted layer gets: its options wrapped for each
/// recipient, and the public options.
pub fn sealed_annotations(
    recipients: &[Recipient],
    sealed: &Sealed,
) -> Result<BTreeMap<String, String>, EncryptionError> {
    let private = zeroize::Zeroizing::new(
        serde_json::to_vec(&sealed.private).map_err(|e| EncryptionError::Options(e.to_string()))?,
    );
    let public = serde_json::to_vec(&sealed.public).map_err(|e| EncryptionError::Options(e.to_string()))?;
    let mut out = BTreeMap::new();
    out.insert(KEYS_JWE.to_string(), STANDARD.encode(jwe::wrap(recipients, &private)?));
    out.insert(PUBOPTS.to_string(), STANDARD.encode(public));
    Ok(out)
}

/// The options of an encrypted layer, unwrapped with one of `keys`
/// (ocicrypt's `decryptLayerKeyOptsData` and its errors).
pub fn open(
    annotations: &BTreeMap<String, String>,
    keys: &[PrivateKey],
) -> Result<(PrivateOptions, PublicOptions), EncryptionError> {
    let mut errors = String::new();
    let mut private = None;
    if let Some(entries) = annotations.get(KEYS_JWE).filter(|e| !e.is_empty() && !keys.is_empty()) {
        let mut tried = String::new();
        for entry in entries.split(',') {
            let text = STANDARD.decode(entry).map_err(|_| EncryptionError::AnnotationBase64)?;
            match jwe::unwrap(&text, keys) {
                Ok(p) => {
                    private = Some(p);
                    break;
                }
                Err(e) => tried.push_str(&format!("- {e}\n")),
            }
        }
        if private.is_none() {
            errors.push_str(&format!("no suitable key found for decrypting layer key:\n{tried}\n"));
        }
    }
    let Some(private) = private else {
        return Err(if keys.is_empty() {
            EncryptionError::NoPrivateKey(errors)
        } else {
            EncryptionError::NoSuitableKey(errors)
        });
    };
    let private: PrivateOptions =
        serde_json::from_slice(&private).map_err(|e| EncryptionError::Options(format!("private options: {e}")))?;
    let public = match annotations.get(PUBOPTS).filter(|p| !p.is_empty()) {
        None => PublicOptions::default(),
        Some(b64) => {
            let raw = STANDARD
                .decode(b64)
                .map_err(|_| EncryptionError::Options("pubopts is not base64".into()))?;
            serde_json::from_slice(&raw).map_err(|e| EncryptionError::Options(format!("public options: {e}")))?
        }
    };
    Ok((private, public))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_as_containers_image() {
        assert_eq!(
            encrypted_media_type("application/vnd.oci.image.layer.v1.tar+gzip").as_deref(),
            Some("application/vnd.oci.image.layer.v1.tar+gzip+encrypted")
        );
        assert_eq!(
            encrypted_media_type("application/vnd.docker.image.rootfs.diff.tar.gzip"),
            None,
            "docker's gzip type has no encrypted form"
        );
        assert_eq!(
            encrypted_media_type("application/vnd.oci.image.layer.v1.tar+encrypted"),
            None
        );
        assert_eq!(
            decrypted_media_type("application/vnd.oci.image.layer.v1.tar+zstd+encrypted"),
            Some("application/vnd.oci.image.layer.v1.tar+zstd")
        );
        let a: BTreeMap<String, String> = [(KEYS_JWE.to_string(), "x".to_string())].into();
        assert_eq!(without_encryption(&a), None);
    }
}
