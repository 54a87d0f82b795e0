//! Reconciling one ImageSync: plan and run the sync with the engine's sync
//! code (the same function serves the controller and `kopeo run`).

use crate::operator::condition::{Condition, set};
use crate::operator::image_sync::{ImageSync, ImageSyncStatus, SyncFailure};
use crate::operator::progress::SyncProgress;
use crate::operator::registry_credential::render::Rendered;
use crate::sync::prune::PruneAction;
use crate::sync::{self, Action, SyncOptions};
use std::collections::BTreeMap;

/// `s`'s status while a sync runs: Progressing, with how far it got.
pub fn syncing(s: &ImageSync, now: &str, progress: SyncProgress) -> ImageSyncStatus {
    let mut st = s.status.clone().unwrap_or_default();
    set(
        &mut st.conditions,
        Condition {
            type_: "Progressing".into(),
            status: "True".into(),
            reason: "Syncing".into(),
            message: format!("syncing {} to {}", s.spec.registry, s.spec.destination),
            observed_generation: s.metadata.generation,
            last_transition_time: now.into(),
        },
    );
    st.progress = Some(progress);
    st
}

/// A sync made ready to plan: its source, destination and options.
pub struct Prepared {
    pub source: sync::SyncSource,
    pub destination: sync::SyncDestination,
    pub opts: SyncOptions,
}

/// Turn `s`'s spec into a sync to plan; `Err((reason, message))` when the
/// spec or its keys cannot be used.
pub fn prepare(
    s: &ImageSync,
    r: &Rendered,
    sig: &crate::operator::verify_keys::SignatureEnv,
    on_done: Option<sync::OnDone>,
) -> Result<Prepared, (&'static str, String)> {
    let sel = &s.spec.selection;
    if sel.is_empty() {
        return Err(("InvalidSpec", crate::operator::image_sync::SELECT_SOMETHING.into()));
    }
    let cfg = sync::config::RegistryConfig {
        images: sel
            .images
            .iter()
            .map(|(k, v)| (k.clone(), (!v.is_empty()).then(|| v.clone())))
            .collect(),
        images_by_tag_regex: sel.images_by_tag_regex.clone(),
        images_by_semver: sel.images_by_semver.clone(),
        exclude_tags: sel.exclude_tags.clone(),
        keep_newest: sel.keep_newest.map(|n| n as usize),
        catalog: sel.catalog.clone(),
        ..Default::default()
    };
    let mut copy = s.spec.copy.to_options().map_err(|e| ("InvalidSpec", e.to_string()))?;
    if s.spec.verify.is_none() {
        copy.policy = sig.default_policy.clone();
    }
    if let Some(v) = &s.spec.verify {
        let keys = sig
            .verify_keys
            .clone()
            .unwrap_or_else(|| Err("verify.keys were not looked up".into()))
            .map_err(|why| ("VerifyKeysNotFound", why))?;
        let p = v.policy(&keys).map_err(|e| ("InvalidSpec", e))?;
        copy.policy = Some(std::sync::Arc::new(p));
    }
    if let Some(sign) = &s.spec.sign {
        let found = sig
            .sign_key
            .clone()
            .unwrap_or_else(|| Err("sign: the key was not looked up".into()));
        let signing = found
            .and_then(|(k, p)| sign.options(&k, &p))
            .map_err(|why| ("SigningKeyInvalid", why))?;
        copy.signing = crate::options::signing::SigningOptions {
            identity: None,
            ..signing
        };
    }
    (copy.encryption, copy.decryption) = sig
        .crypt
        .options(s.spec.encryption.as_ref(), s.spec.decryption.as_ref())
        .map_err(|why| ("EncryptionKeysInvalid", why))?;
    let mut src = r.side(&format!("docker://{}/x", s.spec.registry));
    src.pool = Some(Default::default());
    src.signature_storage = sig.storage.clone();
    let mut dest = r.side(&format!("docker://{}/x", s.spec.destination.trim_end_matches('/')));
    dest.pool = Some(Default::default());
    dest.signature_storage = sig.storage.clone();
    // The spec's retries cover registry requests too, as `--retry-times` does.
    src.registry.retry = copy.retry;
    dest.registry.retry = copy.retry;
    let opts = SyncOptions {
        copy,
        scoped: s.spec.scoped,
        append_suffix: s.spec.append_suffix.clone(),
        parallel_images: s.spec.concurrency.unwrap_or(0) as usize,
        keep_going: s.spec.keep_going,
        dry_run: s.spec.dry_run,
        prune: s.spec.prune,
        src,
        dest,
        on_done,
        ..SyncOptions::default()
    };
    Ok(Prepared {
        source: sync::SyncSource::Yaml(BTreeMap::from([(s.spec.registry.clone(), cfg)])),
        destination: sync::SyncDestination::Docker(s.spec.destination.clone()),
        opts,
    })
}

/// Set Ready and Stalled false for a sync that could not run.
pub fn fail(st: &mut ImageSyncStatus, generation: Option<i64>, now: &str, reason: &str, msg: String) {
    for (t, v) in [("Ready", "False"), ("Stalled", "True")] {
        set(
            &mut st.conditions,
            Condition {
                type_: t.into(),
                status: v.into(),
                reason: reason.into(),
                message: msg.clone(),
                observed_generation: generation,
                last_transition_time: now.into(),
            },
        );
    }
}

