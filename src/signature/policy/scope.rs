//! Where an image sits in a policy: each transport's policy identity and its
//! enclosing namespaces (containers/image's `PolicyConfigurationIdentity` and
//! `PolicyConfigurationNamespaces`), and the Docker reference its signatures
//! are matched against.

use crate::reference::{ArchiveTarget, DaemonTarget, DockerReference, ImageReference};
use std::path::{Path, PathBuf};

/// The policy identity of `r` and its namespaces, most specific first.
pub fn policy_identity(r: &ImageReference) -> (String, Vec<String>) {
    match r {
        ImageReference::Docker(d) => (d.to_string(), docker_namespaces(d)),
        ImageReference::Dir { path } => {
            let p = resolved(path);
            let ns = parents(&p);
            (p, ns)
        }
        ImageReference::Oci { path, image } | ImageReference::OciArchive { path, image } => {
            let p = resolved(path);
            let mut ns = parents(&p);
            match image {
                Some(i) if !i.is_empty() => {
                    ns.insert(0, p.clone());
                    (format!("{p}:{i}"), ns)
                }
                _ => (p, ns),
            }
        }
        ImageReference::DockerDaemon(DaemonTarget::Reference(d)) | ImageReference::Atomic(d) => {
            (d.to_string(), docker_namespaces(d))
        }
        // Archives, image IDs and the rest have no identity to scope by:
        // only their transport's "" scope or the default applies.
        _ => (String::new(), vec![]),
    }
}

/// The Docker reference a signature of `r` must name, where `r` has one.
pub fn docker_reference_of(r: &ImageReference) -> Option<DockerReference> {
    match r {
        ImageReference::Docker(d) | ImageReference::Atomic(d) => Some(d.clone()),
        ImageReference::DockerDaemon(DaemonTarget::Reference(d)) => Some(d.clone()),
        ImageReference::DockerArchive {
            target: Some(ArchiveTarget::Reference(d)),
            ..
        } => Some(d.clone()),
        ImageReference::ContainersStorage { image, .. } => {
            crate::transport::containers_storage::docker_reference(image)
        }
        _ => None,
    }
}

/// `docker.io/library/busybox` → itself, `docker.io/library`, `docker.io`,
/// then the wildcard domains `*.io` (the port dropped first).
fn docker_namespaces(d: &DockerReference) -> Vec<String> {
    let mut out = Vec::new();
    let mut name = d.name();
    loop {
        out.push(name.clone());
        match name.rfind('/') {
            Some(i) => name.truncate(i),
            None => break,
        }
    }
    if let Some(i) = name.find(':') {
        name.truncate(i);
    }
    while let Some(i) = name.find('.') {
        name = name[i + 1..].to_string();
        out.push(format!("*.{name}"));
    }
    out
}

/// An absolute path with symlinks resolved where it exists (upstream's
/// `ResolvePathToFullyExplicit`): the parent's, when the path itself does not.
fn resolved(p: &Path) -> String {
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")).join(p)
    };
    let real = std::fs::canonicalize(&abs).unwrap_or_else(|_| match (abs.parent(), abs.file_name()) {
        (Some(parent), Some(name)) => std::fs::canonicalize(parent)
            .map(|d| d.join(name))
            .unwrap_or(abs.clone()),
        _ => abs.clone(),
    });
    real.to_string_lossy().into_owned()
}

/// `/a/b/c` → `/a/b`, `/a` (never `/`).
fn parents(p: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut s = p.to_string();
    while let Some(i) = s.rfind('/') {
        if i == 0 {
            break;
        }
        s.truncate(i);
        out.push(s.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_namespaces_as_upstream() {
        let d = DockerReference::parse_normalized("example.com:5000/ns/repo:1").unwrap();
        let (id, ns) = policy_identity(&ImageReference::Docker(d));
        assert_eq!(id, "example.com:5000/ns/repo:1");
        assert_eq!(
            ns,
            [
                "example.com:5000/ns/repo",
                "example.com:5000/ns",
                "example.com:5000",
                "*.com"
            ]
        );
        let d = DockerReference::parse_normalized("busybox:latest").unwrap();
        assert_eq!(
            policy_identity(&ImageReference::Docker(d)).1,
            ["docker.io/library/busybox", "docker.io/library", "docker.io", "*.io"]
        );
    }

    #[test]
    fn path_parents_stop_before_root() {
        assert_eq!(parents("/a/b/c"), ["/a/b", "/a"]);
    }
}
