//! A containers/storage store on disk, for one driver:
//!
//! - `<graphroot>/storage.lock`, then `<driver>-layers/layers.lock`, then
//!   `<driver>-images/images.lock`: taken in that order, as containers/storage
//!   takes them; a write replaces a lock's token before rewriting its JSON.
//! - `<driver>-layers/layers.json` and `<id>.tar-split.gz`; a layer being
//!   written carries the `incomplete` flag until its files are all there
//!   (containers/storage removes incomplete layers it finds).
//! - layer IDs: the diff ID's hex for a base layer, else
//!   `sha256(parent + "+" + diffID hex)`; the image ID is the config's digest hex.
//! - `vfs/dir/<id>`: a full tree (a copy of the parent, the diff applied);
//!   `overlay/<id>/diff` (with `link`, `lower`, `work`, `merged`, `empty`)
//!   and the `overlay/l/<short>` symlink to it.
//! - `<driver>-images/images.json` and `<driver>-images/<id>/<key>` big
//!   data: the config (key = its digest), `manifest`, `manifest-<digest>`.

use super::StorageError;
use super::apply::{self, ApplyOptions, Whiteouts};
use super::conf::{self, Driver, StoreConfig, StoreSpec};
use super::lock::{Lock, Mode};
use super::name::ImageName;
use super::records::{Record, Records, write_atomic};
use super::tar_split;
use crate::digest::Digest;
use base64::Engine as _;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};

/// An opened store.
#[derive(Debug, Clone)]
pub struct Store {
    pub cfg: StoreConfig,
}

/// The locks of a transaction, released together (in reverse order).
pub struct Locks {
    pub images: Lock,
    pub layers: Lock,
    _graph: Lock,
    // fcntl locks do not exclude threads of one process: this does.
    _process: tokio::sync::OwnedMutexGuard<()>,
}

static IN_PROCESS: LazyLock<Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The key of a manifest's big data (containers/image's `manifestBigDataKey`).
pub fn manifest_key(d: &Digest) -> String {
    format!("manifest-{d}")
}

/// containers/storage's `makeBigDataBaseName`: keys outside `[.0-9a-z]`
/// are stored under `=` + base64.
pub fn big_data_file(key: &str) -> String {
    if key
        .bytes()
        .all(|b| b == b'.' || b.is_ascii_digit() || b.is_ascii_lowercase())
    {
        key.to_string()
    } else {
        format!("={}", base64::engine::general_purpose::STANDARD.encode(key))
    }
}

/// A layer's ID on top of `parent` (containers/image's `layerID`).
pub fn layer_id(parent: Option<&str>, diff_id: &Digest) -> String {
    match parent {
        None => diff_id.hex().to_string(),
        Some(p) => Digest::sha256_of(format!("{p}+{}", diff_id.hex()).as_bytes())
            .hex()
            .to_string(),
    }
}

/// Go's `time.Time` JSON form, now (UTC).
fn now() -> String {
    crate::timestamp::format_go_local(std::time::SystemTime::now())
}

impl Store {
    /// The store a reference's optional `[…]` specification names.
    pub fn open(spec: Option<&str>) -> Result<Store, StorageError> {
        let spec = spec.map(StoreSpec::parse).transpose()?;
        Ok(Store {
            cfg: conf::resolve(spec.as_ref(), &conf::Env::current())?,
        })
    }

    /// A reference within the transport, as containers/image's
    /// `StringWithinTransport` writes it: `[driver@graphroot+runroot]name`.
    pub fn describe_reference(&self, name: &ImageName) -> String {
        let mut s = format!(
            "[{}@{}+{}]",
            self.driver(),
            self.cfg.graphroot.display(),
            self.cfg.runroot.display()
        );
        if let Some(n) = name.store_name() {
            s.push_str(&n);
        }
        if let Some(id) = &name.id {
            s.push('@');
            s.push_str(id);
        }
        s
    }

