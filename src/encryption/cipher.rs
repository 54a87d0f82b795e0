//! ocicrypt's layer cipher, `AES_256_CTR_HMAC_SHA256`: AES-256 in CTR mode
//! (16-byte nonce, the whole block as a big-endian counter, as Go's
//! `cipher.NewCTR`), then HMAC-SHA256 over the ciphertext with the same key.
//! Both directions are stages of the one blob stream. Decryption holds back
//! the last plaintext chunk until the HMAC has been checked, so a consumer
//! that sees the stream end cleanly got an authentic layer.

use super::EncryptionError;
use super::options::{PrivateOptions, PublicOptions};
use crate::transport::{BlobStream, TransportError};
use aws_lc_rs::cipher::{
    AES_256, DecryptionContext, EncryptionContext, StreamingDecryptingKey, StreamingEncryptingKey, UnboundCipherKey,
};
use aws_lc_rs::hmac;
use aws_lc_rs::iv::FixedLength;
use bytes::Bytes;
use futures::StreamExt;
use std::sync::{Arc, OnceLock};

/// The one cipher ocicrypt defines.
pub const AES_256_CTR_HMAC_SHA256: &str = "AES_256_CTR_HMAC_SHA256";

/// Where an encryption stage puts the public options (with the HMAC)
/// once its stream has ended.
pub type PublicSlot = Arc<OnceLock<PublicOptions>>;

/// Where a decryption stage says why it failed, for whoever sees the stream
/// fail further down (a destination's error hides the cause).
pub type CryptFailure = Arc<OnceLock<EncryptionError>>;

/// One chunk through a CTR `update` (whose output is as long as its input;
/// aws-lc asks for a block of room more).
fn ctr(
    chunk: &[u8],
    update: impl FnOnce(&[u8], &mut [u8]) -> Result<usize, aws_lc_rs::error::Unspecified>,
) -> Option<Bytes> {
    let mut out = vec![0u8; chunk.len() + 15];
    let n = update(chunk, &mut out).ok()?;
    out.truncate(n);
    Some(Bytes::from(out))
}

/// The nonce of `private` (or of `public`), once the key is checked to be 32 bytes.
fn key_and_nonce(private: &PrivateOptions, public: Option<&PublicOptions>) -> Result<[u8; 16], EncryptionError> {
    if private.symkey.len() != 32 {
        return Err(EncryptionError::KeyLength(private.symkey.len()));
    }
    let nonce = private
        .cipheroptions
        .get("nonce")
        .or_else(|| public.and_then(|p| p.cipheroptions.get("nonce")))
        .ok_or_else(|| EncryptionError::Options("no nonce in the cipher options".into()))?;
    nonce
        .as_slice()
        .try_into()
        .map_err(|_| EncryptionError::Options(format!("nonce of {} bytes, not 16", nonce.len())))
}

/// A fresh key and nonce for a layer whose digest (before encryption) is
/// `digest`, which ocicrypt records with them. They are wrapped for the
/// recipients before any byte moves, so that a recipient that fails fails first.
pub fn fresh_options(digest: String) -> Result<PrivateOptions, EncryptionError> {
    let mut key = vec![0u8; 32];
    let mut nonce = vec![0u8; 16];
    aws_lc_rs::rand::fill(&mut key)?;
    aws_lc_rs::rand::fill(&mut nonce)?;
    Ok(PrivateOptions {
        symkey: key,
        digest,
        cipheroptions: [("nonce".to_string(), nonce)].into(),
    })
}

/// Encrypt `input` with `private`'s key and nonce. When the stream has
/// ended, `slot` holds the public options (the HMAC).
pub fn encrypt(input: BlobStream, private: &PrivateOptions, slot: PublicSlot) -> Result<BlobStream, EncryptionError> {
    let nonce = key_and_nonce(private, None)?;
    let cipher = StreamingEncryptingKey::less_safe_ctr(
        UnboundCipherKey::new(&AES_256, &private.symkey)?,
        EncryptionContext::Iv128(FixedLength::from(nonce)),
    )?;
    struct St {
        input: BlobStream,
        cipher: Option<StreamingEncryptingKey>,
        mac: Option<hmac::Context>,
        slot: PublicSlot,
    }
    let st = St {
        input,
        cipher: Some(cipher),
        mac: Some(hmac::Context::with_key(&hmac::Key::new(
            hmac::HMAC_SHA256,
            &private.symkey,
        ))),
        slot,
    };
    Ok(futures::stream::unfold(st, |mut st| async move {
        let cipher = st.cipher.as_mut()?;
        match st.input.next().await {
            Some(Ok(chunk)) => {
                let Some(out) = ctr(&chunk, |i, o| cipher.update(i, o).map(|u| u.written().len())) else {
                    st.cipher = None;
                    return Some((Err(EncryptionError::Crypto("AES-CTR").into()), st));
                };
                if let Some(m) = st.mac.as_mut() {
                    m.update(&out);
                }
                Some((Ok(out), st))
            }
            Some(Err(e)) => {
                st.cipher = None;
                Some((Err(e), st))
            }
            None => {
                st.cipher = None;
                let tag = st.mac.take()?.sign();
                let _ = st.slot.set(PublicOptions {
                    cipher: AES_256_CTR_HMAC_SHA256.to_string(),
                    hmac: tag.as_ref().to_vec(),
                    cipheroptions: Default::default(),
                });
                None
            }
        }
    })
    .boxed())
}

