//! Layer encryption and decryption options: recipients and which layers to
//! encrypt, or the keys to decrypt with. The CLI's `--encryption-key`,
//! `--encrypt-layer` and `--decryption-key` parse into them as skopeo's
//! (ocicrypt's helpers) do; ImageCopy's and ImageSync's `spec.encryption`
//! and `spec.decryption` name keys in the namespace and key providers.

use crate::encryption::EncryptionError;
use crate::encryption::layer::{Decryptors, KeyHolders, Recipients};
use crate::encryption::provider::Providers;
use crate::encryption::{keys, pgp, pkcs7};
use crate::skopeo_texts::io_error;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Encrypt layers for these recipients.
#[derive(Debug, Clone)]
pub struct EncryptionOptions {
    pub recipients: Recipients,
    /// Layer indices (0-based; negative from the top); empty means every layer.
    pub layers: Vec<i64>,
}

/// Decrypt encrypted layers with these keys (and the configured providers).
#[derive(Debug, Clone)]
pub struct DecryptionOptions {
    pub keys: Arc<Decryptors>,
}

/// `spec.encryption`: who may decrypt, and which layers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionSettings {
    /// Public keys (JWE: PEM or DER PKIX, or a JWK), OpenPGP public keys,
    /// X.509 certificates (PKCS#7), and key providers.
    #[schemars(length(min = 1))]
    pub recipients: Vec<KeySource>,
    /// Layer indices to encrypt (0-based, negative from the top); every layer when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<i64>,
}

/// `spec.decryption`: the keys encrypted layers are decrypted with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DecryptionSettings {
    /// Private keys (PKCS#8, PKCS#1, SEC1, JWK; unprotected OpenPGP secret
    /// keys), with the certificate of a PKCS#7 recipient where wanted, from
    /// Secrets only; and key providers.
    #[schemars(length(min = 1))]
    pub keys: Vec<KeySource>,
}

/// One key: a key of a Secret or ConfigMap of the resource's namespace, or
/// a key provider the operator is configured with (Helm `keyProviders`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "(has(self.secretKeyRef) ? 1 : 0) + (has(self.configMapKeyRef) ? 1 : 0) + (has(self.provider) ? 1 : 0) == 1",
     "message": "give exactly one of secretKeyRef, configMapKeyRef and provider"}
]))]
pub struct KeySource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<super::verify::NameKey>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<super::verify::NameKey>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<ProviderRef>,
}

/// A key provider by name, with the argument ocicrypt passes it (`provider:NAME:ARG`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ProviderRef {
    #[schemars(length(min = 1))]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argument: Option<String>,
}

impl KeySource {
    /// The Secret or ConfigMap key to read, unless this is a provider.
    pub fn selector(&self) -> Option<super::verify::KeySelector> {
        (self.provider.is_none()).then(|| super::verify::KeySelector {
            secret_key_ref: self.secret_key_ref.clone(),
            config_map_key_ref: self.config_map_key_ref.clone(),
        })
    }

    fn provider_value(&self) -> Option<String> {
        self.provider.as_ref().map(|p| match &p.argument {
            Some(a) => format!("{}:{a}", p.name),
            None => p.name.clone(),
        })
    }
}

/// What a copy encrypts or decrypts with.
pub type CryptOptions = (Option<Arc<EncryptionOptions>>, Option<DecryptionOptions>);