    fn driver(&self) -> &'static str {
        self.cfg.driver.name()
    }

    pub fn layers_dir(&self) -> PathBuf {
        self.cfg.graphroot.join(format!("{}-layers", self.driver()))
    }

    pub fn images_dir(&self) -> PathBuf {
        self.cfg.graphroot.join(format!("{}-images", self.driver()))
    }

    fn containers_json(&self) -> PathBuf {
        self.cfg
            .graphroot
            .join(format!("{}-containers/containers.json", self.driver()))
    }

    /// Where a layer's files are.
    pub fn layer_root(&self, id: &str) -> PathBuf {
        match self.cfg.driver {
            Driver::Vfs => self.cfg.graphroot.join("vfs/dir").join(id),
            Driver::Overlay => self.cfg.graphroot.join("overlay").join(id).join("diff"),
        }
    }

    pub fn tar_split(&self, id: &str) -> PathBuf {
        self.layers_dir().join(format!("{id}{}", ".tar-split.gz"))
    }

    /// A directory for staged blobs, inside the store (same filesystem).
    /// Staging directories that a killed kopeo left behind (their lock is
    /// free, and this process does not use them) are removed first.
    pub fn staging_dir(&self) -> Result<Staging, StorageError> {
        let base = self.cfg.graphroot.join("tmp");
        std::fs::create_dir_all(&base).map_err(StorageError::io("creating", &base))?;
        sweep_staging(&base);
        let dir = tempfile::Builder::new()
            .prefix("kopeo-")
            .tempdir_in(&base)
            .map_err(StorageError::io("creating a staging directory in", &base))?;
        let lock = Lock::acquire(&dir.path().join(STAGING_LOCK), Mode::Write)?;
        live_staging().insert(dir.path().to_path_buf());
        Ok(Staging { dir, _lock: lock })
    }

    /// Take the store's locks in containers/storage's order.
    pub fn lock(&self, mode: Mode) -> Result<Locks, StorageError> {
        let m = IN_PROCESS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(self.cfg.graphroot.clone())
            .or_default()
            .clone();
        let process = m.blocking_lock_owned();
        let graph = Lock::acquire(&self.cfg.graphroot.join("storage.lock"), Mode::Write)?;
        let layers = Lock::acquire(&self.layers_dir().join("layers.lock"), mode)?;
        // Each file is opened once: closing a second descriptor of it would
        // drop this process's record locks on it.
        let images = Lock::acquire(&self.images_dir().join("images.lock"), mode)?;
        Ok(Locks {
            images,
            layers,
            _graph: graph,
            _process: process,
        })
    }

    pub fn load_layers(&self) -> Result<Records, StorageError> {
        Records::load(&self.layers_dir().join("layers.json"))
    }

    pub fn load_images(&self) -> Result<Records, StorageError> {
        Records::load(&self.images_dir().join("images.json"))
    }

    /// The layers of an image, base first.
    pub fn chain(&self, layers: &Records, top: Option<&str>) -> Result<Vec<Record>, StorageError> {
        let mut out = vec![];
        let mut at = top.map(str::to_string);
        while let Some(id) = at.filter(|s| !s.is_empty()) {
            let l = layers.get(&id).ok_or_else(|| StorageError::MissingLayer(id.clone()))?;
            if l.flag("incomplete") {
                return Err(StorageError::MissingLayer(id.clone()));
            }
            at = l.str("parent").map(str::to_string);
            out.push(l.clone());
            if out.len() > 10_000 {
                return Err(StorageError::MissingLayer(id));
            }
        }
        out.reverse();
        Ok(out)
    }

    /// Read an image's big data item.
    pub fn big_data(&self, id: &str, key: &str) -> Result<Vec<u8>, StorageError> {
        let p = self.images_dir().join(id).join(big_data_file(key));
        std::fs::read(&p).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => StorageError::MissingBigData {
                id: id.to_string(),
                key: key.to_string(),
            },
            _ => StorageError::io("reading", &p)(e),
        })
    }

    /// How whiteouts are stored: removed (vfs), AUFS files behind a mount
    /// program, else overlayfs's, opaque directories marked with `user.`
    /// xattrs when rootless and `trusted.` ones as root (upstream's rule).
    fn whiteouts(&self) -> Whiteouts {
        match self.cfg.driver {
            Driver::Vfs => Whiteouts::Remove,
            Driver::Overlay if self.cfg.mount_program.is_some() => Whiteouts::Keep,
            Driver::Overlay => {
                // SAFETY: geteuid has no preconditions.
                let rootless = unsafe { libc::geteuid() } != 0;
                Whiteouts::Overlay {
                    opaque_xattr: if rootless {
                        "user.overlay.opaque"
                    } else {
                        "trusted.overlay.opaque"
                    },
                }
            }
        }
    }

    /// Remove a layer's files and record (an incomplete one left by a killed writer).
    fn remove_layer(&self, locks: &Locks, layers: &mut Records, id: &str) -> Result<(), StorageError> {
        match self.cfg.driver {
            Driver::Vfs => remove_all(&self.cfg.graphroot.join("vfs/dir").join(id))?,
            Driver::Overlay => {
                let dir = self.cfg.graphroot.join("overlay").join(id);
                if let Ok(link) = std::fs::read_to_string(dir.join("link")) {
                    let _ = std::fs::remove_file(self.cfg.graphroot.join("overlay/l").join(link.trim()));
                }
                remove_all(&dir)?;
            }
        }
        let _ = std::fs::remove_file(self.tar_split(id));
        layers.items.retain(|l| l.id() != id);
        layers.save(&locks.layers)
    }

    /// Create the driver's directory for a new layer; returns the mode its
    /// root gets once filled (it is owner-writable until then).
    fn create_layer_dir(&self, id: &str, parent: Option<&str>) -> Result<u32, StorageError> {
        use std::os::unix::fs::PermissionsExt;
        // containers/storage's default for a base layer's root.
        const BASE_ROOT_MODE: u32 = 0o555;
        let root_mode = match (self.cfg.force_mask, parent) {
            (Some(mask), _) => mask,
            (None, Some(p)) => std::fs::metadata(self.layer_root(p))
                .map(|m| m.permissions().mode() & 0o7777)
                .unwrap_or(BASE_ROOT_MODE),
            (None, None) => BASE_ROOT_MODE,
        };
        let writable = std::fs::Permissions::from_mode(root_mode | 0o700);
        match self.cfg.driver {
            Driver::Vfs => {
                let dir = self.layer_root(id);
                let base = self.cfg.graphroot.join("vfs/dir");
                std::fs::create_dir_all(&base).map_err(StorageError::io("creating", &base))?;
                match parent {
                    Some(p) => apply::copy_tree(&self.layer_root(p), &dir)?,
                    None => std::fs::create_dir(&dir).map_err(StorageError::io("creating", &dir))?,
                }
                std::fs::set_permissions(&dir, writable).map_err(StorageError::io("setting permissions of", &dir))?;
            }
            Driver::Overlay => {
                let home = self.cfg.graphroot.join("overlay");
                let links = home.join("l");
                std::fs::create_dir_all(&links).map_err(StorageError::io("creating", &links))?;
                let dir = home.join(id);
                std::fs::create_dir(&dir).map_err(StorageError::io("creating", &dir))?;
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
                    .map_err(StorageError::io("setting permissions of", &dir))?;
                let diff = dir.join("diff");
                std::fs::create_dir(&diff).map_err(StorageError::io("creating", &diff))?;
                std::fs::set_permissions(&diff, writable).map_err(StorageError::io("setting permissions of", &diff))?;
                let short = short_link_id();
                std::os::unix::fs::symlink(Path::new("..").join(id).join("diff"), links.join(&short))
                    .map_err(StorageError::io("creating symlink", &links.join(&short)))?;
                std::fs::write(dir.join("link"), &short).map_err(StorageError::io("writing", &dir.join("link")))?;
                for d in ["work", "merged"] {
                    let p = dir.join(d);
                    std::fs::create_dir(&p).map_err(StorageError::io("creating", &p))?;
                    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700))
                        .map_err(StorageError::io("setting permissions of", &p))?;
                }
                match parent {
                    None => {
                        let p = dir.join("empty");
                        std::fs::create_dir(&p).map_err(StorageError::io("creating", &p))?;
                        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700))
                            .map_err(StorageError::io("setting permissions of", &p))?;
                    }
                    Some(p) => {
                        let pdir = home.join(p);
                        let plink = std::fs::read_to_string(pdir.join("link"))
                            .map_err(StorageError::io("reading", &pdir.join("link")))?;
                        let mut lower = format!("l/{}", plink.trim());
                        if let Ok(pl) = std::fs::read_to_string(pdir.join("lower")) {
                            lower = format!("{lower}:{}", pl.trim());
                        }
                        std::fs::write(dir.join("lower"), lower)
                            .map_err(StorageError::io("writing", &dir.join("lower")))?;
                    }
                }
            }
        }
        Ok(root_mode)
    }

    /// Make the layer `(parent, diff_id)` present, applying the staged blob
    /// at `blob` if it is not; returns its ID. Runs with the locks held.
    #[allow(clippy::too_many_arguments)]
    pub fn put_layer(
        &self,
        locks: &Locks,
        layers: &mut Records,
        index: usize,
        parent: Option<&str>,
        diff_id: &Digest,
        blob: &Path,
        blob_digest: &Digest,
    ) -> Result<String, StorageError> {
        let id = layer_id(parent, diff_id);
        if let Some(l) = layers.get(&id) {
            if !l.flag("incomplete") {
                return Ok(id);
            }
            tracing::info!(layer = %id, "removing an incomplete layer left by an earlier writer");
            self.remove_layer(locks, layers, &id)?;
        }
        let mut rec = Record(serde_json::Map::new());
        rec.set("id", json!(id));
        if let Some(p) = parent {
            rec.set("parent", json!(p));
        }
        rec.set("created", json!(now()));
        rec.set_flag("incomplete", true);
        layers.items.push(rec);
        layers.save(&locks.layers)?;
        let result = self.fill_layer(&id, parent, blob, blob_digest, diff_id, index);
        let applied = match result {
            Ok(a) => a,
            Err(e) => {
                // Nothing half-written stays: the record and files go.
                let _ = self.remove_layer(locks, layers, &id);
                return Err(e);
            }
        };
        let ((a, code), compressed_size) = applied;
        let rec = layers
            .get_mut(&id)
            .ok_or_else(|| StorageError::MissingLayer(id.clone()))?;
        rec.set("compressed-diff-digest", json!(blob_digest.to_string()));
        rec.set("compressed-size", json!(compressed_size));
        rec.set("diff-digest", json!(a.diff_id.to_string()));
        rec.set("diff-size", json!(a.diff_size));
        if code != 0 {
            rec.set("compression", json!(code));
        }
        rec.set("uidset", json!(a.uids.iter().collect::<Vec<_>>()));
        rec.set("gidset", json!(a.gids.iter().collect::<Vec<_>>()));
        rec.set_flag("incomplete", false);
        layers.save(&locks.layers)?;
        Ok(id)
    }

    /// Create the layer's directory, apply the blob, write its tar-split.
    fn fill_layer(
        &self,
        id: &str,
        parent: Option<&str>,
        blob: &Path,
        blob_digest: &Digest,
        diff_id: &Digest,
        index: usize,
    ) -> Result<((apply::Applied, u8), u64), StorageError> {
        let root_mode = self.create_layer_dir(id, parent)?;
        let f = std::fs::File::open(blob).map_err(StorageError::io("opening", blob))?;
        let compressed_size = f.metadata().map(|m| m.len()).unwrap_or(0);
        let mut reader = std::io::BufReader::with_capacity(256 * 1024, f);
        let head = {
            use std::io::BufRead;
            reader.fill_buf().map_err(StorageError::io("reading", blob))?.to_vec()
        };
        // containers/storage's archive.Compression numbering; like its
        // DecompressStream, bzip2 and xz layers are taken too.
        use crate::transport::tar_archive::ArchiveCompression as C;
        let (tar, code): (Box<dyn std::io::Read>, u8) = match C::detect(&head) {
            None => (Box::new(reader), 0),
            Some(C::Bzip2) => (Box::new(bzip2::bufread::MultiBzDecoder::new(reader)), 1),
            Some(C::Gzip) => (Box::new(flate2::bufread::MultiGzDecoder::new(reader)), 2),
            Some(C::Xz) => (Box::new(lzma_rust2::XzReader::new(reader, true)), 3),
            Some(C::Zstd) => (
                Box::new(zstd::stream::read::Decoder::with_buffer(reader).map_err(StorageError::Read)?),
                4,
            ),
        };
        let ts_tmp = tempfile::NamedTempFile::new_in(self.layers_dir())
            .map_err(StorageError::io("creating", &self.layers_dir()))?;
        let mut split = tar_split::Writer::new(std::io::BufWriter::new(
            ts_tmp.reopen().map_err(StorageError::io("opening", ts_tmp.path()))?,
        ));
        let opts = ApplyOptions {
            whiteouts: self.whiteouts(),
            ignore_chown_errors: self.cfg.ignore_chown_errors,
            force_mask: self.cfg.force_mask,
            apply_root_entry: self.cfg.driver == Driver::Vfs,
            root_mode,
        };
        let applied = apply::apply(tar, &self.layer_root(id), &opts, &mut split)?;
        if applied.diff_id != *diff_id {
            return Err(StorageError::DiffIdMismatch {
                index,
                blob: blob_digest.to_string(),
                expected: diff_id.to_string(),
                actual: applied.diff_id.to_string(),
            });
        }
        let mut w = split.finish()?;
        use std::io::Write as _;
        w.flush().map_err(StorageError::Write)?;
        ts_tmp.as_file().sync_all().map_err(StorageError::Write)?;
        ts_tmp
            .persist(self.tar_split(id))
            .map_err(|e| StorageError::io("renaming into place", &self.tar_split(id))(e.error))?;
        Ok(((applied, code), compressed_size))
    }

    /// Create or update an image record with its big data items, and give
    /// it its name (taken away from any other image).
    pub fn put_image(&self, locks: &Locks, image: NewImage<'_>) -> Result<(), StorageError> {
        let NewImage {
            id,
            top,
            big,
            name,
            created,
            metadata,
        } = image;
        let mut images = self.load_images()?;
        if let Some(existing) = images.get(id)
            && existing.str("layer") != top
        {
            return Err(StorageError::DuplicateImage(id.to_string()));
        }
        // Big data files first: a record never names data that is not there.
        let dir = self.images_dir().join(id);
        for (key, data) in big {
            write_atomic(&dir.join(big_data_file(key)), data, 0o600)?;
        }
        let is_new = images.get(id).is_none();
        if is_new {
            let mut rec = Record(serde_json::Map::new());
            rec.set("id", json!(id));
            images.items.push(rec);
        }
        if let Some(n) = name {
            for other in images.items.iter_mut().filter(|i| i.id() != id) {
                let names: Vec<String> = other.strings("names").into_iter().filter(|x| x != n).collect();
                other.set("names", json!(names));
            }
        }
        let rec = images
            .get_mut(id)
            .ok_or_else(|| StorageError::NoSuchImage(id.to_string()))?;
        let mut names = rec.strings("names");
        let mut history = rec.strings("names-history");
        if let Some(n) = name {
            if !names.iter().any(|x| x == n) {
                names.push(n.to_string());
            }
            history.retain(|x| x != n);
            history.insert(0, n.to_string());
        }
        let mut big_names = rec.strings("big-data-names");
        let mut sizes = rec
            .0
            .get("big-data-sizes")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let mut digests = rec
            .0
            .get("big-data-digests")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (key, data) in big {
            if !big_names.contains(key) {
                big_names.push(key.clone());
            }
            sizes.insert(key.clone(), json!(data.len()));
            digests.insert(key.clone(), json!(Digest::sha256_of(data).to_string()));
        }
        let digest = digests.get("manifest").cloned().unwrap_or(Value::Null);
        // Field order as containers/storage's Image struct writes them.
        let mut out = Record(serde_json::Map::new());
        out.set("id", json!(id));
        out.set("digest", digest);
        out.set("names", json!(names));
        out.set("names-history", json!(history));
        out.set("layer", top.map(|t| json!(t)).unwrap_or(Value::Null));
        for (k, v) in rec.0.iter() {
            if !out.0.contains_key(k)
                && !matches!(
                    k.as_str(),
                    "big-data-names" | "big-data-sizes" | "big-data-digests" | "created" | "metadata"
                )
            {
                out.0.insert(k.clone(), v.clone());
            }
        }
        out.set("metadata", json!(metadata));
        out.set("big-data-names", json!(big_names));
        out.set("big-data-sizes", Value::Object(sizes));
        out.set("big-data-digests", Value::Object(digests));
        let created = rec.str("created").map(str::to_string).or(created).unwrap_or_else(now);
        out.set("created", json!(created));
        *rec = out;
        images.save(&locks.images)
    }
}

