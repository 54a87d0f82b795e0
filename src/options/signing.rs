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

/// Signatures to add to the copied image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SigningOptions {
    /// Sign with this key of the user's GnuPG keyring (simple signing).
    pub sign_by: Option<String>,
    /// Its passphrase; `None` lets gpg-agent ask or use an unprotected key.
    pub passphrase: Option<Passphrase>,
    /// The identity signed for; the destination's reference when unset.
    pub identity: Option<DockerReference>,
}

impl SigningOptions {
    /// Whether any signature is to be made.
    pub fn signs(&self) -> bool {
        self.sign_by.is_some()
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
            identity: None,
        };
        assert!(!format!("{o:?}").contains("hunter2"));
    }
}
