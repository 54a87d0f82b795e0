//! Applying a layer tar to a layer directory, safely: every path is
//! resolved inside the directory (symlinks followed as a chroot would,
//! never out of it), `..` that climbs out is refused, hardlinks must point
//! inside, the same path twice is refused (tar-split's rule), ownership
//! and xattrs are kept, and directory times are set last. Whiteouts
//! follow the driver: `vfs` removes what they name (the directory starts
//! as a copy of the parent's); `overlay` keeps them as 0:0 character
//! devices and marks opaque directories with an xattr, or, behind a mount
//! program, keeps the AUFS `.wh.` files as they are. A `force_mask` gives
//! every file and directory that mode and no owner, keeping the real ones
//! in an xattr, as containers/storage does on filesystems without them.

use super::StorageError;
use super::tar_split::{self, Crc64};
use super::tar_stream::{Header, TarStream};
use crate::digest::{Digest, HashingReader};
use std::collections::{BTreeSet, HashSet};
use std::ffi::CString;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// How whiteouts are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whiteouts {
    /// Remove what they name (vfs: each layer directory is a full tree).
    Remove,
    /// Keep them for overlayfs: character devices 0:0, and this xattr set
    /// to `y` on opaque directories (`trusted.overlay.opaque` as root).
    Overlay { opaque_xattr: &'static str },
    /// Keep the `.wh.` files themselves (overlay behind a mount program:
    /// fuse-overlayfs reads the AUFS format, and may not mknod).
    Keep,
}

/// The xattr holding an entry's real owner, mode and type under a force mask.
pub const OVERRIDE_STAT: &str = "user.containers.override_stat";

/// How a layer is applied.
#[derive(Debug, Clone, Copy)]
pub struct ApplyOptions {
    pub whiteouts: Whiteouts,
    /// storage.conf's `ignore_chown_errors`.
    pub ignore_chown_errors: bool,
    /// overlay's `force_mask`.
    pub force_mask: Option<u32>,
    /// Whether a `./` entry sets the root's attributes: vfs (containers/
    /// storage's UnpackLayer) applies it, overlay (Unpack) skips it.
    pub apply_root_entry: bool,
    /// The mode the layer's root gets unless the tar has a `./` entry (the
    /// driver creates the root owner-writable so a non-root writer can fill it).
    pub root_mode: u32,
}

/// What applying a layer found out about it.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The uncompressed tar's digest and size (the diff ID).
    pub diff_id: Digest,
    pub diff_size: u64,
    /// Owners seen, whiteouts excepted (containers/storage's uidset/gidset).
    pub uids: BTreeSet<u32>,
    pub gids: BTreeSet<u32>,
}

const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";
const WHITEOUT_META: &str = ".wh..wh.";
/// Symlinks followed while resolving one path before giving up (Linux's 40).
const MAX_LINKS: usize = 40;

