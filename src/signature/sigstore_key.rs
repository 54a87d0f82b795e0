//! Sigstore key pairs as cosign and skopeo keep them: the public key as a
//! PEM `PUBLIC KEY`, the private key PKCS#8, sealed with NaCl secretbox under
//! a key scrypt derives from a passphrase, in a PEM `ENCRYPTED COSIGN
//! PRIVATE KEY` (or `…SIGSTORE…`) block of JSON (go-securesystemslib's
//! `encrypted` format). Signing makes the attachment a sigstore signature is.

use super::SignatureError;
use super::blob::{SIGSTORE_MIME_TYPE, SIGSTORE_SIGNATURE_ANNOTATION, Sigstore};
use super::simple::{Payload, SIGSTORE_SIGNATURE_TYPE};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self as sig, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use base64::Engine as _;
use crypto_secretbox::XSalsa20Poly1305;
use crypto_secretbox::aead::{Aead, KeyInit};

const PEM_COSIGN: &str = "ENCRYPTED COSIGN PRIVATE KEY";
const PEM_SIGSTORE: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
/// scrypt N values go-securesystemslib accepts (legacy, standard, OWASP),
/// all with r = 8, p = 1. New keys use the legacy one, which every skopeo reads.
const ACCEPTED_N: [u64; 3] = [32768, 65536, 131072];
const WRITTEN_N: u64 = 32768;

/// A freshly generated key pair, both halves PEM.
pub struct KeyPair {
    pub private_pem: String,
    pub public_pem: String,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = b64().encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn unpem(text: &str) -> Result<(String, Vec<u8>), SignatureError> {
    let mut lines = text
        .lines()
        .map(str::trim)
        .skip_while(|l| !l.starts_with("-----BEGIN "));
    let label = lines
        .next()
        .and_then(|l| l.strip_prefix("-----BEGIN ")?.strip_suffix("-----"))
        .ok_or_else(|| SignatureError::PrivateKey("invalid pem block".into()))?
        .to_string();
    let body: String = lines.take_while(|l| !l.starts_with("-----END ")).collect();
    let der = b64()
        .decode(body)
        .map_err(|e| SignatureError::PrivateKey(format!("invalid pem block: {e}")))?;
    Ok((label, der))
}

fn key_for(passphrase: &[u8], salt: &[u8], n: u64) -> Result<[u8; 32], SignatureError> {
    let log_n = n.trailing_zeros() as u8;
    let params = scrypt::Params::new(log_n, 8, 1, 32).map_err(|e| SignatureError::PrivateKey(e.to_string()))?;
    let mut key = [0u8; 32];
    scrypt::scrypt(passphrase, salt, &params, &mut key).map_err(|e| SignatureError::PrivateKey(e.to_string()))?;
    Ok(key)
}

fn random<const N: usize>() -> Result<[u8; N], SignatureError> {
    let mut b = [0u8; N];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| SignatureError::PrivateKey("no randomness".into()))?;
    Ok(b)
}

/// A new ECDSA P-256 key pair, the private half sealed with `passphrase`.
pub fn generate(passphrase: &[u8]) -> Result<KeyPair, SignatureError> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&sig::ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
        .map_err(|_| SignatureError::PrivateKey("generating a P-256 key".into()))?;
    let pair = EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref())
        .map_err(|e| SignatureError::PrivateKey(e.to_string()))?;
    // SubjectPublicKeyInfo for an uncompressed P-256 point.
    let mut spki = hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200").unwrap_or_default();
    spki.extend_from_slice(pair.public_key().as_ref());
    let salt: [u8; 32] = random()?;
    let nonce: [u8; 24] = random()?;
    let key = key_for(passphrase, &salt, WRITTEN_N)?;
    let sealed = XSalsa20Poly1305::new(&key.into())
        .encrypt(&nonce.into(), pkcs8.as_ref())
        .map_err(|_| SignatureError::PrivateKey("sealing the private key".into()))?;
    // go-securesystemslib's struct order.
    let doc = serde_json::json!({
        "kdf": {"name": "scrypt", "params": {"N": WRITTEN_N, "r": 8, "p": 1}, "salt": b64().encode(salt)},
        "cipher": {"name": "nacl/secretbox", "nonce": b64().encode(nonce)},
        "ciphertext": b64().encode(sealed),
    });
    Ok(KeyPair {
        private_pem: pem(PEM_COSIGN, doc.to_string().as_bytes()),
        public_pem: pem("PUBLIC KEY", &spki),
    })
}

