//! The Docker reference grammar (`[domain/]path[:tag][@digest]`) and its
//! normalisation (`alpine` → `docker.io/library/alpine`), as distribution's
//! `reference` package defines them.

use crate::digest::Digest;
use std::fmt;

/// Registry host used when a name has none.
pub const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// Why a Docker reference was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    #[error("invalid reference format: {0:?}")]
    InvalidFormat(String),
    #[error("invalid reference format: repository name {0:?} must be lowercase")]
    Uppercase(String),
    #[error("repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters: {0:?}")]
    NameTooLong(String),
    #[error("invalid reference format: tag in {0:?} is invalid")]
    InvalidTag(String),
    #[error("invalid tag format: {0:?}")]
    InvalidTagFormat(String),
    #[error("invalid reference format: {0}")]
    InvalidDigest(#[from] crate::digest::DigestError),
    #[error("invalid repository name ({0}), cannot specify 64-byte hexadecimal strings")]
    HexIdentifier(String),
}

/// A fully qualified Docker reference: domain, repository path, optional tag and digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DockerReference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl DockerReference {
    /// Parse a reference the way `docker pull` and skopeo do: add `docker.io`
    /// and `library/` where they are implied. No default tag is added.
    pub fn parse_normalized(s: &str) -> Result<Self, ReferenceError> {
        if s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(ReferenceError::HexIdentifier(s.to_string()));
        }
        let (domain, remainder) = split_docker_domain(s);
        let remote_name = match remainder.find(':') {
            Some(i) => &remainder[..i],
            None => &remainder,
        };
        if remote_name.to_lowercase() != remote_name {
            return Err(ReferenceError::Uppercase(remote_name.to_string()));
        }
        Self::parse_qualified(&format!("{domain}/{remainder}"))
    }

    /// Parse a reference that must already carry its domain (no normalisation).
    pub fn parse_qualified(s: &str) -> Result<Self, ReferenceError> {
        let invalid = || ReferenceError::InvalidFormat(s.to_string());
        let (name_tag, digest) = match s.split_once('@') {
            Some((n, d)) => (n, Some(d.parse::<Digest>()?)),
            None => (s, None),
        };
        let last_slash = name_tag.rfind('/').unwrap_or(0);
        let (name, tag) = match name_tag[last_slash..].find(':') {
            Some(i) => (&name_tag[..last_slash + i], Some(&name_tag[last_slash + i + 1..])),
            None => (name_tag, None),
        };
        if let Some(t) = tag
            && !valid_tag(t)
        {
            return Err(ReferenceError::InvalidTag(s.to_string()));
        }
        let (domain, path) = name.split_once('/').ok_or_else(invalid)?;
        if !valid_domain(domain) {
            return Err(invalid());
        }
        for component in path.split('/') {
            if !valid_path_component(component) {
                if valid_path_component(&component.to_lowercase()) {
                    return Err(ReferenceError::Uppercase(path.to_string()));
                }
                return Err(invalid());
            }
        }
        if name.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(ReferenceError::NameTooLong(name.to_string()));
        }
        Ok(DockerReference {
            domain: domain.to_string(),
            path: path.to_string(),
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// The registry host (and port), e.g. `docker.io` or `127.0.0.1:5000`.
    pub fn domain(&self) -> &str {
        &self.domain
    }
    /// The repository path inside the registry, e.g. `library/alpine`.
    pub fn path(&self) -> &str {
        &self.path
    }
    /// `domain/path`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }
    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }
    /// The digest, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }
    /// What to ask a registry's manifest endpoint for: the digest if there
    /// is one, else the tag (`latest` when neither is given).
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }

    /// True when neither tag nor digest is present.
    pub fn is_name_only(&self) -> bool {
        self.tag.is_none() && self.digest.is_none()
    }
    /// This reference with `:latest` added when it has neither tag nor digest.
    pub fn with_default_tag(mut self) -> Self {
        if self.is_name_only() {
            self.tag = Some("latest".to_string());
        }
        self
    }
    /// The same repository with another tag and no digest; the tag is
    /// checked against the grammar (tags from a registry's tag list are
    /// strangers' input and end up in paths).
    pub fn with_tag(&self, tag: &str) -> Result<Self, ReferenceError> {
        if !valid_tag(tag) {
            return Err(ReferenceError::InvalidTagFormat(tag.to_string()));
        }
        Ok(DockerReference {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        })
    }
    /// The same repository with a digest and no tag.
    pub fn with_digest(&self, digest: Digest) -> Self {
        DockerReference {
            tag: None,
            digest: Some(digest),
            ..self.clone()
        }
    }
    /// The short form users type: `alpine:3` for `docker.io/library/alpine:3`.
    /// A Docker Hub path whose first component reads as a host
    /// (`docker.io/foo.com/app`) keeps its domain: distribution's short
    /// form, `foo.com/app`, would name another registry.
    pub fn familiar(&self) -> String {
        let short = self
            .path
            .strip_prefix(OFFICIAL_REPO_PREFIX)
            .filter(|p| !p.contains('/'))
            .unwrap_or(&self.path);
        let mut name = if self.domain == DEFAULT_DOMAIN
            && split_docker_domain(short) == (DEFAULT_DOMAIN.to_string(), self.path.clone())
        {
            short.to_string()
        } else {
            self.name()
        };
        if let Some(t) = &self.tag {
            name.push(':');
            name.push_str(t);
        }
        if let Some(d) = &self.digest {
            name.push('@');
            name.push_str(&d.to_string());
        }
        name
    }
}

