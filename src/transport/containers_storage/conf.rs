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
    /// but a store made for one is rootless-style (`user.` xattrs).
    pub mount_program: Option<String>,
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

fn truthy(v: &Option<String>) -> bool {
    v.as_deref().is_some_and(|v| matches!(v.trim(), "true" | "1" | "yes"))
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
    let driver_name = spec
        .and_then(|p| p.driver.clone())
        .or_else(|| env.var("STORAGE_DRIVER").map(str::to_string))
        .or(s.driver.clone())
        .filter(|d| !d.is_empty());
    let driver = match driver_name {
        Some(d) => Driver::parse(&d)?,
        // As containers/storage: the driver whose directory is already there, overlay first.
        None if graphroot.join("vfs").is_dir() && !graphroot.join("overlay").is_dir() => Driver::Vfs,
        None => Driver::Overlay,
    };
    let o = &s.options;
    let per = match driver {
        Driver::Overlay => &o.overlay,
        Driver::Vfs => &o.vfs,
    };
    let mut ignore_chown_errors = truthy(&per.ignore_chown_errors) || truthy(&o.ignore_chown_errors);
    let mut mount_program = per.mount_program.clone().or(o.mount_program.clone());
    let mut force_mask = per.force_mask.clone().filter(|m| !m.is_empty());
    let extra: Vec<String> = spec
        .map(|p| p.options.clone())
        .unwrap_or_default()
        .into_iter()
        .chain(
            env.var("STORAGE_OPTS")
                .map(|v| v.split(',').map(str::to_string).collect::<Vec<_>>())
                .unwrap_or_default(),
        )
        .collect();
    for opt in extra.iter().filter(|o| !o.is_empty()) {
        let (k, v) = opt.split_once('=').unwrap_or((opt, ""));
        let key = k.rsplit('.').next().unwrap_or(k);
        match key {
            "ignore_chown_errors" => ignore_chown_errors = matches!(v, "true" | "1"),
            "mount_program" => mount_program = Some(v.to_string()).filter(|v| !v.is_empty()),
            "force_mask" => force_mask = Some(v.to_string()).filter(|v| !v.is_empty()),
            _ => {}
        }
    }
    // force_mask keeps real modes in an xattr podman reads back; writing
    // without it would leave files podman sees with other modes.
    if let Some(mask) = force_mask {
        return Err(StorageError::UnsupportedOption(format!("force_mask = {mask:?}")));
    }
    Ok(StoreConfig {
        driver,
        graphroot,
        runroot,
        ignore_chown_errors,
        mount_program,
    })
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
        let spec = StoreSpec::parse("btrfs@/o").unwrap();
        assert!(resolve(Some(&spec), &env).unwrap_err().to_string().contains("btrfs"));
        let spec = StoreSpec::parse("overlay@/o:overlay.force_mask=shared").unwrap();
        assert!(
            resolve(Some(&spec), &env)
                .unwrap_err()
                .to_string()
                .contains("force_mask")
        );
    }
}
