//! Which store a `containers-storage:` reference means, resolved as
//! containers/storage resolves it: the reference's `[driver@graphroot+runroot:options]`,
//! then `STORAGE_DRIVER` / `STORAGE_OPTS`, then storage.conf
//! (`CONTAINERS_STORAGE_CONF`; rootless `$XDG_CONFIG_HOME/containers/storage.conf`;
//! `/etc/containers/storage.conf`; `/usr/share/containers/storage.conf`),
//! then the built-in defaults.

use super::StorageError;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// A graph driver kopeo reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    Vfs,
    Overlay,
}

impl Driver {
    /// The driver's name in paths and configuration.
    pub fn name(self) -> &'static str {
        match self {
            Driver::Vfs => "vfs",
            Driver::Overlay => "overlay",
        }
    }

    fn parse(s: &str) -> Result<Driver, StorageError> {
        match s {
            "vfs" => Ok(Driver::Vfs),
            "overlay" | "overlay2" => Ok(Driver::Overlay),
            other => Err(StorageError::UnsupportedDriver(other.to_string())),
        }
    }
}

/// A resolved store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    pub driver: Driver,
    pub graphroot: PathBuf,
    pub runroot: PathBuf,
    /// `ignore_chown_errors` (overlay or vfs options).
    pub ignore_chown_errors: bool,
    /// overlay's `mount_program` (fuse-overlayfs); kopeo mounts nothing,
    /// but such a store keeps whiteouts as AUFS `.wh.` files, as upstream.
    pub mount_program: Option<String>,
    /// overlay's `force_mask`: the mode of every file and directory, the
    /// real owner and mode kept in the `user.containers.override_stat` xattr.
    pub force_mask: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
struct File {
    #[serde(default)]
    storage: Section,
}

#[derive(Debug, Default, Deserialize)]
struct Section {
    driver: Option<String>,
    graphroot: Option<String>,
    runroot: Option<String>,
    rootless_storage_path: Option<String>,
    #[serde(default)]
    options: Options,
}

#[derive(Debug, Default, Deserialize)]
struct Options {
    mount_program: Option<String>,
    ignore_chown_errors: Option<String>,
    #[serde(default)]
    overlay: DriverOptions,
    #[serde(default)]
    vfs: DriverOptions,
}

#[derive(Debug, Default, Deserialize)]
struct DriverOptions {
    mount_program: Option<String>,
    ignore_chown_errors: Option<String>,
    force_mask: Option<String>,
}

/// The environment a resolution reads, injectable for tests.
#[derive(Debug, Clone, Default)]
pub struct Env {
    pub vars: std::collections::HashMap<String, String>,
    pub rootless: bool,
}

impl Env {
    /// This process's environment.
    pub fn current() -> Env {
        Env {
            vars: std::env::vars().collect(),
            // SAFETY: geteuid has no preconditions.
            rootless: unsafe { libc::geteuid() } != 0,
        }
    }

    fn var(&self, k: &str) -> Option<&str> {
        self.vars.get(k).map(String::as_str).filter(|v| !v.is_empty())
    }

    fn home(&self) -> PathBuf {
        PathBuf::from(self.var("HOME").unwrap_or("/"))
    }
}

/// The storage.conf in effect, if any.
fn config_file(env: &Env) -> Option<PathBuf> {
    if let Some(p) = env.var("CONTAINERS_STORAGE_CONF") {
        return Some(PathBuf::from(p));
    }
    if env.rootless {
        let base = env
            .var("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| env.home().join(".config"));
        let p = base.join("containers/storage.conf");
        if p.exists() {
            return Some(p);
        }
    }
    ["/etc/containers/storage.conf", "/usr/share/containers/storage.conf"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn read_config(path: &Path) -> Result<File, StorageError> {
    let text = std::fs::read_to_string(path).map_err(StorageError::io("reading", path))?;
    toml::from_str(&text).map_err(|e| StorageError::Config {
        path: path.to_path_buf(),
        why: e.message().to_string(),
    })
}

/// A reference's store specification, `[driver@graphroot+runroot:options]`
/// without its brackets, split as containers/image splits it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreSpec {
    pub driver: Option<String>,
    pub graphroot: Option<PathBuf>,
    pub runroot: Option<PathBuf>,
    pub options: Vec<String>,
}

impl StoreSpec {
    /// Parse the text between the brackets.
    pub fn parse(spec: &str) -> Result<StoreSpec, StorageError> {
        let bad = |why: &str| StorageError::StoreSpec(spec.to_string(), why.to_string());
        let (driver, rest) = match spec.split_once('@') {
            Some(("", _)) => return Err(bad("the driver before '@' is empty")),
            Some((_, "")) => return Err(bad("nothing follows the driver")),
            Some((d, r)) => (Some(d.to_string()), r),
            None if spec.is_empty() => return Err(bad("it is empty")),
            None => (None, spec),
        };
        let (roots, options) = match rest.split_once(':') {
            Some((r, o)) => (r, o.split(',').map(str::to_string).collect()),
            None => (rest, vec![]),
        };
        let (graph, run) = roots.split_once('+').unwrap_or((roots, ""));
        let abs = |p: &str| -> Result<Option<PathBuf>, StorageError> {
            match p {
                "" => Ok(None),
                p if Path::new(p).is_absolute() => Ok(Some(PathBuf::from(p))),
                _ => Err(bad("its paths must be absolute")),
            }
        };
        Ok(StoreSpec {
            driver,
            graphroot: abs(graph)?,
            runroot: abs(run)?,
            options,
        })
    }
}

/// Go's strconv.ParseBool, which containers/storage reads these with.
fn parse_bool(opt: &str, v: &str) -> Result<bool, StorageError> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(StorageError::BadOption(
            opt.to_string(),
            "expected true or false".into(),
        )),
    }
}

