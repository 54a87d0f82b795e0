//! What the image part of a `containers-storage:` reference names, as
//! containers/image's `ParseStoreReference` reads it: a (normalized) name
//! with a default tag, a name with a digest, an image ID or a unique
//! prefix of one (at least 3 characters), or `name@ID`.

use super::StorageError;
use super::records::{Record, Records};
use crate::digest::Digest;
use crate::reference::DockerReference;

/// The shortest ID prefix accepted (containers/image's `minimumTruncatedIDLength`).
const MIN_PREFIX: usize = 3;

/// A parsed image part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageName {
    pub named: Option<DockerReference>,
    /// A full ID, or a prefix to resolve against the store.
    pub id: Option<String>,
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl ImageName {
    /// Parse; `images` resolves ID prefixes.
    pub fn parse(image: &str, images: &Records) -> Result<ImageName, StorageError> {
        let bad = |why: String| StorageError::Reference(why);
        let mut rest = image;
        let mut id = None;
        if let Some((before, after)) = image.rsplit_once('@') {
            if after.is_empty() {
                return Err(bad(format!("empty trailing digest or ID in {image:?}")));
            }
            if after.parse::<Digest>().is_err() {
                id = Some(match after.len() == 64 && is_hex(after) {
                    true => after.to_string(),
                    false => prefix_id(after, images)
                        .ok_or_else(|| bad(format!("{after:?} does not look like an image ID or digest")))?,
                });
                rest = before;
            }
        }
        if id.is_none()
            && rest.len() >= MIN_PREFIX
            && !rest.contains(['@', ':'])
            && let Some(full) = prefix_id(rest, images)
        {
            return Ok(ImageName {
                named: None,
                id: Some(full),
            });
        }
        let named = match rest {
            "" => None,
            r => Some(
                DockerReference::parse_normalized(r)
                    .map_err(|e| bad(format!("parsing named reference {r:?}: {e}")))?
                    .with_default_tag(),
            ),
        };
        Ok(ImageName { named, id })
    }

    /// The name a destination gives the image (`docker.io/library/x:tag`).
    pub fn store_name(&self) -> Option<String> {
        self.named.as_ref().map(|n| n.to_string())
    }

    /// The image this names in `images`, as containers/image resolves it.
    pub fn resolve<'a>(&self, images: &'a Records) -> Option<&'a Record> {
        let found = match (&self.id, &self.named) {
            (Some(id), _) => images.get(id),
            (None, Some(n)) => {
                let full = n.to_string();
                images
                    .items
                    .iter()
                    .find(|i| i.strings("names").contains(&full))
                    .or_else(|| {
                        let d = n.digest()?;
                        images
                            .items
                            .iter()
                            .filter(|i| matches_repo(i, n))
                            .find(|i| manifest_digests(i).contains(&d.to_string()))
                    })
            }
            (None, None) => None,
        }?;
        match &self.named {
            Some(n) if !matches_repo(found, n) => None,
            _ => Some(found),
        }
    }
}

/// The unique image whose ID starts with `prefix`.
fn prefix_id(prefix: &str, images: &Records) -> Option<String> {
    if prefix.len() < MIN_PREFIX || !is_hex(prefix) {
        return None;
    }
    let mut hits = images.items.iter().filter(|i| i.id().starts_with(prefix));
    let first = hits.next()?;
    match hits.next() {
        None => Some(first.id().to_string()),
        Some(_) => None,
    }
}

/// Whether one of the image's names is in the reference's repository.
fn matches_repo(image: &Record, n: &DockerReference) -> bool {
    let repo = n.name();
    image
        .strings("names")
        .iter()
        .any(|name| DockerReference::parse_normalized(name).is_ok_and(|r| r.name() == repo))
}

/// The digests of the manifests an image record holds (`manifest-*` big data).
pub fn manifest_digests(image: &Record) -> Vec<String> {
    let mut out: Vec<String> = image.str("digest").map(str::to_string).into_iter().collect();
    if let Some(m) = image.0.get("big-data-digests").and_then(|v| v.as_object()) {
        for (k, v) in m {
            if k.starts_with("manifest")
                && let Some(d) = v.as_str()
                && !out.iter().any(|o| o == d)
            {
                out.push(d.to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn store() -> Records {
        let rec = |v: serde_json::Value| Record(v.as_object().unwrap().clone());
        Records {
            path: "/nonexistent".into(),
            items: vec![
                rec(
                    json!({"id": "abc123".to_string() + &"0".repeat(58), "names": ["docker.io/library/busybox:latest"],
                    "digest": "sha256:".to_string() + &"1".repeat(64)}),
                ),
                rec(json!({"id": "abd".to_string() + &"0".repeat(61), "names": ["quay.io/x/y:1"]})),
            ],
        }
    }

    #[test]
    fn names_ids_prefixes_and_digests_resolve_as_upstream() {
        let s = store();
        let n = ImageName::parse("busybox", &s).unwrap();
        assert_eq!(n.store_name().as_deref(), Some("docker.io/library/busybox:latest"));
        assert!(n.resolve(&s).unwrap().id().starts_with("abc123"));
        let by_prefix = ImageName::parse("abc1", &s).unwrap();
        assert_eq!(by_prefix.named, None);
        assert!(by_prefix.resolve(&s).unwrap().id().starts_with("abc123"));
        // "ab" is too short and "abc"… is fine but "ab" + ambiguity:
        assert!(ImageName::parse("ab", &s).unwrap().resolve(&s).is_none());
        let digested = format!("busybox@sha256:{}", "1".repeat(64));
        assert!(ImageName::parse(&digested, &s).unwrap().resolve(&s).is_some());
        let wrong_repo = format!("quay.io/x/y@{}", "abc123".to_string() + &"0".repeat(58));
        assert!(ImageName::parse(&wrong_repo, &s).unwrap().resolve(&s).is_none());
        assert!(ImageName::parse("x@zzz", &s).is_err());
    }
}
