//! `kopeo manifest-digest`.

use super::CliError;
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct ManifestDigestArgs {
    /// MANIFEST file
    manifest: PathBuf,
}

/// Print the digest of a manifest file.
pub fn manifest_digest(args: ManifestDigestArgs) -> Result<(), CliError> {
    let data = std::fs::read(&args.manifest)
        .map_err(|e| CliError::new(format!("reading manifest from {}: {e}", args.manifest.display())))?;
    let digest =
        crate::manifest_digest::manifest_digest(&data).map_err(|e| CliError::new(format!("computing digest: {e}")))?;
    println!("{digest}");
    Ok(())
}