impl fmt::Display for DockerReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

fn split_docker_domain(name: &str) -> (String, String) {
    let (domain, remote) = match name.split_once('/') {
        None => (DEFAULT_DOMAIN.to_string(), name.to_string()),
        Some((maybe_domain, rest)) => {
            if maybe_domain == "localhost"
                || maybe_domain.contains(['.', ':'])
                || maybe_domain.to_lowercase() != maybe_domain
            {
                let d = if maybe_domain == LEGACY_DEFAULT_DOMAIN {
                    DEFAULT_DOMAIN
                } else {
                    maybe_domain
                };
                (d.to_string(), rest.to_string())
            } else {
                (DEFAULT_DOMAIN.to_string(), name.to_string())
            }
        }
    };
    if domain == DEFAULT_DOMAIN && !remote.contains('/') {
        (domain, format!("{OFFICIAL_REPO_PREFIX}{remote}"))
    } else {
        (domain, remote)
    }
}

/// `[\w][\w.-]{0,127}`
fn valid_tag(t: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = t.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && word(bytes[0])
        && bytes[1..].iter().all(|&b| word(b) || b == b'.' || b == b'-')
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn valid_path_component(c: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let b = c.as_bytes();
    let mut i = 0;
    let run = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && alnum(b[*i]) {
            *i += 1;
        }
        *i > start
    };
    if !run(&mut i) {
        return false;
    }
    while i < b.len() {
        let sep_start = i;
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == sep_start || !run(&mut i) {
            return false;
        }
    }
    true
}

