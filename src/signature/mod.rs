//! Image signatures: the simple-signing payload, OpenPGP verification with
//! given keys, signing through the user's gpg, and (in [`policy`]) the trust
//! policy that decides which images a copy accepts.

pub mod blob;
pub mod gpg;
pub mod lookaside;
pub mod openpgp;
pub mod openpgp_sign;
pub mod policy;
pub mod sigstore;
pub mod sigstore_key;
pub mod simple;
pub(crate) mod strict_json;

use crate::digest::Digest;

/// A new name for a signature of `image` as OpenShift names them,
/// `IMAGE@` and 32 random hex digits, not among `taken` (and added to it).
pub fn fresh_signature_name(image: &str, taken: &mut std::collections::HashSet<String>) -> String {
    loop {
        let candidate = format!("{image}@{}", hex::encode(rand::random::<[u8; 16]>()));
        if taken.insert(candidate.clone()) {
            return candidate;
        }
    }
}

/// Why a signature could not be made, read or accepted.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    /// The signature is not a valid one by a trusted key (upstream's InvalidSignatureError).
    #[error("{0}")]
    Invalid(String),
    #[error("signature of {0} bytes is larger than the 4 MiB a signature may have")]
    TooLarge(usize),
    #[error("reading public keys: {0}")]
    Keys(String),
    /// A private key could not be made, read or used.
    #[error("{0}")]
    PrivateKey(String),
    #[error("invalid passphrase: must not contain a line break")]
    PassphraseLineBreak,
    #[error("Bad passphrase")]
    BadPassphrase,
    #[error("key {0:?} not found")]
    KeyNotFound(String),
    #[error("ambiguous name: {0:?} names more than one secret key")]
    AmbiguousKey(String),
    #[error("{0}")]
    Gpg(String),
    #[error("signature by key {0} is not accepted")]
    KeyNotAccepted(String),
    #[error("signature by key {0} of {1} is not accepted")]
    SubkeyNotAccepted(String, String),
    #[error("Docker reference {0:?} does not match {1:?}")]
    ReferenceMismatch(String, String),
    #[error("Invalid docker reference {0:?} in signature")]
    InvalidReference(String),
    #[error("Signature for docker digest {0:?} does not match")]
    DigestMismatch(String),
    #[error("{0}")]
    Reference(#[from] crate::reference::ReferenceError),
    /// A signed schema1 manifest whose payload cannot be found.
    #[error("{0}")]
    Schema1Payload(#[from] crate::manifest_digest::Schema1PayloadError),
}

/// The digest a signature names for `manifest`, as containers/image's
/// `manifest.Digest` computes it.
pub fn manifest_digest(manifest: &[u8]) -> Result<Digest, SignatureError> {
    Ok(crate::manifest_digest::manifest_digest(manifest)?)
}

/// A signature over `manifest` for `reference`, made with gpg key `key`.
pub fn sign_simple(
    manifest: &[u8],
    reference: &str,
    key: &str,
    passphrase: Option<&str>,
) -> Result<Vec<u8>, SignatureError> {
    if let Some(p) = passphrase
        && p.contains('\n')
    {
        return Err(SignatureError::PassphraseLineBreak);
    }
    let payload = simple::Payload::new(manifest_digest(manifest)?, reference.to_string());
    gpg::sign(&payload.to_json(), key, passphrase)
}

/// A verified simple signature: what it says and which accepted key made it.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub payload: simple::Payload,
    /// The accepted (primary) key's fingerprint.
    pub key: String,
}

/// Verify `signature` by one of `accepted` (fingerprints of keys in `keys`;
/// a subkey's signature counts for its primary key), then check what it says
/// with `check_reference` and `check_digest` — upstream's
/// `verifyAndExtractSignature`.
pub fn verify_simple(
    keys: &openpgp::TrustedKeys,
    accepted: &[String],
    signature: &[u8],
    check_digest: impl FnOnce(&Digest) -> Result<(), SignatureError>,
    check_reference: impl FnOnce(&str) -> Result<(), SignatureError>,
) -> Result<Accepted, SignatureError> {
    let v = keys.verify(signature)?;
    let upper = |s: &str| s.to_ascii_uppercase();
    let key = if accepted.iter().any(|a| upper(a) == v.signing_key) {
        v.signing_key.clone()
    } else if accepted.iter().any(|a| upper(a) == v.primary_key) {
        v.primary_key.clone()
    } else if v.signing_key == v.primary_key {
        return Err(SignatureError::KeyNotAccepted(v.signing_key));
    } else {
        return Err(SignatureError::SubkeyNotAccepted(v.signing_key, v.primary_key));
    };
    let payload = simple::Payload::parse(&v.content).map_err(SignatureError::Invalid)?;
    check_digest(&payload.manifest_digest)?;
    check_reference(&payload.docker_reference)?;
    Ok(Accepted { payload, key })
}

/// `standalone-verify`: `signature` over `manifest` for `reference` by one
/// of `fingerprints` — the identity must equal the reference exactly.
pub fn verify_standalone(
    keys: &openpgp::TrustedKeys,
    fingerprints: &[String],
    manifest: &[u8],
    reference: &str,
    signature: &[u8],
) -> Result<Accepted, SignatureError> {
    let expected = crate::reference::DockerReference::parse_normalized(reference)?;
    verify_simple(
        keys,
        fingerprints,
        signature,
        |d| {
            if manifest_digest(manifest)? == *d {
                Ok(())
            } else {
                Err(SignatureError::DigestMismatch(d.to_string()))
            }
        },
        |signed| {
            let s = crate::reference::DockerReference::parse_normalized(signed)
                .map_err(|_| SignatureError::InvalidReference(signed.to_string()))?;
            if s.to_string() == expected.to_string() {
                Ok(())
            } else {
                Err(SignatureError::ReferenceMismatch(
                    signed.to_string(),
                    reference.to_string(),
                ))
            }
        },
    )
}
