//! Signing what an ImageCopy or ImageSync writes (`spec.sign`): a private
//! key (sigstore, or OpenPGP for simple signing) and its passphrase from a
//! Secret of the resource's namespace (a pod has no GnuPG keyring or terminal).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `spec.sign`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignSettings {
    /// The Secret (same namespace) holding the key.
    pub secret_name: String,
    /// Its key holding the private key: a cosign-format sigstore key
    /// (`generate-sigstore-key`'s `.private`), or an exported OpenPGP secret
    /// key (`gpg --export-secret-keys`) for simple signing; `cosign.key` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    /// Its key holding the private key's passphrase; `cosign.password` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passphrase: Option<String>,
    /// The identity to sign for (a full reference); the destination's when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
}

impl SignSettings {
    /// The Secret's keys holding the private key and the passphrase.
    pub fn keys(&self) -> (&str, &str) {
        (
            self.private_key.as_deref().unwrap_or("cosign.key"),
            self.passphrase.as_deref().unwrap_or("cosign.password"),
        )
    }

    /// Signing options from the Secret's `key` and `passphrase` data.
    pub fn options(&self, key: &[u8], passphrase: &[u8]) -> Result<super::signing::SigningOptions, String> {
        let passphrase = passphrase.strip_suffix(b"\n").unwrap_or(passphrase);
        let fail = |e: crate::signature::SignatureError| format!("sign: Secret {:?}: {e}", self.secret_name);
        let (mut openpgp, mut sigstore) = (None, None);
        if crate::signature::openpgp_sign::is_secret_key(key) {
            let p = String::from_utf8(passphrase.to_vec())
                .map_err(|_| format!("sign: Secret {:?}: the passphrase is not UTF-8", self.secret_name))?;
            let k = crate::signature::openpgp_sign::SecretKey::parse(key, &p).map_err(fail)?;
            openpgp = Some(super::signing::OpenPgpKey(std::sync::Arc::new(k)));
        } else {
            let k = crate::signature::sigstore_key::load_private(key, passphrase).map_err(fail)?;
            sigstore = Some(super::signing::SigstoreKey(std::sync::Arc::new(k)));
        }
        let identity = match &self.identity {
            None => None,
            Some(i) => {
                let r = crate::reference::DockerReference::parse_normalized(i)
                    .map_err(|e| format!("sign.identity {i:?}: {e}"))?;
                if r.is_name_only() {
                    return Err(format!("sign.identity {i:?} must have a tag or digest"));
                }
                Some(r)
            }
        };
        Ok(super::signing::SigningOptions {
            openpgp,
            sigstore,
            identity,
            ..Default::default()
        })
    }
}
