//! `kopeo standalone-sign` and `kopeo standalone-verify`: simple signatures
//! made and checked from local files, as skopeo's commands of those names.

use super::CliError;
use crate::signature::{self, openpgp::TrustedKeys};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct StandaloneSignArgs {
    /// MANIFEST DOCKER-REFERENCE KEY-FINGERPRINT
    args: Vec<String>,
    /// output the signature to SIGNATURE
    #[arg(short = 'o', long = "output", value_name = "SIGNATURE")]
    output: Option<PathBuf>,
    /// file that contains a passphrase for the --sign-by key
    #[arg(long = "passphrase-file", value_name = "PATH")]
    passphrase_file: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct StandaloneVerifyArgs {
    /// MANIFEST DOCKER-REFERENCE KEY-FINGERPRINTS SIGNATURE
    args: Vec<String>,
    /// File containing public keys. If not specified, will use local GPG keys.
    #[arg(long = "public-key-file", value_name = "PATH")]
    public_key_file: Option<PathBuf>,
}

/// The passphrase in `path`: its first line without the line feed, as
/// skopeo's `ReadPassphraseFile` (and gpg) read it; empty means none.
pub(crate) fn read_passphrase_file(path: Option<&PathBuf>) -> Result<Option<String>, CliError> {
    let Some(path) = path else { return Ok(None) };
    let data = std::fs::read(path).map_err(|e| CliError::new(format!("open {}: {e}", path.display())))?;
    let line = data.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8(line.to_vec())
        .map_err(|_| CliError::new(format!("reading passphrase file: {} is not UTF-8", path.display())))?;
    Ok((!line.is_empty()).then_some(line))
}

/// `standalone-sign`.
pub fn standalone_sign(a: StandaloneSignArgs) -> Result<(), CliError> {
    let (Some(output), [manifest, reference, key]) = (&a.output, a.args.as_slice()) else {
        return Err(CliError::new(
            "Usage: kopeo standalone-sign manifest docker-reference key-fingerprint -o signature",
        ));
    };
    let data = std::fs::read(manifest).map_err(|e| CliError::new(format!("Error reading {manifest}: {e}")))?;
    let passphrase = read_passphrase_file(a.passphrase_file.as_ref())?;
    let sig = signature::sign_simple(&data, reference, key, passphrase.as_deref())
        .map_err(|e| CliError::new(format!("Error creating signature: {e}")))?;
    std::fs::write(output, sig)
        .map_err(|e| CliError::new(format!("Error writing signature to {}: {e}", output.display())))
}

/// `standalone-verify`.
pub fn standalone_verify(a: StandaloneVerifyArgs) -> Result<(), CliError> {
    let [manifest, reference, fingerprints, sig_path] = a.args.as_slice() else {
        return Err(CliError::new(
            "Usage: kopeo standalone-verify manifest docker-reference key-fingerprint signature",
        ));
    };
    let mut expected: Vec<String> = fingerprints.split(',').map(str::to_string).collect();
    let any = expected == ["any"];
    if a.public_key_file.is_none() && any {
        return Err(CliError::new("Cannot use any fingerprint without a public key file"));
    }
    let manifest_bytes =
        std::fs::read(manifest).map_err(|e| CliError::new(format!("Error reading manifest from {manifest}: {e}")))?;
    let sig =
        std::fs::read(sig_path).map_err(|e| CliError::new(format!("Error reading signature from {sig_path}: {e}")))?;
    let key_data = match &a.public_key_file {
        Some(p) => std::fs::read(p)
            .map_err(|e| CliError::new(format!("Error reading public keys from {}: {e}", p.display())))?,
        None => {
            signature::gpg::export_public_keys().map_err(|e| CliError::new(format!("Error initializing GPG: {e}")))?
        }
    };
    let keys = TrustedKeys::parse(&key_data).map_err(|e| CliError::new(format!("Error initializing GPG: {e}")))?;
    if any {
        expected = keys.fingerprints();
    }
    let ok = signature::verify_standalone(&keys, &expected, &manifest_bytes, reference, &sig)
        .map_err(|e| CliError::new(format!("Error verifying signature: {e}")))?;
    println!(
        "Signature verified using fingerprint {}, digest {}",
        ok.key, ok.payload.manifest_digest
    );
    Ok(())
}
