//! `kopeo copy`.

use super::flags::{DestFlags, RetryFlags, SrcFlags};
use super::{CliError, Global, parse_image, progress};
use crate::copy::settings::{CompressionName, CompressionSettings, CopySettings, FormatName, RetrySettings};
use crate::copy::{self, Compression, CompressionOptions, Format, MultiArch};
use clap::Args;
use std::path::PathBuf;

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
    retry: RetryFlags,
    /// Copy all images if SOURCE-IMAGE is a list
    #[arg(short = 'a', long)]
    all: bool,
    /// How to handle multi-architecture images (system, all, or index-only)
    #[arg(long = "multi-arch", value_name = "LIST-MODE")]
    multi_arch: Option<String>,
    /// MANIFEST TYPE (oci, v2s1, or v2s2) to use in the destination
    #[arg(short = 'f', long, value_name = "MANIFEST-TYPE")]
    format: Option<String>,
    /// Preserve digests of images and lists
    #[arg(long = "preserve-digests")]
    preserve_digests: bool,
    /// Copy only these platforms of a list, and a list of just them: os/arch[/variant],... (kopeo)
    #[arg(long = "platform", value_name = "PLATFORMS", value_delimiter = ',')]
    platform: Vec<String>,
    /// Do not copy signatures from SOURCE-IMAGE
    #[arg(long = "remove-signatures")]
    remove_signatures: bool,
    /// Write the digest of the pushed image to the specified file
    #[arg(long, value_name = "PATH")]
    digestfile: Option<PathBuf>,
    /// Suppress output information when copying images
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Maximum number of image layers to be copied (pulled/pushed) simultaneously
    #[arg(long = "image-parallel-copies", value_name = "N")]
    image_parallel_copies: Option<usize>,
    /// additional tags (supports docker-archive)
    #[arg(long = "additional-tag", value_name = "TAG")]
    additional_tag: Vec<String>,
    /// Sign the image using a GPG key with the specified FINGERPRINT
    #[arg(long = "sign-by", value_name = "FINGERPRINT")]
    sign_by: Option<String>,
    /// Sign the image using a sigstore parameter file at PATH
    #[arg(long = "sign-by-sigstore", value_name = "PATH")]
    sign_by_sigstore: Option<String>,
    /// Sign the image using a sigstore private key at PATH
    #[arg(long = "sign-by-sigstore-private-key", value_name = "PATH")]
    sign_by_sigstore_private_key: Option<String>,
    /// Read a passphrase for signing an image from PATH
    #[arg(long = "sign-passphrase-file", value_name = "PATH")]
    sign_passphrase_file: Option<String>,
    /// Identity of signed image
    #[arg(long = "sign-identity", value_name = "REFERENCE")]
    sign_identity: Option<String>,
    /// Protocol and key to encrypt the destination image
    #[arg(long = "encryption-key", value_name = "PROTOCOL:KEY")]
    encryption_key: Vec<String>,
    /// Layers to encrypt, 0-indexed layer indices
    #[arg(long = "encrypt-layer", value_name = "INDEX")]
    encrypt_layer: Vec<i64>,
    /// Key to decrypt the source image
    #[arg(long = "decryption-key", value_name = "KEY")]
    decryption_key: Vec<String>,
    /// Compress tarball image layers when saving to directory using the 'dir' transport
    #[arg(long = "dest-compress")]
    dest_compress: bool,
    /// Decompress tarball image layers when saving to directory
    #[arg(long = "dest-decompress")]
    dest_decompress: bool,
    /// FORMAT to use for the compression
    #[arg(long = "dest-compress-format", value_name = "FORMAT")]
    dest_compress_format: Option<String>,
    /// LEVEL to use for the compression
    #[arg(long = "dest-compress-level", value_name = "LEVEL")]
    dest_compress_level: Option<i32>,
    /// Use the compression format given by --dest-compress-format even for layers that would be reused
    #[arg(long = "dest-force-compress-format")]
    dest_force_compress_format: bool,
    /// Allow uncompressed image layers when saving to an OCI image using the 'oci' transport
    #[arg(long = "dest-oci-accept-uncompressed-layers")]
    dest_oci_accept_uncompressed_layers: bool,
    /// Precompute digests to prevent uploading layers already on the registry
    #[arg(long = "dest-precompute-digests")]
    dest_precompute_digests: bool,
}

impl CopyArgs {
    fn refuse_unsupported(&self) -> Result<(), CliError> {
        let mut used = vec![];
        if self.sign_by.is_some() || self.sign_by_sigstore.is_some() || self.sign_by_sigstore_private_key.is_some() {
            used.push("signing (--sign-by*)");
        }
        if !self.encryption_key.is_empty() || !self.encrypt_layer.is_empty() || !self.decryption_key.is_empty() {
            used.push("layer encryption (--encryption-key, --encrypt-layer, --decryption-key)");
        }
        if used.is_empty() {
            return Ok(());
        }
        Err(CliError::new(format!(
            "not yet supported by kopeo: {}",
            used.join(", ")
        )))
    }
}

