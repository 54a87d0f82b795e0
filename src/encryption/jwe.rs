//! JWE (RFC 7516) key wrapping as ocicrypt does it with go-jose: the
//! private layer options encrypted with A256GCM under a random content key,
//! that key wrapped for each recipient — RSA-OAEP (SHA-1) for RSA keys,
//! ECDH-ES+A256KW (Concat KDF, AES key wrap) for EC keys, or the `alg` a
//! JWK names. One recipient is written in the flattened JSON form, several
//! in the general form. Reading accepts those and the compact form, and the
//! algorithms ocicrypt accepts that aws-lc has.

use super::EncryptionError;
use super::keys::{Curve, PrivateKey, PublicKey, Recipient};
use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::agreement::{self, UnparsedPublicKey};
use aws_lc_rs::key_wrap::{AES_128, AES_256, AesBlockCipher, KeyEncryptionKey, KeyWrap as _};
use aws_lc_rs::rsa::{OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, OaepPublicEncryptingKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

fn jwe(m: impl Into<String>) -> EncryptionError {
    EncryptionError::Jwe(m.into())
}

/// A key-wrap algorithm of a JWK's `alg`, or the default for its key type.
fn key_alg(r: &Recipient) -> Result<&str, EncryptionError> {
    let default = match r.key {
        PublicKey::Rsa { .. } => "RSA-OAEP",
        PublicKey::Ec { .. } => "ECDH-ES+A256KW",
    };
    let alg = r.alg.as_deref().unwrap_or(default);
    match (alg, &r.key) {
        ("RSA-OAEP" | "RSA-OAEP-256", PublicKey::Rsa { .. }) => Ok(alg),
        ("ECDH-ES+A128KW" | "ECDH-ES+A256KW", PublicKey::Ec { .. }) => Ok(alg),
        _ => Err(jwe(format!("{alg} is an unsupported JWE key algorithm"))),
    }
}

fn kw_cipher(alg: &str) -> Result<(&'static AesBlockCipher, usize), EncryptionError> {
    match alg {
        "ECDH-ES+A128KW" => Ok((&AES_128, 16)),
        "ECDH-ES+A256KW" => Ok((&AES_256, 32)),
        other => Err(jwe(format!("unsupported key agreement {other}"))),
    }
}

/// RFC 7518 §4.6.2: Concat KDF with SHA-256, empty PartyU/PartyV info
/// (go-jose sets none), for keys of up to 32 bytes.
fn concat_kdf(z: &[u8], alg: &str, len: usize) -> Zeroizing<Vec<u8>> {
    concat_kdf_with(z, alg, b"", b"", len)
}

fn concat_kdf_with(z: &[u8], alg: &str, apu: &[u8], apv: &[u8], len: usize) -> Zeroizing<Vec<u8>> {
    let mut input = Zeroizing::new(Vec::with_capacity(4 + z.len() + alg.len() + apu.len() + apv.len() + 16));
    input.extend_from_slice(&1u32.to_be_bytes());
    input.extend_from_slice(z);
    for part in [alg.as_bytes(), apu, apv] {
        input.extend_from_slice(&(part.len() as u32).to_be_bytes());
        input.extend_from_slice(part);
    }
    input.extend_from_slice(&((len * 8) as u32).to_be_bytes());
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &input);
    Zeroizing::new(d.as_ref()[..len].to_vec())
}

fn epk(curve: Curve, point: &[u8]) -> Value {
    let n = curve.coordinate_len();
    json!({"kty": "EC", "crv": curve.name(), "x": B64.encode(&point[1..1 + n]), "y": B64.encode(&point[1 + n..])})
}

/// Wrap `cek` for one recipient: its header fields and encrypted key.
fn wrap_key(r: &Recipient, cek: &[u8]) -> Result<(Map<String, Value>, Vec<u8>), EncryptionError> {
    let alg = key_alg(r)?;
    let mut header = Map::new();
    header.insert("alg".into(), alg.into());
    let encrypted = match &r.key {
        PublicKey::Rsa { .. } => {
            let key = OaepPublicEncryptingKey::new(r.key.rsa().ok_or_else(|| jwe("not an RSA key"))??)?;
            let oaep = if alg == "RSA-OAEP" {
                &OAEP_SHA1_MGF1SHA1
            } else {
                &OAEP_SHA256_MGF1SHA256
            };
            let mut out = vec![0u8; key.ciphertext_size()];
            let n = key.encrypt(oaep, cek, &mut out, None)?.len();
            out.truncate(n);
            out
        }
        PublicKey::Ec { curve, point } => {
            let (cipher, len) = kw_cipher(alg)?;
            let eph = agreement::PrivateKey::generate(curve.agreement())?;
            let eph_pub = eph.compute_public_key()?;
            let kek = agreement::agree(
                &eph,
                UnparsedPublicKey::new(curve.agreement(), point.as_slice()),
                EncryptionError::Crypto("ECDH"),
                |z| Ok(concat_kdf(z, alg, len)),
            )?;
            let mut out = vec![0u8; cek.len() + 8];
            let n = KeyEncryptionKey::new(cipher, &kek)?.wrap(cek, &mut out)?.len();
            out.truncate(n);
            header.insert("epk".into(), epk(*curve, eph_pub.as_ref()));
            out
        }
    };
    Ok((header, encrypted))
}

