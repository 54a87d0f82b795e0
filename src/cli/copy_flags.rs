//! The copy flags `copy` and `sync` share (skopeo's `sharedCopyFlags`, the
//! retry flags and kopeo's `--platform`/`--image-parallel-copies`), parsed
//! straight into the option types of [`crate::options`]; and the
//! destination compression flags of `copy`.

use super::CliError;
use super::flags::RetryFlags;
use crate::options::signing::{Passphrase, SigningOptions};
use crate::options::{CompressionFormat, CompressionSettings, CopySettings, ManifestFormat, PlatformName};
use clap::Args;

/// Flags every copying command has.
#[derive(Args, Debug, Clone, Default)]
pub struct CopyFlags {
    /// Copy all images if SOURCE-IMAGE is a list
    #[arg(short = 'a', long)]
    pub all: bool,
    /// MANIFEST TYPE (oci, v2s1, or v2s2) to use in the destination (default is manifest type of source, with fallbacks)
    #[arg(short = 'f', long, value_name = "MANIFEST-TYPE")]
    pub format: Option<ManifestFormat>,
    /// Preserve digests of images and lists
    #[arg(long = "preserve-digests")]
    pub preserve_digests: bool,
    /// Copy only these platforms of a list, and a list of just them: os/arch[/variant],... (kopeo)
    #[arg(long = "platform", value_name = "PLATFORMS", value_delimiter = ',')]
    pub platform: Vec<PlatformName>,
    /// Do not copy signatures from source
    #[arg(long = "remove-signatures")]
    pub remove_signatures: bool,
    /// Maximum number of image layers to be copied (pulled/pushed) simultaneously
    #[arg(long = "image-parallel-copies", value_name = "N")]
    pub image_parallel_copies: Option<usize>,
    /// Sign the image using a GPG key with the specified FINGERPRINT
    #[arg(long = "sign-by", value_name = "FINGERPRINT")]
    pub sign_by: Option<String>,
    /// Sign the image using a Sequoia-PGP key with the specified FINGERPRINT
    #[arg(long = "sign-by-sq-fingerprint", value_name = "FINGERPRINT")]
    pub sign_by_sq_fingerprint: Option<String>,
    /// Sign the image using a sigstore parameter file at PATH
    #[arg(long = "sign-by-sigstore", value_name = "PATH")]
    pub sign_by_sigstore: Option<String>,
    /// Sign the image using a sigstore private key at PATH
    #[arg(long = "sign-by-sigstore-private-key", value_name = "PATH")]
    pub sign_by_sigstore_private_key: Option<String>,
    /// Read a passphrase for signing an image from PATH
    #[arg(long = "sign-passphrase-file", value_name = "PATH")]
    pub sign_passphrase_file: Option<String>,
    /// require HTTPS and verify certificates when accessing the container registry (deprecated: use --src-tls-verify, --dest-tls-verify)
    #[arg(long = "tls-verify", value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", hide = true)]
    pub deprecated_tls_verify: Option<bool>,
    #[command(flatten)]
    pub retry: RetryFlags,
    /// Copy the image's OCI referrers too (signatures, attestations, SBOMs), by the referrers API or tag schema (kopeo)
    #[arg(long = "include-referrers")]
    pub include_referrers: bool,
    /// With --include-referrers, only referrers of this artifact type (repeatable) (kopeo)
    #[arg(
        long = "referrers-artifact-type",
        value_name = "TYPE",
        requires = "include_referrers"
    )]
    pub referrers_artifact_type: Vec<String>,
}

impl CopyFlags {
    /// Refuse what kopeo cannot do yet rather than ignore it.
    pub fn refuse_unsupported(&self) -> Result<(), CliError> {
        if self.sign_by_sq_fingerprint.is_some() {
            return Err(CliError::new(
                "not yet supported by kopeo: signing with Sequoia (--sign-by-sq-fingerprint); --sign-by signs with GnuPG",
            ));
        }
        Ok(())
    }

