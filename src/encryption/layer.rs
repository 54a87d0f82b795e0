//! What an encrypted layer carries in its descriptor, as ocicrypt writes
//! and reads it: the `+encrypted` media type suffix, the wrapped private
//! options per scheme (`org.opencontainers.image.enc.keys.*`, base64 entries
//! joined by commas) and the public options (`…enc.pubopts`).

use super::keys::{PrivateKey, Recipient};
use super::options::{PrivateOptions, PublicOptions};
use super::provider::{self, Providers};
use super::{EncryptionError, jwe};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Every annotation ocicrypt owns starts so.
pub const PREFIX: &str = "org.opencontainers.image.enc";
/// JWE-wrapped keys.
pub const KEYS_JWE: &str = "org.opencontainers.image.enc.keys.jwe";
/// OpenPGP-wrapped keys.
pub const KEYS_PGP: &str = "org.opencontainers.image.enc.keys.pgp";
/// PKCS#7-wrapped keys.
pub const KEYS_PKCS7: &str = "org.opencontainers.image.enc.keys.pkcs7";
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

/// Who a layer's key is wrapped for, or who may unwrap it: JWE keys,
/// OpenPGP keys, and key providers with their parameters (`provider:NAME[:ARG]`).
#[derive(Debug, Clone)]
pub struct KeyHolders<K, P> {
    pub keys: Vec<K>,
    pub pgp: Vec<P>,
    /// Recipient certificates (PKCS#7), or the certificates naming which
    /// recipient a private key is (as ocicrypt wants them for decryption).
    pub x509: Vec<super::pkcs7::Certificate>,
    pub providers: Arc<Providers>,
    /// The providers' parameters by name (ocicrypt's config `Parameters`).
    pub params: BTreeMap<String, Vec<Vec<u8>>>,
}

impl<K, P> KeyHolders<K, P> {
    /// None yet, with these providers configured.
    pub fn new(providers: Arc<Providers>) -> Self {
        KeyHolders {
            keys: vec![],
            pgp: vec![],
            x509: vec![],
            providers,
            params: BTreeMap::new(),
        }
    }
}

/// Whom a layer is encrypted for.
pub type Recipients = KeyHolders<Recipient, ::pgp::composed::SignedPublicKey>;
/// What a layer may be decrypted with.
pub type Decryptors = KeyHolders<PrivateKey, super::pgp::SecretKey>;

/// The annotations holding a layer's options wrapped for each recipient
/// (one JWE for all keys, one OpenPGP message, one PKCS#7 envelope, one
/// entry per provider).
pub async fn wrapped_keys(
    to: &Recipients,
    private: &PrivateOptions,
) -> Result<BTreeMap<String, String>, EncryptionError> {
    let private =
        zeroize::Zeroizing::new(serde_json::to_vec(private).map_err(|e| EncryptionError::Options(e.to_string()))?);
    let mut out = BTreeMap::new();
    if !to.keys.is_empty() {
        out.insert(KEYS_JWE.to_string(), STANDARD.encode(jwe::wrap(&to.keys, &private)?));
    }
    if !to.pgp.is_empty() {
        out.insert(
            KEYS_PGP.to_string(),
            STANDARD.encode(super::pgp::wrap(&to.pgp, &private)?),
        );
    }
    if !to.x509.is_empty() {
        out.insert(
            KEYS_PKCS7.to_string(),
            STANDARD.encode(super::pkcs7::wrap(&to.x509, &private)?),
        );
    }
    for name in to.params.keys() {
        let wrapped = to.providers.wrap(name, &to.params, &private).await?;
        if !wrapped.is_empty() {
            out.insert(provider::annotation(name), STANDARD.encode(wrapped));
        }
    }
    if out.is_empty() {
        return Err(EncryptionError::NoWrappedKeys);
    }
    Ok(out)
}

/// The public options' annotation.
pub fn public_annotation(public: &PublicOptions) -> Result<(String, String), EncryptionError> {
    let json = serde_json::to_vec(public).map_err(|e| EncryptionError::Options(e.to_string()))?;
    Ok((PUBOPTS.to_string(), STANDARD.encode(json)))
}

/// The options of an encrypted layer, unwrapped with one of `with`'s keys,
/// or by a configured provider whose annotation the layer has (ocicrypt's
/// `decryptLayerKeyOptsData`, with its errors).
pub async fn open(
    annotations: &BTreeMap<String, String>,
    with: &Decryptors,
) -> Result<(PrivateOptions, PublicOptions), EncryptionError> {
    let mut errors = String::new();
    let mut private = None;
    let entries = |a: &str| annotations.get(a).filter(|e| !e.is_empty()).cloned();
    type Unwrap<'a> = Box<dyn Fn(&[u8]) -> Result<zeroize::Zeroizing<Vec<u8>>, EncryptionError> + 'a>;
    let schemes: [(&str, bool, Unwrap); 3] = [
        (
            KEYS_JWE,
            !with.keys.is_empty(),
            Box::new(|t| jwe::unwrap(t, &with.keys)),
        ),
        (
            KEYS_PGP,
            !with.pgp.is_empty(),
            Box::new(|t| super::pgp::unwrap(t, &with.pgp)),
        ),
        (
            KEYS_PKCS7,
            !with.keys.is_empty(),
            Box::new(|t| super::pkcs7::unwrap(t, &with.keys, &with.x509)),
        ),
    ];
    for (annotation, have_keys, unwrap) in schemes {
        let Some(list) = entries(annotation).filter(|_| have_keys && private.is_none()) else {
            continue;
        };
        let mut tried = String::new();
        for entry in list.split(',') {
            let text = STANDARD.decode(entry).map_err(|_| EncryptionError::AnnotationBase64)?;
            match unwrap(&text) {
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
    for name in with.providers.by_name.keys() {
        let Some(list) = entries(&provider::annotation(name)).filter(|_| private.is_none()) else {
            continue;
        };
        let mut tried = String::new();
        for entry in list.split(',') {
            let wrapped = STANDARD.decode(entry).map_err(|_| EncryptionError::AnnotationBase64)?;
            match with.providers.unwrap(name, &with.params, &wrapped).await {
                Ok(Some(p)) => {
                    private = Some(p);
                    break;
                }
                Ok(None) => {}
                Err(e) => tried.push_str(&format!("- {e}\n")),
            }
        }
        if private.is_none() && !tried.is_empty() {
            errors.push_str(&format!("no suitable key found for decrypting layer key:\n{tried}\n"));
        }
    }
    let Some(private) = private else {
        return Err(if with.keys.is_empty() && with.pgp.is_empty() {
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
