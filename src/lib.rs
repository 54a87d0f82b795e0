//! kopeo: move container images between registries, layouts and archives —
//! the engine behind the `kopeo` CLI and the Kubernetes operator.
//!
//! Data flows one way: a [`reference::ImageReference`] is parsed, its
//! [`transport`] opens a source and a destination, and the [`copy`] pipeline
//! streams every blob once between them.

pub mod auth;
pub mod cli;
pub mod compression;
pub mod copy;
pub mod digest;
pub mod duration;
pub mod encryption;
#[doc(hidden)]
pub mod fuzzing;
pub mod image_config;
pub mod manifest;
pub mod manifest_digest;
pub mod operator;
pub mod options;
pub mod pem;
pub mod reference;
pub mod registry;
pub mod signature;
pub mod skopeo_texts;
pub mod sync;
pub mod temp;
pub mod timestamp;
pub mod transport;

/// Install the process-wide rustls crypto provider (aws-lc-rs). Call once at
/// start; later calls are harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
