//! Temporary files beside their targets, for writes that become visible
//! only by a final rename: unique and unpredictable names that carry the
//! writing process's mark, exclusive creation (never through a planted
//! symlink), and collection of what dead writers left behind.
//!
//! A name looks like `.index.json.kopeo-4026531836-812-99301-3f2a….tmp`:
//! PID namespace, PID and that process's start time. A later writer in the
//! same directory removes entries whose process is gone; entries of another
//! PID namespace (another container sharing the volume) are left alone
//! unless they are a day old.

use std::hash::{BuildHasher as _, Hasher as _};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// The marker every kopeo temporary name carries.
const MARK: &str = ".kopeo-";
/// Debris of writers we cannot judge (another PID namespace) is collected after this long.
const FOREIGN_AGE: Duration = Duration::from_secs(24 * 3600);

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// `PIDNS-PID-START` of this process, computed once.
fn process_mark() -> &'static str {
    static MARKED: OnceLock<String> = OnceLock::new();
    MARKED.get_or_init(|| {
        let pid = std::process::id();
        format!(
            "{}-{pid}-{}",
            pid_namespace().unwrap_or(0),
            start_time(pid).unwrap_or(0)
        )
    })
}

/// The inode of this process's PID namespace (`pid:[N]`), where /proc says.
fn pid_namespace() -> Option<u64> {
    let link = std::fs::read_link("/proc/self/ns/pid").ok()?;
    let s = link.to_string_lossy();
    s.strip_prefix("pid:[")?.strip_suffix(']')?.parse().ok()
}

/// A process's start time in clock ticks since boot (field 22 of /proc/PID/stat).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from its end.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn random() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish()
}

/// A fresh temporary name beside `target` (nothing is created).
pub fn sibling(target: &Path) -> PathBuf {
    // Keep the whole name under NAME_MAX whatever the target's length.
    let stem: String = target
        .file_name()
        .map(|s| s.to_string_lossy().chars().take(100).collect())
        .unwrap_or_default();
    target.with_file_name(format!(".{stem}{MARK}{}-{:016x}.tmp", process_mark(), random()))
}

/// Create a new file at a fresh temporary name beside `target`, exclusively
/// (`O_EXCL`: an existing file or symlink there is never opened), with `mode`.
pub fn create_beside(target: &Path, mode: u32) -> io::Result<(std::fs::File, PathBuf)> {
    use std::os::unix::fs::OpenOptionsExt as _;
    loop {
        let path = sibling(target);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
        {
            Ok(f) => return Ok((f, path)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Create a new directory at a fresh temporary name beside `target`.
pub fn mkdir_beside(target: &Path) -> io::Result<PathBuf> {
    loop {
        let path = sibling(target);
        match std::fs::create_dir(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Flush a directory's entries (a rename into it) to disk.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    std::fs::File::open(dir)?.sync_all()
}

/// Who wrote a temporary name, as far as the name tells.
#[derive(Debug, PartialEq, Eq)]
enum Writer {
    /// PID namespace, PID, start time.
    Marked { ns: u64, pid: u32, start: u64 },
    /// An earlier kopeo's `.NAME.kopeo-PID-N.tmp`: the PID only.
    PidOnly(u32),
}

fn writer_of(name: &str) -> Option<Writer> {
    let rest = &name[name.rfind(MARK)? + MARK.len()..];
    let rest = rest.strip_suffix(".tmp")?;
    let parts: Vec<&str> = rest.split('-').collect();
    match parts.as_slice() {
        [ns, pid, start, rand] if rand.len() == 16 => Some(Writer::Marked {
            ns: ns.parse().ok()?,
            pid: pid.parse().ok()?,
            start: start.parse().ok()?,
        }),
        [pid, n] if n.bytes().all(|b| b.is_ascii_digit()) => Some(Writer::PidOnly(pid.parse().ok()?)),
        _ => None,
    }
}

/// Whether the process that wrote `name` is certainly gone.
fn abandoned(name: &str, modified: Option<SystemTime>) -> bool {
    let Some(writer) = writer_of(name) else { return false };
    let old = modified
        .and_then(|m| m.elapsed().ok())
        .is_some_and(|age| age > FOREIGN_AGE);
    match writer {
        Writer::Marked { ns, pid, start } => {
            if ns != pid_namespace().unwrap_or(0) {
                return old;
            }
            start_time(pid) != Some(start)
        }
        Writer::PidOnly(pid) => !Path::new(&format!("/proc/{pid}")).exists(),
    }
}

/// Remove the temporary files and directories in `dir` whose writers are
/// gone (killed mid-copy). Best effort: what cannot be judged or removed stays.
pub fn collect_debris(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if !name.starts_with('.') || !name.contains(MARK) {
            continue;
        }
        let Ok(meta) = e.metadata() else { continue };
        if !abandoned(&name, meta.modified().ok()) {
            continue;
        }
        let path = e.path();
        let gone = if meta.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        if gone.is_ok() {
            tracing::debug!(path = %path.display(), "removed a dead writer's temporary file");
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_parse_back() {
        let a = sibling(Path::new("/x/index.json"));
        let b = sibling(Path::new("/x/index.json"));
        assert_ne!(a, b);
        let name = a.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with(".index.json.kopeo-"), "{name}");
        let Some(Writer::Marked { pid, .. }) = writer_of(&name) else {
            panic!("{name} does not parse")
        };
        assert_eq!(pid, std::process::id());
        assert!(!abandoned(&name, None), "this process is alive");
        assert_eq!(
            writer_of(".abc.kopeo-12-3.tmp"),
            Some(Writer::PidOnly(12)),
            "the earlier naming"
        );
        assert_eq!(writer_of(".abc.tmp"), None);
    }

    #[test]
    fn debris_of_a_dead_process_is_collected_and_a_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let ns = pid_namespace().unwrap_or(0);
        // A process that ran and exited: its PID no longer has that start time.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let start = start_time(pid).unwrap_or(1);
        child.wait().unwrap();
        let dead = dir
            .path()
            .join(format!(".blob{MARK}{ns}-{pid}-{start}-0123456789abcdef.tmp"));
        std::fs::write(&dead, b"partial").unwrap();
        let staging = dir
            .path()
            .join(format!(".img{MARK}{ns}-{pid}-{start}-fedcba9876543210.tmp"));
        std::fs::create_dir(&staging).unwrap();
        std::fs::write(staging.join("manifest.json"), b"{}").unwrap();
        let (_f, live) = create_beside(&dir.path().join("blob2"), 0o644).unwrap();
        let foreign = dir.path().join(format!(".x{MARK}{}-1-1-0123456789abcdef.tmp", ns + 1));
        std::fs::write(&foreign, b"").unwrap();
        assert_eq!(collect_debris(dir.path()), 2);
        assert!(!dead.exists() && !staging.exists());
        assert!(live.exists(), "a live writer's file stays");
        assert!(foreign.exists(), "another namespace's recent file stays");
    }

    #[test]
    fn exclusive_creation_never_follows_a_symlink() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let (f, path) = create_beside(&dir.path().join("auth.json"), 0o600).unwrap();
        drop(f);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
