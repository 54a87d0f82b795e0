//! What can go wrong with a containers/storage store, one variant per cause.

use std::path::PathBuf;

/// An error reading or writing a containers-storage store.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "changing the owner of {path} to {uid}:{gid}: {source} (a user who may not chown can set the storage option ignore_chown_errors)"
    )]
    Chown {
        path: PathBuf,
        uid: u32,
        gid: u32,
        #[source]
        source: std::io::Error,
    },
    #[error("reading a layer: {0}")]
    Read(#[source] std::io::Error),
    #[error("writing layer metadata: {0}")]
    Write(#[source] std::io::Error),
    #[error("{path} is not valid store metadata: {why}")]
    Json { path: PathBuf, why: String },
    #[error("storage configuration {path}: {why}")]
    Config { path: PathBuf, why: String },
    #[error("invalid store specification [{0}]: {1}")]
    StoreSpec(String, String),
    #[error("the {0:?} storage driver is not supported by kopeo (vfs and overlay are)")]
    UnsupportedDriver(String),
    #[error("invalid storage option {0}: {1}")]
    BadOption(String, String),
    #[error("malformed layer: {0}")]
    MalformedLayer(String),
    #[error("tar-split metadata: {0}")]
    TarSplit(String),
    #[error("malformed layer: the path {0:?} appears twice")]
    DuplicatePath(String),
    #[error("malformed layer: the member {0:?} points outside the layer")]
    Escape(String),
    #[error("malformed layer: the member {0:?} has an owner ID above 2^32")]
    IdTooLarge(String),
    #[error("malformed layer: the member {0:?} has the unsupported type {1:?}")]
    UnsupportedMember(String, char),
    #[error("malformed layer: too many symbolic links resolving {0}")]
    SymlinkLoop(PathBuf),
    #[error("malformed layer: {0} is in a path but is not a directory")]
    NotADirectory(PathBuf),
    #[error("layer file {0} no longer has the content its layer recorded")]
    LayerFileChanged(PathBuf),
    /// The reference as containers/image writes it within the transport.
    #[error("reference \"{0}\" does not resolve to an image ID")]
    NoSuchImage(String),
    #[error("layer {0} of the store is missing (its image is damaged)")]
    MissingLayer(String),
    #[error("image {id} has no {key:?} data")]
    MissingBigData { id: String, key: String },
    #[error("layer {index} (blob {blob}) does not match config's DiffID {expected}: it is {actual}")]
    DiffIdMismatch {
        index: usize,
        blob: String,
        expected: String,
        actual: String,
    },
    #[error("the image's config lists {diff_ids} layers, its manifest {layers}")]
    LayerCountMismatch { diff_ids: usize, layers: usize },
    #[error("image with ID {0:?} already exists, but uses a different top layer")]
    DuplicateImage(String),
    #[error("image {0} is in use by a container")]
    ImageInUse(String),
    #[error("the signatures of image {0} do not add up to the sizes recorded for them")]
    MalformedSignatures(String),
    #[error("{0}")]
    Reference(String),
}

impl StorageError {
    /// An I/O error of `op` on `path`, for `map_err`.
    pub fn io(op: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> StorageError {
        let path = path.to_path_buf();
        move |source| StorageError::Io { op, path, source }
    }
}