/// Apply the (decompressed) layer `tar` to `root`, recording tar-split
/// entries in `split`.
pub fn apply<R: Read, W: Write>(
    tar: R,
    root: &Path,
    opts: &ApplyOptions,
    split: &mut tar_split::Writer<W>,
) -> Result<Applied, StorageError> {
    let mut ts = TarStream::new(HashingReader::new(tar));
    let mut unpacked: HashSet<PathBuf> = HashSet::new();
    // Directories' modes and times are set last: a mode without u+w would
    // stop a non-root writer filling them, and filling them changes mtimes.
    let mut dirs: Vec<(PathBuf, Option<i64>, u32)> = vec![(root.to_path_buf(), None, opts.root_mode)];
    let (mut uids, mut gids) = (BTreeSet::new(), BTreeSet::new());
    let mut root_override = String::from("0:0:0755:dir");
    while let Some(h) = ts.next()? {
        split.segment(&ts.take_raw())?;
        let rel = relative(&h.name)?;
        let base = rel
            .file_name()
            .map(|b| b.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !base.starts_with(WHITEOUT) {
            uids.insert(u32::try_from(h.uid).map_err(|_| StorageError::IdTooLarge(h.name.clone()))?);
            gids.insert(u32::try_from(h.gid).map_err(|_| StorageError::IdTooLarge(h.name.clone()))?);
        }
        let parent = match rel.parent() {
            Some(p) if !p.as_os_str().is_empty() => resolve(root, p, true)?,
            _ => root.to_path_buf(),
        };
        if rel.as_os_str().is_empty() {
            // The root directory itself (`./`): its attributes only.
            if h.kind == b'5' {
                root_override = format!("{}:{}:{:04o}:dir", h.uid, h.gid, h.mode & 0o777);
            }
            if h.kind == b'5' && opts.apply_root_entry {
                set_dir_attributes(root, &h, opts)?;
                dirs[0] = (root.to_path_buf(), Some(h.mtime), mode_of(&h, opts));
            }
            split.file(&h.name, 0, None)?;
            continue;
        }
        let converts = opts.whiteouts != Whiteouts::Keep;
        if converts && base == OPAQUE {
            match opts.whiteouts {
                Whiteouts::Remove => remove_children_except(&parent, &unpacked)?,
                Whiteouts::Overlay { opaque_xattr } => set_xattr(&parent, opaque_xattr, b"y")?,
                Whiteouts::Keep => {}
            }
            split.file(&h.name, 0, None)?;
            continue;
        }
        if converts && base.starts_with(WHITEOUT_META) {
            split.file(&h.name, 0, None)?;
            continue;
        }
        if let Some(hidden) = base.strip_prefix(WHITEOUT).filter(|_| converts) {
            let target = parent.join(hidden);
            remove_existing(&target)?;
            if let Whiteouts::Overlay { .. } = opts.whiteouts {
                // Mode 0, as containers/storage's mknod leaves it.
                mknod(&target, libc::S_IFCHR, 0)?;
                chown(&target, &h, opts)?;
            }
            split.file(&h.name, 0, None)?;
            continue;
        }
        let target = parent.join(&base);
        let mut crc = None;
        // Under a force mask what is neither a directory nor a link is
        // stored as a regular file; the xattr keeps what it was.
        let kind = match opts.force_mask {
            Some(_) if !matches!(h.kind, b'5' | b'2' | b'1') => b'0',
            _ => h.kind,
        };
        match kind {
            b'5' => {
                let is_dir = std::fs::symlink_metadata(&target).map(|m| m.is_dir()).unwrap_or(false);
                if !is_dir {
                    remove_existing(&target)?;
                    std::fs::create_dir(&target).map_err(StorageError::io("creating", &target))?;
                }
                set_dir_attributes(&target, &h, opts)?;
                dirs.push((target.clone(), Some(h.mtime), mode_of(&h, opts)));
            }
            b'0' | 0 | b'7' => {
                remove_existing(&target)?;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&target)
                    .map_err(StorageError::io("creating", &target))?;
                let mut c = Crc64::default();
                let mut buf = vec![0u8; 256 * 1024];
                let mut content = ts.content();
                loop {
                    let n = content.read(&mut buf).map_err(StorageError::Read)?;
                    if n == 0 {
                        break;
                    }
                    c.update(&buf[..n]);
                    f.write_all(&buf[..n]).map_err(StorageError::io("writing", &target))?;
                }
                drop(f);
                if h.size > 0 {
                    crc = Some(c.sum());
                }
                set_attributes(&target, &h, opts)?;
                set_times(&target, h.mtime)?;
            }
            b'2' => {
                remove_existing(&target)?;
                std::os::unix::fs::symlink(&h.link, &target).map_err(StorageError::io("creating symlink", &target))?;
                own(&target, &h, opts)?;
                set_xattrs(&target, &h)?;
                set_times(&target, h.mtime)?;
            }
            b'1' => {
                let from_rel = relative(&h.link)?;
                let from_parent = match from_rel.parent() {
                    Some(p) if !p.as_os_str().is_empty() => resolve(root, p, false)?,
                    _ => root.to_path_buf(),
                };
                let from = from_parent.join(from_rel.file_name().unwrap_or_default());
                remove_existing(&target)?;
                std::fs::hard_link(&from, &target).map_err(StorageError::io("creating hardlink", &target))?;
                // containers/storage gives the shared inode the link
                // header's owner, and its mode and times unless it is a symlink.
                own(&target, &h, opts)?;
                let to_symlink = std::fs::symlink_metadata(&target)
                    .map(|m| m.file_type().is_symlink())
                    .unwrap_or(false);
                if !to_symlink {
                    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode_of(&h, opts)))
                        .map_err(StorageError::io("setting permissions of", &target))?;
                    set_times(&target, h.mtime)?;
                }
                set_xattrs(&target, &h)?;
            }
            b'3' | b'4' | b'6' => {
                remove_existing(&target)?;
                let kind = match h.kind {
                    b'3' => libc::S_IFCHR,
                    b'4' => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                mknod(&target, kind, libc::makedev(h.dev_major, h.dev_minor))?;
                set_attributes(&target, &h, opts)?;
                set_times(&target, h.mtime)?;
            }
            other => return Err(StorageError::UnsupportedMember(h.name.clone(), other as char)),
        }
        unpacked.insert(target);
        let data = if h.has_data() { h.size } else { 0 };
        split.file(&h.name, data, crc)?;
    }
    split.segment(&ts.take_raw())?;
    if opts.force_mask.is_some() {
        // The root's real attributes: its `./` entry's, else a plain 0:0 0755 directory.
        set_xattr(root, OVERRIDE_STAT, root_override.as_bytes())?;
    }
    for (d, mtime, mode) in dirs.iter().rev() {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode & 0o7777))
            .map_err(StorageError::io("setting permissions of", d))?;
        if let Some(t) = mtime {
            set_times(d, *t)?;
        }
    }
    // What follows the archive counts in the diff ID too.
    let mut rest = ts.into_inner();
    std::io::copy(&mut rest, &mut std::io::sink()).map_err(StorageError::Read)?;
    let (diff_id, diff_size) = rest.finish();
    Ok(Applied {
        diff_id,
        diff_size,
        uids,
        gids,
    })
}

