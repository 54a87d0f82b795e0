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
    let fail = |st: &mut ImageSyncStatus, reason: &str, msg: String| {
        set(
            &mut st.conditions,
            Condition {
                type_: "Ready".into(),
                status: "False".into(),
                reason: reason.into(),
                message: msg.clone(),
                observed_generation: generation,
                last_transition_time: now.into(),
            },
        );
        set(
            &mut st.conditions,
            Condition {
                type_: "Stalled".into(),
                status: "True".into(),
                reason: reason.into(),
                message: msg,
                observed_generation: generation,
                last_transition_time: now.into(),
            },
        );
    };
    let sel = &s.spec.selection;
    if sel.is_empty() {
        fail(
            &mut st,
            "InvalidSpec",
            crate::operator::image_sync::SELECT_SOMETHING.into(),
        );
        return st;
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
    let mut copy = match s.spec.copy.to_options() {
        Ok(c) => c,
        Err(e) => {
            fail(&mut st, "InvalidSpec", e.to_string());
            return st;
        }
    };
    if s.spec.verify.is_none() {
        copy.policy = sig.default_policy.clone();
    }
    if let Some(v) = &s.spec.verify {
        match sig
            .verify_keys
            .clone()
            .unwrap_or_else(|| Err("verify.keys were not looked up".into()))
        {
            Err(why) => {
                fail(&mut st, "VerifyKeysNotFound", why);
                return st;
            }
            Ok(keys) => match v.policy(&keys) {
                Ok(p) => copy.policy = Some(std::sync::Arc::new(p)),
                Err(e) => {
                    fail(&mut st, "InvalidSpec", e);
                    return st;
                }
            },
        }
    }
    if let Some(sign) = &s.spec.sign {
        let found = sig
            .sign_key
            .clone()
            .unwrap_or_else(|| Err("sign: the key was not looked up".into()));
        match found.and_then(|(k, p)| sign.options(&k, &p)) {
            Ok(signing) => {
                copy.signing = crate::options::signing::SigningOptions {
                    identity: None,
                    ..signing
                }
            }
            Err(why) => {
                fail(&mut st, "SigningKeyInvalid", why);
                return st;
            }
        }
    }
    match sig
        .crypt
        .options(s.spec.encryption.as_ref(), s.spec.decryption.as_ref())
    {
        Ok((enc, dec)) => (copy.encryption, copy.decryption) = (enc, dec),
        Err(why) => {
            fail(&mut st, "EncryptionKeysInvalid", why);
            return st;
        }
    }
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
    let source = sync::SyncSource::Yaml(BTreeMap::from([(s.spec.registry.clone(), cfg)]));
    let plan = match sync::plan(
        &source,
        &sync::SyncDestination::Docker(s.spec.destination.clone()),
        &opts,
    )
    .await
    {
        Ok(p) => p,
        Err(e) => {
            fail(&mut st, "PlanFailed", e.to_string());
            return st;
        }
    };
    let report = sync::execute(&plan, &opts).await;
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
    st.plan = if s.spec.dry_run {
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
    st.last_sync_time = Some(now.to_string());
    let ok = st.failed == 0;
    let rejected = report.images.iter().filter(|i| i.rejected).count();
    let (reason, msg) = if !ok && rejected > 0 {
        (
            "SignatureRejected",
            format!(
                "{} of {} images failed, {rejected} refused by spec.verify",
                st.failed, st.seen
            ),
        )
    } else if !ok {
        ("SyncFailed", format!("{} of {} images failed", st.failed, st.seen))
    } else if s.spec.dry_run {
        let prunes = match pruning(PruneAction::Planned).count() {
            0 => String::new(),
            n => format!(", {n} tags would be pruned"),
        };
        (
            "Planned",
            format!("{} images would be copied{prunes}", report.count(Action::Planned)),
        )
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
    st
}
