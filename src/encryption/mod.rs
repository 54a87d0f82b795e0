//! Layer encryption compatible with containers/ocicrypt: the layer cipher
//! (AES-256-CTR with HMAC-SHA256) as stream stages, the options each layer
//! carries, and key wrapping for recipients (JWE, and key providers run as
//! commands or reached over gRPC).

pub mod cipher;
mod error;
mod grpc;
pub mod jwe;
pub mod keys;
pub mod layer;
pub mod options;
pub mod pgp;
pub mod pkcs7;
pub mod provider;

pub use error::EncryptionError;
