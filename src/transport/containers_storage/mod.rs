//! `containers-storage:` — the image store of podman, CRI-O and buildah,
//! read and written natively in containers/storage's on-disk formats (see
//! `store.rs`), with the `vfs` and `overlay` drivers.
//!
//! As containers/image's storage transport: a destination stages blobs in
//! a temporary directory inside the store and, at `commit`, applies the
//! layers in order under the store's locks, then writes the image record;
//! a source serves layers uncompressed (reassembled from tar-split, byte
//! for byte the tar that was applied), so a copy out of storage rewrites
//! the manifest's layer descriptors ([`ImageSource::layers_for_copy`]).

mod apply;
mod conf;
mod destination;
mod error;
mod lock;
mod name;
mod records;
mod source;
mod store;
mod tar_split;
mod tar_stream;

pub use destination::StorageDestination;
pub use error::StorageError;
pub use source::StorageSource;

use super::TransportError;

/// Delete the image a reference names (its names, big data, and the
/// layers no other image or container uses).
pub async fn delete(store: Option<&str>, image: &str) -> Result<(), TransportError> {
    let (store, name) = (store.map(str::to_string), image.to_string());
    blocking("deleting from containers-storage", move || {
        store::delete(store.as_deref(), &name)
    })
    .await
}

/// Run store work (file system and locks) on a blocking thread.
async fn blocking<T: Send + 'static>(
    task: &'static str,
    f: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, TransportError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|source| TransportError::Background { task, source })?
        .map_err(TransportError::from)
}

/// Apply an uncompressed layer tar to `root` as the vfs (`overlay` false)
/// or overlay driver would, then reassemble it from its tar-split and the
/// files written: for the `layer_tar` fuzz target.
#[doc(hidden)]
pub fn apply_and_reassemble(tar: &[u8], root: &std::path::Path, overlay: bool) -> Result<Vec<u8>, StorageError> {
    use std::io::Read as _;
    let opts = apply::ApplyOptions {
        whiteouts: match overlay {
            true => apply::Whiteouts::Overlay {
                opaque_xattr: "user.overlay.opaque",
            },
            false => apply::Whiteouts::Remove,
        },
        ignore_chown_errors: true,
        force_mask: None,
        apply_root_entry: !overlay,
        // The caller's directory keeps its mode: it removes it afterwards.
        root_mode: {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::metadata(root)
                .map_err(StorageError::io("reading", root))?
                .permissions()
                .mode()
        },
    };
    let mut split = tar_split::Writer::new(vec![]);
    let applied = apply::apply(tar, root, &opts, &mut split)?;
    if applied.diff_id != crate::digest::Digest::sha256_of(tar) || applied.diff_size != tar.len() as u64 {
        return Err(StorageError::MalformedLayer(
            "the diff ID is not the tar's digest".into(),
        ));
    }
    let ts = root.with_extension("tar-split.gz");
    std::fs::write(&ts, split.finish()?).map_err(StorageError::io("writing", &ts))?;
    let mut out = vec![];
    tar_split::Assembler::open(&ts, root)?
        .read_to_end(&mut out)
        .map_err(StorageError::Read)?;
    Ok(out)
}

/// The Docker reference an image part names (`docker.io/library/x:tag`),
/// for signing identities; `None` for an image ID.
pub fn docker_reference(image: &str) -> Option<crate::reference::DockerReference> {
    let empty = records::Records {
        path: Default::default(),
        items: vec![],
    };
    name::ImageName::parse(image, &empty).ok()?.named
}

/// The repository an image part names (`docker.io/library/x`), for
/// `inspect`'s `Name`; `None` for an image ID.
pub fn repository_name(image: &str) -> Option<String> {
    docker_reference(image).map(|n| n.name())
}
