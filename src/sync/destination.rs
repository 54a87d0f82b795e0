//! What the destination holds already, asked once per repository: a sync
//! lists each destination repository's tags before copying, and an image
//! whose tag is not there skips the "already there" check (a manifest HEAD
//! on each registry). Into an empty mirror that is what an ideal client
//! sends per image: the manifest GET, a HEAD or mount per blob, the
//! uploads and one manifest PUT.

use super::Plan;
use crate::reference::ImageReference;
use crate::transport::{self, OpenOptions};
use futures::StreamExt;
use std::collections::{HashMap, HashSet};

/// For each image of `plan`, whether its destination is known to lack it.
/// `false` where that cannot be told cheaply (not a registry, or the tag
/// list failed): the copy then checks for itself.
pub async fn known_absent(plan: &Plan, dest: &OpenOptions, parallel: usize) -> Vec<bool> {
    // Owned values in the futures: borrowed ones make the sync future not
    // Send for every lifetime, which the controllers need.
    let mut repos: HashMap<(String, String), crate::reference::DockerReference> = HashMap::new();
    for image in &plan.images {
        if let ImageReference::Docker(r) = &image.destination {
            repos
                .entry((r.domain().to_string(), r.path().to_string()))
                .or_insert_with(|| r.clone());
        }
    }
    let dest = std::sync::Arc::new(dest.clone());
    let listed: HashMap<(String, String), HashSet<String>> = futures::stream::iter(repos)
        .map(|(key, r)| {
            let dest = dest.clone();
            async move {
                match transport::list_repository_tags(&r, &dest).await {
                    Ok(list) => Some((key, list.tags.into_iter().collect())),
                    // No such repository yet: nothing is there.
                    Err(e) if e.is_image_not_found() => Some((key, HashSet::new())),
                    Err(e) => {
                        tracing::debug!(repository = %r.name(), error = %e, "listing destination tags failed; checking each image");
                        None
                    }
                }
            }
        })
        .buffer_unordered(parallel.max(1))
        .filter_map(|x| async move { x })
        .collect()
        .await;
    plan.images
        .iter()
        .map(|image| match &image.destination {
            ImageReference::Docker(r) if r.digest().is_none() => listed
                .get(&(r.domain().to_string(), r.path().to_string()))
                .is_some_and(|tags| r.tag().is_some_and(|t| !tags.contains(t))),
            _ => false,
        })
        .collect()
}