/// storage.conf's driver options as the `driver.key=value` list
/// containers/storage builds from them.
fn file_options(o: &Options) -> Vec<String> {
    let mut out = vec![];
    let mut add = |prefix: &str, key: &str, v: &Option<String>| {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            out.push(format!("{prefix}{key}={v}"));
        }
    };
    add(".", "mount_program", &o.mount_program);
    add(".", "ignore_chown_errors", &o.ignore_chown_errors);
    for (prefix, d) in [("overlay.", &o.overlay), ("vfs.", &o.vfs)] {
        add(prefix, "mount_program", &d.mount_program);
        add(prefix, "ignore_chown_errors", &d.ignore_chown_errors);
        add(prefix, "force_mask", &d.force_mask);
    }
    out
}

/// Resolve the store a reference names.
pub fn resolve(spec: Option<&StoreSpec>, env: &Env) -> Result<StoreConfig, StorageError> {
    let file = match config_file(env) {
        Some(p) => read_config(&p)?,
        None => File::default(),
    };
    let s = file.storage;
    let uid = if env.rootless {
        // SAFETY: getuid has no preconditions.
        unsafe { libc::getuid() }
    } else {
        0
    };
    let default_graph = if env.rootless {
        s.rootless_storage_path.clone().map(PathBuf::from).unwrap_or_else(|| {
            env.var("XDG_DATA_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| env.home().join(".local/share"))
                .join("containers/storage")
        })
    } else {
        s.graphroot
            .clone()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/var/lib/containers/storage"))
    };
    let default_run = if env.rootless {
        env.var("XDG_RUNTIME_DIR")
            .map(|d| PathBuf::from(d).join("containers"))
            .unwrap_or_else(|| PathBuf::from(format!("/tmp/containers-user-{uid}/containers")))
    } else {
        s.runroot
            .clone()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/run/containers/storage"))
    };
    let graphroot = spec.and_then(|p| p.graphroot.clone()).unwrap_or(default_graph);
    let runroot = spec.and_then(|p| p.runroot.clone()).unwrap_or(default_run);
    // As containers/image: a reference with a store specification opens the
    // store with exactly what it says (GetStore then takes nothing else from
    // storage.conf or the environment but the default roots); without one,
    // the defaults: STORAGE_DRIVER / STORAGE_OPTS, else storage.conf.
    let (driver_name, options) = match spec {
        Some(p) => (p.driver.clone(), p.options.clone()),
        None => (
            env.var("STORAGE_DRIVER").map(str::to_string).or(s.driver.clone()),
            match env.var("STORAGE_OPTS") {
                Some(v) => v.split(',').map(str::to_string).collect(),
                None => file_options(&s.options),
            },
        ),
    };
    let driver = match driver_name.filter(|d| !d.is_empty()) {
        Some(d) => Driver::parse(&d)?,
        // As containers/storage: the driver whose directory is already there, overlay first.
        None if graphroot.join("vfs").is_dir() && !graphroot.join("overlay").is_dir() => Driver::Vfs,
        None => Driver::Overlay,
    };
    let (mut ignore_chown_errors, mut mount_program, mut force_mask) = (false, None, None);
    for opt in options.iter().filter(|o| !o.is_empty()) {
        let (k, v) = opt.split_once('=').unwrap_or((opt, ""));
        let k = k.trim().to_ascii_lowercase();
        let key = match driver {
            Driver::Overlay => ["overlay.", "overlay2.", "."]
                .iter()
                .fold(k.as_str(), |k, p| k.strip_prefix(p).unwrap_or(k)),
            Driver::Vfs => k.strip_prefix("vfs.").or_else(|| k.strip_prefix('.')).unwrap_or(&k),
        };
        let v = v.trim();
        // Options kopeo has no use for (mount options, quotas, composefs…) are
        // left to the tools that mount.
        match key {
            "ignore_chown_errors" => ignore_chown_errors = parse_bool(opt, v)?,
            "mount_program" if driver == Driver::Overlay => {
                mount_program = Some(v.to_string()).filter(|v| !v.is_empty())
            }
            "force_mask" => force_mask = Some(v.to_string()).filter(|v| !v.is_empty()),
            _ => {}
        }
    }
    let force_mask = match (force_mask, driver) {
        (None, _) => None,
        (Some(m), Driver::Vfs) => {
            return Err(StorageError::BadOption(
                format!("force_mask = {m:?}"),
                "the vfs driver has no such option (it is overlay's)".into(),
            ));
        }
        (Some(m), Driver::Overlay) => Some(parse_mask(&m)?),
    };
    Ok(StoreConfig {
        driver,
        graphroot,
        runroot,
        ignore_chown_errors,
        mount_program,
        force_mask,
    })
}

/// `force_mask` as containers/storage reads it: `shared`, `private` or octal.
fn parse_mask(m: &str) -> Result<u32, StorageError> {
    match m {
        "shared" => Ok(0o755),
        "private" => Ok(0o700),
        _ => u32::from_str_radix(m, 8).ok().filter(|v| *v <= 0o7777).ok_or_else(|| {
            StorageError::BadOption(
                format!("force_mask = {m:?}"),
                "expected shared, private or an octal mode".into(),
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_specs_split_as_containers_image_splits_them() {
        assert_eq!(
            StoreSpec::parse("overlay@/g+/r:overlay.mount_program=/bin/f,x=y").unwrap(),
            StoreSpec {
                driver: Some("overlay".into()),
                graphroot: Some("/g".into()),
                runroot: Some("/r".into()),
                options: vec!["overlay.mount_program=/bin/f".into(), "x=y".into()],
            }
        );
        assert_eq!(StoreSpec::parse("/g").unwrap().graphroot, Some("/g".into()));
        assert!(StoreSpec::parse("vfs@rel").is_err());
        assert!(StoreSpec::parse("@/g").is_err());
    }

    #[test]
    fn the_configuration_file_then_the_reference_decide() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("storage.conf");
        std::fs::write(
            &conf,
            "[storage]\ndriver = \"vfs\"\ngraphroot = \"/x/g\"\nrunroot = \"/x/r\"\n[storage.options.vfs]\nignore_chown_errors = \"true\"\n",
        )
        .unwrap();
        let env = Env {
            vars: [("CONTAINERS_STORAGE_CONF".to_string(), conf.display().to_string())].into(),
            rootless: false,
        };
        let c = resolve(None, &env).unwrap();
        assert_eq!(
            (c.driver, c.graphroot.as_path(), c.ignore_chown_errors),
            (Driver::Vfs, Path::new("/x/g"), true)
        );
        let spec = StoreSpec::parse("overlay@/o+/p").unwrap();
        let c = resolve(Some(&spec), &env).unwrap();
        assert_eq!((c.driver, c.runroot.as_path()), (Driver::Overlay, Path::new("/p")));
        // A specification opens the store with its own options only, as
        // containers/image does; the file's roots still fill what it leaves out.
        assert!(!c.ignore_chown_errors);
        let spec = StoreSpec::parse("vfs@/o:vfs.ignore_chown_errors=true").unwrap();
        assert!(resolve(Some(&spec), &env).unwrap().ignore_chown_errors);
        let spec = StoreSpec::parse("vfs@/o").unwrap();
        assert_eq!(resolve(Some(&spec), &env).unwrap().runroot, Path::new("/x/r"));
        // STORAGE_OPTS replaces the file's options; a bad boolean names itself.
        let mut with_opts = env.clone();
        with_opts
            .vars
            .insert("STORAGE_OPTS".into(), "overlay.mount_program=/bin/f".into());
        let c = resolve(None, &with_opts).unwrap();
        assert!(!c.ignore_chown_errors);
        let spec = StoreSpec::parse("vfs@/o:ignore_chown_errors=yes").unwrap();
        let e = resolve(Some(&spec), &env).unwrap_err().to_string();
        assert!(e.contains("ignore_chown_errors=yes"), "{e}");
        let spec = StoreSpec::parse("btrfs@/o").unwrap();
        assert!(resolve(Some(&spec), &env).unwrap_err().to_string().contains("btrfs"));
        let mask = |spec: &str| resolve(Some(&StoreSpec::parse(spec).unwrap()), &env).map(|c| c.force_mask);
        assert_eq!(mask("overlay@/o:overlay.force_mask=shared").unwrap(), Some(0o755));
        assert_eq!(mask("overlay@/o:overlay.force_mask=private").unwrap(), Some(0o700));
        assert_eq!(mask("overlay@/o:overlay.force_mask=0750").unwrap(), Some(0o750));
        assert_eq!(mask("overlay@/o").unwrap(), None);
        for bad in ["overlay@/o:overlay.force_mask=rwx", "vfs@/o:force_mask=shared"] {
            let e = mask(bad).unwrap_err().to_string();
            assert!(e.contains("force_mask"), "{bad}: {e}");
        }
    }
}