    /// The signing these flags ask for; `identity` is `copy`'s `--sign-identity`.
    pub fn signing(&self, identity: Option<&str>) -> Result<SigningOptions, CliError> {
        let identity = match identity {
            None => None,
            Some(s) => {
                let r = crate::reference::DockerReference::parse_normalized(s)
                    .map_err(|e| CliError::new(format!("Could not parse --sign-identity: {e}")))?;
                // containers/image's ParseNamed: the name must be written in full.
                if r.to_string() != s {
                    return Err(CliError::new(format!(
                        "Could not parse --sign-identity: repository name must be canonical: {s:?}"
                    )));
                }
                Some(r)
            }
        };
        if self.sign_passphrase_file.is_some()
            && self.sign_by.is_some() as u8 + self.sign_by_sigstore_private_key.is_some() as u8 > 1
        {
            return Err(CliError::new(
                "Only one of --sign-by, --sign-by-sq-fingerprint and --sign-by-sigstore-private-key can be used with --sign-passphrase-file",
            ));
        }
        let passphrase_file = self.sign_passphrase_file.as_ref().map(std::path::PathBuf::from);
        let passphrase = super::signing::read_passphrase_file(passphrase_file.as_ref())?;
        let mut sigstore = None;
        if let Some(key) = &self.sign_by_sigstore_private_key {
            let p = match &passphrase {
                Some(p) => p.clone(),
                None => super::signing::prompt_passphrase(key)?,
            };
            sigstore = Some(super::signing::open_sigstore_key(std::path::Path::new(key), &p)?);
        }
        if let Some(params) = &self.sign_by_sigstore {
            if sigstore.is_some() {
                return Err(CliError::new(
                    "--sign-by-sigstore and --sign-by-sigstore-private-key cannot be used together",
                ));
            }
            sigstore = Some(super::signing::sigstore_from_param_file(std::path::Path::new(params))?);
        }
        Ok(SigningOptions {
            sign_by: self.sign_by.clone(),
            // gpg: an empty passphrase is none (gpg-agent may ask), as upstream.
            passphrase: passphrase
                .filter(|p| self.sign_by.is_some() && !p.is_empty())
                .map(Passphrase),
            openpgp: None,
            sigstore,
            identity,
        })
    }

    /// The settings these flags (with `compression`, from `copy`'s own flags) stand for.
    pub fn settings(&self, compression: Option<CompressionSettings>) -> Result<CopySettings, CliError> {
        let parallel_blobs = match self.image_parallel_copies {
            None => None,
            Some(n) => Some(
                std::num::NonZeroUsize::new(n)
                    .ok_or_else(|| CliError::new("--image-parallel-copies must be at least 1"))?,
            ),
        };
        Ok(CopySettings {
            all: self.all,
            multi_arch: None,
            platforms: self.platform.clone(),
            format: self.format,
            preserve_digests: self.preserve_digests,
            remove_signatures: self.remove_signatures,
            // The CLI says it with --remove-signatures and --include-referrers.
            signatures: None,
            compression,
            retry: Some(self.retry.settings()),
            parallel_blobs,
            referrers: self
                .include_referrers
                .then(|| crate::options::referrers::ReferrerSettings {
                    artifact_types: self.referrers_artifact_type.clone(),
                }),
        })
    }

    /// skopeo's warning for the deprecated `--tls-verify` of `copy` and `sync`.
    pub fn warn_deprecated(&self) {
        if self.deprecated_tls_verify.is_some() {
            super::log_line("warning", crate::skopeo_texts::DEPRECATED_TLS_VERIFY);
        }
    }
}

/// `copy`'s flags for the destination's layer compression.
#[derive(Args, Debug, Clone, Default)]
pub struct DestCompressionFlags {
    /// Compress tarball image layers when saving to directory using the 'dir' transport. (default is same compression type as source)
    #[arg(id = "dest-compress", long = "dest-compress")]
    pub compress: bool,
    /// Decompress tarball image layers when saving to directory using the 'dir' transport. (default is same compression type as source)
    #[arg(id = "dest-decompress", long = "dest-decompress")]
    pub decompress: bool,
    /// FORMAT to use for the compression
    #[arg(id = "dest-compress-format", long = "dest-compress-format", value_name = "FORMAT")]
    pub format: Option<CompressionFormat>,
    /// LEVEL to use for the compression
    #[arg(id = "dest-compress-level", long = "dest-compress-level", value_name = "LEVEL")]
    pub level: Option<i32>,
    /// Force exclusive use of the compression algorithm set in --dest-compress-format
    #[arg(id = "dest-force-compress-format", long = "dest-force-compress-format")]
    pub force_format: bool,
}

impl DestCompressionFlags {
    /// As compression settings.
    pub fn settings(&self) -> CompressionSettings {
        CompressionSettings {
            format: self.format,
            level: self.level,
            decompress: self.decompress,
            compress: self.compress,
            force_format: self.force_format,
        }
    }
}
