//! OpenPGP verification of simple signatures with keys given as data (a
//! policy's `keyPath`/`keyPaths`/`keyData`, `--public-key-file`), in process
//! with rPGP: no keyring of the user's is read or written.

use super::SignatureError;
use pgp::composed::{Deserializable, Message, SignedPublicKey};
use pgp::types::{KeyDetails, Timestamp};
use std::io::Read;

/// Signatures and their payloads are small; upstream reads at most 4 MiB.
pub const MAX_SIGNATURE_SIZE: usize = 4 << 20;

/// Public keys trusted for verification.
pub struct TrustedKeys {
    keys: Vec<SignedPublicKey>,
}

/// What a valid signature says and who made it.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The signed content (the payload JSON).
    pub content: Vec<u8>,
    /// Fingerprint of the key that made the signature (a subkey's, if a subkey).
    pub signing_key: String,
    /// Fingerprint of its primary key.
    pub primary_key: String,
}

fn fpr(k: &impl KeyDetails) -> String {
    format!("{:X}", k.fingerprint())
}

impl TrustedKeys {
    /// Keys from binary or ASCII-armored data, several keys or armor blocks
    /// concatenated (as `keyPaths` are).
    pub fn parse(data: &[u8]) -> Result<TrustedKeys, SignatureError> {
        const BEGIN: &[u8] = b"-----BEGIN PGP PUBLIC KEY BLOCK-----";
        let mut keys = Vec::new();
        let starts: Vec<usize> = data
            .windows(BEGIN.len())
            .enumerate()
            .filter(|(_, w)| *w == BEGIN)
            .map(|(i, _)| i)
            .collect();
        if starts.is_empty() {
            let it = SignedPublicKey::from_bytes_many(data).map_err(|e| SignatureError::Keys(e.to_string()))?;
            for k in it {
                keys.push(k.map_err(|e| SignatureError::Keys(e.to_string()))?);
            }
        } else {
            for (n, start) in starts.iter().enumerate() {
                let end = starts.get(n + 1).copied().unwrap_or(data.len());
                let (it, _) = SignedPublicKey::from_armor_many(&data[*start..end])
                    .map_err(|e| SignatureError::Keys(e.to_string()))?;
                for k in it {
                    keys.push(k.map_err(|e| SignatureError::Keys(e.to_string()))?);
                }
            }
        }
        Ok(TrustedKeys { keys })
    }

    /// The keys read.
    pub fn keys(&self) -> &[SignedPublicKey] {
        &self.keys
    }

    /// The primary keys' fingerprints, upper-case hex as gpg prints them.
    pub fn fingerprints(&self) -> Vec<String> {
        self.keys.iter().map(|k| fpr(&k.primary_key)).collect()
    }

    /// Whether no key was read.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Check a signed message (binary or armored) against these keys: exactly
    /// one signature, by a valid (not revoked, not expired) key or signing
    /// subkey, not expired itself.
    pub fn verify(&self, signature: &[u8]) -> Result<Verified, SignatureError> {
        let invalid = |m: String| SignatureError::Invalid(format!("Invalid GPG signature: {m}"));
        let (msg, content) = read_signed(signature, invalid, "not signed")?;
        let Message::Signed { reader, .. } = &msg else {
            return Err(invalid("not signed".into()));
        };
        if reader.num_signatures() != 1 {
            return Err(SignatureError::Invalid(format!(
                "Unexpected GPG signature count {}",
                reader.num_signatures()
            )));
        }
        let now = Timestamp::now().as_secs() as u64;
        for key in &self.keys {
            let primary = fpr(&key.primary_key);
            let candidates =
                std::iter::once((&key.primary_key as &dyn pgp::types::VerifyingKey, primary.clone(), None)).chain(
                    key.public_subkeys
                        .iter()
                        .map(|s| (&s.key as &dyn pgp::types::VerifyingKey, fpr(&s.key), Some(s))),
                );
            for (k, signing, sub) in candidates {
                let Ok(sig) = msg.verify(k) else { continue };
                if key.details.verify_bindings(&key.primary_key).is_err() {
                    return Err(invalid(format!("key {primary} has invalid self-signatures")));
                }
                if key
                    .details
                    .revocation_signatures
                    .iter()
                    .any(|r| r.verify_key(&key.primary_key).is_ok())
                {
                    return Err(invalid(format!("key {primary} is revoked")));
                }
                if let Some(s) = sub
                    && s.verify_bindings(&key.primary_key).is_err()
                {
                    return Err(invalid(format!("subkey {signing} of {primary} is not bound to it")));
                }
                let created = sig.created().map(|t| t.as_secs() as u64).unwrap_or(0);
                if let Some(life) = sig.signature_expiration_time() {
                    let life = std::time::Duration::from(life).as_secs();
                    if life > 0 && created + life < now {
                        return Err(SignatureError::Invalid(format!(
                            "Signature expired on {}",
                            crate::timestamp::format_unix((created + life) as i64)
                        )));
                    }
                }
                let key_created = k_created(key, sub);
                if let Some(life) = key_expiry(key, sub)
                    && key_created + life < now
                {
                    return Err(invalid(format!("key {signing} expired")));
                }
                return Ok(Verified {
                    content,
                    signing_key: signing,
                    primary_key: primary,
                });
            }
        }
        let issuer = reader
            .signature(0)
            .and_then(|s| s.issuer_key_id().first().map(|id| hex::encode_upper(id.as_ref())))
            .unwrap_or_else(|| "(none)".into());
        Err(invalid(format!("no trusted key {issuer} made this signature")))
    }
}

