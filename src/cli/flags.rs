//! Flag groups shared by several commands, named as skopeo names them.

use crate::auth::{AuthOptions, Credentials};
use crate::duration::GoDuration;
use crate::options::RetrySettings;
use crate::registry::{RegistryOptions, RetryOptions, TlsOptions};
use crate::transport::OpenOptions;
use clap::Args;
use std::path::PathBuf;

pub use crate::duration::parse_duration;

/// `--retry-times`, `--retry-delay`.
#[derive(Args, Debug, Clone, Default)]
pub struct RetryFlags {
    /// the number of times to possibly retry
    #[arg(long = "retry-times", value_name = "N", default_value_t = 0)]
    pub retry_times: u32,
    /// Fixed delay between retries. If not set, retry uses an exponential backoff delay.
    #[arg(long = "retry-delay", value_name = "DURATION")]
    pub retry_delay: Option<GoDuration>,
}

impl RetryFlags {
    /// As retry settings.
    pub fn settings(&self) -> RetrySettings {
        RetrySettings {
            times: self.retry_times,
            delay: self.retry_delay,
        }
    }

    /// As the registry client's retry policy.
    pub fn options(&self) -> RetryOptions {
        self.settings().options()
    }
}

/// Why one side's credential flags were refused; `side` is `--src`,
/// `--dest`, or empty for a command with one image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialFlagError {
    #[error("{}only one of --creds, --username/--password and --registry-token may be given", lead(.side))]
    SeveralKinds { side: &'static str },
    #[error("{}--creds must not be empty", lead(.side))]
    EmptyCreds { side: &'static str },
    #[error("{}--username and --password must be given together", lead(.side))]
    HalfBasic { side: &'static str },
    #[error("{}--no-creds cannot be combined with credentials", lead(.side))]
    NoCredsWithCredentials { side: &'static str },
}

/// `side` as the start of a message.
fn lead(side: &str) -> String {
    if side.is_empty() {
        String::new()
    } else {
        format!("{side}: ")
    }
}

/// The side a flag prefix (`--src-`, `--dest-`, `--`) names.
fn side_name(prefix: &'static str) -> &'static str {
    match prefix.strip_suffix('-') {
        Some("-") | None => "",
        Some(side) => side,
    }
}

impl From<CredentialFlagError> for super::CliError {
    fn from(e: CredentialFlagError) -> Self {
        super::CliError::new(e.to_string())
    }
}

/// Build credentials from `--creds`, `--username/--password`, `--registry-token`.
fn explicit_creds(
    creds: &Option<String>,
    user: &Option<String>,
    pass: &Option<String>,
    token: &Option<String>,
    side: &'static str,
) -> Result<Option<Credentials>, CredentialFlagError> {
    let n = [creds.is_some(), user.is_some() || pass.is_some(), token.is_some()]
        .iter()
        .filter(|x| **x)
        .count();
    if n > 1 {
        return Err(CredentialFlagError::SeveralKinds { side });
    }
    if let Some(c) = creds {
        if c.is_empty() {
            return Err(CredentialFlagError::EmptyCreds { side });
        }
        return Ok(Some(Credentials::from_creds_flag(c)));
    }
    match (user, pass) {
        (Some(u), Some(p)) => {
            return Ok(Some(Credentials::Basic {
                username: u.clone(),
                password: p.clone(),
            }));
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(CredentialFlagError::HalfBasic { side });
        }
        _ => {}
    }
    Ok(token.clone().map(Credentials::Bearer))
}

macro_rules! image_flags {
    ($name:ident, $prefix:literal, $doc:literal $(, creds_alias = $alias:literal)?) => {
        #[doc = $doc]
        #[derive(Args, Debug, Clone, Default)]
        pub struct $name {
            /// path of the authentication file for this side (overrides --authfile)
            #[arg(id = concat!($prefix, "authfile"), long = concat!($prefix, "authfile"), value_name = "PATH")]
            pub authfile: Option<PathBuf>,
            /// use certificates at PATH (*.crt, *.cert, *.key) to connect to the registry
            #[arg(id = concat!($prefix, "cert-dir"), long = concat!($prefix, "cert-dir"), value_name = "PATH")]
            pub cert_dir: Option<PathBuf>,
            /// use USERNAME[:PASSWORD] for accessing the registry
            #[arg(id = concat!($prefix, "creds"), long = concat!($prefix, "creds"), value_name = "USERNAME[:PASSWORD]" $(, alias = $alias)?)]
            pub creds: Option<String>,
            /// use USERNAME for accessing the registry
            #[arg(id = concat!($prefix, "username"), long = concat!($prefix, "username"), value_name = "USERNAME")]
            pub username: Option<String>,
            /// use PASSWORD for accessing the registry
            #[arg(id = concat!($prefix, "password"), long = concat!($prefix, "password"), value_name = "PASSWORD")]
            pub password: Option<String>,
            /// bearer token for accessing the registry
            #[arg(id = concat!($prefix, "registry-token"), long = concat!($prefix, "registry-token"), value_name = "TOKEN")]
            pub registry_token: Option<String>,
            /// access the registry anonymously
            #[arg(id = concat!($prefix, "no-creds"), long = concat!($prefix, "no-creds"))]
            pub no_creds: bool,
            /// require HTTPS and verify certificates when talking to the container registry or daemon
            #[arg(id = concat!($prefix, "tls-verify"), long = concat!($prefix, "tls-verify"), value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
            pub tls_verify: Option<bool>,
            /// use docker daemon host at HOST (docker-daemon: only)
            #[arg(id = concat!($prefix, "daemon-host"), long = concat!($prefix, "daemon-host"), value_name = "HOST")]
            pub daemon_host: Option<String>,
            /// directory to use to share blobs across OCI repositories
            #[arg(id = concat!($prefix, "shared-blob-dir"), long = concat!($prefix, "shared-blob-dir"), value_name = "DIRECTORY")]
            pub shared_blob_dir: Option<PathBuf>,
        }

        impl $name {
            /// Engine options for this side; `authfile` is the shared
            /// `--authfile`, `tls_verify` a deprecated `--tls-verify` that
            /// applies where this side gives none.
            pub fn open_options_with(&self, authfile: &Option<PathBuf>, retry: RetryOptions, tls_verify: Option<bool>) -> Result<OpenOptions, CredentialFlagError> {
                let mut o = self.open_options(authfile, retry)?;
                if o.registry.tls.verify.is_none() {
                    o.registry.tls.verify = tls_verify;
                }
                Ok(o)
            }

            /// Engine options for this side; `authfile` is the shared `--authfile`.
            pub fn open_options(&self, authfile: &Option<PathBuf>, retry: RetryOptions) -> Result<OpenOptions, CredentialFlagError> {
                let side = side_name(concat!("--", $prefix));
                let explicit = explicit_creds(&self.creds, &self.username, &self.password, &self.registry_token, side)?;
                if self.no_creds && explicit.is_some() {
                    return Err(CredentialFlagError::NoCredsWithCredentials { side });
                }
                Ok(OpenOptions {
                    registry: RegistryOptions {
                        auth: AuthOptions { authfile: self.authfile.clone().or_else(|| authfile.clone()), explicit, no_creds: self.no_creds, inline: None, fallback: None },
                        tls: TlsOptions { verify: self.tls_verify, cert_dir: self.cert_dir.clone(), material: None },
                        retry,
                        budgets: None,
                    },
                    shared_blob_dir: self.shared_blob_dir.clone(),
                    pool: None,
                    oci_accept_uncompressed_layers: false,
                    daemon_host: self.daemon_host.clone(),
                    additional_tags: vec![],
                    signature_storage: None,
                    atomic: Default::default(),
                })
            }
        }
    };
}

// skopeo still accepts the old `--screds` and `--dcreds`, hidden.
image_flags!(
    SrcFlags,
    "src-",
    "Source-side flags of `copy` and `sync`.",
    creds_alias = "screds"
);
image_flags!(
    DestFlags,
    "dest-",
    "Destination-side flags of `copy` and `sync`.",
    creds_alias = "dcreds"
);
image_flags!(ImageFlags, "", "Flags of commands that read or change one image.");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_flags_conflict() {
        let f = ImageFlags {
            creds: Some("a:b".into()),
            registry_token: Some("t".into()),
            ..Default::default()
        };
        assert!(f.open_options(&None, RetryOptions::default()).is_err());
        let f = ImageFlags {
            username: Some("a".into()),
            ..Default::default()
        };
        assert!(f.open_options(&None, RetryOptions::default()).is_err());
        let f = ImageFlags {
            creds: Some("a:b:c".into()),
            ..Default::default()
        };
        let o = f.open_options(&None, RetryOptions::default()).unwrap();
        assert_eq!(
            o.registry.auth.explicit,
            Some(Credentials::Basic {
                username: "a".into(),
                password: "b:c".into()
            })
        );
    }
}
