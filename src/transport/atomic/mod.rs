//! `atomic:HOST/NAMESPACE/STREAM:TAG`: an image in OpenShift's integrated
//! registry, as containers/image's openshift transport reaches it. Tags
//! resolve through the image stream (its newest tag event names the image
//! by digest), manifests and blobs come from and go to the registry at
//! HOST, and signatures are objects of the image API rather than files.
//!
//! Who kopeo is to the cluster: on the command line, the kubeconfig's user
//! (`KUBECONFIG`, `~/.kube/config`, else the pod's service account), whose
//! token also opens the registry where no flag or auth file names
//! credentials for HOST. In the operator, never the operator's own
//! service account (it serves every namespace): the API server is the
//! operator's, the identity is the token of the RegistryCredential that
//! names HOST, so a tenant reaches only the streams its own token reaches.

mod api;
mod destination;
mod source;

pub use destination::AtomicDestination;
pub use source::AtomicSource;

use super::{OpenOptions, TransportError};
use crate::auth::Credentials;
use crate::reference::DockerReference;
use crate::registry::RegistryClient;
use secrecy::ExposeSecret as _;
use std::sync::Arc;

/// What can go wrong talking to the image API.
#[derive(Debug, thiserror::Error)]
pub enum AtomicError {
    #[error("atomic: reading the cluster configuration (kubeconfig, or the pod's service account): {0}")]
    Config(String),
    #[error("atomic: reading the token file {path}: {reason}")]
    TokenFile { path: String, reason: String },
    #[error("atomic: a client for the API server {server}: {reason}")]
    Client { server: String, reason: String },
    #[error("atomic: {path}: {reason}")]
    Request { path: String, reason: String },
    #[error("atomic: {what}: {message}")]
    Api { what: String, code: u16, message: String },
    #[error("atomic: {what}: the answer is not what OpenShift sends: {reason}")]
    Decode { what: String, reason: String },
    #[error("atomic: no tag {tag:?} in image stream {stream} (No matching tag found)")]
    NoMatchingTag { tag: String, stream: String },
    #[error("atomic: invalid format of docker reference {0:?}: missing '/'")]
    ImageReference(String),
    #[error(
        "atomic: {0}: the operator reaches OpenShift's image API only with the token of a RegistryCredential for this registry (its password), never with its own service account"
    )]
    NoCredentials(String),
    #[error("atomic: only simple signatures can be stored through the image API, not {0}")]
    SignatureFormat(&'static str),
    #[error("atomic: the manifest's digest is not known yet, no signature can name it")]
    NoManifestYet,
}

/// Whose identity `atomic:` uses with the cluster.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AtomicAccess {
    /// The kubeconfig's (or the pod's) user; its token opens the registry
    /// too where nothing else gives credentials (the CLI, as upstream).
    #[default]
    Kubeconfig,
    /// The API server of the kubeconfig or pod, but the token of the
    /// registry's credentials (the operator: each tenant's own).
    RegistryCredentials,
}

/// An open image stream: the image API and the registry behind it.
struct Stream {
    api: api::ImageApi,
    registry: Arc<RegistryClient>,
    reference: DockerReference,
    namespace: String,
    name: String,
}

impl Stream {
    async fn open(reference: &DockerReference, opts: &OpenOptions) -> Result<Stream, TransportError> {
        let mut config = kube::Config::infer()
            .await
            .map_err(|e| AtomicError::Config(e.to_string()))?;
        let mut registry_opts = opts.registry.clone();
        match opts.atomic {
            AtomicAccess::Kubeconfig => {
                if let Some(token) = token_of(&config.auth_info)? {
                    // The registry takes the token as a password, any user
                    // name; OpenShift's own pull secrets say "serviceaccount".
                    registry_opts.auth.fallback = Some(Credentials::Basic {
                        username: "serviceaccount".into(),
                        password: token,
                    });
                }
            }
            AtomicAccess::RegistryCredentials => {
                let no_token = || AtomicError::NoCredentials(reference.domain().to_string());
                let creds = registry_opts
                    .auth
                    .resolve(reference.domain(), reference.path())
                    .map_err(|_| no_token())?;
                let token = match creds {
                    Credentials::Basic { password, .. } if !password.is_empty() => password,
                    Credentials::Bearer(t) => t,
                    _ => return Err(no_token().into()),
                };
                config.auth_info = kube::config::AuthInfo {
                    token: Some(token.into()),
                    ..Default::default()
                };
            }
        }
        let api = api::ImageApi::connect(config).await?;
        let registry = match registry_opts.auth.fallback {
            Some(_) => Arc::new(RegistryClient::new(reference.domain(), registry_opts)?),
            None => opts.client(reference.domain())?,
        };
        let (namespace, name) = reference.path().split_once('/').unwrap_or(("", reference.path()));
        Ok(Stream {
            api,
            registry,
            namespace: namespace.to_string(),
            name: name.to_string(),
            reference: reference.clone(),
        })
    }

    /// `namespace/stream`, for messages.
    fn describe(&self) -> String {
        format!("atomic:{}", self.reference.familiar())
    }
}

/// The bearer token a kubeconfig user authenticates with, if it uses one.
fn token_of(auth: &kube::config::AuthInfo) -> Result<Option<String>, AtomicError> {
    if let Some(t) = &auth.token {
        return Ok(Some(t.expose_secret().to_string()));
    }
    match &auth.token_file {
        Some(path) => std::fs::read_to_string(path)
            .map(|t| Some(t.trim().to_string()))
            .map_err(|e| AtomicError::TokenFile {
                path: path.clone(),
                reason: e.to_string(),
            }),
        None => Ok(None),
    }
}

/// Open `reference` for reading.
pub async fn open_source(reference: &DockerReference, opts: &OpenOptions) -> Result<AtomicSource, TransportError> {
    AtomicSource::open(Stream::open(reference, opts).await?).await
}

/// Open `reference` for writing.
pub async fn open_destination(
    reference: &DockerReference,
    opts: &OpenOptions,
) -> Result<AtomicDestination, TransportError> {
    AtomicDestination::open(Stream::open(reference, opts).await?)
}