/// Run one sync for `s` (or plan it, with `dryRun`) and return its new
/// status; `on_done` is told each image's result.
pub async fn reconcile(
    s: &ImageSync,
    r: &Rendered,
    sig: &crate::operator::verify_keys::SignatureEnv,
    now: &str,
    on_done: Option<sync::OnDone>,
) -> ImageSyncStatus {
    let generation = s.metadata.generation;
    let mut st = ImageSyncStatus {
        observed_generation: generation,
        progress: None,
        ..s.status.clone().unwrap_or_default()
    };
    let Prepared {
        source,
        destination,
        opts,
    } = match prepare(s, r, sig, on_done) {
        Ok(p) => p,
        Err((reason, msg)) => {
            fail(&mut st, generation, now, reason, msg);
            return st;
        }
    };
    let plan = match sync::plan(&source, &destination, &opts).await {
        Ok(p) => p,
        Err(e) => {
            fail(&mut st, generation, now, "PlanFailed", e.to_string());
            return st;
        }
    };
    let report = sync::execute(&plan, &opts).await;
    tally(&mut st, &plan, &report, s.spec.dry_run);
    st.last_sync_time = Some(now.to_string());
    conclude(&mut st, Outcome::of(&report), s.spec.dry_run, generation, now);
    st
}

/// Counts, failures and the dry-run plan of one sync's report.
pub fn tally(st: &mut ImageSyncStatus, plan: &sync::Plan, report: &sync::SyncReport, dry_run: bool) {
    st.seen = plan.images.len() as u64;
    st.copied = report.count(Action::Copied) as u64;
    st.already_present = report.count(Action::Skipped) as u64;
    let pruning = |a: PruneAction| report.pruned.iter().filter(move |p| p.action == a);
    st.failed = report.count(Action::Failed) as u64 + pruning(PruneAction::Failed).count() as u64;
    st.pruned = pruning(PruneAction::Pruned).count() as u64;
    st.failures = report
        .images
        .iter()
        .filter(|i| i.action == Action::Failed)
        .map(|i| SyncFailure {
            source: i.source.clone(),
            reason: i.error.clone().unwrap_or_default(),
        })
        .chain(pruning(PruneAction::Failed).map(|p| SyncFailure {
            source: p.destination.clone(),
            reason: format!("pruning: {}", p.reason.clone().unwrap_or_default()),
        }))
        .take(20)
        .collect();
    st.plan = if dry_run {
        report
            .images
            .iter()
            .filter(|i| i.action == Action::Planned)
            .map(|i| format!("{} -> {}", i.source, i.destination))
            .chain(pruning(PruneAction::Planned).map(|p| format!("prune {}", p.destination)))
            .take(100)
            .collect()
    } else {
        vec![]
    };
}

/// What a report says beyond its counts, for the conditions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Outcome {
    /// Images refused by spec.verify.
    pub rejected: u64,
    /// With dryRun: images that would be copied and tags that would be pruned.
    pub planned: u64,
    pub planned_prunes: u64,
}

impl Outcome {
    /// The outcome of one report.
    pub fn of(report: &sync::SyncReport) -> Outcome {
        Outcome {
            rejected: report.images.iter().filter(|i| i.rejected).count() as u64,
            planned: report.count(Action::Planned) as u64,
            planned_prunes: report
                .pruned
                .iter()
                .filter(|p| p.action == PruneAction::Planned)
                .count() as u64,
        }
    }
}

/// Ready, Progressing and Stalled from the counts in `st` and `outcome`.
pub fn conclude(st: &mut ImageSyncStatus, outcome: Outcome, dry_run: bool, generation: Option<i64>, now: &str) {
    let ok = st.failed == 0;
    let rejected = outcome.rejected;
    let (reason, msg) = if !ok && rejected > 0 {
        (
            "SignatureRejected",
            format!(
                "{} of {} images failed, {rejected} refused by spec.verify",
                st.failed, st.seen
            ),
        )
    } else if !ok {
        let msg = match st.failures.first() {
            // A failure before any image (a plan, a shard that never ran).
            Some(f) if st.failed > st.seen => format!("{}: {}", f.source, f.reason),
            _ => format!("{} of {} images failed", st.failed, st.seen),
        };
        ("SyncFailed", msg)
    } else if dry_run {
        let prunes = match outcome.planned_prunes {
            0 => String::new(),
            n => format!(", {n} tags would be pruned"),
        };
        ("Planned", format!("{} images would be copied{prunes}", outcome.planned))
    } else {
        (
            "Synced",
            match st.pruned {
                0 => format!("{} copied, {} already present", st.copied, st.already_present),
                n => format!(
                    "{} copied, {} already present, {n} pruned",
                    st.copied, st.already_present
                ),
            },
        )
    };
    for (t, v) in [("Ready", ok), ("Progressing", false), ("Stalled", !ok)] {
        set(
            &mut st.conditions,
            Condition {
                type_: t.into(),
                status: if v { "True" } else { "False" }.into(),
                reason: reason.into(),
                message: msg.clone(),
                observed_generation: generation,
                last_transition_time: now.into(),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_before_any_image_is_the_message() {
        let ready = |st: &ImageSyncStatus| {
            st.conditions
                .iter()
                .find(|c| c.type_ == "Ready")
                .map(|c| c.message.clone())
        };
        let mut st = ImageSyncStatus {
            failed: 1,
            failures: vec![SyncFailure {
                source: "planning shard 0".into(),
                reason: "pinging container registry r: connection refused".into(),
            }],
            ..Default::default()
        };
        let outcome = || Outcome {
            rejected: 0,
            planned: 0,
            planned_prunes: 0,
        };
        conclude(&mut st, outcome(), false, None, "t");
        assert_eq!(
            ready(&st).as_deref(),
            Some("planning shard 0: pinging container registry r: connection refused")
        );
        st.seen = 4;
        conclude(&mut st, outcome(), false, None, "t");
        assert_eq!(ready(&st).as_deref(), Some("1 of 4 images failed"));
    }
}