/// What [`Store::put_image`] writes.
pub struct NewImage<'a> {
    /// The image ID (the config digest's hex, unless the reference named one).
    pub id: &'a str,
    /// The top layer.
    pub top: Option<&'a str>,
    /// Big data items: key and bytes.
    pub big: &'a [(String, Vec<u8>)],
    pub name: Option<&'a str>,
    /// The config's creation time, for a new record.
    pub created: Option<String>,
    /// The metadata string (signature sizes).
    pub metadata: &'a str,
}

const STAGING_LOCK: &str = "staging.lock";

/// A staging directory, locked while in use and removed when dropped.
pub struct Staging {
    dir: tempfile::TempDir,
    _lock: Lock,
}

impl Staging {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        live_staging().remove(self.dir.path());
    }
}

/// This process's staging directories (fcntl locks do not tell a process
/// its own locks from free ones).
fn live_staging() -> std::sync::MutexGuard<'static, std::collections::HashSet<PathBuf>> {
    static LIVE: LazyLock<Mutex<std::collections::HashSet<PathBuf>>> = LazyLock::new(Default::default);
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

fn sweep_staging(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if !e.file_name().to_string_lossy().starts_with("kopeo-") || live_staging().contains(&p) {
            continue;
        }
        let lock = p.join(STAGING_LOCK);
        // A directory just made by another process may not have its lock yet.
        let young = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_none_or(|age| age < std::time::Duration::from_secs(60));
        if !lock.exists() && young {
            continue;
        }
        if let Ok(Some(_held)) = Lock::try_acquire(&lock, Mode::Write) {
            tracing::debug!(dir = %p.display(), "removing a staging directory left by an earlier kopeo");
            let _ = std::fs::remove_dir_all(&p);
        }
    }
}

