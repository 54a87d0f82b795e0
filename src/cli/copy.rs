//! `kopeo copy`.

use super::copy_flags::{CopyFlags, DestCompressionFlags};
use super::flags::{DestFlags, SrcFlags};
use super::{CliError, Global, parse_image, progress};
use crate::copy;
use crate::options::encryption::{DecryptionOptions, EncryptionOptions};
use crate::options::{CopySettings, MultiArch};
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Args, Debug)]
pub struct CopyArgs {
    /// SOURCE-IMAGE
    source: String,
    /// DESTINATION-IMAGE
    destination: String,
    /// path of the authentication file. Default is ${XDG_RUNTIME_DIR}/containers/auth.json
    #[arg(long, value_name = "PATH", env = "REGISTRY_AUTH_FILE", hide_env = true)]
    authfile: Option<PathBuf>,
    #[command(flatten)]
    src: SrcFlags,
    #[command(flatten)]
    dest: DestFlags,
    #[command(flatten)]
    copy: CopyFlags,
    #[command(flatten)]
    compression: DestCompressionFlags,
    /// How to handle multi-architecture images (system, all, or index-only)
    #[arg(long = "multi-arch", value_name = "LIST-MODE")]
    multi_arch: Option<MultiArch>,
    /// Write the digest of the pushed image to the specified file
    #[arg(long, value_name = "PATH")]
    digestfile: Option<PathBuf>,
    /// Suppress output information when copying images
    #[arg(short = 'q', long)]
    quiet: bool,
    /// additional tags (supports docker-archive)
    #[arg(long = "additional-tag", value_name = "TAG")]
    additional_tag: Vec<String>,
    /// Identity of signed image, must be a fully specified docker reference. Defaults to the target docker reference.
    #[arg(long = "sign-identity", value_name = "REFERENCE")]
    sign_identity: Option<String>,
    /// *Experimental* key with the encryption protocol to use needed to encrypt the image (e.g. jwe:/path/to/key.pem)
    #[arg(long = "encryption-key", value_name = "PROTOCOL:KEY", value_delimiter = ',')]
    encryption_key: Vec<String>,
    /// *Experimental* the 0-indexed layer indices, with support for negative indexing (e.g. 0 is the first layer, -1 is the last layer)
    #[arg(
        long = "encrypt-layer",
        value_name = "INDEX",
        allow_negative_numbers = true,
        value_delimiter = ','
    )]
    encrypt_layer: Vec<i64>,
    /// *Experimental* key needed to decrypt the image
    #[arg(long = "decryption-key", value_name = "KEY", value_delimiter = ',')]
    decryption_key: Vec<String>,
    /// Allow uncompressed image layers when saving to an OCI image using the 'oci' transport. (default is to compress things that aren't compressed)
    #[arg(long = "dest-oci-accept-uncompressed-layers")]
    dest_oci_accept_uncompressed_layers: bool,
    /// Precompute digests to prevent uploading layers already on the registry using the 'docker' transport.
    #[arg(long = "dest-precompute-digests")]
    dest_precompute_digests: bool,
}

impl CopyArgs {
    /// The encryption flags as skopeo checks and reads them.
    fn crypt(&self) -> Result<(Option<Arc<EncryptionOptions>>, Option<DecryptionOptions>), CliError> {
        if !self.encryption_key.is_empty() && !self.decryption_key.is_empty() {
            return Err(CliError::new(
                "--encryption-key and --decryption-key cannot be specified together",
            ));
        }
        if !self.encrypt_layer.is_empty() && self.encryption_key.is_empty() {
            return Err(CliError::new("--encrypt-layer can only be used with --encryption-key"));
        }
        let enc = (!self.encryption_key.is_empty())
            .then(|| EncryptionOptions::from_flags(&self.encryption_key, &self.encrypt_layer))
            .transpose()
            .map_err(|e| CliError::new(format!("Invalid encryption keys: {e}")))?;
        let dec = (!self.decryption_key.is_empty())
            .then(|| DecryptionOptions::from_flags(&self.decryption_key))
            .transpose()
            .map_err(|e| CliError::new(format!("Invalid decryption keys: {e}")))?;
        Ok((enc.map(Arc::new), dec))
    }
}

/// Copy one image, printing progress like skopeo.
pub async fn run(args: CopyArgs, global: &Global) -> Result<(), CliError> {
    args.copy.refuse_unsupported()?;
    args.copy.warn_deprecated();
    let src = parse_image(&args.source)?;
    let dst = parse_image(&args.destination)?;
    let retry = args.copy.retry.options();
    let tls = args.copy.deprecated_tls_verify.or(global.tls_verify);
    let mut src_opts = args.src.open_options_with(&args.authfile, retry, tls)?;
    let mut dst_opts = args.dest.open_options_with(&args.authfile, retry, tls)?;
    let storage = global.signature_storage()?;
    src_opts.signature_storage = Some(storage.clone());
    dst_opts.signature_storage = Some(storage);
    dst_opts.oci_accept_uncompressed_layers = args.dest_oci_accept_uncompressed_layers;
    for t in &args.additional_tag {
        let r = crate::reference::DockerReference::parse_normalized(t)
            .map_err(|e| CliError::new(format!("invalid --additional-tag {t:?}: {e}")))?;
        if r.digest().is_some() {
            return Err(CliError::new(format!(
                "--additional-tag {t:?} must be a tag, not a digest"
            )));
        }
        dst_opts.additional_tags.push(r.with_default_tag());
    }
    let settings = CopySettings {
        multi_arch: args.multi_arch,
        ..args.copy.settings(Some(args.compression.settings()))?
    };
    let mut opts = settings
        .to_options()
        .map_err(|e| CliError::new(e.to_string()))?
        .for_platform(global.platform.clone())
        .with_progress((!args.quiet).then(progress::reporter));
    opts.signing = args.copy.signing(args.sign_identity.as_deref())?;
    opts.policy = Some(global.trust_policy()?);
    (opts.encryption, opts.decryption) = args.crypt()?;
    if !args.quiet {
        println!("Getting image source signatures");
    }
    let report = copy::copy_image(&src, &dst, &src_opts, &dst_opts, &opts)
        .await
        .map_err(|e| {
            let msg = format!("copying {src} to {dst}: {e}");
            if e.is_image_not_found() {
                CliError::not_found(msg)
            } else {
                CliError::new(msg)
            }
        })?;
    tracing::debug!(digest = %report.manifest_digest, copied = report.blobs_copied, reused = report.blobs_reused, bytes = report.bytes_copied, "copy finished");
    if let Some(p) = &args.digestfile {
        std::fs::write(p, report.manifest_digest.to_string())
            .map_err(|e| CliError::new(format!("writing digest file {}: {e}", p.display())))?;
    }
    Ok(())
}
