//! PKCS#7 (CMS EnvelopedData) key wrapping as ocicrypt does it with Go's
//! pkcs7 package: the private layer options encrypted with AES-128-GCM,
//! the content key encrypted to each recipient certificate's RSA key with
//! PKCS#1 v1.5. Go writes the GCM parameters in its own shape — a
//! primitive-tagged SEQUENCE (0x10) wrapping the DER of
//! `SEQUENCE { [4] nonce, INTEGER icvLen }` — and its reader requires
//! exactly that, so kopeo writes it so. Reading also accepts RFC 5084's
//! `GCMParameters`, AES-CBC content and RSA-OAEP key transport (what
//! OpenSSL's `cms -encrypt` writes).

use super::EncryptionError;
use super::keys::{PrivateKey, der};
use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::rsa::{
    OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, Pkcs1PrivateDecryptingKey,
    Pkcs1PublicEncryptingKey, PublicEncryptingKey,
};
use zeroize::Zeroizing;

const OID_ENVELOPED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03];
const OID_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_RSAES_OAEP: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x07];
const OID_SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
const OID_AES128_GCM: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x06];
const OID_AES256_GCM: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2e];
const OID_AES128_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x02];
const OID_AES256_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a];

fn bad(m: impl Into<String>) -> EncryptionError {
    EncryptionError::Pkcs7(m.into())
}

/// A DER element: its tag byte, its content, and all of its bytes.
#[derive(Clone, Copy)]
struct Tlv<'a> {
    tag: u8,
    body: &'a [u8],
    raw: &'a [u8],
}

/// The first element of `input` and what follows it (definite lengths only).
fn tlv(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), EncryptionError> {
    let short = || bad("truncated DER");
    let (&tag, rest) = input.split_first().ok_or_else(short)?;
    let (&first, mut rest) = rest.split_first().ok_or_else(short)?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return Err(bad("unsupported DER length"));
        }
        let (bytes, r) = (rest.get(..n).ok_or_else(short)?, &rest[n..]);
        rest = r;
        bytes.iter().fold(0usize, |a, b| (a << 8) | usize::from(*b))
    };
    let header = input.len() - rest.len();
    let body = rest.get(..len).ok_or_else(short)?;
    Ok((
        Tlv {
            tag,
            body,
            raw: &input[..header + len],
        },
        &rest[len..],
    ))
}

/// The elements inside a constructed element.
fn children(body: &[u8]) -> Result<Vec<Tlv<'_>>, EncryptionError> {
    let mut out = vec![];
    let mut rest = body;
    while !rest.is_empty() {
        let (t, r) = tlv(rest)?;
        out.push(t);
        rest = r;
    }
    Ok(out)
}

/// What a recipient certificate gives: who issued it, its serial and key.
#[derive(Debug, Clone)]
pub struct Certificate {
    /// The issuer Name's DER, exactly as in the certificate.
    issuer: Vec<u8>,
    /// The serialNumber INTEGER's DER.
    serial: Vec<u8>,
    /// The SubjectPublicKeyInfo's DER.
    spki: Vec<u8>,
}

impl Certificate {
    /// An X.509 certificate, DER or PEM (ocicrypt's `ParseCertificate`).
    pub fn parse(data: &[u8]) -> Result<Certificate, EncryptionError> {
        let der = match tlv(data) {
            Ok((t, rest)) if t.tag == 0x30 && rest.is_empty() => data.to_vec(),
            _ => crate::pem::blocks(data)
                .ok()
                .and_then(|b| b.into_iter().next())
                .map(|b| b.der)
                .ok_or(EncryptionError::NotACertificate)?,
        };
        let fail = |_| EncryptionError::NotACertificate;
        let (cert, _) = tlv(&der).map_err(fail)?;
        let parts = children(cert.body).map_err(fail)?;
        let tbs = parts.first().ok_or(EncryptionError::NotACertificate)?;
        let mut fields = children(tbs.body).map_err(fail)?.into_iter().peekable();
        if fields.peek().is_some_and(|f| f.tag == 0xa0) {
            fields.next();
        }
        let f: Vec<Tlv> = fields.collect();
        // serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo.
        let [serial, _, issuer, _, _, spki, ..] = f.as_slice() else {
            return Err(EncryptionError::NotACertificate);
        };
        if serial.tag != 0x02 || issuer.tag != 0x30 || spki.tag != 0x30 {
            return Err(EncryptionError::NotACertificate);
        }
        PublicEncryptingKey::from_der(spki.raw)
            .map_err(|e| EncryptionError::UnsupportedKey("PKCS7", format!("the certificate's key: {e} (RSA only)")))?;
        Ok(Certificate {
            issuer: issuer.raw.to_vec(),
            serial: serial.raw.to_vec(),
            spki: spki.raw.to_vec(),
        })
    }

