//! `kopeo login`, `kopeo logout`.

use super::CliError;
use crate::auth::{AuthFile, AuthOptions, Credentials, default_login_path};
use crate::registry::{RegistryClient, RegistryOptions, TlsOptions};
use clap::Args;
use std::io::{BufRead as _, Read as _, Write as _};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// REGISTRY (host, or host/namespace/repository)
    registry: String,
    /// path of the authentication file. Default is ${XDG_RUNTIME_DIR}/containers/auth.json
    #[arg(long, value_name = "PATH", env = "REGISTRY_AUTH_FILE", hide_env = true)]
    authfile: Option<PathBuf>,
    /// path of a Docker-compatible config file to update instead
    #[arg(long = "compat-auth-file", value_name = "PATH")]
    compat_auth_file: Option<PathBuf>,
    /// Username for registry
    #[arg(short = 'u', long)]
    username: Option<String>,
    /// Password for registry
    #[arg(short = 'p', long)]
    password: Option<String>,
    /// Take the password from stdin
    #[arg(long = "password-stdin")]
    password_stdin: bool,
    /// Return the current login user for the registry
    #[arg(long = "get-login")]
    get_login: bool,
    /// use certificates at the specified path to access the registry
    #[arg(long = "cert-dir", value_name = "PATH")]
    cert_dir: Option<PathBuf>,
    /// require HTTPS and verify certificates when accessing the registry
    #[arg(long = "tls-verify", value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    tls_verify: Option<bool>,
    /// Write more detailed information to stdout
    #[arg(short = 'v', long)]
    verbose: bool,
}

#[derive(Args, Debug)]
pub struct LogoutArgs {
    /// REGISTRY
    registry: Option<String>,
    /// path of the authentication file. Default is ${XDG_RUNTIME_DIR}/containers/auth.json
    #[arg(long, value_name = "PATH", env = "REGISTRY_AUTH_FILE", hide_env = true)]
    authfile: Option<PathBuf>,
    /// path of a Docker-compatible config file to update instead
    #[arg(long = "compat-auth-file", value_name = "PATH")]
    compat_auth_file: Option<PathBuf>,
    /// Remove the cached credentials for all registries in the auth file
    #[arg(short = 'a', long)]
    all: bool,
}

/// `registry[/path]` as an auth.json key: no scheme, no trailing slash.
fn normalize(arg: &str) -> Result<String, CliError> {
    let s = arg
        .strip_prefix("docker://")
        .or_else(|| arg.strip_prefix("https://"))
        .or_else(|| arg.strip_prefix("http://"))
        .unwrap_or(arg)
        .trim_end_matches('/');
    if s.is_empty() || s.contains(char::is_whitespace) {
        return Err(CliError::new(format!("invalid registry {arg:?}")));
    }
    if s.contains(['@'])
        || s.rsplit('/')
            .next()
            .is_some_and(|last| s.contains('/') && last.contains(':'))
    {
        return Err(CliError::new(format!(
            "invalid registry {arg:?}: a key must not contain a tag or digest"
        )));
    }
    Ok(match s {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".into(),
        other => other.to_string(),
    })
}

fn prompt(label: &str) -> Result<String, CliError> {
    print!("{label}");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError::new(format!("reading {label}: {e}")))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn target_file(authfile: &Option<PathBuf>, compat: &Option<PathBuf>) -> Result<PathBuf, CliError> {
    match (authfile, compat) {
        (Some(_), Some(_)) => Err(CliError::new(
            "options for paths to the credential file and to the Docker-compatible credential file can not be set simultaneously",
        )),
        (Some(p), None) | (None, Some(p)) => Ok(p.clone()),
        (None, None) => Ok(default_login_path()),
    }
}

