//! Planning a sync: which source images exist (tag lists, catalogs,
//! directories, the YAML file) and where each one goes. Nothing is copied
//! here; the plan can be printed or handed to [`super::execute`].

use super::config::{RegistryConfig, SourceConfig};
use super::semver::{Constraint, Version};
use super::{SyncError, SyncOptions};
use crate::auth::Credentials;
use crate::reference::{DockerReference, ImageReference};
use crate::transport::OpenOptions;
use regex::Regex;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a sync takes images from (`--src`).
#[derive(Debug, Clone)]
pub enum SyncSource {
    /// A repository (every tag) or one image: `registry/repo[:tag|@digest]`.
    Docker(String),
    /// Every repository in the catalog of `registry[/prefix]`.
    Catalog(String),
    /// Every `dir:` image below a directory.
    Dir(PathBuf),
    /// Registries and images described by a YAML file.
    Yaml(SourceConfig),
}

/// Where a sync puts images (`--dest`): a registry prefix or a directory.
#[derive(Debug, Clone)]
pub enum SyncDestination {
    Docker(String),
    Dir(PathBuf),
}

/// Which tags of a repository to take.
#[derive(Debug, Clone, Default)]
pub struct TagFilter {
    pub include: Option<Regex>,
    pub semver: Option<Constraint>,
    pub exclude: Vec<Regex>,
    pub keep_newest: Option<usize>,
}

impl TagFilter {
    /// Whether tag `t` passes the include, semver and exclude rules (keep-newest aside).
    pub fn admits(&self, t: &str) -> bool {
        self.include.as_ref().is_none_or(|r| r.is_match(t))
            && self
                .semver
                .as_ref()
                .is_none_or(|c| Version::parse(t).is_some_and(|v| c.matches(&v)))
            && !self.exclude.iter().any(|r| r.is_match(t))
    }

    /// The tags that pass, in their original order.
    pub fn apply(&self, tags: Vec<String>) -> Vec<String> {
        let mut kept: Vec<String> = tags.into_iter().filter(|t| self.admits(t)).collect();
        if let Some(n) = self.keep_newest {
            let mut versions: Vec<(Version, String)> = kept
                .iter()
                .filter_map(|t| Version::parse(t).map(|v| (v, t.clone())))
                .collect();
            versions.sort_by(|a, b| b.0.cmp(&a.0));
            let newest: Vec<String> = versions.into_iter().take(n).map(|(_, t)| t).collect();
            kept.retain(|t| newest.contains(t));
        }
        kept
    }
}

/// One image to copy.
#[derive(Debug, Clone)]
pub struct PlannedImage {
    pub source: ImageReference,
    pub destination: ImageReference,
    /// How to open the source (per-registry settings from the YAML file).
    pub source_options: Arc<OpenOptions>,
}

/// Everything a sync would copy.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub images: Vec<PlannedImage>,
    /// How many repositories or directories the images came from.
    pub sources: usize,
    /// With `prune`: the listed source repositories and where they went.
    pub prune_scopes: Vec<super::prune::PruneScope>,
}

fn compile(res: &[String]) -> Result<Vec<Regex>, SyncError> {
    res.iter()
        .map(|r| {
            Regex::new(r).map_err(|source| SyncError::TagRegex {
                regex: r.clone(),
                repository: None,
                source,
            })
        })
        .collect()
}

/// Where one source image goes, by skopeo's naming rules: the source's
/// `name:tag` (or the path below a `dir:` source), only its last component
/// unless `scoped`, then `append_suffix`.
fn destination(dest: &SyncDestination, suffix: &str, opts: &SyncOptions) -> Result<ImageReference, SyncError> {
    let suffix = if opts.scoped {
        suffix
    } else {
        suffix.rsplit('/').next().unwrap_or(suffix)
    };
    let text = match dest {
        SyncDestination::Docker(prefix) => {
            format!(
                "docker://{}/{suffix}{}",
                prefix.trim_end_matches('/'),
                opts.append_suffix
            )
        }
        SyncDestination::Dir(dir) => format!("dir:{}/{suffix}{}", dir.display(), opts.append_suffix),
    };
    Ok(text.parse()?)
}