/// A member name as a path relative to the layer root; `..` that climbs
/// out of it is refused (a leading `/` is the root, as in a chroot).
pub fn relative(name: &str) -> Result<PathBuf, StorageError> {
    let cleaned = tar_split::clean(name);
    if cleaned == ".." || cleaned.starts_with("../") {
        return Err(StorageError::Escape(name.to_string()));
    }
    Ok(PathBuf::from(cleaned.trim_start_matches('/').trim_start_matches("./"))
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect())
}

/// `rel` (a directory path inside `root`) resolved as inside a chroot at
/// `root`: symlinks are followed, absolute ones from `root`, and `..` never
/// leaves it. Missing directories are created (0755) when `create`.
pub fn resolve(root: &Path, rel: &Path, create: bool) -> Result<PathBuf, StorageError> {
    let mut pending: Vec<std::ffi::OsString> = rel
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut at: Vec<std::ffi::OsString> = vec![];
    let mut links = 0;
    while let Some(c) = pending.pop() {
        if c == ".." {
            at.pop();
            continue;
        }
        let here: PathBuf = root.join(at.iter().collect::<PathBuf>()).join(&c);
        match std::fs::symlink_metadata(&here) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(StorageError::SymlinkLoop(here));
                }
                let target = std::fs::read_link(&here).map_err(StorageError::io("reading symlink", &here))?;
                if target.is_absolute() {
                    at.clear();
                }
                for t in target.components().rev() {
                    match t {
                        Component::Normal(n) => pending.push(n.to_os_string()),
                        Component::ParentDir => pending.push("..".into()),
                        _ => {}
                    }
                }
            }
            Ok(m) if m.is_dir() => at.push(c),
            Ok(_) => return Err(StorageError::NotADirectory(here)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                std::fs::create_dir(&here).map_err(StorageError::io("creating", &here))?;
                std::fs::set_permissions(&here, std::fs::Permissions::from_mode(0o755))
                    .map_err(StorageError::io("setting permissions of", &here))?;
                at.push(c);
            }
            Err(e) => return Err(StorageError::io("looking up", &here)(e)),
        }
    }
    Ok(root.join(at.iter().collect::<PathBuf>()))
}

fn remove_existing(path: &Path) -> Result<(), StorageError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path).map_err(StorageError::io("removing", path)),
        Ok(_) => std::fs::remove_file(path).map_err(StorageError::io("removing", path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io("looking up", path)(e)),
    }
}

/// An opaque directory in a vfs layer: what the layers below put there goes.
fn remove_children_except(dir: &Path, keep: &HashSet<PathBuf>) -> Result<(), StorageError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StorageError::io("listing", dir)(e)),
    };
    for e in entries {
        let p = e.map_err(StorageError::io("listing", dir))?.path();
        if !keep.contains(&p) {
            remove_existing(&p)?;
        }
    }
    Ok(())
}

fn cpath(p: &Path) -> Result<CString, StorageError> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| StorageError::Escape(p.display().to_string()))
}

