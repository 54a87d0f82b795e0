//! Sigstore signatures verified with public keys (cosign's key-pair mode,
//! no network): a base64 signature in the attachment's annotation, over
//! the payload bytes, by an ECDSA (P-256/P-384), RSA or Ed25519 key given
//! as a PEM `PUBLIC KEY`.

use super::SignatureError;
use super::blob::{SIGSTORE_MIME_TYPE, SIGSTORE_SIGNATURE_ANNOTATION, Sigstore};
use super::simple::{Payload, SIGSTORE_SIGNATURE_TYPE};
use crate::digest::Digest;
use aws_lc_rs::signature::{self as sig, UnparsedPublicKey, VerificationAlgorithm};
use base64::Engine as _;
use x509_cert::der::{Decode as _, asn1::ObjectIdentifier};
use x509_cert::spki::SubjectPublicKeyInfoOwned;

const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// A public key a sigstore signature may be made with.
#[derive(Clone)]
pub struct PublicKey {
    /// The algorithms to try (RSA signatures may be PKCS#1 v1.5 or PSS).
    algorithms: Vec<&'static dyn VerificationAlgorithm>,
    key: Vec<u8>,
    /// `sha256:HEX` of the key's SubjectPublicKeyInfo: how status names it.
    pub id: String,
}

/// Every `PUBLIC KEY` PEM block in `data`.
pub fn parse_public_keys(data: &[u8]) -> Result<Vec<PublicKey>, SignatureError> {
    if std::str::from_utf8(data).is_err() {
        return Err(SignatureError::Keys("public keys are not PEM text".into()));
    }
    let blocks = crate::pem::blocks(data).map_err(|e| SignatureError::Keys(e.to_string()))?;
    let mut out = Vec::new();
    for block in blocks {
        if block.label != "PUBLIC KEY" {
            return Err(SignatureError::Keys(format!("unsupported PEM block {:?}", block.label)));
        }
        out.push(from_spki(&block.der)?);
    }
    if out.is_empty() {
        return Err(SignatureError::Keys("no PEM-encoded public key found".into()));
    }
    Ok(out)
}

fn from_spki(der: &[u8]) -> Result<PublicKey, SignatureError> {
    let spki = SubjectPublicKeyInfoOwned::from_der(der).map_err(|e| SignatureError::Keys(e.to_string()))?;
    let key = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| SignatureError::Keys("public key bit string is not whole bytes".into()))?
        .to_vec();
    let alg = spki.algorithm.oid;
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
    let algorithms: Vec<&'static dyn VerificationAlgorithm> = match (alg, curve) {
        (EC_PUBLIC_KEY, Some(P256)) => vec![&sig::ECDSA_P256_SHA256_ASN1],
        (EC_PUBLIC_KEY, Some(P384)) => vec![&sig::ECDSA_P384_SHA384_ASN1, &sig::ECDSA_P384_SHA256_ASN1],
        (RSA, _) => vec![&sig::RSA_PKCS1_2048_8192_SHA256, &sig::RSA_PSS_2048_8192_SHA256],
        (ED25519, _) => vec![&sig::ED25519],
        (a, c) => {
            return Err(SignatureError::Keys(format!(
                "unsupported public key algorithm {a}{}",
                c.map(|c| format!(" (curve {c})")).unwrap_or_default()
            )));
        }
    };
    Ok(PublicKey {
        algorithms,
        key,
        id: crate::digest::Digest::sha256_of(der).to_string(),
    })
}

/// Verify `s` with one of `keys`, then check what its payload says (upstream's
/// `VerifySigstorePayload`); the payload and the id of the key that verified it.
pub fn verify(
    keys: &[PublicKey],
    s: &Sigstore,
    check_digest: impl FnOnce(&Digest) -> Result<(), SignatureError>,
    check_reference: impl FnOnce(&str) -> Result<(), SignatureError>,
) -> Result<(Payload, String), SignatureError> {
    if s.mime_type != SIGSTORE_MIME_TYPE {
        return Err(SignatureError::Invalid(format!(
            "Unexpected MIME type for sigstore payload {:?}",
            s.mime_type
        )));
    }
    let b64 = s
        .annotations
        .get(SIGSTORE_SIGNATURE_ANNOTATION)
        .ok_or_else(|| SignatureError::Invalid(format!("missing {SIGSTORE_SIGNATURE_ANNOTATION} annotation")))?;
    let signature = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| SignatureError::Invalid(format!("base64 decoding: {e}")))?;
    let by = keys.iter().find(|k| {
        k.algorithms.iter().any(|a| {
            UnparsedPublicKey::new(*a, &k.key)
                .verify(&s.payload, &signature)
                .is_ok()
        })
    });
    let Some(by) = by else {
        return Err(SignatureError::Invalid(
            "cryptographic signature verification failed: no public key verified the signature".into(),
        ));
    };
    let payload = Payload::parse_typed(&s.payload, SIGSTORE_SIGNATURE_TYPE).map_err(SignatureError::Invalid)?;
    check_digest(&payload.manifest_digest)?;
    check_reference(&payload.docker_reference)?;
    Ok((payload, by.id.clone()))
}
