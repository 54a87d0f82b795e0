//! Signing during a copy (`--sign-by`, `--sign-passphrase-file`,
//! `--sign-identity`): what the engine runs with.

use crate::reference::DockerReference;

/// A passphrase, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Passphrase(pub String);

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

/// An opened sigstore private key (its passphrase already used).
#[derive(Clone)]
pub struct SigstoreKey(pub std::sync::Arc<crate::signature::sigstore_key::Signer>);

impl std::fmt::Debug for SigstoreKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigstoreKey(<private>)")
    }
}

impl PartialEq for SigstoreKey {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}
impl Eq for SigstoreKey {}

/// An opened OpenPGP secret key for simple signing in process.
#[derive(Clone)]
pub struct OpenPgpKey(pub std::sync::Arc<crate::signature::openpgp_sign::SecretKey>);

impl std::fmt::Debug for OpenPgpKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpenPgpKey(<private>)")
    }
}

impl PartialEq for OpenPgpKey {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}
impl Eq for OpenPgpKey {}

/// Signatures to add to the copied image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SigningOptions {
    /// Sign with this key of the user's GnuPG keyring (simple signing).
    pub sign_by: Option<String>,
    /// Its passphrase; `None` lets gpg-agent ask or use an unprotected key.
    pub passphrase: Option<Passphrase>,
    /// Simple signing with this exported OpenPGP secret key, in process.
    pub openpgp: Option<OpenPgpKey>,
    /// Sign with this sigstore private key too.
    pub sigstore: Option<SigstoreKey>,
    /// The identity signed for; the destination's reference when unset.
    pub identity: Option<DockerReference>,
}

impl SigningOptions {
    /// Whether any signature is to be made.
    pub fn signs(&self) -> bool {
        self.sign_by.is_some() || self.openpgp.is_some() || self.sigstore.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passphrase_is_never_printed() {
        let o = SigningOptions {
            sign_by: Some("k".into()),
            passphrase: Some(Passphrase("hunter2".into())),
            openpgp: None,
            sigstore: None,
            identity: None,
        };
        assert!(!format!("{o:?}").contains("hunter2"));
    }
}