/// Encrypt `plaintext` for every recipient; the JWE's JSON serialization.
pub fn wrap(recipients: &[Recipient], plaintext: &[u8]) -> Result<Vec<u8>, EncryptionError> {
    let mut cek = Zeroizing::new([0u8; 32]);
    let mut iv = [0u8; 12];
    aws_lc_rs::rand::fill(cek.as_mut())?;
    aws_lc_rs::rand::fill(&mut iv)?;
    let mut wrapped = recipients
        .iter()
        .map(|r| wrap_key(r, cek.as_ref()))
        .collect::<Result<Vec<_>, _>>()?;
    // go-jose: one recipient's header is all protected; several share `enc`.
    let mut protected = Map::new();
    if let [(header, _)] = wrapped.as_mut_slice() {
        protected.extend(std::mem::take(header));
    }
    protected.insert("enc".into(), "A256GCM".into());
    protected.sort_keys();
    let protected = B64.encode(serde_json::to_vec(&protected).map_err(|e| jwe(e.to_string()))?);
    let key = LessSafeKey::new(UnboundKey::new(&aead::AES_256_GCM, cek.as_ref())?);
    let mut data = plaintext.to_vec();
    let tag = key.seal_in_place_separate_tag(
        Nonce::assume_unique_for_key(iv),
        Aad::from(protected.as_bytes()),
        &mut data,
    )?;
    let mut out = Map::new();
    out.insert("protected".into(), protected.into());
    match wrapped.as_slice() {
        [(_, ek)] => {
            out.insert("encrypted_key".into(), B64.encode(ek).into());
        }
        many => {
            let list: Vec<Value> = many
                .iter()
                .map(|(h, ek)| json!({"header": h, "encrypted_key": B64.encode(ek)}))
                .collect();
            out.insert("recipients".into(), list.into());
        }
    }
    out.insert("iv".into(), B64.encode(iv).into());
    out.insert("ciphertext".into(), B64.encode(&data).into());
    out.insert("tag".into(), B64.encode(tag.as_ref()).into());
    serde_json::to_vec(&out).map_err(|e| jwe(e.to_string()))
}

/// A parsed JWE: the protected header's text, the shared header, each
/// recipient's header and encrypted key, and the content parts.
struct Parsed {
    protected_b64: String,
    shared: Map<String, Value>,
    recipients: Vec<(Map<String, Value>, Vec<u8>)>,
    iv: Vec<u8>,
    ciphertext: Vec<u8>,
    tag: Vec<u8>,
    aad: Option<String>,
}

fn b64(v: Option<&Value>, what: &str) -> Result<Vec<u8>, EncryptionError> {
    let s = v.and_then(Value::as_str).unwrap_or_default();
    B64.decode(s.trim_end_matches('='))
        .map_err(|_| jwe(format!("{what} is not base64url")))
}

fn object(v: Option<&Value>) -> Map<String, Value> {
    v.and_then(Value::as_object).cloned().unwrap_or_default()
}

