//! Registry credentials: the containers-auth.json(5) lookup order, most
//! specific key first, credential helpers, and writing for `login`/`logout`.

mod file;
mod helper;

pub use file::{AuthFile, default_login_path, lookup_paths, normalize_key};

use std::fmt;
use std::path::PathBuf;

/// Why credentials could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("reading auth file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing auth file {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing auth file {path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("credential helper docker-credential-{helper}: {reason}")]
    Helper { helper: String, reason: String },
    #[error("not logged into {0}")]
    NotLoggedIn(String),
}

/// Credentials for one registry (or repository namespace).
#[derive(Clone, PartialEq, Eq, Default)]
pub enum Credentials {
    /// No credentials: anonymous access.
    #[default]
    Anonymous,
    /// Username and password (basic auth, or basic auth to the token server).
    Basic { username: String, password: String },
    /// An OAuth2 refresh token (auth.json `identitytoken`).
    IdentityToken { username: String, token: String },
    /// A bearer token used as is (`--registry-token`).
    Bearer(String),
}

// Never print secrets, even in debug output.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            Credentials::IdentityToken { username, .. } => {
                write!(f, "IdentityToken({username}, <redacted>)")
            }
            Credentials::Bearer(_) => f.write_str("Bearer(<redacted>)"),
        }
    }
}

impl Credentials {
    /// Parse `--creds USER[:PASSWORD]`.
    pub fn from_creds_flag(s: &str) -> Credentials {
        match s.split_once(':') {
            Some((u, p)) => Credentials::Basic {
                username: u.to_string(),
                password: p.to_string(),
            },
            None => Credentials::Basic {
                username: s.to_string(),
                password: String::new(),
            },
        }
    }
    /// The user name, if these credentials carry one.
    pub fn username(&self) -> Option<&str> {
        match self {
            Credentials::Basic { username, .. } | Credentials::IdentityToken { username, .. } => Some(username),
            _ => None,
        }
    }
}

/// How to find credentials for one side of an operation: the explicit flags
/// override the auth files.
#[derive(Debug, Clone, Default)]
pub struct AuthOptions {
    /// `--authfile` (or `REGISTRY_AUTH_FILE`): use only this file.
    pub authfile: Option<PathBuf>,
    /// `--creds` / `--username` + `--password` / `--registry-token`.
    pub explicit: Option<Credentials>,
    /// `--no-creds`: access the registry anonymously.
    pub no_creds: bool,
    /// Credentials held in memory (the operator's, rendered from Secrets),
    /// searched instead of any file.
    pub inline: Option<std::sync::Arc<AuthFile>>,
    /// Used where no flag or file names credentials for the registry (the
    /// cluster's token for OpenShift's registry, `atomic:`).
    pub fallback: Option<Credentials>,
}

impl AuthOptions {
    /// The credentials to use for `registry` and repository `repo`.
    pub fn resolve(&self, registry: &str, repo: &str) -> Result<Credentials, AuthError> {
        if self.no_creds {
            return Ok(Credentials::Anonymous);
        }
        if let Some(c) = &self.explicit {
            return Ok(c.clone());
        }
        let otherwise = || self.fallback.clone().unwrap_or(Credentials::Anonymous);
        if let Some(doc) = &self.inline {
            return Ok(doc.find(registry, repo)?.unwrap_or_else(otherwise));
        }
        for path in lookup_paths(self.authfile.as_deref()) {
            let Some(file) = AuthFile::load(&path)? else {
                continue;
            };
            if let Some(c) = file.find(registry, repo)? {
                tracing::debug!(registry, file = %path.display(), "using credentials from auth file");
                return Ok(c);
            }
        }
        Ok(otherwise())
    }
}