/// Decrypt `input` with the unwrapped `private` options and the layer's
/// `public` ones. The stream fails at its end, before its last bytes, when
/// the HMAC does not match.
pub fn decrypt(
    input: BlobStream,
    private: &PrivateOptions,
    public: &PublicOptions,
    failure: CryptFailure,
) -> Result<BlobStream, EncryptionError> {
    if public.cipher != AES_256_CTR_HMAC_SHA256 {
        return Err(if public.cipher.is_empty() {
            EncryptionError::Options("no cipher type provided".into())
        } else {
            EncryptionError::CipherType(public.cipher.clone())
        });
    }
    if public.hmac.is_empty() {
        return Err(EncryptionError::NoHmac);
    }
    let nonce = key_and_nonce(private, Some(public))?;
    let cipher = StreamingDecryptingKey::ctr(
        UnboundCipherKey::new(&AES_256, &private.symkey)?,
        DecryptionContext::Iv128(FixedLength::from(nonce)),
    )?;
    struct St {
        input: BlobStream,
        cipher: Option<StreamingDecryptingKey>,
        mac: Option<hmac::Context>,
        expected: Vec<u8>,
        held: Option<Bytes>,
        failure: CryptFailure,
    }
    let st = St {
        input,
        cipher: Some(cipher),
        mac: Some(hmac::Context::with_key(&hmac::Key::new(
            hmac::HMAC_SHA256,
            &private.symkey,
        ))),
        expected: public.hmac.clone(),
        held: None,
        failure,
    };
    Ok(futures::stream::unfold(st, |mut st| async move {
        loop {
            let cipher = st.cipher.as_mut()?;
            match st.input.next().await {
                Some(Ok(chunk)) => {
                    if let Some(m) = st.mac.as_mut() {
                        m.update(&chunk);
                    }
                    let Some(out) = ctr(&chunk, |i, o| cipher.update(i, o).map(|u| u.written().len())) else {
                        st.cipher = None;
                        return Some((Err(EncryptionError::Crypto("AES-CTR").into()), st));
                    };
                    // The previous chunk goes on only now that another came.
                    if let Some(prev) = st.held.replace(out) {
                        return Some((Ok(prev), st));
                    }
                }
                Some(Err(e)) => {
                    st.cipher = None;
                    return Some((Err(e), st));
                }
                None => {
                    st.cipher = None;
                    let tag = st.mac.take()?.sign();
                    if aws_lc_rs::constant_time::verify_slices_are_equal(tag.as_ref(), &st.expected).is_err() {
                        let _ = st.failure.set(EncryptionError::HmacMismatch);
                        return Some((Err(TransportError::from(EncryptionError::HmacMismatch)), st));
                    }
                    let last = st.held.take()?;
                    return Some((Ok(last), st));
                }
            }
        }
    })
    .boxed())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream_of(chunks: Vec<Vec<u8>>) -> BlobStream {
        futures::stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from(c)))).boxed()
    }

    async fn collect(s: BlobStream) -> Result<Vec<u8>, TransportError> {
        let mut out = vec![];
        let mut s = s;
        while let Some(c) = s.next().await {
            out.extend_from_slice(&c?);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn round_trip_in_uneven_chunks_and_tamper_caught_before_the_end() {
        let plain: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let chunks: Vec<Vec<u8>> = plain.chunks(7777).map(<[u8]>::to_vec).collect();
        let slot = PublicSlot::default();
        let private = fresh_options("sha256:x".into()).unwrap();
        let enc = collect(encrypt(stream_of(chunks), &private, slot.clone()).unwrap())
            .await
            .unwrap();
        assert_ne!(enc, plain);
        assert_eq!(enc.len(), plain.len());
        let public = slot.get().unwrap().clone();
        let back = collect(
            decrypt(
                stream_of(enc.chunks(4096).map(<[u8]>::to_vec).collect()),
                &private,
                &public,
                CryptFailure::default(),
            )
            .unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(back, plain);

        let mut bad = enc.clone();
        bad[50_000] ^= 1;
        let failure = CryptFailure::default();
        let mut s = decrypt(stream_of(vec![bad]), &private, &public, failure.clone()).unwrap();
        // One chunk: nothing at all is handed on before the verdict.
        let first = s.next().await.unwrap();
        assert!(first.unwrap_err().to_string().contains("HMAC"));
        assert!(failure.get().is_some());
        let mut wrong = public.clone();
        wrong.hmac[0] ^= 1;
        let s = decrypt(stream_of(vec![enc]), &private, &wrong, CryptFailure::default()).unwrap();
        assert!(collect(s).await.is_err());
    }

    #[test]
    fn the_cipher_matches_openssls_aes_256_ctr() {
        // NIST SP 800-38A F.5.5 (CTR-AES256.Encrypt), first block.
        let key = hex::decode("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4").unwrap();
        let iv: [u8; 16] = hex::decode("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff")
            .unwrap()
            .try_into()
            .unwrap();
        let mut c = StreamingDecryptingKey::ctr(
            UnboundCipherKey::new(&AES_256, &key).unwrap(),
            DecryptionContext::Iv128(FixedLength::from(iv)),
        )
        .unwrap();
        let ct = hex::decode("601ec313775789a5b7a7f504bbf3d228").unwrap();
        let mut out = vec![0; 31];
        let n = c.update(&ct, &mut out).unwrap().written().len();
        assert_eq!(hex::encode(&out[..n]), "6bc1bee22e409f96e93d7e117393172a");
    }
}
