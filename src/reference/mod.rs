//! `transport:reference` strings for every transport skopeo knows.
//!
//! Parsing only checks syntax; whether kopeo can open a transport is decided
//! at open time (see [`crate::transport::open_source`]).

pub mod docker;

pub use docker::{DockerReference, ReferenceError};

use crate::digest::Digest;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Why a `transport:reference` string was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("invalid image name {0:?}, expected colon-separated transport:reference")]
    NoTransport(String),
    #[error("invalid image name {input:?}, unknown transport {transport:?}")]
    UnknownTransport { input: String, transport: String },
    #[error("invalid image name {input:?}: {reason}")]
    Invalid { input: String, reason: String },
    #[error("invalid image name {input:?}: {source}")]
    Docker {
        input: String,
        #[source]
        source: ReferenceError,
    },
}

/// What `docker-archive:path:ref` names inside the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchiveTarget {
    /// A tagged name (`path:name:tag`).
    Reference(DockerReference),
    /// The image at a position in the archive (`path:@N`).
    Index(usize),
}

/// An image in `docker-daemon:`: a tagged name or an image ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaemonTarget {
    Reference(DockerReference),
    Id(Digest),
}

/// A parsed image reference in one of the transports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageReference {
    /// `docker://[domain/]path[:tag|@digest]`
    Docker(DockerReference),
    /// `oci:path[:ref]`
    Oci { path: PathBuf, image: Option<String> },
    /// `oci-archive:path[:ref]`
    OciArchive { path: PathBuf, image: Option<String> },
    /// `dir:path`
    Dir { path: PathBuf },
    /// `docker-archive:path[:ref|:@N]`
    DockerArchive {
        path: PathBuf,
        target: Option<ArchiveTarget>,
    },
    /// `docker-daemon:name:tag` or `docker-daemon:algo:digest`
    DockerDaemon(DaemonTarget),
    /// `containers-storage:[store-spec]ref`
    ContainersStorage { store: Option<String>, image: String },
    /// `tarball:FILE[:FILE…]` (read only; `-` is standard input)
    Tarball { paths: Vec<PathBuf> },
    /// `sif:path` (read only)
    Sif { path: PathBuf },
    /// `atomic:host/namespace/stream:tag` (OpenShift's integrated registry)
    Atomic(DockerReference),
}

impl ImageReference {
    /// The transport's name, as written before the first colon.
    pub fn transport(&self) -> &'static str {
        match self {
            ImageReference::Docker(_) => "docker",
            ImageReference::Oci { .. } => "oci",
            ImageReference::OciArchive { .. } => "oci-archive",
            ImageReference::Dir { .. } => "dir",
            ImageReference::DockerArchive { .. } => "docker-archive",
            ImageReference::DockerDaemon(_) => "docker-daemon",
            ImageReference::ContainersStorage { .. } => "containers-storage",
            ImageReference::Tarball { .. } => "tarball",
            ImageReference::Sif { .. } => "sif",
            ImageReference::Atomic(_) => "atomic",
        }
    }
}

impl FromStr for ImageReference {
    type Err = ParseError;

