//! Keys for JWE key wrapping, read as ocicrypt reads them: public keys as
//! PKIX (DER, or PEM of any label) or a public JWK; private keys as PKCS#8,
//! PKCS#1 (RSA) or SEC1 (EC), DER or PEM, or a private JWK.

use super::EncryptionError;
use aws_lc_rs::agreement;
use aws_lc_rs::rsa::{PrivateDecryptingKey, PublicEncryptingKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use x509_cert::der::{Decode as _, asn1::ObjectIdentifier};
use x509_cert::spki::SubjectPublicKeyInfoOwned;

const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// A NIST curve JWE's ECDH-ES uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
    P521,
}

impl Curve {
    const ALL: [Curve; 3] = [Curve::P256, Curve::P384, Curve::P521];

    fn oid(self) -> ObjectIdentifier {
        match self {
            Curve::P256 => ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7"),
            Curve::P384 => ObjectIdentifier::new_unwrap("1.3.132.0.34"),
            Curve::P521 => ObjectIdentifier::new_unwrap("1.3.132.0.35"),
        }
    }

    /// The JWK `crv` name.
    pub fn name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
            Curve::P521 => "P-521",
        }
    }

    /// A coordinate's length in bytes.
    pub fn coordinate_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }

    /// aws-lc's ECDH for the curve.
    pub fn agreement(self) -> &'static agreement::Algorithm {
        match self {
            Curve::P256 => &agreement::ECDH_P256,
            Curve::P384 => &agreement::ECDH_P384,
            Curve::P521 => &agreement::ECDH_P521,
        }
    }

    /// The curve a JWK `crv` names.
    pub fn from_name(name: &str) -> Option<Curve> {
        Curve::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// A recipient's public key.
#[derive(Debug, Clone)]
pub enum PublicKey {
    /// SubjectPublicKeyInfo DER.
    Rsa { spki: Vec<u8> },
    /// The uncompressed point (`04 || X || Y`).
    Ec { curve: Curve, point: Vec<u8> },
}

/// A public key and the JWK `alg` it asks for, if it came as a JWK that named one.
#[derive(Debug, Clone)]
pub struct Recipient {
    pub key: PublicKey,
    pub alg: Option<String>,
}

impl PublicKey {
    /// An RSA key for OAEP.
    pub fn rsa(&self) -> Option<Result<PublicEncryptingKey, EncryptionError>> {
        match self {
            PublicKey::Rsa { spki } => Some(
                PublicEncryptingKey::from_der(spki)
                    .map_err(|e| EncryptionError::UnsupportedKey("JWE", format!("RSA public key: {e}"))),
            ),
            PublicKey::Ec { .. } => None,
        }
    }
}

/// A private key that may unwrap a layer key.
pub enum PrivateKey {
    Rsa(PrivateDecryptingKey),
    Ec(Curve, agreement::PrivateKey),
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PrivateKey::Rsa(_) => f.write_str("PrivateKey::Rsa(<redacted>)"),
            PrivateKey::Ec(c, _) => write!(f, "PrivateKey::Ec({c:?}, <redacted>)"),
        }
    }
}

/// Read a public key as ocicrypt's `ParsePublicKey` does: PKIX DER, then
/// the first PEM block's PKIX DER, then a public JWK.
pub fn parse_public(data: &[u8]) -> Result<Recipient, EncryptionError> {
    if let Ok(key) = from_spki(data) {
        return Ok(Recipient { key, alg: None });
    }
    if let Some(block) = crate::pem::blocks(data).ok().and_then(|b| b.into_iter().next()) {
        return Ok(Recipient {
            key: from_spki(&block.der)?,
            alg: None,
        });
    }
    let jwk: Jwk = serde_json::from_slice(data).map_err(|_| EncryptionError::NotAPublicKey)?;
    if jwk.d.is_some() {
        return Err(EncryptionError::NotAPublicKey);
    }
    Ok(Recipient {
        key: jwk.public()?,
        alg: jwk.alg.clone(),
    })
}