fn k_created(key: &SignedPublicKey, sub: Option<&pgp::composed::SignedPublicSubKey>) -> u64 {
    match sub {
        Some(s) => s.key.created_at().as_secs() as u64,
        None => key.primary_key.created_at().as_secs() as u64,
    }
}

/// The key's lifetime in seconds from its creation, as its newest binding
/// or self-signature says; `None` when it does not expire.
fn key_expiry(key: &SignedPublicKey, sub: Option<&pgp::composed::SignedPublicSubKey>) -> Option<u64> {
    let sigs: Vec<&pgp::packet::Signature> = match sub {
        Some(s) => s.signatures.iter().collect(),
        None => key.details.users.iter().flat_map(|u| u.signatures.iter()).collect(),
    };
    let newest = sigs
        .into_iter()
        .max_by_key(|s| s.created().map(|t| t.as_secs()).unwrap_or(0))?;
    let life = std::time::Duration::from(newest.key_expiration_time()?).as_secs();
    (life > 0).then_some(life)
}

/// A signed message (binary or armored, decompressed) and its content, at
/// most [`MAX_SIGNATURE_SIZE`] of either; `fail` words a parse error,
/// `not_signed` what to say when there is no signature.
fn read_signed<'a>(
    signature: &'a [u8],
    fail: impl Fn(String) -> SignatureError,
    not_signed: &str,
) -> Result<(Message<'a>, Vec<u8>), SignatureError> {
    if signature.len() > MAX_SIGNATURE_SIZE {
        return Err(SignatureError::TooLarge(signature.len()));
    }
    let msg = if signature.starts_with(b"-----BEGIN PGP") {
        Message::from_armor(signature).map(|(m, _)| m)
    } else {
        Message::from_bytes(signature)
    }
    .map_err(|e| fail(e.to_string()))?;
    let mut msg = if msg.is_compressed() {
        msg.decompress().map_err(|e| fail(e.to_string()))?
    } else {
        msg
    };
    if !msg.is_signed() {
        return Err(fail(not_signed.into()));
    }
    let mut content = Vec::new();
    (&mut msg)
        .take(MAX_SIGNATURE_SIZE as u64 + 1)
        .read_to_end(&mut content)
        .map_err(|e| fail(e.to_string()))?;
    if content.len() > MAX_SIGNATURE_SIZE {
        return Err(SignatureError::TooLarge(content.len()));
    }
    Ok((msg, content))
}

/// The content of a signed message and the key ID it names, read WITHOUT
/// verifying anything (upstream's `gpgUntrustedSignatureContents`).
pub fn untrusted_contents(signature: &[u8]) -> Result<(Vec<u8>, String), SignatureError> {
    let (msg, content) = read_signed(signature, SignatureError::Invalid, "The input is not a signature")?;
    let Message::Signed { reader, .. } = &msg else {
        return Err(SignatureError::Invalid("The input is not a signature".into()));
    };
    let key = reader
        .signature(0)
        .and_then(|s| s.issuer_key_id().first().map(|id| hex::encode_upper(id.as_ref())))
        .unwrap_or_else(|| "0000000000000000".into());
    Ok((content, key))
}
