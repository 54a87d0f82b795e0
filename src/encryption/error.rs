//! Why a layer could not be encrypted or decrypted. Messages name the key,
//! file or layer at fault and never carry key material.

/// One variant per cause.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EncryptionError {
    #[error("Invalid recipient format")]
    RecipientFormat,
    #[error("Provided protocol not recognized")]
    UnknownProtocol,
    #[error("Unable to read file: open {path}: {why}")]
    ReadRecipient { path: String, why: String },
    #[error("open {path}: {why}")]
    ReadKey { path: String, why: String },
    #[error("File provided is not a public key")]
    NotAPublicKey,
    #[error("{0}: unsupported key: {1}")]
    UnsupportedKey(&'static str, String),
    #[error(
        "JWE: the private key is encrypted (legacy PEM encryption is not supported; decrypt it with openssl first)"
    )]
    EncryptedPem,
    #[error("{0}: Missing password for encrypted private key")]
    MissingPassword(&'static str),
    #[error("{0} encryption is not supported by kopeo yet")]
    SchemeNotSupported(&'static str),
    #[error("open {path}: {why}")]
    PasswordFile { path: String, why: String },
    #[error("could not parse file descriptor {0}")]
    PasswordFd(String),
    #[error("when choosing layers to encrypt, layer index {index} out of range ({count} layers exist)")]
    LayerIndex { index: i64, count: usize },
    #[error("Error while parsing keyprovider config file {path}: {why}")]
    ProviderConfig { path: String, why: String },
    #[error("key provider {0:?} is not configured (OCICRYPT_KEYPROVIDER_CONFIG names the providers' file)")]
    ProviderNotConfigured(String),
    #[error("key provider {name}: {why}")]
    Provider { name: String, why: String },
    #[error("no wrapped keys produced by encryption")]
    NoWrappedKeys,
    #[error("PKCS7: {0}")]
    Pkcs7(String),
    #[error("File provided is not an x509 cert")]
    NotACertificate,
    #[error("PGP: {0}")]
    Pgp(String),
    #[error("JWE: {0}")]
    Jwe(String),
    #[error("crypto failure: {0}")]
    Crypto(&'static str),
    #[error("layer options: {0}")]
    Options(String),
    #[error("unsupported cipher type: {0}")]
    CipherType(String),
    #[error("HMAC is not provided for decryption process")]
    NoHmac,
    #[error("invalid key length of {0} bytes; need 32 bytes")]
    KeyLength(usize),
    #[error(
        "could not properly decrypt byte stream: the HMAC over the ciphertext does not match (tampered or corrupt layer)"
    )]
    HmacMismatch,
    #[error("could not base64 decode the annotation")]
    AnnotationBase64,
    #[error("missing private key needed for decryption:\n{0}")]
    NoPrivateKey(String),
    #[error("no suitable key unwrapper found or none of the private keys could be used for decryption:\n{0}")]
    NoSuitableKey(String),
    #[error("encrypting blob {blob}: {source}")]
    Encrypting {
        blob: crate::digest::Digest,
        #[source]
        source: Box<EncryptionError>,
    },
    #[error("decrypting layer {layer}: {source}")]
    Layer {
        layer: crate::digest::Digest,
        #[source]
        source: Box<EncryptionError>,
    },
}

impl From<aws_lc_rs::error::Unspecified> for EncryptionError {
    fn from(_: aws_lc_rs::error::Unspecified) -> Self {
        EncryptionError::Crypto("aws-lc")
    }
}