fn from_spki(der: &[u8]) -> Result<PublicKey, EncryptionError> {
    let spki = SubjectPublicKeyInfoOwned::from_der(der).map_err(|_| EncryptionError::NotAPublicKey)?;
    let bits = spki
        .subject_public_key
        .as_bytes()
        .ok_or(EncryptionError::NotAPublicKey)?;
    match spki.algorithm.oid {
        RSA => Ok(PublicKey::Rsa { spki: der.to_vec() }),
        EC_PUBLIC_KEY => {
            let named = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
            let curve = Curve::ALL
                .into_iter()
                .find(|c| Some(c.oid()) == named)
                .ok_or_else(|| EncryptionError::UnsupportedKey("JWE", "EC key on an unsupported curve".into()))?;
            if bits.first() != Some(&4) || bits.len() != 1 + 2 * curve.coordinate_len() {
                return Err(EncryptionError::UnsupportedKey(
                    "JWE",
                    "EC public key is not an uncompressed point".into(),
                ));
            }
            Ok(PublicKey::Ec {
                curve,
                point: bits.to_vec(),
            })
        }
        other => Err(EncryptionError::UnsupportedKey("JWE", format!("key algorithm {other}"))),
    }
}

/// Whether `data` is a private key (ocicrypt's `IsPrivateKey`); `Err` when
/// it is one that cannot be used (a legacy-encrypted PEM).
pub fn parse_private(data: &[u8], password: Option<&[u8]>) -> Result<Option<PrivateKey>, EncryptionError> {
    if let Some(k) = from_der(data) {
        return Ok(Some(k));
    }
    if let Some(block) = crate::pem::blocks(data).ok().and_then(|b| b.into_iter().next()) {
        if block
            .headers
            .iter()
            .any(|(k, v)| k == "Proc-Type" && v.contains("ENCRYPTED"))
        {
            return match password {
                None => Err(EncryptionError::MissingPassword("JWE")),
                Some(_) => Err(EncryptionError::EncryptedPem),
            };
        }
        return Ok(from_der(&block.der));
    }
    match serde_json::from_slice::<Jwk>(data) {
        Ok(jwk) if jwk.d.is_some() => jwk.private().map(Some),
        _ => Ok(None),
    }
}

fn from_der(der: &[u8]) -> Option<PrivateKey> {
    if let Ok(k) = PrivateDecryptingKey::from_pkcs8(der) {
        return Some(PrivateKey::Rsa(k));
    }
    if let Ok(k) = PrivateDecryptingKey::from_pkcs8(&pkcs8_of_pkcs1(der)) {
        return Some(PrivateKey::Rsa(k));
    }
    Curve::ALL.into_iter().find_map(|c| {
        agreement::PrivateKey::from_private_key_der(c.agreement(), der)
            .ok()
            .map(|k| PrivateKey::Ec(c, k))
    })
}

/// A PKCS#1 `RSAPrivateKey` wrapped as PKCS#8, which is what aws-lc reads.
fn pkcs8_of_pkcs1(pkcs1: &[u8]) -> Vec<u8> {
    der::seq(&[&der::tlv(0x02, &[0]), &der::rsa_algorithm(), &der::tlv(0x04, pkcs1)])
}

/// The little DER writing JWK keys and PKCS#7 envelopes need.
pub(super) mod der {
    pub fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let n = body.len();
        if n < 0x80 {
            out.push(n as u8);
        } else {
            let bytes: Vec<u8> = n.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
            out.push(0x80 | bytes.len() as u8);
            out.extend(bytes);
        }
        out.extend_from_slice(body);
        out
    }

    /// AlgorithmIdentifier { rsaEncryption, NULL }.
    pub fn rsa_algorithm() -> Vec<u8> {
        seq(&[
            &tlv(0x06, &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01]),
            &[0x05, 0x00],
        ])
    }

    pub fn seq(parts: &[&[u8]]) -> Vec<u8> {
        tlv(0x30, &parts.concat())
    }

    /// A non-negative INTEGER from big-endian magnitude bytes.
    pub fn uint(be: &[u8]) -> Vec<u8> {
        let trimmed: Vec<u8> = be.iter().copied().skip_while(|b| *b == 0).collect();
        let mut body = if trimmed.first().is_some_and(|b| b & 0x80 != 0) {
            vec![0]
        } else {
            vec![]
        };
        body.extend(if trimmed.is_empty() { vec![0] } else { trimmed });
        tlv(0x02, &body)
    }
}