/// Verify credentials with the registry and store them.
pub async fn login(args: LoginArgs) -> Result<(), CliError> {
    let key = normalize(&args.registry)?;
    let path = target_file(&args.authfile, &args.compat_auth_file)?;
    let host = key.split('/').next().unwrap_or(&key).to_string();
    let repo = key.split_once('/').map(|(_, r)| r).unwrap_or("");
    if args.get_login {
        let creds = AuthOptions {
            authfile: Some(path),
            ..Default::default()
        }
        .resolve(&host, repo)
        .map_err(|e| CliError::new(e.to_string()))?;
        return match creds.username() {
            Some(u) if !u.is_empty() => {
                println!("{u}");
                Ok(())
            }
            _ => Err(CliError::new(format!("not logged into {key}"))),
        };
    }
    if args.password_stdin && args.password.is_some() {
        return Err(CliError::new("--password and --password-stdin are mutually exclusive"));
    }
    let username = match &args.username {
        Some(u) => u.clone(),
        None if args.password_stdin => {
            return Err(CliError::new("must provide --username with --password-stdin"));
        }
        None => prompt("Username: ")?,
    };
    if username.is_empty() {
        return Err(CliError::new("username is required"));
    }
    let password = if args.password_stdin {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| CliError::new(format!("reading password from stdin: {e}")))?;
        s.trim_end_matches(['\r', '\n']).to_string()
    } else if let Some(p) = &args.password {
        p.clone()
    } else {
        rpassword::prompt_password("Password: ").map_err(|e| CliError::new(format!("reading password: {e}")))?
    };
    if password.is_empty() {
        return Err(CliError::new("password is required"));
    }
    let opts = RegistryOptions {
        auth: AuthOptions {
            explicit: Some(Credentials::Basic {
                username: username.clone(),
                password: password.clone(),
            }),
            ..Default::default()
        },
        tls: TlsOptions {
            verify: args.tls_verify,
            cert_dir: args.cert_dir.clone(),
            material: None,
        },
        retry: Default::default(),
        budgets: None,
    };
    let client = RegistryClient::new(&host, opts).map_err(|e| CliError::new(e.to_string()))?;
    client
        .check_auth()
        .await
        .map_err(|e| CliError::new(format!("logging into {key:?}: {e}")))?;
    let mut file = AuthFile::load(&path)
        .map_err(|e| CliError::new(e.to_string()))?
        .unwrap_or_else(|| AuthFile::empty(&path));
    file.set(&key, &username, &password);
    file.save().map_err(|e| CliError::new(e.to_string()))?;
    if args.verbose {
        println!("Used: {}", path.display());
    }
    println!("Login Succeeded!");
    Ok(())
}

/// Remove stored credentials.
pub fn logout(args: LogoutArgs) -> Result<(), CliError> {
    let path = target_file(&args.authfile, &args.compat_auth_file)?;
    let mut file = AuthFile::load(&path).map_err(|e| CliError::new(e.to_string()))?;
    if args.all {
        if let Some(f) = file.as_mut() {
            f.clear();
            f.save().map_err(|e| CliError::new(e.to_string()))?;
        }
        println!("Removed login credentials for all registries");
        return Ok(());
    }
    let Some(reg) = &args.registry else {
        return Err(CliError::new("registry must be given unless --all is used"));
    };
    let key = normalize(reg)?;
    let Some(f) = file.as_mut().filter(|f| f.find_exact(&key)) else {
        return Err(CliError::new(format!("not logged into {key}")));
    };
    f.remove(&key);
    f.save().map_err(|e| CliError::new(e.to_string()))?;
    println!("Removed login credentials for {key}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_keys() {
        assert_eq!(normalize("https://reg.example/").unwrap(), "reg.example");
        assert_eq!(normalize("reg.example/ns/repo").unwrap(), "reg.example/ns/repo");
        assert_eq!(normalize("index.docker.io").unwrap(), "docker.io");
        assert!(normalize("reg.example/ns/repo:tag").is_err());
        assert!(normalize("").is_err());
    }
}
