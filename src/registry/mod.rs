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

mod blob;
pub mod budget;
mod client;
mod error;
mod lists;
mod manifests;
mod referrers;
mod response;
pub(crate) mod signatures;
pub mod tls;
pub mod tls_details;
mod token_auth;
mod upload;

pub use client::{ManifestHead, MountOutcome, RegistryClient, RegistryOptions, RetryOptions};
pub use error::{RegistryError, causes};
pub(crate) use lists::parse_next_link;
pub use referrers::ReferrersAnswer;
pub use tls::{TlsMaterial, TlsOptions};
pub(crate) use token_auth::token_from_reply;
pub use token_auth::{Challenge, parse_challenge};

/// Registry clients shared across many images, one per registry host, so
/// that they share connections and cached tokens (used by `sync`). A pool
/// serves one side of an operation: every client in it has the same options
/// unless the caller supplies per-registry ones.
#[derive(Debug, Default)]
pub struct ClientPool {
    clients: std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<RegistryClient>>>,
}

impl ClientPool {
    /// The pool's client for `registry`, created with `opts` on first use.
    pub fn get(&self, registry: &str, opts: &RegistryOptions) -> Result<std::sync::Arc<RegistryClient>, RegistryError> {
        let mut map = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = map.get(registry) {
            return Ok(c.clone());
        }
        let c = std::sync::Arc::new(RegistryClient::new(registry, opts.clone())?);
        map.insert(registry.to_string(), c.clone());
        Ok(c)
    }
}

static USER_AGENT_PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// `--user-agent-prefix`: put `prefix` before kopeo's own user agent.
pub fn set_user_agent_prefix(prefix: &str) {
    let _ = USER_AGENT_PREFIX.set(prefix.to_string());
}

/// The User-Agent registry requests carry.
pub fn user_agent() -> String {
    let own = concat!("kopeo/", env!("CARGO_PKG_VERSION"));
    match USER_AGENT_PREFIX.get() {
        Some(p) if !p.is_empty() => format!("{p} {own}"),
        _ => own.to_string(),
    }
}

/// The HTTP host that serves a registry name (`docker.io` is served elsewhere).
pub fn endpoint_host(registry: &str) -> &str {
    if registry == crate::reference::docker::DEFAULT_DOMAIN {
        "registry-1.docker.io"
    } else {
        registry
    }
}
