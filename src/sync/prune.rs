//! Opt-in prune (`sync --prune`, ImageSync `spec.prune`): after a sync,
//! delete the destination tags of the synced scope that the source no
//! longer has — a 1:1 mirror. The scope is each source repository whose tags
//! were listed (explicit tag lists and single images have none): its
//! destination repository, the tags its filter admits (include, semver,
//! exclude; not keep-newest: a tag the source still has is never pruned),
//! carrying the sync's suffix. Referrers and signature attachment tags
//! (`sha256-HEX[.sig]`) go with their subjects and are never pruned. A
//! registry deletes manifests, not tags, so a tag is pruned only when every
//! tag naming its manifest is pruned too; otherwise it is kept, and said so.

use super::plan::TagFilter;
use super::{Plan, SyncOptions};
use crate::digest::Digest;
use crate::reference::{DockerReference, ImageReference};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

/// What became of one destination tag out of the source's reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PruneAction {
    Pruned,
    /// `--dry-run`: would be pruned.
    Planned,
    /// Not pruned: deleting it would delete another tag too.
    Kept,
    Failed,
}

/// One destination tag the source no longer has.
#[derive(Debug, Clone, Serialize)]
pub struct PruneResult {
    pub destination: String,
    pub digest: Option<String>,
    pub action: PruneAction,
    /// Why it was kept, or why pruning it failed.
    pub reason: Option<String>,
}

/// A source repository whose tags were listed, and where they went.
#[derive(Debug, Clone)]
pub struct PruneScope {
    /// The source repository.
    pub(super) source: ImageReference,
    /// Where a tag `SAMPLE_TAG` of it would go.
    pub(super) sample: ImageReference,
    pub(super) filter: TagFilter,
    /// Every tag the source listed (before filtering).
    pub(super) source_tags: HashSet<String>,
}

/// The tag the scope's sample destination carries.
pub(super) const SAMPLE_TAG: &str = "kopeo-prune-scope";

/// Where a scope's destination tags live.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Place {
    /// A registry repository.
    Registry(String),
    /// `dir:` images `PARENT/NAME:TAG`.
    Dir(PathBuf, String),
}

/// A `sha256-HEX` referrers tag or a `sha256-HEX.sig|.att|.sbom` attachment.
fn is_companion_tag(t: &str) -> bool {
    let Some(rest) = t.strip_prefix("sha256-") else {
        return false;
    };
    let hex = rest.split('.').next().unwrap_or("");
    hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The place of `sample` and the suffix its tags carry.
fn place(sample: &ImageReference) -> Option<(Place, String)> {
    match sample {
        ImageReference::Docker(r) => {
            let suffix = r.tag()?.strip_prefix(SAMPLE_TAG)?.to_string();
            Some((Place::Registry(r.name()), suffix))
        }
        ImageReference::Dir { path } => {
            let file = path.file_name()?.to_str()?;
            let (name, tag) = file.split_once(':')?;
            let suffix = tag.strip_prefix(SAMPLE_TAG)?.to_string();
            Some((Place::Dir(path.parent()?.to_path_buf(), name.to_string()), suffix))
        }
        _ => None,
    }
}

/// A scope group: every scope writing to one place with one suffix.
struct Group<'a> {
    scopes: Vec<&'a PruneScope>,
}

impl Group<'_> {
    /// Whether destination tag `t` (with `suffix`) is out of the source's reach.
    fn gone(&self, t: &str, suffix: &str) -> bool {
        if is_companion_tag(t) {
            return false;
        }
        let Some(s) = t.strip_suffix(suffix).filter(|s| !s.is_empty()) else {
            return false;
        };
        self.scopes.iter().any(|sc| sc.filter.admits(s)) && !self.scopes.iter().any(|sc| sc.source_tags.contains(s))
    }
}

/// Prune what `plan`'s scopes cover (nothing unless `opts.prune`).
pub async fn prune(plan: &Plan, opts: &SyncOptions) -> Vec<PruneResult> {
    let mut groups: BTreeMap<(Place, String), Group<'_>> = BTreeMap::new();
    for scope in &plan.prune_scopes {
        if let Some(key) = place(&scope.sample) {
            groups.entry(key).or_insert(Group { scopes: vec![] }).scopes.push(scope);
        }
    }
    let mut out = vec![];
    for ((place, suffix), group) in groups {
        match place {
            Place::Registry(name) => out.extend(in_registry(&name, &suffix, &group, opts).await),
            Place::Dir(parent, name) => out.extend(in_dir(&parent, &name, &suffix, &group, opts).await),
        }
    }
    out
}

