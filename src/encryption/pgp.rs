//! OpenPGP key wrapping as ocicrypt does it with go-crypto: the private
//! layer options in a literal data packet, encrypted (SEIPD v1 with MDC,
//! AES-256, no compression) to each recipient's encryption key (PKESK v3).
//! Recipients are named as ocicrypt names them — a user ID's name or e-mail
//! address — and looked up in the user's GnuPG public keyring (read by
//! running `gpg --export`, as gpgme would), or given as a key file; secret
//! keys are exported key files (`gpg --export-secret-keys`), opened with
//! their password in process by rPGP.

use super::EncryptionError;
use pgp::composed::{Deserializable, Message, MessageBuilder, SignedPublicKey, SignedSecretKey};
use pgp::crypto::sym::SymmetricKeyAlgorithm;
use pgp::types::Password;
use std::io::Read as _;

/// A secret key and the password that opens it.
pub struct SecretKey {
    key: SignedSecretKey,
    password: zeroize::Zeroizing<String>,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("pgp::SecretKey(<redacted>)")
    }
}

fn pgp_err(e: impl std::fmt::Display) -> EncryptionError {
    EncryptionError::Pgp(e.to_string())
}

/// The name and address of a user ID as Go's `mail.ParseAddress` splits
/// `Name (comment) <addr>` (or a bare address).
fn name_and_address(uid: &str) -> (String, String) {
    match (uid.rfind('<'), uid.rfind('>')) {
        (Some(a), Some(b)) if a < b => {
            let mut name = uid[..a].trim().to_string();
            if let (Some(c), true) = (name.find('('), name.ends_with(')')) {
                name = name[..c].trim().to_string();
            }
            (name.trim_matches('"').to_string(), uid[a + 1..b].trim().to_string())
        }
        _ => (String::new(), uid.trim().to_string()),
    }
}

/// The keys of `keyring` whose user IDs name each of `recipients` (by name
/// or address); every recipient must be found.
pub fn select(keyring: &[u8], recipients: &[String]) -> Result<Vec<SignedPublicKey>, EncryptionError> {
    let keys = crate::signature::openpgp::TrustedKeys::parse(keyring).map_err(pgp_err)?;
    let mut out: Vec<SignedPublicKey> = vec![];
    let mut missing = vec![];
    for r in recipients {
        let found: Vec<&SignedPublicKey> = keys
            .keys()
            .iter()
            .filter(|k| {
                k.details.users.iter().any(|u| {
                    let (name, addr) = name_and_address(&String::from_utf8_lossy(u.id.id()));
                    name == *r || addr == *r
                })
            })
            .collect();
        if found.is_empty() {
            missing.push(r.as_str());
        }
        for k in found {
            if !out.iter().any(|o| o.primary_key == k.primary_key) {
                out.push(k.clone());
            }
        }
    }
    if !missing.is_empty() {
        return Err(EncryptionError::Pgp(format!(
            "No key found for the following recipients: {}",
            missing.join(", ")
        )));
    }
    Ok(out)
}

/// Public keys from a key file (binary or armored).
pub fn read_public(data: &[u8]) -> Result<Vec<SignedPublicKey>, EncryptionError> {
    Ok(crate::signature::openpgp::TrustedKeys::parse(data)
        .map_err(pgp_err)?
        .keys()
        .to_vec())
}

/// Encrypt `data` to every key (its encryption subkey, else the primary).
pub fn wrap(keys: &[SignedPublicKey], data: &[u8]) -> Result<Vec<u8>, EncryptionError> {
    let rng = rand::rngs::OsRng;
    let mut builder = MessageBuilder::from_bytes("", data.to_vec()).seipd_v1(rng, SymmetricKeyAlgorithm::AES256);
    for key in keys {
        let sub = key.public_subkeys.iter().find(|s| {
            s.signatures
                .iter()
                .any(|sig| sig.key_flags().encrypt_comms() || sig.key_flags().encrypt_storage())
        });
        match sub {
            Some(s) => builder.encrypt_to_key(rng, s).map_err(pgp_err)?,
            None => builder.encrypt_to_key(rng, key).map_err(pgp_err)?,
        };
    }
    builder.to_vec(rng).map_err(pgp_err)
}

impl SecretKey {
    /// An exported secret key (binary or armored) and its password.
    pub fn parse(data: &[u8], password: Option<&[u8]>) -> Result<SecretKey, EncryptionError> {
        let key = if data.windows(14).any(|w| w == b"-----BEGIN PGP") {
            SignedSecretKey::from_armor_single(data).map(|(k, _)| k)
        } else {
            SignedSecretKey::from_bytes(data)
        }
        .map_err(|e| pgp_err(format!("unable to parse private keys: {e}")))?;
        let password = String::from_utf8(password.unwrap_or_default().to_vec())
            .map_err(|_| pgp_err("the password is not UTF-8"))?;
        Ok(SecretKey {
            key,
            password: zeroize::Zeroizing::new(password),
        })
    }
}

/// Decrypt an OpenPGP message with the first of `keys` it was encrypted to.
pub fn unwrap(message: &[u8], keys: &[SecretKey]) -> Result<zeroize::Zeroizing<Vec<u8>>, EncryptionError> {
    for k in keys {
        let Ok(msg) = Message::from_bytes(message) else {
            return Err(pgp_err("not an OpenPGP message"));
        };
        let pw = Password::from(k.password.as_str());
        let Ok(msg) = msg.decrypt(&pw, &k.key) else { continue };
        let mut msg = match msg.is_compressed() {
            true => match msg.decompress() {
                Ok(m) => m,
                Err(_) => continue,
            },
            false => msg,
        };
        let mut out = zeroize::Zeroizing::new(vec![]);
        // Layer options are small; a bigger "literal" is not one.
        if (&mut msg).take(1 << 20).read_to_end(&mut out).is_ok() {
            return Ok(out);
        }
    }
    Err(pgp_err("No suitable key found to unwrap key"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_split_as_go_splits_them() {
        assert_eq!(
            name_and_address("Test a@b.c <a@b.c>"),
            ("Test a@b.c".into(), "a@b.c".into())
        );
        assert_eq!(
            name_and_address("Ann (work) <ann@x.org>"),
            ("Ann".into(), "ann@x.org".into())
        );
        assert_eq!(name_and_address("bare@x.org"), (String::new(), "bare@x.org".into()));
    }
}