/// A private key that signs sigstore payloads.
pub enum Signer {
    Ecdsa(EcdsaKeyPair),
    Rsa(RsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// Open a private key file's contents with `passphrase`.
pub fn load_private(text: &[u8], passphrase: &[u8]) -> Result<Signer, SignatureError> {
    let text = std::str::from_utf8(text).map_err(|_| SignatureError::PrivateKey("invalid pem block".into()))?;
    let (label, data) = unpem(text)?;
    if label != PEM_COSIGN && label != PEM_SIGSTORE {
        return Err(SignatureError::PrivateKey(format!("unsupported pem type: {label}")));
    }
    let bad = |m: &str| SignatureError::PrivateKey(format!("decrypt: {m}"));
    let doc: serde_json::Value = serde_json::from_slice(&data).map_err(|e| bad(&e.to_string()))?;
    if doc.pointer("/kdf/name").and_then(|v| v.as_str()) != Some("scrypt") {
        return Err(bad("encrypted: unknown kdf name"));
    }
    if doc.pointer("/cipher/name").and_then(|v| v.as_str()) != Some("nacl/secretbox") {
        return Err(bad("encrypted: unknown cipher name"));
    }
    let num = |p: &str| doc.pointer(p).and_then(|v| v.as_u64());
    let n = num("/kdf/params/N").unwrap_or(0);
    if !ACCEPTED_N.contains(&n) || num("/kdf/params/r") != Some(8) || num("/kdf/params/p") != Some(1) {
        return Err(bad("unsupported scrypt parameters"));
    }
    let field = |p: &str| -> Result<Vec<u8>, SignatureError> {
        let s = doc
            .pointer(p)
            .and_then(|v| v.as_str())
            .ok_or_else(|| bad(&format!("missing {p}")))?;
        b64().decode(s).map_err(|e| bad(&e.to_string()))
    };
    let (salt, nonce, sealed) = (field("/kdf/salt")?, field("/cipher/nonce")?, field("/ciphertext")?);
    let nonce: [u8; 24] = nonce.try_into().map_err(|_| bad("encrypted: incorrect nonce size"))?;
    let key = key_for(passphrase, &salt, n)?;
    let pkcs8 = XSalsa20Poly1305::new(&key.into())
        .decrypt(&nonce.into(), sealed.as_slice())
        .map_err(|_| bad("encrypted: decryption failed"))?;
    for alg in [
        &sig::ECDSA_P256_SHA256_ASN1_SIGNING,
        &sig::ECDSA_P384_SHA384_ASN1_SIGNING,
    ] {
        if let Ok(k) = EcdsaKeyPair::from_pkcs8(alg, &pkcs8) {
            return Ok(Signer::Ecdsa(k));
        }
    }
    if let Ok(k) = RsaKeyPair::from_pkcs8(&pkcs8) {
        return Ok(Signer::Rsa(k));
    }
    if let Ok(k) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8) {
        return Ok(Signer::Ed25519(k));
    }
    Err(SignatureError::PrivateKey(
        "parsing private key: unsupported key type".into(),
    ))
}

impl Signer {
    fn sign_bytes(&self, data: &[u8]) -> Result<Vec<u8>, SignatureError> {
        let rng = SystemRandom::new();
        let fail = |_| SignatureError::PrivateKey("creating signature".into());
        match self {
            Signer::Ecdsa(k) => k.sign(&rng, data).map(|s| s.as_ref().to_vec()).map_err(fail),
            Signer::Rsa(k) => {
                let mut out = vec![0; k.public_modulus_len()];
                k.sign(&sig::RSA_PKCS1_SHA256, &rng, data, &mut out).map_err(fail)?;
                Ok(out)
            }
            Signer::Ed25519(k) => Ok(k.sign(data).as_ref().to_vec()),
        }
    }

    /// A sigstore signature of `manifest` for `reference`: the payload
    /// containers/image writes, signed, as the attachment layer holds it.
    pub fn sign(
        &self,
        manifest: &[u8],
        reference: &crate::reference::DockerReference,
    ) -> Result<Sigstore, SignatureError> {
        if reference.is_name_only() {
            return Err(SignatureError::Invalid(format!(
                "reference {reference} can’t be signed, it has neither a tag nor a digest"
            )));
        }
        let mut p = Payload::new(super::manifest_digest(manifest)?, reference.to_string());
        p.creator = Some(format!("kopeo {}", env!("CARGO_PKG_VERSION")));
        let payload = p.to_json_typed(SIGSTORE_SIGNATURE_TYPE);
        let signature = self.sign_bytes(&payload)?;
        Ok(Sigstore {
            mime_type: SIGSTORE_MIME_TYPE.into(),
            payload,
            annotations: [(SIGSTORE_SIGNATURE_ANNOTATION.to_string(), b64().encode(signature))].into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_sign_what_their_public_half_verifies() {
        let pair = generate(b"pass").unwrap();
        assert!(
            pair.private_pem
                .starts_with("-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----\n")
        );
        let signer = load_private(pair.private_pem.as_bytes(), b"pass").unwrap();
        let r = crate::reference::DockerReference::parse_normalized("example.com/a:1").unwrap();
        let s = signer.sign(b"{}", &r).unwrap();
        let keys = super::super::sigstore::parse_public_keys(pair.public_pem.as_bytes()).unwrap();
        let (p, _) = super::super::sigstore::verify(&keys, &s, |_| Ok(()), |_| Ok(())).unwrap();
        assert_eq!(p.docker_reference, "example.com/a:1");
        let e = load_private(pair.private_pem.as_bytes(), b"wrong").err().unwrap();
        assert_eq!(e.to_string(), "decrypt: encrypted: decryption failed");
    }
}
