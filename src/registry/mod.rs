//! The Docker Registry HTTP API v2 / OCI distribution client.
//!
//! One [`RegistryClient`] per registry host and option set: it pings once,
//! follows the registry's auth challenge (anonymous, basic, bearer), caches
//! tokens per scope set, re-authenticates on 401, retries transient failures,
//! and resumes interrupted blob downloads with `Range`.
//!
//! kopeo speaks the protocol on reqwest directly instead of through
//! oci-client: that crate has no manifest DELETE, no `Link` paging, no retry
//! or Range resume, swallows token errors, keeps one credential per host,
//! treats a 202 mount answer as an error and has no client certificates, all
//! of which `copy`, `sync` and `delete` need.

mod auth;
mod blob;
mod client;
mod error;
mod tls;

pub use auth::{Challenge, parse_challenge};
pub use client::{ManifestHead, MountOutcome, RegistryClient, RegistryOptions, RetryOptions};
pub use error::RegistryError;
pub use tls::TlsOptions;

/// The HTTP host that serves a registry name (`docker.io` is served elsewhere).
pub fn endpoint_host(registry: &str) -> &str {
    if registry == crate::reference::docker::DEFAULT_DOMAIN {
        "registry-1.docker.io"
    } else {
        registry
    }
}
