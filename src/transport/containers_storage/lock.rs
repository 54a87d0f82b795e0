//! containers/storage's lock files: POSIX `fcntl` record locks over the
//! whole file (not `flock`, which containers/storage would not see), and the
//! 64-byte "last write" token at offset 0 that a writer replaces before it
//! rewrites the JSON it guards, so that a running podman or CRI-O notices
//! the change and reloads.

use super::StorageError;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The size of the last-write token (containers/storage's `lastWriterIDSize`).
const TOKEN_SIZE: usize = 64;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A held lock; released when dropped (closing the descriptor drops every
/// record lock this process holds on the file, as containers/storage does).
pub struct Lock {
    file: File,
    path: PathBuf,
}

/// Whether a lock excludes other readers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Read,
    Write,
}

impl Lock {
    /// Take the lock at `path` (created if missing), waiting while another
    /// process holds it in a conflicting mode.
    pub fn acquire(path: &Path, mode: Mode) -> Result<Lock, StorageError> {
        Lock::take(path, mode, true)?
            .ok_or_else(|| StorageError::io("locking", path)(std::io::Error::other("the lock was not taken")))
    }

    /// Take the lock if no other process holds it; `None` if one does.
    pub fn try_acquire(path: &Path, mode: Mode) -> Result<Option<Lock>, StorageError> {
        Lock::take(path, mode, false)
    }

    fn take(path: &Path, mode: Mode, wait: bool) -> Result<Option<Lock>, StorageError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(StorageError::io("creating", dir))?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .map_err(StorageError::io("opening lock file", path))?;
        let lock = libc::flock {
            l_type: match mode {
                Mode::Read => libc::F_RDLCK as libc::c_short,
                Mode::Write => libc::F_WRLCK as libc::c_short,
            },
            l_whence: libc::SEEK_SET as libc::c_short,
            l_start: 0,
            l_len: 0,
            l_pid: 0,
        };
        let cmd = if wait { libc::F_SETLKW } else { libc::F_SETLK };
        loop {
            // SAFETY: a valid descriptor and a fully initialised flock struct.
            let rc = unsafe { libc::fcntl(file.as_raw_fd(), cmd, &lock) };
            if rc == 0 {
                break;
            }
            let err = std::io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) | Some(libc::EACCES) if !wait => return Ok(None),
                _ => return Err(StorageError::io("locking", path)(err)),
            }
        }
        Ok(Some(Lock {
            file,
            path: path.to_path_buf(),
        }))
    }

    /// Replace the last-write token (call while holding the lock for
    /// writing, before rewriting what it guards).
    pub fn record_write(&self) -> Result<(), StorageError> {
        use std::os::unix::fs::FileExt;
        let token = new_token();
        self.file
            .write_all_at(&token, 0)
            .map_err(StorageError::io("recording a write in", &self.path))
    }
}

/// A token unique to this write: time, a per-process counter and the PID,
/// padded with random bytes to 64, laid out as containers/storage lays it
/// out (little-endian), though readers only compare it for equality.
fn new_token() -> [u8; TOKEN_SIZE] {
    let mut t = [0u8; TOKEN_SIZE];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t[0..8].copy_from_slice(&now.to_le_bytes());
    t[8..16].copy_from_slice(&(COUNTER.fetch_add(1, Ordering::Relaxed) + 1).to_le_bytes());
    t[16..20].copy_from_slice(&std::process::id().to_le_bytes());
    use rand::RngCore as _;
    rand::thread_rng().fill_bytes(&mut t[20..]);
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_replaces_the_token_with_a_new_one_of_64_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("layers.lock");
        let lock = Lock::acquire(&path, Mode::Write).unwrap();
        lock.record_write().unwrap();
        let first = std::fs::read(&path).unwrap();
        lock.record_write().unwrap();
        let second = std::fs::read(&path).unwrap();
        assert_eq!(first.len(), 64);
        assert_eq!(second.len(), 64);
        assert_ne!(first, second);
    }
}