/// The engine's options for `spec.encryption` and `spec.decryption`, given
/// the data of their Secret and ConfigMap keys in order (providers skipped).
pub fn from_specs(
    encryption: Option<&EncryptionSettings>,
    decryption: Option<&DecryptionSettings>,
    recipient_data: &[Vec<u8>],
    private_data: &[Vec<u8>],
) -> Result<CryptOptions, String> {
    if encryption.is_some() && decryption.is_some() {
        return Err("give encryption or decryption, not both".into());
    }
    let providers = Arc::new(Providers::from_env().map_err(|e| e.to_string())?);
    let enc = match encryption {
        None => None,
        Some(e) => {
            let mut to = KeyHolders::new(providers.clone());
            let mut data = recipient_data.iter();
            for r in &e.recipients {
                match r.provider_value() {
                    Some(v) => {
                        add_provider(&mut to.params, &to.providers, &v).map_err(|e| format!("encryption: {e}"))?
                    }
                    None => {
                        let d = data.next().ok_or("encryption: a recipient's key was not looked up")?;
                        if is_openpgp_public_key(d) {
                            to.pgp
                                .extend(pgp::read_public(d).map_err(|e| format!("encryption: {e}"))?);
                        } else if let Ok(cert) = pkcs7::Certificate::parse(d) {
                            to.x509.push(cert);
                        } else {
                            to.keys
                                .push(keys::parse_public(d).map_err(|e| format!("encryption: {e}"))?);
                        }
                    }
                }
            }
            Some(Arc::new(EncryptionOptions {
                recipients: to,
                layers: e.layers.clone(),
            }))
        }
    };
    let dec = match decryption {
        None => None,
        Some(d) => {
            let mut with = KeyHolders::new(providers);
            let mut data = private_data.iter();
            for k in &d.keys {
                if k.config_map_key_ref.is_some() {
                    return Err("decryption: private keys must come from a Secret, not a ConfigMap".into());
                }
                match k.provider_value() {
                    Some(v) => {
                        add_provider(&mut with.params, &with.providers, &v).map_err(|e| format!("decryption: {e}"))?
                    }
                    None => {
                        let raw = data.next().ok_or("decryption: a key was not looked up")?;
                        let named = k
                            .secret_key_ref
                            .as_ref()
                            .map(|n| format!("Secret {:?} key {:?}", n.name, n.key));
                        let named = named.unwrap_or_default();
                        let fail = |e: EncryptionError| format!("decryption: {named}: {e}");
                        match keys::parse_private(raw, None).map_err(fail)? {
                            Some(key) => with.keys.push(key),
                            // An exported OpenPGP secret key, without a password (a pod has no prompt).
                            None if is_openpgp_secret_key(raw) => {
                                with.pgp.push(pgp::SecretKey::parse(raw, None).map_err(fail)?)
                            }
                            // The certificate saying which PKCS#7 recipient a key is.
                            None if pkcs7::Certificate::parse(raw).is_ok() => {
                                with.x509.push(pkcs7::Certificate::parse(raw).map_err(fail)?)
                            }
                            None => return Err(format!("decryption: {named} is not a private key kopeo reads")),
                        }
                    }
                }
            }
            Some(DecryptionOptions { keys: Arc::new(with) })
        }
    };
    Ok((enc, dec))
}

/// `NAME[:ARG]` of `provider:NAME[:ARG]` into ocicrypt's parameters (an
/// absent argument is `Enabled`), checked against the configuration.
fn add_provider(
    params: &mut BTreeMap<String, Vec<Vec<u8>>>,
    providers: &Providers,
    value: &str,
) -> Result<(), EncryptionError> {
    let (name, arg) = match value.split_once(':') {
        Some((n, a)) if !n.is_empty() => (n, a.as_bytes().to_vec()),
        _ => (value, b"Enabled".to_vec()),
    };
    if !providers.by_name.contains_key(name) {
        return Err(EncryptionError::ProviderNotConfigured(name.to_string()));
    }
    params.entry(name.to_string()).or_default().push(arg);
    Ok(())
}