/// `host[:port]` where host is a domain name, IPv4 address or `[IPv6]`.
fn valid_domain(d: &str) -> bool {
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        if v6.is_empty() || !v6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        match after {
            "" => return true,
            p => match p.strip_prefix(':') {
                Some(port) => ("x", Some(port)),
                None => return false,
            },
        }
    } else {
        match d.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (d, None),
        }
    };
    if let Some(p) = port
        && (p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    !host.is_empty()
        && host.split('.').all(|c| {
            let b = c.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        DockerReference::parse_normalized(s).unwrap().to_string()
    }

    #[test]
    fn familiar_names_get_docker_io_and_library() {
        assert_eq!(norm("alpine"), "docker.io/library/alpine");
        assert_eq!(norm("alpine:3.20"), "docker.io/library/alpine:3.20");
        assert_eq!(norm("user/app"), "docker.io/user/app");
        assert_eq!(norm("docker.io/alpine"), "docker.io/library/alpine");
        assert_eq!(norm("index.docker.io/alpine"), "docker.io/library/alpine");
        assert_eq!(norm("localhost/app"), "localhost/app");
        assert_eq!(norm("foo:5000"), "docker.io/library/foo:5000");
    }

    #[test]
    fn short_forms_name_the_same_image() {
        let short = |s: &str| DockerReference::parse_normalized(s).unwrap().familiar();
        assert_eq!(short("docker.io/library/alpine:3"), "alpine:3");
        assert_eq!(short("docker.io/user/app"), "user/app");
        // Shortened, these would name the registry foo.com, localhost, or
        // (index.docker.io) library/app.
        for full in [
            "docker.io/foo.com/app:1",
            "docker.io/localhost/app",
            "docker.io/index.docker.io/app",
        ] {
            assert_eq!(short(full), full);
            assert_eq!(
                DockerReference::parse_normalized(&short(full)).unwrap().to_string(),
                full
            );
        }
    }

    #[test]
    fn domains_ports_and_ipv6() {
        let r = DockerReference::parse_normalized("127.0.0.1:5000/a/b/c:v1").unwrap();
        assert_eq!(r.domain(), "127.0.0.1:5000");
        assert_eq!(r.path(), "a/b/c");
        assert_eq!(r.tag(), Some("v1"));
        assert_eq!(norm("[::1]:5000/app"), "[::1]:5000/app");
        assert_eq!(norm("quay.io/org/app"), "quay.io/org/app");
        assert_eq!(norm("registry:5000/app"), "registry:5000/app");
    }

    #[test]
    fn digests_and_tag_with_digest() {
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let r = DockerReference::parse_normalized(&format!("alpine@{d}")).unwrap();
        assert_eq!(r.digest().unwrap().to_string(), d);
        assert_eq!(r.tag(), None);
        let r = DockerReference::parse_normalized(&format!("alpine:3@{d}")).unwrap();
        assert_eq!(r.tag(), Some("3"));
        assert!(r.digest().is_some());
        assert_eq!(r.familiar(), format!("alpine:3@{d}"));
        assert!(DockerReference::parse_normalized("alpine@sha256:abc").is_err());
    }

    #[test]
    fn uppercase_rejected() {
        assert!(matches!(
            DockerReference::parse_normalized("Alpine"),
            Err(ReferenceError::Uppercase(_))
        ));
        assert!(matches!(
            DockerReference::parse_normalized("example.com/Org/app"),
            Err(ReferenceError::Uppercase(_))
        ));
        // An uppercase first component is taken as a domain, as upstream does.
        assert_eq!(norm("Example/app"), "Example/app");
        // Uppercase tags are fine.
        assert_eq!(norm("app:V1"), "docker.io/library/app:V1");
    }

    #[test]
    fn malformed_references() {
        for bad in [
            "",
            ":tag",
            "app:",
            "app:-tag",
            "a//b",
            "a/b/",
            "-app",
            "app-",
            "a..b",
            "a___b",
            "example.com:port/app",
            "app@",
            "a b",
            &format!("app:{}", "t".repeat(129)),
        ] {
            assert!(DockerReference::parse_normalized(bad).is_err(), "{bad:?} should fail");
        }
        assert!(matches!(
            DockerReference::parse_normalized(&"a".repeat(64).replace('a', "f")),
            Err(ReferenceError::HexIdentifier(_))
        ));
        let long = format!("example.com/{}", "a".repeat(250));
        assert!(matches!(
            DockerReference::parse_normalized(&long),
            Err(ReferenceError::NameTooLong(_))
        ));
    }

    #[test]
    fn separators() {
        for ok in ["a.b", "a_b", "a__b", "a-b", "a---b", "a-b.c_d__e"] {
            assert_eq!(norm(ok), format!("docker.io/library/{ok}"));
        }
    }

    #[test]
    fn default_tag_and_familiar() {
        let r = DockerReference::parse_normalized("alpine").unwrap().with_default_tag();
        assert_eq!(r.to_string(), "docker.io/library/alpine:latest");
        assert_eq!(r.familiar(), "alpine:latest");
        let r = DockerReference::parse_normalized("quay.io/a/b:1").unwrap();
        assert_eq!(r.familiar(), "quay.io/a/b:1");
    }
}