fn mknod(path: &Path, kind: libc::mode_t, dev: libc::dev_t) -> Result<(), StorageError> {
    let c = cpath(path)?;
    // SAFETY: a NUL-terminated path.
    if unsafe { libc::mknod(c.as_ptr(), kind, dev) } != 0 {
        return Err(StorageError::io("creating device node", path)(
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

fn chown(path: &Path, h: &Header, opts: &ApplyOptions) -> Result<(), StorageError> {
    let (uid, gid) = (
        u32::try_from(h.uid).map_err(|_| StorageError::IdTooLarge(h.name.clone()))?,
        u32::try_from(h.gid).map_err(|_| StorageError::IdTooLarge(h.name.clone()))?,
    );
    match std::os::unix::fs::lchown(path, Some(uid), Some(gid)) {
        Ok(()) => Ok(()),
        Err(e) if opts.ignore_chown_errors && matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EINVAL)) => {
            Ok(())
        }
        Err(source) => Err(StorageError::Chown {
            path: path.to_path_buf(),
            uid,
            gid,
            source,
        }),
    }
}

/// The owner an entry gets: its own, except under a force mask (none).
fn own(path: &Path, h: &Header, opts: &ApplyOptions) -> Result<(), StorageError> {
    match opts.force_mask {
        None => chown(path, h, opts),
        Some(_) => Ok(()),
    }
}

/// The mode an entry gets: its own, or the force mask.
fn mode_of(h: &Header, opts: &ApplyOptions) -> u32 {
    opts.force_mask.unwrap_or(h.mode) & 0o7777
}

/// A directory's owner and xattrs now, and a mode its owner can write
/// into; its own mode comes last.
fn set_dir_attributes(path: &Path, h: &Header, opts: &ApplyOptions) -> Result<(), StorageError> {
    set_attributes_with(path, h, opts, 0o700)
}

/// Owner, then mode (chown clears set-id bits), then xattrs; under a
/// force mask, the mask and the xattr with the real ones instead.
fn set_attributes(path: &Path, h: &Header, opts: &ApplyOptions) -> Result<(), StorageError> {
    set_attributes_with(path, h, opts, 0)
}

fn set_attributes_with(path: &Path, h: &Header, opts: &ApplyOptions, extra: u32) -> Result<(), StorageError> {
    own(path, h, opts)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode_of(h, opts) | extra))
        .map_err(StorageError::io("setting permissions of", path))?;
    set_xattrs(path, h)?;
    set_override(path, h, opts)
}

/// containers/storage's override xattr: `UID:GID:MODE:TYPE`.
fn set_override(path: &Path, h: &Header, opts: &ApplyOptions) -> Result<(), StorageError> {
    if opts.force_mask.is_none() {
        return Ok(());
    }
    let kind = match h.kind {
        b'5' => "dir".to_string(),
        b'6' => "pipe".to_string(),
        b'3' => format!("char-{}-{}", h.dev_major, h.dev_minor),
        b'4' => format!("block-{}-{}", h.dev_major, h.dev_minor),
        _ => "file".to_string(),
    };
    let value = format!("{}:{}:{:04o}:{kind}", h.uid, h.gid, h.mode & 0o7777);
    set_xattr(path, OVERRIDE_STAT, value.as_bytes())
}

fn set_xattrs(path: &Path, h: &Header) -> Result<(), StorageError> {
    for (name, value) in &h.xattrs {
        set_xattr(path, name, value)?;
    }
    Ok(())
}

