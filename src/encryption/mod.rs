//! Layer encryption compatible with containers/ocicrypt: the layer cipher
//! (AES-256-CTR with HMAC-SHA256) as stream stages, the options each layer
//! carries, and key wrapping for recipients (JWE so far).

pub mod cipher;
mod error;
pub mod jwe;
pub mod keys;
pub mod layer;
pub mod options;

pub use error::EncryptionError;