fn failed(destination: String, why: impl std::fmt::Display) -> PruneResult {
    PruneResult {
        destination,
        digest: None,
        action: PruneAction::Failed,
        reason: Some(why.to_string()),
    }
}

/// The manifest digest tag `t` of `repo` names, and whether it is a list.
async fn tag_digest(client: &crate::registry::RegistryClient, repo: &str, t: &str) -> Result<(Digest, bool), String> {
    let head = client.head_manifest(repo, t, false).await.map_err(|e| e.to_string())?;
    if let Some(h) = head
        && let Some(d) = h.digest
    {
        return Ok((d, crate::manifest::is_list_type(&h.media_type)));
    }
    let (bytes, mime) = client.get_manifest(repo, t).await.map_err(|e| e.to_string())?;
    let d = crate::manifest_digest::manifest_digest(&bytes).map_err(|e| e.to_string())?;
    Ok((d, crate::manifest::is_list_type(&mime)))
}

/// The manifests list `t` of `repo` names (deleting one would break it).
async fn list_members(client: &crate::registry::RegistryClient, repo: &str, t: &str) -> Result<Vec<Digest>, String> {
    let (bytes, mime) = client.get_manifest(repo, t).await.map_err(|e| e.to_string())?;
    match crate::manifest::Manifest::parse(&bytes, &mime).map_err(|e| e.to_string())? {
        crate::manifest::Manifest::Index(i) => Ok(i.manifests.into_iter().map(|m| m.digest).collect()),
        crate::manifest::Manifest::Image(_) => Ok(vec![]),
    }
}

async fn in_registry(name: &str, suffix: &str, group: &Group<'_>, opts: &SyncOptions) -> Vec<PruneResult> {
    let repo = match DockerReference::parse_normalized(name) {
        Ok(r) => r,
        Err(e) => return vec![failed(format!("docker://{name}"), e)],
    };
    let client = match opts.dest.client(repo.domain()) {
        Ok(c) => c,
        Err(e) => return vec![failed(format!("docker://{name}"), e)],
    };
    let tags = match client.list_tags(repo.path()).await {
        Ok(t) => t,
        Err(e) if e.is_not_found() => return vec![],
        Err(e) => return vec![failed(format!("docker://{name}"), format!("listing tags: {e}"))],
    };
    let gone: Vec<&String> = tags.iter().filter(|t| group.gone(t, suffix)).collect();
    if gone.is_empty() {
        return vec![];
    }
    // Which tags name each manifest: a deletion takes them all.
    let mut by_digest: HashMap<Digest, Vec<String>> = HashMap::new();
    let mut digest_of: HashMap<String, Digest> = HashMap::new();
    // Manifests that lists which stay name, by the list's tag.
    let mut in_kept_list: HashMap<Digest, String> = HashMap::new();
    let mut unreadable_kept = false;
    let mut out = vec![];
    for t in tags.iter().filter(|t| !is_companion_tag(t)) {
        match tag_digest(&client, repo.path(), t).await {
            Ok((d, list)) => {
                by_digest.entry(d.clone()).or_default().push(t.clone());
                digest_of.insert(t.clone(), d);
                if list && !gone.contains(&t) {
                    match list_members(&client, repo.path(), t).await {
                        Ok(members) => in_kept_list.extend(members.into_iter().map(|m| (m, t.clone()))),
                        Err(e) => {
                            tracing::warn!(tag = %t, repository = %name, error = %e, "reading a kept list");
                            unreadable_kept = true;
                        }
                    }
                }
            }
            Err(e) if gone.contains(&t) => out.push(failed(format!("docker://{name}:{t}"), e)),
            // A kept tag that cannot be read: no manifest may be deleted
            // blindly, so its digest stays unknown and nothing shares it.
            Err(e) => tracing::warn!(tag = %t, repository = %name, error = %e, "reading a kept tag"),
        }
    }
    unreadable_kept |= tags
        .iter()
        .any(|t| !is_companion_tag(t) && !gone.contains(&t) && !digest_of.contains_key(t));
    let mut deleted: HashMap<Digest, Result<(), String>> = HashMap::new();
    for t in gone {
        let Some(d) = digest_of.get(t) else { continue };
        let destination = format!("docker://{name}:{t}");
        let sharing: Vec<&String> = by_digest[d].iter().filter(|o| !group.gone(o, suffix)).collect();
        let reason = match (sharing.first(), unreadable_kept) {
            (Some(other), _) => Some(format!("its manifest is also tagged {other:?}, which stays")),
            (None, _) if in_kept_list.contains_key(d) => Some(format!(
                "the list tagged {:?}, which stays, names its manifest",
                in_kept_list[d]
            )),
            (None, true) => Some("a tag that stays could not be read: it might name the same manifest".into()),
            (None, false) => None,
        };
        let mut result = PruneResult {
            destination,
            digest: Some(d.to_string()),
            action: PruneAction::Kept,
            reason,
        };
        if result.reason.is_none() {
            result.action = if opts.dry_run {
                PruneAction::Planned
            } else {
                let r = match deleted.get(d) {
                    Some(r) => r.clone(),
                    None => {
                        let r = crate::transport::docker::delete(&repo.with_digest(d.clone()), &client)
                            .await
                            .map_err(|e| e.to_string());
                        deleted.insert(d.clone(), r.clone());
                        r
                    }
                };
                match r {
                    Ok(()) => PruneAction::Pruned,
                    Err(e) => {
                        result.reason = Some(e);
                        PruneAction::Failed
                    }
                }
            };
        }
        tracing::info!(destination = %result.destination, action = ?result.action, "prune");
        out.push(result);
    }
    out
}

