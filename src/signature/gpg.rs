//! Signing with the user's GnuPG keyring, the way gpgme does it: by running
//! `gpg` (secret keys live behind gpg-agent, so there is no other way in),
//! with the passphrase, when given, on a pipe in loopback pinentry mode and
//! the outcome read from gpg's status lines rather than its messages.

use super::SignatureError;
use std::io::Write;
use std::process::{Command, Stdio};

/// The gpg program: `$KOPEO_GPG` (for tests and unusual installs) or `gpg`.
fn gpg() -> Command {
    Command::new(std::env::var_os("KOPEO_GPG").unwrap_or_else(|| "gpg".into()))
}

/// Sign `payload` (a non-detached, binary OpenPGP message, as gpgme's
/// `SigModeNormal` without armor makes) with the secret key `key` (a
/// fingerprint, key ID, or user ID gpg can find).
pub fn sign(payload: &[u8], key: &str, passphrase: Option<&str>) -> Result<Vec<u8>, SignatureError> {
    if let Some(p) = passphrase
        && p.contains('\n')
    {
        return Err(SignatureError::PassphraseLineBreak);
    }
    let fingerprint = secret_key_fingerprint(key)?;
    let dir = tempfile::Builder::new()
        .prefix("kopeo-sign-")
        .tempdir()
        .map_err(|e| SignatureError::Gpg(format!("creating a temporary directory: {e}")))?;
    let input = dir.path().join("payload");
    let output = dir.path().join("signature");
    std::fs::write(&input, payload).map_err(|e| SignatureError::Gpg(format!("writing the payload: {e}")))?;
    let mut cmd = gpg();
    cmd.args(["--batch", "--no-tty", "--status-fd", "1", "--yes"]);
    if passphrase.is_some() {
        cmd.args(["--pinentry-mode", "loopback", "--passphrase-fd", "0"]);
    }
    // The primary's fingerprint: gpg picks its signing subkey, if that is
    // what signs, as it does for gpgme's key object.
    cmd.arg("--local-user").arg(&fingerprint);
    cmd.arg("--sign").arg("--output").arg(&output).arg(&input);
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| SignatureError::Gpg(format!("running gpg: {e}")))?;
    if let (Some(mut stdin), Some(p)) = (child.stdin.take(), passphrase) {
        // gpg may exit before reading (an unprotected key): a broken pipe is fine.
        let _ = stdin.write_all(format!("{p}\n").as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| SignatureError::Gpg(format!("running gpg: {e}")))?;
    let status = String::from_utf8_lossy(&out.stdout);
    let has = |word: &str| {
        status.lines().any(|l| {
            l.strip_prefix("[GNUPG:] ")
                .is_some_and(|r| r.split(' ').next() == Some(word))
        })
    };
    if has("BAD_PASSPHRASE") || failure_codes(&status).any(|c| c & 0xffff == GPG_ERR_BAD_PASSPHRASE) {
        return Err(SignatureError::BadPassphrase);
    }
    if !out.status.success() || !has("SIG_CREATED") {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("no message");
        return Err(SignatureError::Gpg(format!(
            "gpg failed to sign with key {fingerprint}: {last}"
        )));
    }
    std::fs::read(&output).map_err(|e| SignatureError::Gpg(format!("reading gpg's signature: {e}")))
}

/// libgpg-error's code for a wrong passphrase (the low 16 bits of a status code).
const GPG_ERR_BAD_PASSPHRASE: u32 = 11;

/// The error codes of `FAILURE`/`ERROR` status lines (`[GNUPG:] FAILURE sign 67108875`).
fn failure_codes(status: &str) -> impl Iterator<Item = u32> + '_ {
    status.lines().filter_map(|l| {
        let mut w = l.strip_prefix("[GNUPG:] ")?.split(' ');
        matches!(w.next(), Some("FAILURE" | "ERROR")).then_some(())?;
        w.nth(1)?.trim().parse().ok()
    })
}

/// The fingerprint of the one secret key `key` names, as gpgme's
/// `GetKey(key, true)` finds it.
fn secret_key_fingerprint(key: &str) -> Result<String, SignatureError> {
    let out = gpg()
        .args(["--batch", "--no-tty", "--with-colons", "--list-secret-keys", "--"])
        .arg(key)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| SignatureError::Gpg(format!("running gpg: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    // A "sec" record starts each key; its first "fpr" record is the primary's.
    let mut found = Vec::new();
    let mut want_fpr = false;
    for line in text.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        match fields.first() {
            Some(&"sec") => want_fpr = true,
            Some(&"fpr") if want_fpr => {
                if let Some(f) = fields.get(9) {
                    found.push(f.to_string());
                }
                want_fpr = false;
            }
            _ => {}
        }
    }
    match found.len() {
        0 => Err(SignatureError::KeyNotFound(key.to_string())),
        1 => Ok(found.remove(0)),
        _ => Err(SignatureError::AmbiguousKey(key.to_string())),
    }
}

/// The user's public keys for `standalone-verify` without a key file:
/// exported from their keyring by gpg, then used like any key data.
pub fn export_public_keys() -> Result<Vec<u8>, SignatureError> {
    let out = gpg()
        .args(["--batch", "--no-tty", "--export"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| SignatureError::Gpg(format!("running gpg: {e}")))?;
    if !out.status.success() {
        return Err(SignatureError::Gpg(format!(
            "gpg --export failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out.stdout)
}