fn parse(text: &[u8]) -> Result<Parsed, EncryptionError> {
    let failed = || jwe("jose.ParseEncrypted failed");
    let s = std::str::from_utf8(text).map_err(|_| failed())?.trim();
    if !s.starts_with('{') {
        let parts: Vec<&str> = s.split('.').collect();
        let [p, ek, iv, ct, tag] = parts.as_slice() else {
            return Err(failed());
        };
        let field = |x: &str| B64.decode(x).map_err(|_| failed());
        return Ok(Parsed {
            protected_b64: p.to_string(),
            shared: Map::new(),
            recipients: vec![(Map::new(), field(ek)?)],
            iv: field(iv)?,
            ciphertext: field(ct)?,
            tag: field(tag)?,
            aad: None,
        });
    }
    let v: Value = serde_json::from_str(s).map_err(|_| failed())?;
    let mut shared = object(v.get("unprotected"));
    let recipients = match v.get("recipients").and_then(Value::as_array) {
        Some(list) => list
            .iter()
            .map(|r| Ok((object(r.get("header")), b64(r.get("encrypted_key"), "encrypted_key")?)))
            .collect::<Result<Vec<_>, EncryptionError>>()?,
        None => {
            shared.extend(object(v.get("header")));
            vec![(Map::new(), b64(v.get("encrypted_key"), "encrypted_key")?)]
        }
    };
    Ok(Parsed {
        protected_b64: v
            .get("protected")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        shared,
        recipients,
        iv: b64(v.get("iv"), "iv")?,
        ciphertext: b64(v.get("ciphertext"), "ciphertext")?,
        tag: b64(v.get("tag"), "tag")?,
        aad: v.get("aad").and_then(Value::as_str).map(str::to_string),
    })
}

fn point_of(epk: &Value, curve: Curve) -> Option<Vec<u8>> {
    if epk.get("kty")?.as_str()? != "EC" || epk.get("crv")?.as_str()? != curve.name() {
        return None;
    }
    let x = B64.decode(epk.get("x")?.as_str()?).ok()?;
    let y = B64.decode(epk.get("y")?.as_str()?).ok()?;
    let n = curve.coordinate_len();
    (x.len() == n && y.len() == n).then(|| [&[4u8][..], &x, &y].concat())
}

/// The content key, if `key` is the recipient `header` names.
fn unwrap_key(key: &PrivateKey, header: &Map<String, Value>, ek: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let alg = header.get("alg")?.as_str()?;
    match (key, alg) {
        (PrivateKey::Rsa(k), "RSA-OAEP" | "RSA-OAEP-256") => {
            let k = OaepPrivateDecryptingKey::new(k.clone()).ok()?;
            let oaep = if alg == "RSA-OAEP" {
                &OAEP_SHA1_MGF1SHA1
            } else {
                &OAEP_SHA256_MGF1SHA256
            };
            let mut out = Zeroizing::new(vec![0u8; k.min_output_size()]);
            let n = k.decrypt(oaep, ek, &mut out, None).ok()?.len();
            out.truncate(n);
            Some(out)
        }
        (PrivateKey::Ec(curve, k), "ECDH-ES+A128KW" | "ECDH-ES+A256KW") => {
            let point = point_of(header.get("epk")?, *curve)?;
            let (cipher, len) = kw_cipher(alg).ok()?;
            let kek = agreement::agree(k, UnparsedPublicKey::new(curve.agreement(), point), (), |z| {
                Ok(concat_kdf(z, alg, len))
            })
            .ok()?;
            let mut out = Zeroizing::new(vec![0u8; ek.len()]);
            let n = KeyEncryptionKey::new(cipher, &kek)
                .ok()?
                .unwrap(ek, &mut out)
                .ok()?
                .len();
            out.truncate(n);
            Some(out)
        }
        _ => None,
    }
}