    fn from_str(input: &str) -> Result<Self, ParseError> {
        let (transport, rest) = input
            .split_once(':')
            .ok_or_else(|| ParseError::NoTransport(input.to_string()))?;
        let invalid = |reason: &str| ParseError::Invalid {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        let docker = |s: &str| {
            DockerReference::parse_normalized(s).map_err(|source| ParseError::Docker {
                input: input.to_string(),
                source,
            })
        };
        match transport {
            "docker" => {
                let name = rest
                    .strip_prefix("//")
                    .ok_or_else(|| invalid("docker: image reference does not start with //"))?;
                Ok(ImageReference::Docker(docker(name)?.with_default_tag()))
            }
            "oci" | "oci-archive" => {
                let (path, image) = split_path_and_image(rest);
                if path.is_empty() {
                    return Err(invalid("path is empty"));
                }
                if let Some(img) = &image
                    && !valid_oci_ref_name(img)
                {
                    return Err(invalid(&format!("invalid image reference {img:?}")));
                }
                let path = PathBuf::from(path);
                Ok(if transport == "oci" {
                    ImageReference::Oci { path, image }
                } else {
                    ImageReference::OciArchive { path, image }
                })
            }
            "dir" => {
                if rest.is_empty() {
                    return Err(invalid("path is empty"));
                }
                Ok(ImageReference::Dir {
                    path: PathBuf::from(rest),
                })
            }
            "docker-archive" => {
                let (path, target) = split_path_and_image(rest);
                if path.is_empty() {
                    return Err(invalid("path is empty"));
                }
                let target = match target {
                    None => None,
                    Some(t) => Some(match t.strip_prefix('@') {
                        Some(n) => {
                            ArchiveTarget::Index(n.parse().map_err(|_| invalid(&format!("invalid source index @{n}")))?)
                        }
                        None => {
                            let r = docker(&t)?;
                            if r.digest().is_some() {
                                return Err(invalid("docker-archive doesn't support digest references"));
                            }
                            ArchiveTarget::Reference(r.with_default_tag())
                        }
                    }),
                };
                Ok(ImageReference::DockerArchive {
                    path: PathBuf::from(path),
                    target,
                })
            }
            "docker-daemon" => {
                if let Ok(d) = rest.parse::<Digest>() {
                    return Ok(ImageReference::DockerDaemon(DaemonTarget::Id(d)));
                }
                if rest.starts_with("sha256:") {
                    return Err(invalid("invalid image ID"));
                }
                let r = docker(rest)?;
                if r.digest().is_some() {
                    return Err(invalid(
                        "docker-daemon: reference with a digest is not supported, use an image ID",
                    ));
                }
                Ok(ImageReference::DockerDaemon(DaemonTarget::Reference(
                    r.with_default_tag(),
                )))
            }
            "containers-storage" => {
                let (store, image) = match rest.strip_prefix('[') {
                    Some(s) => {
                        let (spec, img) = s
                            .split_once(']')
                            .ok_or_else(|| invalid("store specification is missing its closing ']'"))?;
                        (Some(spec.to_string()), img)
                    }
                    None => (None, rest),
                };
                if image.is_empty() {
                    return Err(invalid("image reference is empty"));
                }
                if image.parse::<Digest>().is_err()
                    && !(image.len() >= 3 && image.bytes().all(|b| b.is_ascii_hexdigit()))
                {
                    let name = image.split_once('@').map_or(image, |(n, _)| n);
                    docker(name)?;
                }
                Ok(ImageReference::ContainersStorage {
                    store,
                    image: image.to_string(),
                })
            }
            "tarball" => {
                let paths: Vec<PathBuf> = rest.split(':').map(PathBuf::from).collect();
                if paths.iter().any(|p| p.as_os_str().is_empty()) {
                    return Err(invalid("path is empty"));
                }
                Ok(ImageReference::Tarball { paths })
            }
            "sif" if rest.is_empty() => Err(invalid("path is empty")),
            "sif" => Ok(ImageReference::Sif {
                path: PathBuf::from(rest),
            }),
            "atomic" => parse_atomic(rest)
                .map(ImageReference::Atomic)
                .map_err(|reason| ParseError::Invalid {
                    input: input.to_string(),
                    reason,
                }),
            other => Err(ParseError::UnknownTransport {
                input: input.to_string(),
                transport: other.to_string(),
            }),
        }
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let with_image = |f: &mut fmt::Formatter<'_>, t: &str, p: &PathBuf, i: &Option<String>| {
            write!(f, "{t}:{}", p.display())?;
            match i {
                Some(i) => write!(f, ":{i}"),
                None => Ok(()),
            }
        };
        match self {
            ImageReference::Docker(r) => write!(f, "docker://{r}"),
            ImageReference::Oci { path, image } => with_image(f, "oci", path, image),
            ImageReference::OciArchive { path, image } => with_image(f, "oci-archive", path, image),
            ImageReference::Dir { path } => write!(f, "dir:{}", path.display()),
            ImageReference::DockerArchive { path, target } => {
                write!(f, "docker-archive:{}", path.display())?;
                match target {
                    Some(ArchiveTarget::Reference(r)) => write!(f, ":{r}"),
                    Some(ArchiveTarget::Index(n)) => write!(f, ":@{n}"),
                    None => Ok(()),
                }
            }
            ImageReference::DockerDaemon(DaemonTarget::Reference(r)) => {
                write!(f, "docker-daemon:{r}")
            }
            ImageReference::DockerDaemon(DaemonTarget::Id(d)) => write!(f, "docker-daemon:{d}"),
            ImageReference::ContainersStorage { store, image } => match store {
                Some(s) => write!(f, "containers-storage:[{s}]{image}"),
                None => write!(f, "containers-storage:{image}"),
            },
            ImageReference::Tarball { paths } => {
                let joined: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
                write!(f, "tarball:{}", joined.join(":"))
            }
            ImageReference::Sif { path } => write!(f, "sif:{}", path.display()),
            ImageReference::Atomic(r) => write!(f, "atomic:{}", r.familiar()),
        }
    }
}

/// `host/namespace/stream:tag` as containers/image's openshift transport
/// takes it (its messages): tagged, no digest, exactly two path components.
fn parse_atomic(s: &str) -> Result<DockerReference, String> {
    let r = DockerReference::parse_normalized(s).map_err(|e| format!("failed to parse image reference {s:?}: {e}"))?;
    if r.tag().is_none() || r.digest().is_some() {
        return Err(format!(
            "invalid image reference {s}, expected format: 'hostname/namespace/stream:tag'"
        ));
    }
    if r.path().split('/').count() != 2 {
        return Err(format!(
            "invalid image reference: {}, expected format: 'hostname/namespace/stream:tag'",
            r.familiar()
        ));
    }
    Ok(r)
}

