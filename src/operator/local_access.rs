//! Which local transports an ImageCopy may name. The operator's pod serves
//! every namespace: a path or a daemon socket in a spec would let one tenant
//! read, overwrite or fill what another copied there. So the operator allows
//! registries only, unless it was given a storage root (the chart's
//! `localStorage`), under which each namespace gets a directory of its own;
//! `kopeo run` acts for its user and allows every transport as written.

use crate::reference::ImageReference;
use std::path::{Component, Path, PathBuf};

/// Where local transports may read and write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum LocalAccess {
    /// Every transport, paths as written (`kopeo run`).
    #[default]
    Any,
    /// Registries only (the operator's default).
    RegistriesOnly,
    /// `oci:`, `oci-archive:`, `dir:` and `docker-archive:` with relative
    /// paths, resolved below `ROOT/<namespace>/`; no daemon.
    Under(PathBuf),
}

/// Why a reference may not be used here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    #[error(
        "the {0}: transport is not enabled in this operator: it copies between registries only (the Helm chart's localStorage setting enables file transports)"
    )]
    LocalDisabled(&'static str),
    #[error("the {0}: transport is not available in the operator")]
    NotInOperator(&'static str),
    #[error("{0}: a path in the operator must be relative to the namespace's storage and must not climb out with ..")]
    PathEscapes(String),
    #[error("preparing the namespace's storage {path}: {reason}")]
    Storage { path: String, reason: String },
}

impl LocalAccess {
    /// `r` as this policy lets an object of `namespace` use it.
    pub fn resolve(&self, r: ImageReference, namespace: &str) -> Result<ImageReference, AccessError> {
        let root = match self {
            LocalAccess::Any => return Ok(r),
            // OpenShift's registry is a registry (its API is reached with
            // the tenant's own RegistryCredential token).
            _ if matches!(r, ImageReference::Docker(_) | ImageReference::Atomic(_)) => return Ok(r),
            LocalAccess::RegistriesOnly => return Err(AccessError::LocalDisabled(r.transport())),
            LocalAccess::Under(root) => root,
        };
        let transport = r.transport();
        let place = |p: PathBuf| within(root, namespace, &p);
        match r {
            ImageReference::Oci { path, image } => Ok(ImageReference::Oci {
                path: place(path)?,
                image,
            }),
            ImageReference::OciArchive { path, image } => Ok(ImageReference::OciArchive {
                path: place(path)?,
                image,
            }),
            ImageReference::Dir { path } => Ok(ImageReference::Dir { path: place(path)? }),
            ImageReference::DockerArchive { path, target } => Ok(ImageReference::DockerArchive {
                path: place(path)?,
                target,
            }),
            _ => Err(AccessError::NotInOperator(transport)),
        }
    }
}

/// `ROOT/namespace/rel`, refusing absolute paths, `..`, and symlinks that
/// lead out of the namespace's directory.
fn within(root: &Path, namespace: &str, rel: &Path) -> Result<PathBuf, AccessError> {
    let escapes = || AccessError::PathEscapes(rel.display().to_string());
    if rel.as_os_str().is_empty()
        || !rel
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(escapes());
    }
    let base = root.join(namespace);
    let storage = |e: std::io::Error| AccessError::Storage {
        path: base.display().to_string(),
        reason: e.to_string(),
    };
    std::fs::create_dir_all(&base).map_err(storage)?;
    let real_base = base.canonicalize().map_err(storage)?;
    let full = base.join(rel);
    // The deepest part that exists must stay inside (a planted symlink must not lead out).
    let mut probe = full.clone();
    loop {
        if let Ok(real) = probe.canonicalize() {
            if !real.starts_with(&real_base) {
                return Err(escapes());
            }
            break;
        }
        if !probe.pop() {
            break;
        }
    }
    Ok(full)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> ImageReference {
        s.parse().unwrap()
    }

    #[test]
    fn registries_only_refuses_every_local_transport() {
        let a = LocalAccess::RegistriesOnly;
        assert!(a.resolve(r("docker://reg.example/a:1"), "ns").is_ok());
        for s in [
            "oci:/tmp/x:a",
            "dir:/tmp/d",
            "docker-archive:/tmp/a.tar",
            "docker-daemon:app:1",
        ] {
            let e = a.resolve(r(s), "ns").unwrap_err();
            assert!(matches!(e, AccessError::LocalDisabled(_)), "{s}: {e}");
        }
    }

    #[test]
    fn under_a_root_paths_are_per_namespace_and_cannot_escape() {
        let root = tempfile::tempdir().unwrap();
        let a = LocalAccess::Under(root.path().to_path_buf());
        let got = a.resolve(r("oci:layouts/app:1"), "team-a").unwrap();
        assert_eq!(
            got,
            ImageReference::Oci {
                path: root.path().join("team-a/layouts/app"),
                image: Some("1".into())
            }
        );
        for s in ["oci:/etc/x:a", "dir:../team-b/x", "oci-archive:a/../../b.tar"] {
            assert!(
                matches!(a.resolve(r(s), "team-a"), Err(AccessError::PathEscapes(_))),
                "{s}"
            );
        }
        std::os::unix::fs::symlink(root.path().join("team-b"), root.path().join("team-a/link")).unwrap();
        std::fs::create_dir_all(root.path().join("team-b")).unwrap();
        assert!(matches!(
            a.resolve(r("dir:link/img"), "team-a"),
            Err(AccessError::PathEscapes(_))
        ));
        assert!(matches!(
            a.resolve(r("docker-daemon:app:1"), "team-a"),
            Err(AccessError::NotInOperator("docker-daemon"))
        ));
    }
}
