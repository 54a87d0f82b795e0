//! Splitting a sync among several processes (`sync --shard I/N`; the
//! `JOB_COMPLETION_INDEX` of a Kubernetes Indexed Job): each image belongs
//! to one shard by a hash of its source repository, so a repository's
//! images — which share blobs — stay together, and every process that
//! plans the same sync agrees on the split whatever else its plan holds.

use super::Plan;
use crate::reference::ImageReference;

/// One shard of N.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

/// Why a shard cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    #[error("invalid shard {0:?}: expected INDEX/COUNT (0 <= INDEX < COUNT) or COUNT with $JOB_COMPLETION_INDEX set")]
    Syntax(String),
    #[error("shard index {index} is not below the shard count {count}")]
    OutOfRange { index: usize, count: usize },
}

impl Shard {
    /// `I/N`, or `N` with the index from `job_index` (`$JOB_COMPLETION_INDEX`).
    pub fn parse(s: &str, job_index: Option<&str>) -> Result<Shard, ShardError> {
        let bad = || ShardError::Syntax(s.to_string());
        let (index, count) = match s.split_once('/') {
            Some((i, n)) => (i.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?),
            None => (
                job_index.ok_or_else(bad)?.trim().parse().map_err(|_| bad())?,
                s.parse().map_err(|_| bad())?,
            ),
        };
        if count == 0 {
            return Err(bad());
        }
        if index >= count {
            return Err(ShardError::OutOfRange { index, count });
        }
        Ok(Shard { index, count })
    }

    /// Whether images of repository `key` are this shard's.
    pub fn owns(&self, key: &str) -> bool {
        // FNV-1a: stable across processes, builds and platforms.
        let h = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        (h % self.count as u64) as usize == self.index
    }

    /// Keep only this shard's images and prune scopes.
    pub fn apply(&self, plan: &mut Plan) {
        plan.images.retain(|i| self.owns(&repository_key(&i.source)));
        plan.prune_scopes.retain(|s| self.owns(&repository_key(&s.source)));
        let mut sources: Vec<String> = plan
            .images
            .iter()
            .map(|i| repository_key(&i.source))
            .chain(plan.prune_scopes.iter().map(|s| repository_key(&s.source)))
            .collect();
        sources.sort();
        sources.dedup();
        plan.sources = sources.len();
    }
}

/// The repository an image comes from (its name without tag or digest;
/// a directory image's own path).
pub fn repository_key(source: &ImageReference) -> String {
    match source {
        ImageReference::Docker(r) => r.name(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_split_repositories_whole() {
        assert_eq!(Shard::parse("1/3", None), Ok(Shard { index: 1, count: 3 }));
        assert_eq!(Shard::parse("4", Some("2")), Ok(Shard { index: 2, count: 4 }));
        assert!(matches!(Shard::parse("3/3", None), Err(ShardError::OutOfRange { .. })));
        for bad in ["4", "a/2", "1/0", "", "1/2/3"] {
            assert!(Shard::parse(bad, None).is_err(), "{bad}");
        }
        // Every repository has exactly one owner.
        for repo in ["a/x", "b/y", "registry.example/team/app"] {
            let owners = (0..5).filter(|i| Shard { index: *i, count: 5 }.owns(repo)).count();
            assert_eq!(owners, 1, "{repo}");
        }
        let r: ImageReference = "docker://h:5000/ns/app:1".parse().unwrap();
        let s: ImageReference = "docker://h:5000/ns/app:2".parse().unwrap();
        assert_eq!(repository_key(&r), repository_key(&s));
    }
}