fn multi_arch(all: bool, flag: &Option<String>) -> Result<MultiArch, CliError> {
    let parsed = match flag.as_deref() {
        None => None,
        Some("system") => Some(MultiArch::System),
        Some("all") => Some(MultiArch::All),
        Some("index-only") => Some(MultiArch::IndexOnly),
        Some(other) => {
            return Err(CliError::new(format!(
                "unknown multi-arch option {other:?}. Choose one of the supported options: 'system', 'all', or 'index-only'"
            )));
        }
    };
    match (all, parsed) {
        (true, Some(m)) if m != MultiArch::All => Err(CliError::new("Cannot use --all and --multi-arch together")),
        (true, _) => Ok(MultiArch::All),
        (false, m) => Ok(m.unwrap_or_default()),
    }
}

fn format(f: &Option<String>) -> Result<Option<Format>, CliError> {
    match f.as_deref() {
        None => Ok(None),
        Some("oci") => Ok(Some(Format::Oci)),
        Some("v2s2") => Ok(Some(Format::V2s2)),
        Some("v2s1") => Err(CliError::new(
            "writing Docker schema1 manifests (--format v2s1) is not supported by kopeo",
        )),
        Some(other) => Err(CliError::new(format!(
            "unknown format {other:?}. Choose one of the supported formats: 'oci', 'v2s1', or 'v2s2'"
        ))),
    }
}

fn compression(args: &CopyArgs) -> Result<CompressionOptions, CliError> {
    if args.dest_compress && args.dest_decompress {
        return Err(CliError::new(
            "--dest-compress and --dest-decompress cannot be used together",
        ));
    }
    let format = args
        .dest_compress_format
        .as_deref()
        .map(Compression::parse)
        .transpose()
        .map_err(CliError::new)?;
    if args.dest_compress_format.as_deref() == Some("zstd:chunked") {
        tracing::warn!(
            "zstd:chunked is written as plain zstd (no chunked table of contents); every zstd reader accepts it"
        );
    }
    if args.dest_force_compress_format && format.is_none() {
        return Err(CliError::new(
            "--dest-force-compress-format requires --dest-compress-format",
        ));
    }
    if let Some(l) = args.dest_compress_level
        && !crate::copy::settings::level_in_range(l, format)
    {
        return Err(CliError::new(format!(
            "--dest-compress-level {l} is out of range (gzip 0-9, zstd 1-22)"
        )));
    }
    Ok(CompressionOptions {
        compress: args.dest_compress,
        decompress: args.dest_decompress,
        format,
        level: args.dest_compress_level,
    })
}

/// Copy one image, printing progress like skopeo.
pub async fn run(args: CopyArgs, global: &Global) -> Result<(), CliError> {
    args.refuse_unsupported()?;
    let src = parse_image(&args.source)?;
    let dst = parse_image(&args.destination)?;
    let retry = args.retry.options();
    let src_opts = args.src.open_options(&args.authfile, retry)?;
    let mut dst_opts = args.dest.open_options(&args.authfile, retry)?;
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
    if args.image_parallel_copies == Some(0) {
        return Err(CliError::new("--image-parallel-copies must be at least 1"));
    }
    // The flags become the same CopySettings an ImageCopy spec holds, so the
    // CLI and the operator cannot drift; what only the CLI has is added after.
    let checked = compression(&args)?;
    let settings = CopySettings {
        all: args.all,
        platforms: args.platform.clone(),
        format: format(&args.format)?.map(|f| match f {
            Format::Oci => FormatName::Oci,
            Format::V2s2 => FormatName::V2s2,
        }),
        preserve_digests: args.preserve_digests,
        remove_signatures: args.remove_signatures,
        compression: Some(CompressionSettings {
            format: checked.format.map(|c| match c {
                Compression::Zstd => CompressionName::Zstd,
                _ => CompressionName::Gzip,
            }),
            level: checked.level,
            decompress: checked.decompress,
        }),
        retry: Some(RetrySettings {
            times: retry.times,
            delay: retry.delay.map(|d| format!("{}ms", d.as_millis())),
        }),
    };
    let mut opts = settings.to_options().map_err(CliError::new)?;
    opts.multi_arch = multi_arch(args.all, &args.multi_arch)?;
    opts.compression.compress = checked.compress;
    opts.platform = global.platform.clone();
    opts.parallel = args.image_parallel_copies.unwrap_or(0);
    opts.progress = (!args.quiet).then(progress::reporter);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_arch_flags() {
        assert_eq!(multi_arch(false, &None).unwrap(), MultiArch::System);
        assert_eq!(multi_arch(true, &None).unwrap(), MultiArch::All);
        assert_eq!(
            multi_arch(false, &Some("index-only".into())).unwrap(),
            MultiArch::IndexOnly
        );
        assert!(multi_arch(true, &Some("system".into())).is_err());
        assert!(multi_arch(false, &Some("bogus".into())).is_err());
    }
}