impl EncryptionOptions {
    /// From `--encryption-key PROTOCOL:VALUE` values and `--encrypt-layer` indices.
    pub fn from_flags(recipients: &[String], layers: &[i64]) -> Result<EncryptionOptions, EncryptionError> {
        let mut to = KeyHolders::new(Arc::new(Providers::from_env()?));
        // Recipients by name or e-mail, looked up in the GnuPG keyring at the end.
        let mut pgp_names = vec![];
        for r in recipients {
            let (protocol, value) = r.split_once(':').ok_or(EncryptionError::RecipientFormat)?;
            match protocol {
                "jwe" => {
                    let data = std::fs::read(value).map_err(|e| EncryptionError::ReadRecipient {
                        path: value.to_string(),
                        why: io_error(&e),
                    })?;
                    to.keys.push(keys::parse_public(&data)?);
                }
                "provider" => add_provider(&mut to.params, &to.providers, value)?,
                // A key file (a path that exists), else a name in the keyring.
                "pgp" if value.contains('/') && std::path::Path::new(value).is_file() => {
                    let data = std::fs::read(value).map_err(|e| EncryptionError::ReadRecipient {
                        path: value.to_string(),
                        why: io_error(&e),
                    })?;
                    to.pgp.extend(pgp::read_public(&data)?);
                }
                "pgp" => pgp_names.push(value.to_string()),
                "pkcs7" => {
                    let data = std::fs::read(value).map_err(|e| EncryptionError::ReadRecipient {
                        path: value.to_string(),
                        why: io_error(&e),
                    })?;
                    to.x509.push(pkcs7::Certificate::parse(&data)?);
                }
                "pkcs11" => return Err(EncryptionError::SchemeNotSupported("pkcs11")),
                _ => return Err(EncryptionError::UnknownProtocol),
            }
        }
        if !pgp_names.is_empty() {
            let ring = crate::signature::gpg::export_public_keys()
                .map_err(|e| EncryptionError::Pgp(format!("reading the GnuPG keyring: {e}")))?;
            to.pgp.extend(pgp::select(&ring, &pgp_names)?);
        }
        Ok(EncryptionOptions {
            recipients: to,
            layers: layers.to_vec(),
        })
    }

    /// A hash of whom and what this encrypts for: the recipients' public
    /// keys, the providers and their arguments, the layers chosen.
    pub fn fingerprint(&self) -> String {
        use crate::encryption::keys::PublicKey;
        use ::pgp::types::KeyDetails as _;
        let r = &self.recipients;
        let mut ids: Vec<String> = r
            .keys
            .iter()
            .map(|k| match &k.key {
                PublicKey::Rsa { spki } => format!("jwe:{}:{}", hex::encode(spki), k.alg.as_deref().unwrap_or("")),
                PublicKey::Ec { point, .. } => format!("jwe:{}:{}", hex::encode(point), k.alg.as_deref().unwrap_or("")),
            })
            .collect();
        ids.extend(r.pgp.iter().map(|k| format!("pgp:{:x}", k.primary_key.fingerprint())));
        ids.extend(r.x509.iter().map(|c| format!("pkcs7:{}", hex::encode(c.public_key()))));
        for (name, args) in &r.params {
            ids.extend(args.iter().map(|a| format!("provider:{name}:{}", hex::encode(a))));
        }
        ids.sort();
        ids.push(format!("layers:{:?}", self.layers));
        crate::digest::Digest::sha256_of(ids.join("\n").as_bytes()).to_string()
    }

    /// Whether layer `i` of `count` is to be encrypted; an index out of
    /// range is an error, as in containers/image.
    pub fn chosen(&self, count: usize) -> Result<Vec<bool>, EncryptionError> {
        if self.layers.is_empty() {
            return Ok(vec![true; count]);
        }
        let mut out = vec![false; count];
        for &l in &self.layers {
            let n = count as i64;
            let i = if (0..n).contains(&l) {
                l
            } else if (-n..0).contains(&l) {
                l + n
            } else {
                return Err(EncryptionError::LayerIndex { index: l, count });
            };
            out[i as usize] = true;
        }
        Ok(out)
    }
}

