//! Throttling across the shards of a sharded ImageSync. Each worker pod
//! has its own share of a host's request budget, but a `429` with
//! `Retry-After` is the registry speaking about the whole host: the worker
//! that got it writes the pause into its shard report at once, and every
//! other worker of the run, watching the ImageSync, holds its requests to
//! that host until the pause ends. The reports also carry each worker's
//! throttling counts, which the controller adds up in the status and in
//! its `kopeo_registry_throttled_total` metric.

use crate::operator::image_sync::ImageSync;
use crate::operator::image_sync::workers::ShardStatus;
use crate::registry::budget::Budgets;
use futures::StreamExt as _;
use kube::Api;
use kube::runtime::{WatchStreamExt as _, watcher};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How often one registry host held requests back, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostThrottling {
    pub host: String,
    /// Requests or blob transfers that waited for the request budget.
    #[serde(default)]
    pub budget: u64,
    /// `429 Too Many Requests` answers that paused the host.
    #[serde(default)]
    pub retry_after: u64,
}

/// A host a shard was told to leave alone (a 429's Retry-After), until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostPause {
    pub host: String,
    /// RFC 3339, rounded up to the second.
    pub until: String,
}

/// This process's throttling counts, hosts that never waited left out.
pub fn counts(budgets: &Budgets) -> Vec<HostThrottling> {
    budgets
        .throttling()
        .into_iter()
        .filter(|(_, w, p)| w + p > 0)
        .map(|(host, budget, retry_after)| HostThrottling {
            host,
            budget,
            retry_after,
        })
        .collect()
}

/// The pauses 429s to this process asked for that still run, as
/// wall-clock times other pods can read.
pub fn pauses(budgets: &Budgets) -> Vec<HostPause> {
    let (now, wall) = (tokio::time::Instant::now(), SystemTime::now());
    budgets
        .pauses()
        .into_iter()
        .map(|(host, t)| {
            let end = wall + t.saturating_duration_since(now);
            let secs = end.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
            HostPause {
                host,
                until: crate::timestamp::format_unix(secs.ceil() as i64),
            }
        })
        .collect()
}

/// Hold this process's requests for every pause another shard of `job` reported.
pub fn adopt(budgets: &Budgets, own: &str, job: &str, shards: &BTreeMap<String, ShardStatus>) {
    let now = crate::timestamp::now_unix();
    for (index, s) in shards {
        if index == own || s.job != job {
            continue;
        }
        for p in &s.paused {
            let Some(until) = crate::timestamp::parse_rfc3339(&p.until) else {
                continue;
            };
            if until <= now {
                continue;
            }
            let left = Duration::from_secs((until - now) as u64);
            if budgets.host(&p.host).paused_until().is_none() {
                tracing::info!(host = %p.host, shard = %index, pause = ?left, "another shard was told to slow down: holding requests to the host");
            }
            budgets.host(&p.host).hold_until(tokio::time::Instant::now() + left);
        }
    }
}

/// Watch the ImageSync `name` and take on the pauses the other shards of
/// `job` report, until the task is dropped.
pub async fn follow(api: Api<ImageSync>, name: String, own: String, job: String, budgets: Arc<Budgets>) {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = std::pin::pin!(watcher(api, config).default_backoff().applied_objects());
    while let Some(ev) = events.next().await {
        match ev {
            Ok(s) => {
                if let Some(st) = &s.status {
                    adopt(&budgets, &own, &job, &st.shards);
                }
            }
            // The watcher retries with backoff; a worker without the other
            // shards' pauses still keeps within its own share of the budget.
            Err(e) => tracing::debug!(error = %e, "watching the ImageSync for other shards' pauses"),
        }
    }
}

/// The counts of several reports added up by host.
pub fn sum<'a>(reports: impl IntoIterator<Item = &'a [HostThrottling]>) -> Vec<HostThrottling> {
    let mut by: BTreeMap<String, HostThrottling> = BTreeMap::new();
    for t in reports.into_iter().flatten() {
        let e = by.entry(t.host.clone()).or_insert_with(|| HostThrottling {
            host: t.host.clone(),
            ..Default::default()
        });
        e.budget += t.budget;
        e.retry_after += t.retry_after;
    }
    by.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_pause_one_shard_reports_holds_the_others_of_its_job_only() {
        let theirs = Budgets::default();
        theirs.host("r").pause(Duration::from_secs(30));
        let paused = pauses(&theirs);
        assert_eq!(paused.len(), 1);
        let left = crate::timestamp::parse_rfc3339(&paused[0].until).unwrap() - crate::timestamp::now_unix();
        assert!((29..=31).contains(&left), "{left}");
        let report = |job: &str| ShardStatus {
            job: job.into(),
            paused: paused.clone(),
            ..Default::default()
        };
        let mine = Budgets::default();
        let shards: BTreeMap<String, ShardStatus> = [("1".to_string(), report("old-run"))].into();
        adopt(&mine, "0", "run", &shards);
        assert!(mine.pauses().is_empty(), "an earlier run's pauses are over");
        let shards: BTreeMap<String, ShardStatus> = [("0".to_string(), report("run"))].into();
        adopt(&mine, "0", "run", &shards);
        assert!(mine.pauses().is_empty(), "its own report is not news");
        let shards: BTreeMap<String, ShardStatus> = [("1".to_string(), report("run"))].into();
        adopt(&mine, "0", "run", &shards);
        assert!(mine.host("r").paused_until().is_some(), "held");
        assert!(pauses(&mine).is_empty(), "not reported again as its own");
        assert_eq!(counts(&mine), vec![], "held, not throttled itself");
        assert_eq!(
            counts(&theirs),
            vec![HostThrottling {
                host: "r".into(),
                budget: 0,
                retry_after: 1
            }]
        );
    }

    #[test]
    fn counts_add_up_by_host() {
        let t = |host: &str, budget, retry_after| HostThrottling {
            host: host.into(),
            budget,
            retry_after,
        };
        let a = [t("a", 1, 0), t("b", 2, 1)];
        let b = [t("b", 3, 0)];
        assert_eq!(sum([&a[..], &b[..]]), vec![t("a", 1, 0), t("b", 5, 1)]);
    }
}
