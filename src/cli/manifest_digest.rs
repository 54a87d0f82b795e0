//! `kopeo manifest-digest`.

use super::CliError;
use crate::digest::Digest;
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
    let mime = crate::manifest::guess_mime_type(&data);
    if mime == crate::manifest::media::DOCKER_V2S1_SIGNED {
        return Err(CliError::new(
            "computing the digest of signed Docker schema1 manifests is not supported by kopeo",
        ));
    }
    println!("{}", Digest::sha256_of(&data));
    Ok(())
}