    /// The certificate's public key (SubjectPublicKeyInfo DER), which identifies it as a recipient.
    pub fn public_key(&self) -> &[u8] {
        &self.spki
    }

    fn issuer_and_serial(&self) -> Vec<u8> {
        der::seq(&[&self.issuer, &self.serial])
    }
}

/// Encrypt `data` for every certificate: Go pkcs7's `Encrypt` with
/// AES-128-GCM, as ocicrypt sets it.
pub fn wrap(certs: &[Certificate], data: &[u8]) -> Result<Vec<u8>, EncryptionError> {
    let mut cek = Zeroizing::new([0u8; 16]);
    let mut nonce = [0u8; 12];
    aws_lc_rs::rand::fill(cek.as_mut())?;
    aws_lc_rs::rand::fill(&mut nonce)?;
    let key = LessSafeKey::new(UnboundKey::new(&aead::AES_128_GCM, cek.as_ref())?);
    let mut sealed = data.to_vec();
    let tag = key.seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut sealed)?;
    sealed.extend_from_slice(tag.as_ref());
    let mut infos = vec![];
    for c in certs {
        let rsa = Pkcs1PublicEncryptingKey::new(
            PublicEncryptingKey::from_der(&c.spki).map_err(|e| bad(format!("certificate key: {e}")))?,
        )?;
        let mut out = vec![0u8; rsa.ciphertext_size()];
        let n = rsa.encrypt(cek.as_ref(), &mut out)?.len();
        out.truncate(n);
        infos.push(der::seq(&[
            &der::uint(&[0]),
            &c.issuer_and_serial(),
            &der::seq(&[&der::tlv(0x06, OID_RSA)]),
            &der::tlv(0x04, &out),
        ]));
    }
    // Go's shape: SEQUENCE{[4] nonce, INTEGER 16} inside a primitive 0x10.
    let params = der::seq(&[&der::tlv(0x84, &nonce), &der::uint(&[16])]);
    let content_info = der::seq(&[
        &der::tlv(0x06, OID_DATA),
        &der::seq(&[&der::tlv(0x06, OID_AES128_GCM), &der::tlv(0x10, &params)]),
        &der::tlv(0x80, &sealed),
    ]);
    let refs: Vec<&[u8]> = infos.iter().map(Vec::as_slice).collect();
    let enveloped = der::seq(&[&der::uint(&[0]), &der::tlv(0x31, &refs.concat()), &content_info]);
    Ok(der::seq(&[
        &der::tlv(0x06, OID_ENVELOPED_DATA),
        &der::tlv(0xa0, &enveloped),
    ]))
}

/// The nonce of GCM parameters in Go's shape or RFC 5084's.
fn gcm_nonce(params: &Tlv) -> Result<[u8; 12], EncryptionError> {
    let inner = if params.tag == 0x10 {
        tlv(params.body)?.0
    } else {
        *params
    };
    let fields = children(inner.body)?;
    let nonce = fields
        .first()
        .filter(|f| f.tag == 0x84 || f.tag == 0x04)
        .ok_or_else(|| bad("GCM parameters without a nonce"))?;
    if let Some(icv) = fields.get(1)
        && icv.body != [16]
    {
        return Err(bad("pkcs7: encryption algorithm parameters are incorrect"));
    }
    nonce
        .body
        .try_into()
        .map_err(|_| bad("pkcs7: encryption algorithm parameters are incorrect"))
}

