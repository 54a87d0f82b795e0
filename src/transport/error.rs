//! Why a transport operation failed: one variant per cause, each carrying
//! what a user needs to act on it.

use crate::digest::Digest;
use crate::manifest::ManifestError;
use crate::registry::RegistryError;
use std::path::PathBuf;

/// Why a transport operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Storage(#[from] super::containers_storage::StorageError),
    #[error(transparent)]
    Sif(#[from] super::sif::SifError),
    /// A signed schema1 manifest whose payload (hence digest) cannot be found.
    #[error("computing manifest digest: {0}")]
    ManifestDigest(#[from] crate::manifest_digest::Schema1PayloadError),
    #[error(transparent)]
    Atomic(#[from] super::atomic::AtomicError),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The image, repository or file named does not exist (skopeo exits 2).
    #[error("{0}")]
    ImageNotFound(String),
    #[error("the {0} transport is not yet supported by kopeo")]
    Unsupported(&'static str),
    #[error("tarball {}: a {format}-compressed layer cannot be written as an image layer (OCI layers are plain, gzip or zstd); decompress it or recompress it with gzip or zstd", .path.display())]
    TarballCompression { path: PathBuf, format: &'static str },
    /// containers/image's words for a transport that only reads.
    #[error("\"{0}:\" locations can only be read from, not written to")]
    ReadOnly(&'static str),
    /// The destination keeps no signatures (containers/image's words).
    #[error("{0}")]
    SignaturesUnsupported(&'static str),
    #[error(transparent)]
    Lookaside(#[from] crate::signature::lookaside::LookasideError),
    #[error("{0}")]
    Attachment(String),
    #[error("signatures of {0} cannot be stored: no lookaside is configured for it (registries.d)")]
    NoLookaside(String),
    /// `--include-referrers` where a side keeps no OCI referrers.
    #[error("{0} keeps no OCI referrers: --include-referrers needs registries (docker://) on both sides")]
    ReferrersUnsupported(String),
    #[error("referrers of {subject} in {repo}: {why}")]
    Referrers { repo: String, subject: String, why: String },
    /// containers/image's words for a transport that has no deleting.
    #[error("Deleting images not implemented for {0}: images")]
    DeleteNotImplemented(&'static str),
    #[error("{operation} in the {transport} transport is not yet supported by kopeo")]
    UnsupportedOperation {
        transport: &'static str,
        operation: &'static str,
    },

    // References a transport cannot act on.
    #[error("destination {reference} has both a tag and a digest; use one of them")]
    TagAndDigest { reference: String },
    #[error("{transport}: a destination cannot use @INDEX")]
    DestinationByIndex { transport: &'static str },
    #[error("{transport}: a destination needs a name:tag, not an image ID")]
    DestinationById { transport: &'static str },
    #[error("more than one image in {}, choose an image with {transport}:{}:NAME", .path.display(), .path.display())]
    AmbiguousImage { transport: &'static str, path: PathBuf },

    // What is at a local path.
    #[error("refusing to overwrite {}: {holds}", .path.display())]
    WouldOverwrite {
        path: PathBuf,
        /// What the path holds instead of an image of this transport.
        holds: &'static str,
    },
    #[error("{}", crate::skopeo_texts::DOCKER_ARCHIVE_EXISTS)]
    ArchiveExists,
    #[error("{} exists and is not a directory", .0.display())]
    NotADirectory(PathBuf),
    #[error("{} is a directory, not an archive", .0.display())]
    IsADirectory(PathBuf),
    #[error("{} is a symbolic link to nothing", .0.display())]
    DanglingSymlink(PathBuf),
    #[error("{} holds no image: manifest.json is missing", .0.display())]
    NoManifestFile(PathBuf),
    #[error("blob file {} is missing", .0.display())]
    BlobFileMissing(PathBuf),
    #[error("{archive} has no blob {digest}")]
    BlobNotInArchive { archive: String, digest: Digest },
    #[error("{} is larger than {limit} bytes", .path.display())]
    FileTooLarge { path: PathBuf, limit: u64 },
    #[error("{}: wrote {written} bytes but hashed {hashed}", .path.display())]
    ShortWrite { path: PathBuf, written: u64, hashed: u64 },
    #[error("parsing {}: {source}", .path.display())]
    MalformedIndex {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{} has no manifests array", .0.display())]
    IndexWithoutManifests(PathBuf),
    /// An archive that cannot be read as one: `why` says where it breaks.
    #[error("{format} {}: {why}", .path.display())]
    MalformedArchive {
        format: &'static str,
        path: PathBuf,
        why: String,
    },
    // Which image of a docker-archive, in containers/image's words (exit 1,
    // as skopeo: not the "image not found" of a registry).
    #[error("Unexpected tar manifest.json: expected 1 item, got {0}")]
    ArchiveNotSingle(usize),
    #[error("Invalid source index @{index}, only {count} manifest items available")]
    ArchiveIndexOutOfRange { index: usize, count: usize },
    #[error("Tag {0:?} not found")]
    ArchiveTagNotFound(String),
    #[error("archive member name {name}: {source}")]
    MemberName {
        name: String,
        #[source]
        source: std::io::Error,
    },

    // What a destination was asked to store.
    #[error("{transport} images are not lists; no instance {digest}")]
    NotAList { transport: &'static str, digest: Digest },
    #[error("{transport} cannot hold a manifest list")]
    CannotHoldList { transport: &'static str },
    #[error("manifest {digest} in {location} does not match its digest")]
    StoredManifestMismatch { digest: Digest, location: String },
    #[error("the manifest's digest {actual} does not match the destination reference's digest {expected}")]
    ReferenceDigestMismatch { expected: Digest, actual: Digest },
    #[error("instance manifest digest {actual} differs from the expected {expected}")]
    InstanceDigestMismatch { expected: Digest, actual: Digest },
    #[error("blob {0} has no known size")]
    UnknownSize(Digest),

    // Blob contents.
    #[error("blob {digest}: content digest {actual} does not match")]
    DigestMismatch { digest: Digest, actual: Digest },
    #[error("blob {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch { digest: Digest, expected: u64, actual: u64 },
    #[error("blob {digest} from {from} does not match its digest or size ({why}); nothing was committed")]
    CorruptSource { digest: Digest, from: String, why: String },
    #[error(
        "blob {0} vanished from the layout while the image was written (deleted by another process?); nothing was committed"
    )]
    BlobVanished(Digest),
    #[error("blob stream ended early")]
    StreamEndedEarly,
    /// Layer encryption or decryption (ocicrypt's texts).
    #[error(transparent)]
    Encryption(#[from] crate::encryption::EncryptionError),
    #[error("compression stage: {0}")]
    Codec(#[source] std::io::Error),
    #[error("config {0} is larger than 64 MiB")]
    ConfigTooLarge(Digest),
    #[error("parsing config {digest}: {source}")]
    MalformedConfig {
        digest: Digest,
        #[source]
        source: serde_json::Error,
    },
    #[error("layer {layer} decompresses to {actual}, but the image config says {expected}")]
    DiffIdMismatch {
        layer: Digest,
        actual: Digest,
        expected: Digest,
    },
    #[error("schema1 layer {blob} arrived as {actual}")]
    Schema1LayerMismatch { blob: Digest, actual: Digest },
    #[error("schema1 layer {0} is not valid gzip")]
    Schema1LayerNotGzip(Digest),

    /// `delete` of an image the registry does not have (containers/image's text).
    #[error("Unable to delete {0}. Image may not exist or is not stored with a v2 Schema in a v2 registry")]
    DeleteNotFound(String),

    // The Docker daemon.
    #[error("docker daemon: unsupported daemon host {0:?}: use unix:///path or tcp://host:port")]
    DaemonHost(String),
    #[error("docker daemon: {action}: {}", crate::registry::causes(.source))]
    DaemonNetwork {
        action: String,
        #[source]
        source: reqwest::Error,
    },
    /// Nothing answers at the daemon's address (docker's text, see skopeo_texts).
    #[error("Cannot connect to the Docker daemon at {0}. Is the docker daemon running?")]
    DaemonUnreachable(String),
    /// The daemon answered with an error; `message` is its own.
    #[error("docker daemon: {action}: {message}")]
    DaemonRefused { action: String, message: String },

    // kopeo's own failures.
    #[error("encoding {what}: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{task}: {source}")]
    Background {
        task: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },
    #[error("archive already finished")]
    ArchiveFinished,
    #[error("commit without a manifest")]
    CommitWithoutManifest,
}

impl TransportError {
    /// An I/O error on `path` during `op`.
    pub fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> TransportError {
        let path = path.into();
        move |source| TransportError::Io { op, path, source }
    }

    /// Like [`TransportError::io`], but a missing file is `missing()`.
    pub fn io_or_missing(
        op: &'static str,
        path: &std::path::Path,
        missing: impl FnOnce() -> TransportError,
    ) -> impl FnOnce(std::io::Error) -> TransportError {
        let path = path.to_path_buf();
        move |source| match source.kind() {
            std::io::ErrorKind::NotFound => missing(),
            _ => TransportError::Io { op, path, source },
        }
    }

    /// A blocking task doing `task` that panicked or was cancelled.
    pub fn background(task: &'static str) -> impl FnOnce(tokio::task::JoinError) -> TransportError {
        move |source| TransportError::Background { task, source }
    }

    /// Serialising `what` failed.
    pub fn encode(what: &'static str) -> impl FnOnce(serde_json::Error) -> TransportError {
        move |source| TransportError::Encode { what, source }
    }

    /// True when the image (manifest or repository) does not exist: skopeo exits 2.
    pub fn is_image_not_found(&self) -> bool {
        match self {
            TransportError::ImageNotFound(_) => true,
            TransportError::Registry(e) => {
                matches!(e, RegistryError::Status { code: Some(c), .. } if c == "MANIFEST_UNKNOWN" || c == "NAME_UNKNOWN")
            }
            _ => false,
        }
    }

    /// True when the registry refused the credentials (or asked for some).
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, TransportError::Registry(e) if e.is_unauthorized())
    }

    /// True when sending a blob's bytes to a registry failed transiently:
    /// the one failure the copy pipeline retries (see
    /// [`RegistryError::is_retryable_upload`]).
    pub fn is_retryable_upload(&self) -> bool {
        matches!(self, TransportError::Registry(e) if e.is_retryable_upload())
    }

    /// True for failures a retry may fix.
    pub fn is_transient(&self) -> bool {
        match self {
            TransportError::Registry(e) => e.is_transient(),
            _ => false,
        }
    }
}