/// A referrers tag schema tag: `sha256-` and 64 lowercase hex digits.
fn is_referrers_tag(t: &str) -> bool {
    t.strip_prefix("sha256-")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

struct Planner<'a> {
    dest: &'a SyncDestination,
    opts: &'a SyncOptions,
    plan: Plan,
}

impl Planner<'_> {
    fn add_docker(&mut self, r: DockerReference, src: &Arc<OpenOptions>) -> Result<(), SyncError> {
        let destination = self.destination_of(&r)?;
        self.plan.images.push(PlannedImage {
            source: ImageReference::Docker(r),
            destination,
            source_options: src.clone(),
        });
        Ok(())
    }

    fn destination_of(&self, r: &DockerReference) -> Result<ImageReference, SyncError> {
        // Into a registry, a port or IPv6 brackets in the source registry
        // cannot stand inside a repository path (skopeo fails there):
        // `host:5000` becomes `host_5000`. A directory keeps `host:5000`, as
        // skopeo writes it.
        let name = r.to_string();
        let suffix = match self.dest {
            SyncDestination::Docker(_) => {
                name.replacen(r.domain(), &r.domain().replace(':', "_").replace(['[', ']'], ""), 1)
            }
            SyncDestination::Dir(_) => name,
        };
        destination(self.dest, &suffix, self.opts)
    }

    /// Every tag of `repo` that passes `filter`.
    async fn add_repository(
        &mut self,
        repo: &DockerReference,
        filter: &TagFilter,
        src: &Arc<OpenOptions>,
    ) -> Result<(), SyncError> {
        // A shard lists only its own repositories' tags (the split is by
        // repository): N shards list the source once between them, not N times.
        if self
            .opts
            .shard
            .is_some_and(|s| !s.owns(&super::shard::repository_key(&ImageReference::Docker(repo.clone()))))
        {
            return Ok(());
        }
        let client = src.client(repo.domain())?;
        let tags = client.list_tags(repo.path()).await?;
        tracing::info!(repository = %repo.name(), tags = tags.len(), "listed tags");
        self.plan.sources += 1;
        // Carrying referrers, the referrers tags (`sha256-HEX`) come with
        // their subjects: copied on their own they are indexes of artifacts.
        if self.opts.prune {
            let sample = repo
                .with_tag(super::prune::SAMPLE_TAG)
                .map_err(|source| SyncError::Tag {
                    repository: repo.name(),
                    tag: super::prune::SAMPLE_TAG.into(),
                    source,
                })?;
            self.plan.prune_scopes.push(super::prune::PruneScope {
                sample: self.destination_of(&sample)?,
                source: ImageReference::Docker(sample.clone()),
                filter: filter.clone(),
                source_tags: tags.iter().cloned().collect(),
            });
        }
        let tags = match self.opts.copy.referrers {
            Some(_) => tags.into_iter().filter(|t| !is_referrers_tag(t)).collect(),
            None => tags,
        };
        for t in filter.apply(tags) {
            // As skopeo: a tag the grammar refuses is reported and skipped.
            match repo.with_tag(&t) {
                Ok(r) => self.add_docker(r, src)?,
                Err(e) => tracing::error!(
                    repository = %repo.name(),
                    tag = %t,
                    "{}: {e}",
                    crate::skopeo_texts::INVALID_LISTED_TAG
                ),
            }
        }
        Ok(())
    }

    /// Every repository under `prefix` in the registry's catalog.
    async fn add_catalog(
        &mut self,
        registry: &str,
        prefix: &str,
        filter: &TagFilter,
        src: &Arc<OpenOptions>,
    ) -> Result<(), SyncError> {
        let client = src.client(registry)?;
        let prefix = prefix.trim_matches('/');
        let repos = client.list_repositories().await?;
        for repo in repos
            .iter()
            .filter(|r| prefix.is_empty() || *r == prefix || r.starts_with(&format!("{prefix}/")))
        {
            let r = DockerReference::parse_qualified(&format!("{registry}/{repo}")).map_err(|source| {
                SyncError::CatalogEntry {
                    repository: repo.clone(),
                    source,
                }
            })?;
            self.add_repository(&r, filter, src).await?;
        }
        Ok(())
    }

    fn add_dir(&mut self, root: &Path, src: &Arc<OpenOptions>) -> Result<(), SyncError> {
        if matches!(self.dest, SyncDestination::Dir(_)) {
            return Err(SyncError::DirToDir);
        }
        let mut found = vec![];
        find_dir_images(root, &mut found).map_err(|source| SyncError::ReadDir {
            path: root.to_path_buf(),
            source,
        })?;
        if found.is_empty() {
            return Err(SyncError::NoImages(root.to_path_buf()));
        }
        found.sort();
        for path in found {
            let rel = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().into_owned();
            let suffix = if rel.is_empty() {
                root.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            } else {
                rel
            };
            let destination = destination(self.dest, &suffix, self.opts)?;
            self.plan.sources += 1;
            self.plan.images.push(PlannedImage {
                source: ImageReference::Dir { path },
                destination,
                source_options: src.clone(),
            });
        }
        Ok(())
    }

    async fn add_yaml_registry(&mut self, registry: &str, cfg: &RegistryConfig) -> Result<(), SyncError> {
        let mut o = self.opts.src.clone();
        if let Some(c) = &cfg.credentials {
            o.registry.auth.explicit = Some(Credentials::Basic {
                username: c.username.clone(),
                password: c.password.clone(),
            });
        }
        if cfg.tls_verify.is_some() {
            o.registry.tls.verify = cfg.tls_verify;
        }
        if cfg.cert_dir.is_some() {
            o.registry.tls.cert_dir = cfg.cert_dir.clone();
        }
        let src = Arc::new(o);
        let mut exclude = self.opts.exclude_tags.clone();
        exclude.extend(compile(&cfg.exclude_tags)?);
        let base = TagFilter {
            exclude,
            keep_newest: cfg.keep_newest.or(self.opts.keep_newest),
            ..TagFilter::default()
        };
        let repo_ref = |repo: &str| {
            DockerReference::parse_normalized(&format!("{registry}/{repo}")).map_err(|source| SyncError::Repository {
                registry: registry.to_string(),
                repository: repo.to_string(),
                source,
            })
        };
        for (repo, tags) in &cfg.images {
            let r = repo_ref(repo)?;
            match tags.as_deref() {
                None | Some([]) => self.add_repository(&r, &base, &src).await?,
                Some(list) => {
                    self.plan.sources += 1;
                    for t in list {
                        let img =
                            match t.parse::<crate::digest::Digest>() {
                                Ok(d) => r.with_digest(d),
                                Err(_) => DockerReference::parse_qualified(&format!("{}:{t}", r.name())).map_err(
                                    |source| SyncError::Tag {
                                        repository: repo.clone(),
                                        tag: t.clone(),
                                        source,
                                    },
                                )?,
                            };
                        self.add_docker(img, &src)?;
                    }
                }
            }
        }
        for (repo, re) in &cfg.images_by_tag_regex {
            let include = Some(Regex::new(re).map_err(|source| SyncError::TagRegex {
                regex: re.clone(),
                repository: Some(repo.clone()),
                source,
            })?);
            self.add_repository(
                &repo_ref(repo)?,
                &TagFilter {
                    include,
                    ..base.clone()
                },
                &src,
            )
            .await?;
        }
        for (repo, c) in &cfg.images_by_semver {
            let semver = Some(Constraint::parse(c).map_err(|source| SyncError::Semver {
                repository: repo.clone(),
                source,
            })?);
            self.add_repository(&repo_ref(repo)?, &TagFilter { semver, ..base.clone() }, &src)
                .await?;
        }
        for prefix in &cfg.catalog {
            let host = repo_ref("x")?.domain().to_string();
            self.add_catalog(&host, prefix, &base, &src).await?;
        }
        Ok(())
    }
}