async fn in_dir(
    parent: &std::path::Path,
    name: &str,
    suffix: &str,
    group: &Group<'_>,
    opts: &SyncOptions,
) -> Vec<PruneResult> {
    let entries = match std::fs::read_dir(parent) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return vec![],
        Err(e) => return vec![failed(format!("dir:{}", parent.display()), e)],
    };
    let prefix = format!("{name}:");
    let mut out = vec![];
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(t) = file.strip_prefix(&prefix) else { continue };
        let path = entry.path();
        // Only what a sync writes there: a complete dir: image.
        if !group.gone(t, suffix) || !path.join("manifest.json").is_file() {
            continue;
        }
        let digest = std::fs::read(path.join("manifest.json"))
            .ok()
            .and_then(|m| crate::manifest_digest::manifest_digest(&m).ok())
            .map(|d| d.to_string());
        let destination = format!("dir:{}", path.display());
        let action = if opts.dry_run {
            PruneAction::Planned
        } else {
            // Moved aside first: the image is gone at once, never half there.
            let aside = parent.join(format!(".kopeo-prune-{}", hex::encode(rand::random::<[u8; 8]>())));
            match std::fs::rename(&path, &aside).and_then(|()| std::fs::remove_dir_all(&aside)) {
                Ok(()) => PruneAction::Pruned,
                Err(e) => {
                    out.push(failed(destination, e));
                    continue;
                }
            }
        };
        out.push(PruneResult {
            destination,
            digest,
            action,
            reason: None,
        });
    }
    out.sort_by(|a, b| a.destination.cmp(&b.destination));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn companions_and_suffixes_stay_out_of_scope() {
        let hex = "a".repeat(64);
        assert!(is_companion_tag(&format!("sha256-{hex}")));
        assert!(is_companion_tag(&format!("sha256-{hex}.sig")));
        assert!(!is_companion_tag("sha256-abc"));
        let scope = PruneScope {
            source: "docker://src/app:x".parse().unwrap(),
            sample: "docker://h:5000/m/app:kopeo-prune-scope-m".parse().unwrap(),
            filter: TagFilter {
                exclude: vec![regex::Regex::new("^dev").unwrap()],
                ..Default::default()
            },
            source_tags: ["1.0".to_string()].into(),
        };
        let (at, suffix) = place(&scope.sample).unwrap();
        assert_eq!(at, Place::Registry("h:5000/m/app".into()));
        let g = Group { scopes: vec![&scope] };
        assert!(g.gone("0.9-m", &suffix));
        assert!(!g.gone("1.0-m", &suffix), "the source has it");
        assert!(!g.gone("0.9", &suffix), "without the sync's suffix: not the sync's");
        assert!(!g.gone("dev-m", &suffix), "excluded: outside the scope");
        assert!(!g.gone(&format!("sha256-{hex}.sig"), ""));
        let dir: ImageReference = "dir:/x/h:5000/ns/app:kopeo-prune-scope".parse().unwrap();
        assert_eq!(
            place(&dir).unwrap(),
            (Place::Dir("/x/h:5000/ns".into(), "app".into()), String::new())
        );
    }
}
