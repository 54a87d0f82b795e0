//! Docker credential helpers (`docker-credential-NAME get`).

use super::{AuthError, Credentials};
use std::io::Write as _;
use std::process::{Command, Stdio};

/// Ask `docker-credential-{name}` for the credentials of `registry`.
/// `None` when the helper knows nothing about it.
pub fn get(name: &str, registry: &str) -> Result<Option<Credentials>, AuthError> {
    let err = |reason: String| AuthError::Helper {
        helper: name.to_string(),
        reason,
    };
    let mut child = Command::new(format!("docker-credential-{name}"))
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| err(format!("cannot run it: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(registry.as_bytes()).map_err(|e| err(e.to_string()))?;
    }
    let out = child.wait_with_output().map_err(|e| err(e.to_string()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        if stdout.contains("credentials not found") {
            return Ok(None);
        }
        return Err(err(format!("exited with {}: {}", out.status, stdout.trim())));
    }
    #[derive(serde::Deserialize)]
    struct Reply {
        #[serde(rename = "Username")]
        username: String,
        #[serde(rename = "Secret")]
        secret: String,
    }
    let r: Reply = serde_json::from_slice(&out.stdout).map_err(|e| err(format!("bad reply: {e}")))?;
    if r.username == "<token>" {
        return Ok(Some(Credentials::IdentityToken {
            username: String::new(),
            token: r.secret,
        }));
    }
    Ok(Some(Credentials::Basic {
        username: r.username,
        password: r.secret,
    }))
}