fn find_dir_images(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if dir.join("manifest.json").is_file() {
        out.push(dir.to_path_buf());
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            find_dir_images(&entry.path(), out)?;
        }
    }
    Ok(())
}

/// Work out what a sync from `source` to `dest` would copy.
pub async fn plan(source: &SyncSource, dest: &SyncDestination, opts: &SyncOptions) -> Result<Plan, SyncError> {
    let mut p = Planner {
        dest,
        opts,
        plan: Plan::default(),
    };
    let src = Arc::new(opts.src.clone());
    let filter = TagFilter {
        exclude: opts.exclude_tags.clone(),
        keep_newest: opts.keep_newest,
        ..TagFilter::default()
    };
    match source {
        SyncSource::Docker(s) => {
            let r = DockerReference::parse_normalized(s.trim_start_matches("docker://")).map_err(|source| {
                SyncError::SourceReference {
                    reference: s.clone(),
                    source,
                }
            })?;
            if r.is_name_only() {
                p.add_repository(&r, &filter, &src).await?;
            } else {
                p.plan.sources += 1;
                p.add_docker(r, &src)?;
            }
        }
        SyncSource::Catalog(s) => {
            let (registry, prefix) = s.trim_start_matches("docker://").split_once('/').unwrap_or((s, ""));
            p.add_catalog(registry, prefix, &filter, &src).await?;
        }
        SyncSource::Dir(d) => p.add_dir(d, &src)?,
        SyncSource::Yaml(cfg) => {
            for (registry, r) in cfg {
                p.add_yaml_registry(registry, r).await?;
            }
        }
    }
    if let Some(s) = opts.shard {
        s.apply(&mut p.plan);
    }
    Ok(p.plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn referrers_tags_are_exactly_the_tag_schemas() {
        let hex = "a".repeat(64);
        assert!(is_referrers_tag(&format!("sha256-{hex}")));
        for t in [
            format!("sha256-{hex}.sig"),
            format!("sha256-{}", "A".repeat(64)),
            "sha256-ab".into(),
            "v1".into(),
        ] {
            assert!(!is_referrers_tag(&t), "{t}");
        }
    }

    fn tags(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn filters_combine() {
        let all = tags(&["1.0.0", "1.1.0", "1.2.0-rc.1", "2.0.0", "latest", "1.1.0-debug"]);
        let f = TagFilter {
            exclude: vec![Regex::new("debug").unwrap()],
            ..Default::default()
        };
        assert_eq!(
            f.apply(all.clone()),
            tags(&["1.0.0", "1.1.0", "1.2.0-rc.1", "2.0.0", "latest"])
        );
        let f = TagFilter {
            semver: Some(Constraint::parse("^1").unwrap()),
            ..Default::default()
        };
        assert_eq!(f.apply(all.clone()), tags(&["1.0.0", "1.1.0"]));
        let f = TagFilter {
            include: Some(Regex::new(r"^\d").unwrap()),
            keep_newest: Some(2),
            ..Default::default()
        };
        assert_eq!(f.apply(all), tags(&["1.2.0-rc.1", "2.0.0"]));
    }

    #[test]
    fn destination_naming_follows_skopeo() {
        let mut o = SyncOptions::default();
        let d = SyncDestination::Docker("127.0.0.1:5000/mirror".into());
        let r = destination(&d, "quay.io/org/app:1.0", &o).unwrap();
        assert_eq!(r.to_string(), "docker://127.0.0.1:5000/mirror/app:1.0");
        o.scoped = true;
        o.append_suffix = "-m".into();
        let r = destination(&d, "quay.io/org/app:1.0", &o).unwrap();
        assert_eq!(r.to_string(), "docker://127.0.0.1:5000/mirror/quay.io/org/app:1.0-m");
        let r = destination(&SyncDestination::Dir("/tmp/x".into()), "quay.io/org/app:1.0", &o).unwrap();
        assert_eq!(r.to_string(), "dir:/tmp/x/quay.io/org/app:1.0-m");
    }
}