fn set_xattr(path: &Path, name: &str, value: &[u8]) -> Result<(), StorageError> {
    let c = cpath(path)?;
    let n = CString::new(name).map_err(|_| StorageError::Escape(name.to_string()))?;
    // SAFETY: NUL-terminated path and name, a buffer of the given length.
    let rc = unsafe { libc::lsetxattr(c.as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        // A filesystem without xattrs of that namespace: as containers/storage, not fatal.
        if e.raw_os_error() == Some(libc::ENOTSUP) {
            tracing::debug!(path = %path.display(), xattr = name, "xattr not supported here");
            return Ok(());
        }
        return Err(StorageError::io("setting an xattr on", path)(e));
    }
    Ok(())
}

fn set_times(path: &Path, mtime: i64) -> Result<(), StorageError> {
    let c = cpath(path)?;
    let t = libc::timespec {
        tv_sec: mtime as libc::time_t,
        tv_nsec: 0,
    };
    let times = [t, t];
    // SAFETY: a NUL-terminated path and two timespecs.
    let rc = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) };
    if rc != 0 {
        return Err(StorageError::io("setting times of", path)(
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Copy a layer directory as the vfs driver does for a child layer:
/// contents, ownership, modes, xattrs, times, hardlinks kept as hardlinks.
pub fn copy_tree(from: &Path, to: &Path) -> Result<(), StorageError> {
    let mut links: std::collections::HashMap<(u64, u64), PathBuf> = std::collections::HashMap::new();
    let mut dirs = vec![];
    copy_entry(from, to, &mut links, &mut dirs)?;
    for (d, m) in dirs.iter().rev() {
        copy_times(d, m)?;
    }
    Ok(())
}

fn copy_entry(
    from: &Path,
    to: &Path,
    links: &mut std::collections::HashMap<(u64, u64), PathBuf>,
    dirs: &mut Vec<(PathBuf, std::fs::Metadata)>,
) -> Result<(), StorageError> {
    let m = std::fs::symlink_metadata(from).map_err(StorageError::io("reading", from))?;
    let ft = m.file_type();
    use std::os::unix::fs::FileTypeExt;
    if ft.is_dir() {
        if !to.exists() {
            std::fs::create_dir(to).map_err(StorageError::io("creating", to))?;
        }
        for e in std::fs::read_dir(from).map_err(StorageError::io("listing", from))? {
            let e = e.map_err(StorageError::io("listing", from))?;
            copy_entry(&e.path(), &to.join(e.file_name()), links, dirs)?;
        }
    } else if ft.is_symlink() {
        let target = std::fs::read_link(from).map_err(StorageError::io("reading symlink", from))?;
        std::os::unix::fs::symlink(&target, to).map_err(StorageError::io("creating symlink", to))?;
    } else if ft.is_file() {
        if m.nlink() > 1 {
            if let Some(first) = links.get(&(m.dev(), m.ino())) {
                return std::fs::hard_link(first, to).map_err(StorageError::io("creating hardlink", to));
            }
            links.insert((m.dev(), m.ino()), to.to_path_buf());
        }
        std::fs::copy(from, to).map_err(StorageError::io("copying", from))?;
    } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
        let kind = m.mode() & libc::S_IFMT;
        mknod(to, kind, m.rdev())?;
    } else {
        // Sockets are not layer content.
        return Ok(());
    }
    std::os::unix::fs::lchown(to, Some(m.uid()), Some(m.gid()))
        .map_err(StorageError::io("changing the owner of", to))?;
    if !ft.is_symlink() {
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(m.mode() & 0o7777))
            .map_err(StorageError::io("setting permissions of", to))?;
    }
    copy_xattrs(from, to)?;
    if ft.is_dir() {
        dirs.push((to.to_path_buf(), m));
    } else {
        copy_times(to, &m)?;
    }
    Ok(())
}

fn copy_times(to: &Path, m: &std::fs::Metadata) -> Result<(), StorageError> {
    let c = cpath(to)?;
    let times = [
        libc::timespec {
            tv_sec: m.atime() as libc::time_t,
            tv_nsec: m.atime_nsec() as libc::c_long,
        },
        libc::timespec {
            tv_sec: m.mtime() as libc::time_t,
            tv_nsec: m.mtime_nsec() as libc::c_long,
        },
    ];
    // SAFETY: a NUL-terminated path and two timespecs.
    let rc = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) };
    if rc != 0 {
        return Err(StorageError::io("setting times of", to)(std::io::Error::last_os_error()));
    }
    Ok(())
}

fn copy_xattrs(from: &Path, to: &Path) -> Result<(), StorageError> {
    let c = cpath(from)?;
    // SAFETY: a NUL-terminated path; a null buffer asks for the size.
    let size = unsafe { libc::llistxattr(c.as_ptr(), std::ptr::null_mut(), 0) };
    if size <= 0 {
        return Ok(());
    }
    let mut names = vec![0u8; size as usize];
    // SAFETY: a buffer of the size just reported.
    let size = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if size <= 0 {
        return Ok(());
    }
    for name in names[..size as usize].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let n = CString::new(name).map_err(|_| StorageError::Escape(from.display().to_string()))?;
        // SAFETY: NUL-terminated path and name; null buffer asks for the size.
        let len = unsafe { libc::lgetxattr(c.as_ptr(), n.as_ptr(), std::ptr::null_mut(), 0) };
        if len < 0 {
            continue;
        }
        let mut value = vec![0u8; len as usize];
        // SAFETY: a buffer of the size just reported.
        let len = unsafe { libc::lgetxattr(c.as_ptr(), n.as_ptr(), value.as_mut_ptr().cast(), value.len()) };
        if len < 0 {
            continue;
        }
        set_xattr(to, &String::from_utf8_lossy(name), &value[..len as usize])?;
    }
    Ok(())
}
