//! `kopeo standalone-sign`, `standalone-verify` and `generate-sigstore-key`,
//! as skopeo's commands of those names, and the sigstore signing keys the
//! copy flags name.

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
/// skopeo's `ReadPassphraseFile` (and gpg) read it. An empty one is a
/// passphrase for sigstore keys; gpg signing treats it as none, as upstream.
pub(crate) fn read_passphrase_file(path: Option<&PathBuf>) -> Result<Option<String>, CliError> {
    let Some(path) = path else { return Ok(None) };
    let data = std::fs::read(path).map_err(|e| CliError::new(format!("open {}: {e}", path.display())))?;
    let line = data.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8(line.to_vec())
        .map_err(|_| CliError::new(format!("reading passphrase file: {} is not UTF-8", path.display())))?;
    Ok(Some(line))
}

/// `standalone-sign`.
pub fn standalone_sign(a: StandaloneSignArgs) -> Result<(), CliError> {
    let (Some(output), [manifest, reference, key]) = (&a.output, a.args.as_slice()) else {
        return Err(CliError::new(
            "Usage: kopeo standalone-sign manifest docker-reference key-fingerprint -o signature",
        ));
    };
    let data = std::fs::read(manifest).map_err(|e| CliError::new(format!("Error reading {manifest}: {e}")))?;
    let passphrase = read_passphrase_file(a.passphrase_file.as_ref())?.filter(|p| !p.is_empty());
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

#[derive(Args, Debug)]
pub struct GenerateSigstoreKeyArgs {
    /// Write the keys to PREFIX.pub and PREFIX.private
    #[arg(long = "output-prefix", value_name = "PREFIX")]
    output_prefix: Option<String>,
    /// Read a passphrase for the private key from PATH
    #[arg(long = "passphrase-file", value_name = "PATH")]
    passphrase_file: Option<PathBuf>,
}

/// Ask for the passphrase of `key` on the terminal, as skopeo does.
pub(crate) fn prompt_passphrase(key: &str) -> Result<String, CliError> {
    use std::io::IsTerminal as _;
    if !std::io::stdin().is_terminal() {
        return Err(CliError::new(format!(
            "Cannot prompt for a passphrase for key {key}, standard input is not a TTY"
        )));
    }
    rpassword::prompt_password(format!("Passphrase for key {key}: "))
        .map_err(|e| CliError::new(format!("Error reading password: {e}")))
}

/// Open the sigstore private key at `path` with `passphrase`.
pub(crate) fn open_sigstore_key(
    path: &std::path::Path,
    passphrase: &str,
) -> Result<crate::options::signing::SigstoreKey, CliError> {
    let data =
        std::fs::read(path).map_err(|e| CliError::new(format!("reading private key from {}: {e}", path.display())))?;
    let key = signature::sigstore_key::load_private(&data, passphrase.as_bytes())
        .map_err(|e| CliError::new(format!("initializing private key: {e}")))?;
    Ok(crate::options::signing::SigstoreKey(std::sync::Arc::new(key)))
}

/// `--sign-by-sigstore PARAMFILE`: its private-key form. Fulcio and Rekor
/// need their servers, which kopeo does not talk to: a clear refusal.
pub(crate) fn sigstore_from_param_file(
    path: &std::path::Path,
) -> Result<crate::options::signing::SigstoreKey, CliError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Params {
        #[serde(default)]
        private_key_file: String,
        #[serde(default)]
        private_key_passphrase_file: String,
        #[serde(default)]
        fulcio: Option<serde_yaml_ng::Value>,
        #[serde(default, rename = "rekorURL")]
        rekor_url: String,
    }
    let fail = |m: String| {
        CliError::new(format!(
            "Error using --sign-by-sigstore: setting up signing using parameter file {:?}: {m}",
            path.display().to_string()
        ))
    };
    let data = std::fs::read(path).map_err(|e| fail(format!("reading {:?}: {e}", path.display().to_string())))?;
    let p: Params =
        serde_yaml_ng::from_slice(&data).map_err(|e| fail(format!("parsing {:?}: {e}", path.display().to_string())))?;
    if p.fulcio.is_some() || !p.rekor_url.is_empty() {
        return Err(fail(
            "fulcio and rekorURL are not supported by kopeo: they need the Fulcio and Rekor services; sign with a private key".into(),
        ));
    }
    if p.private_key_file.is_empty() {
        return Err(fail("no private key source provided (neither a private key nor Fulcio) when preparing to create sigstore signatures".into()));
    }
    let passphrase = if p.private_key_passphrase_file.is_empty() {
        prompt_passphrase(&p.private_key_file)?
    } else {
        read_passphrase_file(Some(&PathBuf::from(&p.private_key_passphrase_file)))?.unwrap_or_default()
    };
    open_sigstore_key(std::path::Path::new(&p.private_key_file), &passphrase)
}

