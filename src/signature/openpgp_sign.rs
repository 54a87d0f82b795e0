//! Simple signing in process with an exported OpenPGP secret key (for the
//! operator: a pod has no GnuPG keyring): the same signed message gpg
//! makes — one-pass signature, literal data, signature, compressed.

use super::SignatureError;
use super::simple::Payload;
use pgp::composed::{Deserializable, MessageBuilder, SignedSecretKey};
use pgp::crypto::hash::HashAlgorithm;
use pgp::types::{CompressionAlgorithm, KeyDetails, Password};

/// An OpenPGP secret key ready to sign (its passphrase kept for each use).
pub struct SecretKey {
    key: SignedSecretKey,
    passphrase: String,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({:X})", self.key.primary_key.fingerprint())
    }
}

/// Whether `data` looks like an OpenPGP secret key (armored or binary).
pub fn is_secret_key(data: &[u8]) -> bool {
    data.windows(30).any(|w| w == b"-----BEGIN PGP PRIVATE KEY BLO")
        // Old- or new-format secret-key packet tags.
        || matches!(data.first(), Some(0x94..=0x97 | 0xC5))
}

impl SecretKey {
    /// Read an exported secret key and check that `passphrase` opens it.
    pub fn parse(data: &[u8], passphrase: &str) -> Result<SecretKey, SignatureError> {
        let bad = |e: pgp::errors::Error| SignatureError::PrivateKey(format!("reading the OpenPGP secret key: {e}"));
        let key = if data.windows(14).any(|w| w == b"-----BEGIN PGP") {
            SignedSecretKey::from_armor_single(data).map(|(k, _)| k).map_err(bad)?
        } else {
            SignedSecretKey::from_bytes(data).map_err(bad)?
        };
        let k = SecretKey {
            key,
            passphrase: passphrase.to_string(),
        };
        // Fail now, not at the first copy, when the passphrase is wrong.
        k.sign_bytes(b"check")?;
        Ok(k)
    }

    /// The primary key's fingerprint.
    pub fn fingerprint(&self) -> String {
        format!("{:X}", self.key.primary_key.fingerprint())
    }

    fn sign_bytes(&self, data: &[u8]) -> Result<Vec<u8>, SignatureError> {
        // A signing subkey where the key has one (as gpg picks), else the primary.
        let sub = self
            .key
            .secret_subkeys
            .iter()
            .find(|s| s.signatures.iter().any(|sig| sig.key_flags().sign()));
        let signer: &dyn pgp::types::SigningKey = match sub {
            Some(s) => &s.key,
            None => &self.key.primary_key,
        };
        let mut b = MessageBuilder::from_bytes("", data.to_vec());
        b.compression(CompressionAlgorithm::ZLIB);
        b.sign(signer, Password::from(self.passphrase.as_str()), HashAlgorithm::Sha256);
        b.to_vec(rand::thread_rng()).map_err(|e| match e.to_string() {
            m if m.to_lowercase().contains("decrypt") || m.to_lowercase().contains("password") => {
                SignatureError::BadPassphrase
            }
            m => SignatureError::PrivateKey(format!("signing: {m}")),
        })
    }

    /// A simple signature over `manifest` for `reference`.
    pub fn sign(&self, manifest: &[u8], reference: &str) -> Result<Vec<u8>, SignatureError> {
        let payload = Payload::new(super::manifest_digest(manifest)?, reference.to_string());
        self.sign_bytes(&payload.to_json())
    }
}