/// overlay's short link names: 26 characters of base32.
fn short_link_id() -> String {
    use rand::RngCore as _;
    let mut b = [0u8; 17];
    rand::thread_rng().fill_bytes(&mut b);
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bits: u128 = 0;
    for x in &b[..16] {
        bits = (bits << 8) | *x as u128;
    }
    (0..26)
        .map(|i| ALPHABET[((bits >> (i * 4)) & 31) as usize] as char)
        .collect()
}

fn remove_all(p: &Path) -> Result<(), StorageError> {
    match std::fs::remove_dir_all(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io("removing", p)(e)),
    }
}

/// Delete an image: its record, names and big data, then the layers of its
/// chain that no other image and no container uses (top down, stopping at
/// the first one still in use).
pub fn delete(spec: Option<&str>, image: &str) -> Result<(), StorageError> {
    let store = Store::open(spec)?;
    let locks = store.lock(Mode::Write)?;
    let mut images = store.load_images()?;
    let name = ImageName::parse(image, &images)?;
    let rec = name
        .resolve(&images)
        .cloned()
        .ok_or_else(|| StorageError::NoSuchImage(store.describe_reference(&name)))?;
    let id = rec.id().to_string();
    let containers = Records::load(&store.containers_json())?;
    if containers.items.iter().any(|c| c.str("image") == Some(id.as_str())) {
        return Err(StorageError::ImageInUse(id));
    }
    let mut layers = store.load_layers()?;
    images.items.retain(|i| i.id() != id);
    images.save(&locks.images)?;
    remove_all(&store.images_dir().join(&id))?;
    let used: std::collections::HashSet<String> = images
        .items
        .iter()
        .filter_map(|i| i.str("layer").map(str::to_string))
        .chain(
            containers
                .items
                .iter()
                .filter_map(|c| c.str("layer").map(str::to_string)),
        )
        .collect();
    let mut at = rec.str("layer").map(str::to_string);
    while let Some(l) = at.filter(|s| !s.is_empty()) {
        let children = layers
            .items
            .iter()
            .filter(|x| x.str("parent") == Some(l.as_str()))
            .count();
        if used.contains(&l) || children > 0 {
            break;
        }
        at = layers.get(&l).and_then(|x| x.str("parent").map(str::to_string));
        store.remove_layer(&locks, &mut layers, &l)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_big_data_names_are_containers_storage_s() {
        let d: Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
        assert_eq!(layer_id(None, &d), "a".repeat(64));
        let want = Digest::sha256_of(format!("{}+{}", "b".repeat(64), "a".repeat(64)).as_bytes());
        assert_eq!(layer_id(Some(&"b".repeat(64)), &d), want.hex());
        assert_eq!(big_data_file("manifest"), "manifest");
        assert_eq!(big_data_file("sha256:ab"), "=c2hhMjU2OmFi");
        assert_eq!(short_link_id().len(), 26);
    }
}