/// `generate-sigstore-key`.
pub fn generate_sigstore_key(a: GenerateSigstoreKeyArgs) -> Result<(), CliError> {
    let Some(prefix) = a.output_prefix.filter(|p| !p.is_empty()) else {
        return Err(CliError::new("Usage: generate-sigstore-key --output-prefix PREFIX"));
    };
    let (public, private) = (format!("{prefix}.pub"), format!("{prefix}.private"));
    for p in [&public, &private] {
        match std::fs::symlink_metadata(p) {
            Ok(_) => return Err(CliError::new(format!("Refusing to overwrite existing {p:?}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(CliError::new(format!("Error checking existence of {p:?}: {e}"))),
        }
    }
    let passphrase = match &a.passphrase_file {
        Some(f) => read_passphrase_file(Some(f))?.unwrap_or_default(),
        None => prompt_passphrase(&private)?,
    };
    let pair = signature::sigstore_key::generate(passphrase.as_bytes())
        .map_err(|e| CliError::new(format!("Error generating key pair: {e}")))?;
    write_new(&private, pair.private_pem.as_bytes(), 0o600)
        .map_err(|e| CliError::new(format!("Error writing private key to {private:?}: {e}")))?;
    write_new(&public, pair.public_pem.as_bytes(), 0o644)
        .map_err(|e| CliError::new(format!("Error writing public key to {public:?}: {e}")))?;
    println!("Key written to {private:?} and {public:?}");
    Ok(())
}

/// Create `path` (never replacing a file) with `mode`, and write `data`.
fn write_new(path: &str, data: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

#[derive(Args, Debug)]
pub struct UntrustedDumpArgs {
    /// SIGNATURE
    args: Vec<String>,
}

/// `untrusted-signature-dump-without-verification` (hidden, as upstream):
/// what a simple signature claims, not checked at all.
pub fn untrusted_signature_dump(a: UntrustedDumpArgs) -> Result<(), CliError> {
    let [path] = a.args.as_slice() else {
        return Err(CliError::new(
            "Usage: kopeo untrusted-signature-dump-without-verification signature",
        ));
    };
    let data = std::fs::read(path)
        .map_err(|e| CliError::new(format!("Error reading untrusted signature from {path}: {e}")))?;
    let decode = || -> Result<serde_json::Value, signature::SignatureError> {
        let (content, key) = signature::openpgp::untrusted_contents(&data)?;
        let p = signature::simple::Payload::parse(&content).map_err(signature::SignatureError::Invalid)?;
        // Go's MarshalIndent of UntrustedSignatureInformation (a time as RFC 3339).
        Ok(serde_json::json!({
            "UntrustedDockerManifestDigest": p.manifest_digest.to_string(),
            "UntrustedDockerReference": p.docker_reference,
            "UntrustedCreatorID": p.creator,
            "UntrustedTimestamp": p.timestamp.map(crate::timestamp::format_unix),
            "UntrustedShortKeyIdentifier": key,
        }))
    };
    let v = decode().map_err(|e| CliError::new(format!("Error decoding untrusted signature: {e}")))?;
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    serde::Serialize::serialize(&v, &mut ser).map_err(|e| CliError::new(e.to_string()))?;
    println!("{}", String::from_utf8_lossy(&out));
    Ok(())
}