impl DecryptionOptions {
    /// From `--decryption-key FILE[:PASSWORD]` values. Files that are no
    /// private key are skipped, as ocicrypt skips them (certificates may be
    /// passed alongside keys).
    pub fn from_flags(values: &[String]) -> Result<DecryptionOptions, EncryptionError> {
        let mut with = KeyHolders::new(Arc::new(Providers::from_env()?));
        for v in values {
            if let Some(p) = v.strip_prefix("provider:") {
                add_provider(&mut with.params, &with.providers, p)?;
                continue;
            }
            let parts: Vec<&str> = v.split(':').collect();
            let password = match parts.as_slice() {
                [_, p] => Some(password(p)?),
                _ => None,
            };
            let path = parts[0];
            let data = std::fs::read(path).map_err(|e| EncryptionError::ReadKey {
                path: path.to_string(),
                why: io_error(&e),
            })?;
            match keys::parse_private(&data, password.as_deref().map(|p| p.as_slice()))? {
                Some(k) => with.keys.push(k),
                None if is_openpgp_secret_key(&data) => {
                    let password = password.as_deref().map(|p| p.as_slice());
                    with.pgp.push(pgp::SecretKey::parse(&data, password)?)
                }
                // Certificates name which PKCS#7 recipient a key is.
                None if pkcs7::Certificate::parse(&data).is_ok() => with.x509.push(pkcs7::Certificate::parse(&data)?),
                None => tracing::warn!(path, "decryption key file is not a private key kopeo reads: skipped"),
            }
        }
        Ok(DecryptionOptions { keys: Arc::new(with) })
    }
}

/// ocicrypt's password forms: `file=PATH`, `pass=TEXT`, `fd=N`, or the text.
fn password(s: &str) -> Result<zeroize::Zeroizing<Vec<u8>>, EncryptionError> {
    let bytes = if let Some(path) = s.strip_prefix("file=") {
        std::fs::read(path).map_err(|e| EncryptionError::PasswordFile {
            path: path.to_string(),
            why: io_error(&e),
        })?
    } else if let Some(p) = s.strip_prefix("pass=") {
        p.as_bytes().to_vec()
    } else if let Some(fd) = s.strip_prefix("fd=") {
        let n: i32 = fd.parse().map_err(|_| EncryptionError::PasswordFd(fd.to_string()))?;
        let path = format!("/proc/self/fd/{n}");
        let mut b = std::fs::read(&path).map_err(|e| EncryptionError::PasswordFile {
            path,
            why: io_error(&e),
        })?;
        b.truncate(64);
        b
    } else {
        s.as_bytes().to_vec()
    };
    Ok(zeroize::Zeroizing::new(bytes))
}

/// An armored or binary OpenPGP secret key (packet tag 5).
fn is_openpgp_secret_key(data: &[u8]) -> bool {
    crate::signature::openpgp_sign::is_secret_key(data)
}

/// An armored or binary OpenPGP public key (packet tag 6).
fn is_openpgp_public_key(data: &[u8]) -> bool {
    data.windows(36).any(|w| w == b"-----BEGIN PGP PUBLIC KEY BLOCK-----")
        || matches!(data.first(), Some(0x98..=0x9b | 0xc6))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_choice_as_containers_image() {
        let all = EncryptionOptions {
            recipients: KeyHolders::new(Default::default()),
            layers: vec![],
        };
        assert_eq!(all.chosen(2).unwrap(), vec![true, true]);
        let some = EncryptionOptions {
            layers: vec![-1, 0],
            ..all.clone()
        };
        assert_eq!(some.chosen(3).unwrap(), vec![true, false, true]);
        let out = EncryptionOptions { layers: vec![3], ..all };
        assert_eq!(
            out.chosen(3).unwrap_err().to_string(),
            "when choosing layers to encrypt, layer index 3 out of range (3 layers exist)"
        );
    }

    #[test]
    fn recipient_strings() {
        let e = |s: &str| {
            EncryptionOptions::from_flags(&[s.to_string()], &[])
                .unwrap_err()
                .to_string()
        };
        assert_eq!(e("nocolon"), "Invalid recipient format");
        assert_eq!(e("rot13:x"), "Provided protocol not recognized");
        assert_eq!(
            e("jwe:/nonexistent/k.pem"),
            "Unable to read file: open /nonexistent/k.pem: no such file or directory"
        );
        let d = DecryptionOptions::from_flags(&["/nonexistent/k.pem".to_string()]).unwrap_err();
        assert_eq!(d.to_string(), "open /nonexistent/k.pem: no such file or directory");
    }
}