/// Decrypt `text` with the first of `keys` that a recipient was wrapped for.
pub fn unwrap(text: &[u8], keys: &[PrivateKey]) -> Result<Zeroizing<Vec<u8>>, EncryptionError> {
    let p = parse(text)?;
    let protected: Map<String, Value> = if p.protected_b64.is_empty() {
        Map::new()
    } else {
        let raw = B64
            .decode(&p.protected_b64)
            .map_err(|_| jwe("jose.ParseEncrypted failed"))?;
        serde_json::from_slice(&raw).map_err(|_| jwe("jose.ParseEncrypted failed"))?
    };
    if keys.is_empty() {
        return Err(jwe("No private keys found for JWE decryption"));
    }
    let mut common = p.shared.clone();
    common.extend(protected);
    let enc = common
        .get("enc")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let alg = match enc.as_str() {
        "A128GCM" => &aead::AES_128_GCM,
        "A192GCM" => &aead::AES_192_GCM,
        "A256GCM" => &aead::AES_256_GCM,
        other => return Err(jwe(format!("unsupported content encryption {other:?}"))),
    };
    let aad = match &p.aad {
        Some(a) => format!("{}.{a}", p.protected_b64),
        None => p.protected_b64.clone(),
    };
    let nonce: [u8; 12] = p.iv.as_slice().try_into().map_err(|_| jwe("iv is not 12 bytes"))?;
    for key in keys {
        for (header, ek) in &p.recipients {
            let mut h = common.clone();
            h.extend(header.clone());
            let Some(cek) = unwrap_key(key, &h, ek) else { continue };
            let Ok(unbound) = UnboundKey::new(alg, &cek) else {
                continue;
            };
            let mut data = Zeroizing::new([p.ciphertext.as_slice(), &p.tag].concat());
            let opened = LessSafeKey::new(unbound)
                .open_in_place(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(aad.as_bytes()),
                    &mut data,
                )
                .map(|plain| plain.len());
            if let Ok(n) = opened {
                data.truncate(n);
                return Ok(data);
            }
        }
    }
    Err(jwe("No suitable private key found for decryption"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encryption::keys::{parse_private, parse_public};

    #[test]
    fn concat_kdf_matches_rfc7518_appendix_c() {
        // RFC 7518 Appendix C: Alice's ephemeral key, Bob's public key,
        // "A128GCM" with PartyUInfo "Alice" and PartyVInfo "Bob".
        let d = B64.decode("0_NxaRPUMQoAJt50Gz8YiTr8gRTwyEaCumd-MToTmIo").unwrap();
        let alice = agreement::PrivateKey::from_private_key(&agreement::ECDH_P256, &d).unwrap();
        let bob = [
            &[4u8][..],
            &B64.decode("weNJy2HscCSM6AEDTDg04biOvhFhyyWvOHQfeF_PxMQ").unwrap(),
            &B64.decode("e8lnCO-AlStT-NJVX-crhB7QRYhiix03illJOVAOyck").unwrap(),
        ]
        .concat();
        let key = agreement::agree(&alice, UnparsedPublicKey::new(&agreement::ECDH_P256, bob), (), |z| {
            Ok(concat_kdf_with(z, "A128GCM", b"Alice", b"Bob", 16))
        })
        .unwrap();
        assert_eq!(B64.encode(key.as_slice()), "VqqN6vgjbSBcIijNcacQGg");
    }

    #[test]
    fn jwk_keys_round_trip_one_and_several_recipients() {
        let ec = agreement::PrivateKey::generate(&agreement::ECDH_P384).unwrap();
        let d: aws_lc_rs::encoding::EcPrivateKeyBin<'static> =
            aws_lc_rs::encoding::AsBigEndian::as_be_bytes(&ec).unwrap();
        let public = ec.compute_public_key().unwrap();
        let p = public.as_ref();
        let jwk_pub = json!({"kty":"EC","crv":"P-384","x":B64.encode(&p[1..49]),"y":B64.encode(&p[49..])});
        let mut jwk_priv = jwk_pub.clone();
        jwk_priv["d"] = B64.encode(d.as_ref()).into();
        let r = parse_public(jwk_pub.to_string().as_bytes()).unwrap();
        let k = parse_private(jwk_priv.to_string().as_bytes(), None).unwrap().unwrap();
        let text = wrap(std::slice::from_ref(&r), b"secret options").unwrap();
        let v: Value = serde_json::from_slice(&text).unwrap();
        assert!(
            v.get("recipients").is_none() && v.get("encrypted_key").is_some(),
            "flattened: {v}"
        );
        assert_eq!(
            unwrap(&text, std::slice::from_ref(&k)).unwrap().as_slice(),
            b"secret options"
        );
        let other = agreement::PrivateKey::generate(&agreement::ECDH_P384).unwrap();
        let op = other.compute_public_key().unwrap();
        let o = op.as_ref();
        let r2 = parse_public(
            json!({"kty":"EC","crv":"P-384","x":B64.encode(&o[1..49]),"y":B64.encode(&o[49..]),"alg":"ECDH-ES+A128KW"})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        let text = wrap(&[r2, r], b"two").unwrap();
        let v: Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(v["recipients"].as_array().unwrap().len(), 2);
        assert_eq!(unwrap(&text, &[k]).unwrap().as_slice(), b"two");
        let stranger = agreement::PrivateKey::generate(&agreement::ECDH_P384).unwrap();
        let e = unwrap(&text, &[PrivateKey::Ec(Curve::P384, stranger)]).unwrap_err();
        assert_eq!(e.to_string(), "JWE: No suitable private key found for decryption");
        assert!(
            parse_public(
                json!({"kty":"EC","crv":"P-256","x":"AA","y":"AA","alg":"dir"})
                    .to_string()
                    .as_bytes()
            )
            .is_err()
        );
    }
}
