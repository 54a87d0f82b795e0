//! Why a copy failed: one variant per cause.

use crate::manifest::ManifestError;
use crate::transport::TransportError;

/// Why a copy failed.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// No instance of the source's list is for the wanted platform.
    #[error("{}: {source}", crate::skopeo_texts::choosing_from_list(image))]
    NoInstance {
        image: String,
        #[source]
        source: ManifestError,
    },
    #[error("the source list has none of the platforms {platforms}")]
    NoWantedPlatform {
        /// The platforms asked for, comma-separated.
        platforms: String,
    },
    #[error("{0} is not a list")]
    NotAList(String),
    #[error("nested manifest list in {image}")]
    NestedList { image: String },
    #[error(
        "a list in {image} names a Docker schema1 manifest; kopeo converts schema1 images copied on their own, not as instances of a list"
    )]
    Schema1InList { image: String },
    #[error(
        "{image} is a Docker schema1 image; kopeo converts it to schema2, which changes its digest, {}",
        match .reason {
            KeepReason::PreserveDigests => "but --preserve-digests was given",
            KeepReason::Signatures => "but the image is signed (Would invalidate signatures): copy with --remove-signatures to drop them",
            KeepReason::Referrers => "but its referrers name that digest (--include-referrers)",
        }
    )]
    Schema1ChangesDigest { image: String, reason: KeepReason },
    #[error("schema1 manifest: fsLayers and history do not match")]
    Schema1Inconsistent,
    #[error("schema1 conversion produced a list")]
    Schema1ToList,
    #[error(
        "copying multiple images: destination transport \"{transport}\" does not support copying multiple images as a group"
    )]
    ListNotStorable { transport: String },
    #[error("{destination} accepts none of the manifest types kopeo can convert {from} to")]
    NoAcceptedManifestType { destination: String, from: String },
    #[error("zstd-compressed layers need an OCI manifest, but the destination or --format requires Docker schema2")]
    ZstdNeedsOci,
    #[error("encrypted layers need an OCI manifest, but {destination} or --format can't hold one: nothing was written")]
    EncryptionNeedsOci { destination: String },
    #[error(
        "{image} is a Docker schema1 image, whose layers kopeo does not encrypt: copy it to schema2 or OCI first, then encrypt that"
    )]
    EncryptSchema1 { image: String },
    #[error("error preparing updated manifest: encryption specified but no counterpart for mediatype: {media_type:?}")]
    NoEncryptedType { media_type: String },
    #[error("--multi-arch=index-only cannot convert the list's instances to {to}; copy with --all")]
    IndexOnlyConversion { to: String },
    /// `--preserve-digests` was given, but writing the image as the
    /// destination wants it changes `what`.
    #[error("{}", preserve_refusal(.destination, .change, *.reason))]
    DigestWouldChange {
        destination: String,
        change: DigestChange,
        reason: KeepReason,
    },
    /// The trust policy refused the source image.
    #[error("Source image rejected: {0}")]
    Rejected(crate::signature::policy::Rejection),
    #[error("Can not copy signatures to {destination}: {source}")]
    SignaturesNotStorable {
        destination: String,
        #[source]
        source: TransportError,
    },
    #[error("Cannot sign the image for {destination}: {source}")]
    SigningNotPossible {
        destination: String,
        #[source]
        source: TransportError,
    },
    #[error("Sign identity must be a fully specified reference {0}")]
    SignIdentityNotFull(String),
    #[error("Cannot determine canonical Docker reference for destination {0}")]
    NoSignIdentity(String),
    #[error("creating signature: {0}")]
    Signing(#[source] crate::signature::SignatureError),
    #[error("reading signatures: {0}")]
    ReadingSignatures(#[source] TransportError),
    #[error("writing signatures: {0}")]
    WritingSignatures(#[source] TransportError),
}

/// Why a copy may not change the manifest it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeepReason {
    /// `--preserve-digests`.
    #[default]
    PreserveDigests,
    /// The image's signatures name its digest.
    Signatures,
    /// Its OCI referrers, carried along, name its digest.
    Referrers,
}

/// What would change an image's digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DigestChange {
    /// Converting the manifest between types.
    ManifestType { from: String, to: String },
    /// Recompressing layers.
    LayerCompression,
    /// Rewriting a manifest list.
    List,
    /// Encrypting or decrypting layers.
    LayerEncryption,
}

fn preserve_refusal(destination: &str, change: &DigestChange, reason: KeepReason) -> String {
    let tail = match reason {
        KeepReason::PreserveDigests => "but --preserve-digests was given",
        KeepReason::Signatures => {
            "but the image is signed (Would invalidate signatures): copy with --remove-signatures to drop them"
        }
        KeepReason::Referrers => "but its referrers name that digest (--include-referrers)",
    };
    match change {
        DigestChange::ManifestType { from, to } => format!(
            "writing {destination} requires converting the manifest from {from} to {to}, which changes the image's digest, {tail}"
        ),
        DigestChange::LayerCompression => format!(
            "writing {destination} requires changing layer compression, which changes the image's digest, {tail}"
        ),
        DigestChange::LayerEncryption => format!(
            "writing {destination} requires encrypting or decrypting layers, which changes the image's digest, {tail}"
        ),
        DigestChange::List => {
            format!("writing {destination} requires changing the manifest list, which changes its digest, {tail}")
        }
    }
}

impl CopyError {
    /// True when the source image does not exist (skopeo exits 2).
    pub fn is_image_not_found(&self) -> bool {
        matches!(self, CopyError::Transport(e) if e.is_image_not_found())
    }

    /// True when a registry refused the credentials (or asked for some).
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, CopyError::Transport(e) if e.is_unauthorized())
    }
}