/// `path[:image]`, split at the first colon as containers/image does on Unix.
fn split_path_and_image(s: &str) -> (&str, Option<String>) {
    match s.split_once(':') {
        Some((p, i)) if !i.is_empty() => (p, Some(i.to_string())),
        Some((p, _)) => (p, None),
        None => (s, None),
    }
}

/// The OCI `ref.name` annotation grammar as containers/image checks it:
/// `component(/component)*`, a component being alphanumeric runs joined by
/// one of `-._:@+` or by `--` (so no empty component and no `..`).
fn valid_oci_ref_name(s: &str) -> bool {
    !s.is_empty() && s.split('/').all(valid_oci_ref_component)
}

fn valid_oci_ref_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum_run = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_alphanumeric() {
            *i += 1;
        }
        *i > start
    };
    let mut i = 0;
    if !alnum_run(&mut i) {
        return false;
    }
    while i < b.len() {
        if b[i..].starts_with(b"--") {
            i += 2;
        } else if b"-._:@+".contains(&b[i]) {
            i += 1;
        } else {
            return false;
        }
        if !alnum_run(&mut i) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ImageReference {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn docker_transport_adds_latest() {
        assert_eq!(
            p("docker://alpine").to_string(),
            "docker://docker.io/library/alpine:latest"
        );
        assert!("docker:alpine".parse::<ImageReference>().is_err());
        assert!("docker://Alpine".parse::<ImageReference>().is_err());
    }

    #[test]
    fn oci_paths_and_refs() {
        assert_eq!(
            p("oci:/tmp/l"),
            ImageReference::Oci {
                path: "/tmp/l".into(),
                image: None
            }
        );
        assert_eq!(
            p("oci:/tmp/l:v1.0"),
            ImageReference::Oci {
                path: "/tmp/l".into(),
                image: Some("v1.0".into())
            }
        );
        assert_eq!(
            p("oci-archive:a.tar:x/y:z"),
            ImageReference::OciArchive {
                path: "a.tar".into(),
                image: Some("x/y:z".into())
            }
        );
        assert!("oci::tag".parse::<ImageReference>().is_err());
        assert!("oci:/l:-bad".parse::<ImageReference>().is_err());
        assert!("oci:/l:a b".parse::<ImageReference>().is_err());
        // Empty components and `..` are refused, as containers/image does.
        for bad in ["a//b", "a/../../etc", "a/", "a..b", "a---b", ".hidden"] {
            assert!(
                format!("oci:/l:{bad}").parse::<ImageReference>().is_err(),
                "{bad} must be refused"
            );
        }
        for good in ["v1.0", "x/y:z", "a--b", "reg.example/ns/app:1.0@x", "a+b"] {
            p(&format!("oci:/l:{good}"));
        }
    }

    #[test]
    fn archives_daemon_storage() {
        assert_eq!(
            p("docker-archive:/a.tar:@1"),
            ImageReference::DockerArchive {
                path: "/a.tar".into(),
                target: Some(ArchiveTarget::Index(1))
            }
        );
        assert_eq!(
            p("docker-archive:/a.tar:app").to_string(),
            "docker-archive:/a.tar:docker.io/library/app:latest"
        );
        assert_eq!(
            p("docker-daemon:app:1").to_string(),
            "docker-daemon:docker.io/library/app:1"
        );
        let id = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert!(matches!(
            p(&format!("docker-daemon:{id}")),
            ImageReference::DockerDaemon(DaemonTarget::Id(_))
        ));
        assert_eq!(
            p("containers-storage:[overlay@/var/lib/c+/run/c]app:1"),
            ImageReference::ContainersStorage {
                store: Some("overlay@/var/lib/c+/run/c".into()),
                image: "app:1".into()
            }
        );
        assert!("containers-storage:[x".parse::<ImageReference>().is_err());
        assert_eq!(p("dir:/tmp/d").transport(), "dir");
    }

    #[test]
    fn tarball_paths() {
        assert_eq!(
            p("tarball:/a.tar:b.tar.gz:-"),
            ImageReference::Tarball {
                paths: vec!["/a.tar".into(), "b.tar.gz".into(), "-".into()]
            }
        );
        assert_eq!(p("tarball:/a.tar:-").to_string(), "tarball:/a.tar:-");
        assert!("tarball:".parse::<ImageReference>().is_err());
        assert!("tarball:/a.tar::b".parse::<ImageReference>().is_err());
    }

    #[test]
    fn unknown_or_missing_transport() {
        assert!(matches!(
            "alpine".parse::<ImageReference>(),
            Err(ParseError::NoTransport(_))
        ));
        assert!(matches!(
            "ftp://x".parse::<ImageReference>(),
            Err(ParseError::UnknownTransport { .. })
        ));
    }
}