fn decrypt_content(alg: &[u8], params: Option<&Tlv>, key: &[u8], ct: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let gcm = match alg {
        OID_AES128_GCM => Some(&aead::AES_128_GCM),
        OID_AES256_GCM => Some(&aead::AES_256_GCM),
        _ => None,
    };
    if let Some(gcm) = gcm {
        let nonce = gcm_nonce(params?).ok()?;
        let k = LessSafeKey::new(UnboundKey::new(gcm, key).ok()?);
        let mut data = Zeroizing::new(ct.to_vec());
        let n = k
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut data)
            .ok()?
            .len();
        data.truncate(n);
        return Some(data);
    }
    let cipher = match alg {
        OID_AES128_CBC => &aws_lc_rs::cipher::AES_128,
        OID_AES256_CBC => &aws_lc_rs::cipher::AES_256,
        _ => return None,
    };
    let iv: [u8; 16] = params?.body.try_into().ok()?;
    let k = aws_lc_rs::cipher::PaddedBlockDecryptingKey::cbc_pkcs7(
        aws_lc_rs::cipher::UnboundCipherKey::new(cipher, key).ok()?,
    )
    .ok()?;
    let mut data = Zeroizing::new(ct.to_vec());
    let ctx = aws_lc_rs::cipher::DecryptionContext::Iv128(aws_lc_rs::iv::FixedLength::from(iv));
    let n = k.decrypt(&mut data, ctx).ok()?.len();
    data.truncate(n);
    Some(data)
}

/// Decrypt an EnvelopedData with an RSA key of `keys`, for a recipient that
/// one of `certs` names (any recipient when no certificate is given).
pub fn unwrap(
    message: &[u8],
    keys: &[PrivateKey],
    certs: &[Certificate],
) -> Result<Zeroizing<Vec<u8>>, EncryptionError> {
    let parse = || -> Result<_, EncryptionError> {
        let (ci, _) = tlv(message)?;
        let ci = children(ci.body)?;
        let [oid, content, ..] = ci.as_slice() else {
            return Err(bad("not a ContentInfo"));
        };
        if oid.body != OID_ENVELOPED_DATA || content.tag != 0xa0 {
            return Err(bad("pkcs7: content data is not enveloped data"));
        }
        let (ed, _) = tlv(content.body)?;
        let ed = children(ed.body)?;
        let [_, recipients, eci, ..] = ed.as_slice() else {
            return Err(bad("malformed EnvelopedData"));
        };
        Ok((children(recipients.body)?, *eci))
    };
    let (recipients, eci) = parse().map_err(|e| bad(format!("could not parse PKCS7 packet: {e}")))?;
    let eci = children(eci.body)?;
    let [_, alg, ct, ..] = eci.as_slice() else {
        return Err(bad("malformed EncryptedContentInfo"));
    };
    let alg = children(alg.body)?;
    let alg_oid = alg.first().map(|a| a.body).unwrap_or_default();
    // [0] IMPLICIT OCTET STRING, primitive or (BER) constructed of OCTET STRINGs.
    let ciphertext: Vec<u8> = if ct.tag == 0xa0 {
        children(ct.body)?.iter().flat_map(|c| c.body.to_vec()).collect()
    } else {
        ct.body.to_vec()
    };
    for r in &recipients {
        let f = children(r.body)?;
        let [_, ias, kea, ek, ..] = f.as_slice() else { continue };
        if !certs.is_empty() && !certs.iter().any(|c| c.issuer_and_serial() == ias.raw) {
            continue;
        }
        let kea = children(kea.body)?;
        let kea_oid = kea.first().map(|a| a.body).unwrap_or_default();
        for key in keys {
            let PrivateKey::Rsa(k) = key else { continue };
            let mut cek = Zeroizing::new(vec![0u8; 1024]);
            let n = match kea_oid {
                OID_RSA => Pkcs1PrivateDecryptingKey::new(k.clone())
                    .ok()
                    .and_then(|d| d.decrypt(ek.body, &mut cek).ok().map(|p| p.len())),
                OID_RSAES_OAEP => {
                    // RFC 4055 parameters: SHA-1 unless a hash is named.
                    let sha256 = kea
                        .get(1)
                        .is_some_and(|p| p.raw.windows(OID_SHA256.len()).any(|w| w == OID_SHA256));
                    let oaep = if sha256 {
                        &OAEP_SHA256_MGF1SHA256
                    } else {
                        &OAEP_SHA1_MGF1SHA1
                    };
                    OaepPrivateDecryptingKey::new(k.clone())
                        .ok()
                        .and_then(|d| d.decrypt(oaep, ek.body, &mut cek, None).ok().map(|p| p.len()))
                }
                _ => None,
            };
            let Some(n) = n else { continue };
            cek.truncate(n);
            if let Some(plain) = decrypt_content(alg_oid, alg.get(1), &cek, &ciphertext) {
                return Ok(plain);
            }
        }
    }
    Err(bad("No suitable private key found for decryption"))
}