/// A JSON Web Key (RFC 7517), the fields JWE key wrapping uses.
#[derive(serde::Deserialize)]
struct Jwk {
    kty: String,
    alg: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    n: Option<String>,
    e: Option<String>,
    d: Option<String>,
    p: Option<String>,
    q: Option<String>,
    dp: Option<String>,
    dq: Option<String>,
    qi: Option<String>,
}

impl Jwk {
    fn field(&self, name: &'static str, v: &Option<String>) -> Result<zeroize::Zeroizing<Vec<u8>>, EncryptionError> {
        let s = v
            .as_deref()
            .ok_or_else(|| EncryptionError::UnsupportedKey("JWE", format!("JWK without {name:?}")))?;
        URL_SAFE_NO_PAD
            .decode(s.trim_end_matches('='))
            .map(zeroize::Zeroizing::new)
            .map_err(|_| EncryptionError::UnsupportedKey("JWE", format!("JWK {name:?} is not base64url")))
    }

    fn curve(&self) -> Result<Curve, EncryptionError> {
        let crv = self.crv.as_deref().unwrap_or_default();
        Curve::from_name(crv).ok_or_else(|| EncryptionError::UnsupportedKey("JWE", format!("JWK curve {crv:?}")))
    }

    fn public(&self) -> Result<PublicKey, EncryptionError> {
        match self.kty.as_str() {
            "RSA" => {
                let (n, e) = (self.field("n", &self.n)?, self.field("e", &self.e)?);
                let rsa = der::seq(&[&der::uint(&n), &der::uint(&e)]);
                let mut bits = vec![0u8];
                bits.extend(rsa);
                Ok(PublicKey::Rsa {
                    spki: der::seq(&[&der::rsa_algorithm(), &der::tlv(0x03, &bits)]),
                })
            }
            "EC" => {
                let curve = self.curve()?;
                let (x, y) = (self.field("x", &self.x)?, self.field("y", &self.y)?);
                let len = curve.coordinate_len();
                if x.len() != len || y.len() != len {
                    return Err(EncryptionError::UnsupportedKey(
                        "JWE",
                        "JWK coordinates of the wrong length".into(),
                    ));
                }
                let mut point = vec![4u8];
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                Ok(PublicKey::Ec { curve, point })
            }
            other => Err(EncryptionError::UnsupportedKey(
                "JWE",
                format!("JWK key type {other:?}"),
            )),
        }
    }

    fn private(&self) -> Result<PrivateKey, EncryptionError> {
        match self.kty.as_str() {
            "RSA" => {
                let parts = [
                    self.field("n", &self.n)?,
                    self.field("e", &self.e)?,
                    self.field("d", &self.d)?,
                    self.field("p", &self.p)?,
                    self.field("q", &self.q)?,
                    self.field("dp", &self.dp)?,
                    self.field("dq", &self.dq)?,
                    self.field("qi", &self.qi)?,
                ];
                let ints: Vec<Vec<u8>> = std::iter::once(der::uint(&[0]))
                    .chain(parts.iter().map(|p| der::uint(p)))
                    .collect();
                let refs: Vec<&[u8]> = ints.iter().map(Vec::as_slice).collect();
                let pkcs1 = zeroize::Zeroizing::new(der::seq(&refs));
                let pkcs8 = zeroize::Zeroizing::new(pkcs8_of_pkcs1(&pkcs1));
                PrivateDecryptingKey::from_pkcs8(&pkcs8)
                    .map(PrivateKey::Rsa)
                    .map_err(|e| EncryptionError::UnsupportedKey("JWE", format!("JWK RSA key: {e}")))
            }
            "EC" => {
                let curve = self.curve()?;
                let d = self.field("d", &self.d)?;
                agreement::PrivateKey::from_private_key(curve.agreement(), &d)
                    .map(|k| PrivateKey::Ec(curve, k))
                    .map_err(|e| EncryptionError::UnsupportedKey("JWE", format!("JWK EC key: {e}")))
            }
            other => Err(EncryptionError::UnsupportedKey(
                "JWE",
                format!("JWK key type {other:?}"),
            )),
        }
    }
}
