//! The job controller, as kube-controller-manager's runs it for batch/v1
//! Jobs with `restartPolicy: Never`: pods made from the template up to
//! `parallelism` (Indexed Jobs: one per pending index, with the index in
//! an annotation, a label, `JOB_COMPLETION_INDEX` and the hostname), each
//! held by the `batch.kubernetes.io/job-tracking` finalizer until counted;
//! failed indexes retried after an exponential delay (10 s doubling, 6 min
//! at most) within `backoffLimitPerIndex` (or the Job within
//! `backoffLimit`); suspend deletes the running pods; and the status the
//! real one writes (counts, completed/failed index ranges, conditions
//! SuccessCriteriaMet→Complete, FailureTarget→Failed, Suspended).
//!
//! Not done: podFailurePolicy, successPolicy, activeDeadlineSeconds,
//! ttlSecondsAfterFinished, `restartPolicy: OnFailure` (the node restarts
//! such containers; their failures are not counted here).

use crate::store::State;
use crate::types::ResourceType;
use crate::workloads::INDEX_KEY;
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

const TRACKING: &str = "batch.kubernetes.io/job-tracking";
const FAILURES_KEY: &str = "batch.kubernetes.io/job-index-failure-count";

/// What the controller remembers between passes (as the real one keeps its
/// backoff records in memory).
#[derive(Default)]
pub struct JobController {
    /// Job uid → index → when its pod last failed.
    last_failure: HashMap<String, HashMap<i64, Instant>>,
}

fn s<'a>(o: &'a Value, ptr: &str) -> &'a str {
    o.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn phase(p: &Value) -> &str {
    s(p, "/status/phase")
}

fn terminal(p: &Value) -> bool {
    matches!(phase(p), "Succeeded" | "Failed")
}

fn index_of(p: &Value) -> Option<i64> {
    p.pointer("/metadata/annotations")
        .and_then(|a| a.get(INDEX_KEY))
        .and_then(Value::as_str)
        .and_then(|i| i.parse().ok())
}

fn failures_before(p: &Value) -> i64 {
    p.pointer("/metadata/annotations")
        .and_then(|a| a.get(FAILURES_KEY))
        .and_then(Value::as_str)
        .and_then(|i| i.parse().ok())
        .unwrap_or(0)
}

fn has_tracking(p: &Value) -> bool {
    p.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| f.iter().any(|x| x == TRACKING))
}

/// `0,2-4`: the real status's interval notation.
pub fn ranges(set: &BTreeSet<i64>) -> String {
    let mut out: Vec<String> = vec![];
    let mut it = set.iter().copied().peekable();
    while let Some(start) = it.next() {
        let mut end = start;
        while it.peek() == Some(&(end + 1)) {
            end = it.next().unwrap_or(end);
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    out.join(",")
}

fn condition(status: &mut Value, type_: &str, value: &str, reason: &str, message: &str) {
    let now = crate::time::now();
    if !status["conditions"].is_array() {
        status["conditions"] = json!([]);
    }
    let Some(list) = status["conditions"].as_array_mut() else {
        return;
    };
    match list.iter_mut().find(|c| c["type"] == type_) {
        Some(c) if c["status"] == value => {
            c["lastProbeTime"] = json!(now);
        }
        Some(c) => {
            *c = json!({"type": type_, "status": value, "reason": reason, "message": message, "lastProbeTime": now, "lastTransitionTime": now});
        }
        None if value == "False" => {}
        None => list.push(
            json!({"type": type_, "status": value, "reason": reason, "message": message, "lastProbeTime": now, "lastTransitionTime": now}),
        ),
    }
}

fn has_condition(status: &Value, type_: &str) -> bool {
    status["conditions"]
        .as_array()
        .is_some_and(|l| l.iter().any(|c| c["type"] == type_ && c["status"] == "True"))
}

fn backoff(failures: i64) -> Duration {
    let exp = failures.clamp(1, 10) as u32 - 1;
    Duration::from_secs(10u64.saturating_mul(1 << exp).min(360))
}

impl JobController {
    /// One pass over every Job (and the pods left behind by deleted ones).
    pub fn sync_all(&mut self, st: &mut State) {
        let (Some(job_rt), Some(pod_rt)) = (
            st.find("batch", "v1", "jobs").cloned(),
            st.find("", "v1", "pods").cloned(),
        ) else {
            return;
        };
        let jobs = st.list(&job_rt, None);
        let pods = st.list(&pod_rt, None);
        let live: BTreeSet<&str> = jobs.iter().map(|j| s(j, "/metadata/uid")).collect();
        for p in &pods {
            let owner = p
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .and_then(|r| r.iter().find(|o| o["kind"] == "Job" && o["controller"] == true))
                .and_then(|o| o["uid"].as_str());
            let orphan = owner.is_some_and(|u| !live.contains(u));
            let stuck = terminal(p) || s(p, "/spec/nodeName").is_empty();
            if orphan && has_tracking(p) && (stuck || p.pointer("/metadata/deletionTimestamp").is_some() && terminal(p))
            {
                release(st, &pod_rt, p);
            }
        }
        self.last_failure.retain(|uid, _| live.contains(uid.as_str()));
        for j in &jobs {
            if j.pointer("/metadata/deletionTimestamp").is_some() {
                continue;
            }
            let uid = s(j, "/metadata/uid");
            let mine: Vec<&Value> = pods
                .iter()
                .filter(|p| {
                    p.pointer("/metadata/ownerReferences")
                        .and_then(Value::as_array)
                        .is_some_and(|r| r.iter().any(|o| o["uid"] == uid))
                })
                .collect();
            self.sync_job(st, &job_rt, &pod_rt, j, &mine);
        }
    }

    fn sync_job(&mut self, st: &mut State, job_rt: &ResourceType, pod_rt: &ResourceType, j: &Value, pods: &[&Value]) {
        let (ns, uid) = (s(j, "/metadata/namespace"), s(j, "/metadata/uid"));
        let spec = &j["spec"];
        let indexed = spec["completionMode"] == "Indexed";
        let completions = spec["completions"].as_i64();
        let parallelism = spec["parallelism"].as_i64().unwrap_or(1);
        let per_index = spec["backoffLimitPerIndex"].as_i64();
        let backoff_limit = spec["backoffLimit"].as_i64().unwrap_or(6);
        let suspended = spec["suspend"] == true;
        let mut status = j.get("status").cloned().unwrap_or_else(|| json!({}));
        let before = status.clone();
        let finished = has_condition(&status, "Complete") || has_condition(&status, "Failed");

        // Count terminal pods once, releasing them (the finalizer protocol).
        let mut succeeded = status["succeeded"].as_i64().unwrap_or(0);
        let mut failed = status["failed"].as_i64().unwrap_or(0);
        let mut index_failures: HashMap<i64, i64> = HashMap::new();
        let mut completed: BTreeSet<i64> = BTreeSet::new();
        let remembered = self.last_failure.entry(uid.to_string()).or_default();
        for p in pods {
            let i = index_of(p);
            let deleted_unscheduled =
                p.pointer("/metadata/deletionTimestamp").is_some() && s(p, "/spec/nodeName").is_empty();
            let failed_pod = phase(p) == "Failed" || deleted_unscheduled;
            if phase(p) == "Succeeded" {
                if let Some(i) = i {
                    completed.insert(i);
                }
            }
            if failed_pod {
                if let Some(i) = i {
                    let n = failures_before(p) + 1;
                    let e = index_failures.entry(i).or_insert(0);
                    *e = (*e).max(n);
                }
            }
            if has_tracking(p) && (terminal(p) || deleted_unscheduled) {
                if phase(p) == "Succeeded" {
                    succeeded += 1;
                } else {
                    failed += 1;
                    remembered.insert(i.unwrap_or(-1), Instant::now());
                }
                release(st, pod_rt, p);
            }
        }
        if let Some(old) = status["completedIndexes"].as_str() {
            completed.extend(parse_ranges(old));
        }
        let mut failed_indexes: BTreeSet<i64> = status["failedIndexes"].as_str().map(parse_ranges).unwrap_or_default();
        if let Some(limit) = per_index {
            for (i, n) in &index_failures {
                if *n > limit && !completed.contains(i) {
                    failed_indexes.insert(*i);
                }
            }
        }
        let active: Vec<&&Value> = pods
            .iter()
            .filter(|p| !terminal(p) && p.pointer("/metadata/deletionTimestamp").is_none())
            .collect();
        let terminating = pods
            .iter()
            .filter(|p| !terminal(p) && p.pointer("/metadata/deletionTimestamp").is_some())
            .count();

        // What the Job has come to.
        let total = completions.unwrap_or(1);
        let done_count = if indexed { completed.len() as i64 } else { succeeded };
        let mut failure: Option<(&str, String)> = None;
        if failed > backoff_limit {
            failure = Some((
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit".into(),
            ));
        } else if let Some(max) = spec["maxFailedIndexes"]
            .as_i64()
            .filter(|m| failed_indexes.len() as i64 > *m)
        {
            let _ = max;
            failure = Some((
                "MaxFailedIndexesExceeded",
                "Job has exceeded the specified maximal number of failed indexes".into(),
            ));
        } else if indexed && !failed_indexes.is_empty() && completed.len() + failed_indexes.len() >= total as usize {
            failure = Some(("FailedIndexes", "Job has failed indexes".into()));
        }
        let complete = failure.is_none() && done_count >= total;

        if finished || failure.is_some() || complete || suspended {
            for p in &active {
                let _ = st.delete(pod_rt, ns, s(p, "/metadata/name"), &Value::Null, &Default::default());
            }
        }
        if !finished {
            if let Some((reason, message)) = &failure {
                condition(&mut status, "FailureTarget", "True", reason, message);
                if active.is_empty() && terminating == 0 {
                    condition(&mut status, "Failed", "True", reason, message);
                }
            } else if complete {
                condition(
                    &mut status,
                    "SuccessCriteriaMet",
                    "True",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                );
                if active.is_empty() && terminating == 0 {
                    condition(
                        &mut status,
                        "Complete",
                        "True",
                        "CompletionsReached",
                        "Reached expected number of succeeded pods",
                    );
                    status["completionTime"] = json!(crate::time::now());
                }
            } else if suspended {
                condition(&mut status, "Suspended", "True", "JobSuspended", "Job suspended");
            } else {
                if has_condition(&status, "Suspended") {
                    condition(&mut status, "Suspended", "False", "JobResumed", "Job resumed");
                    status["startTime"] = json!(crate::time::now());
                }
                if status.get("startTime").is_none() {
                    status["startTime"] = json!(crate::time::now());
                }
                // Start what is missing, lowest index first, each after its backoff.
                let busy: BTreeSet<i64> = active.iter().filter_map(|p| index_of(p)).collect();
                let mut running = active.len() as i64;
                let candidates: Vec<i64> = if indexed {
                    (0..total)
                        .filter(|i| !completed.contains(i) && !failed_indexes.contains(i) && !busy.contains(i))
                        .collect()
                } else {
                    (0..(total - succeeded - running).max(0)).map(|_| -1).collect()
                };
                for i in candidates {
                    if running >= parallelism {
                        break;
                    }
                    let fails = if indexed {
                        index_failures.get(&i).copied().unwrap_or(0)
                    } else {
                        failed
                    };
                    let last = self.last_failure.get(uid).and_then(|m| m.get(&i));
                    if fails > 0 && last.is_some_and(|t| t.elapsed() < backoff(fails)) {
                        continue;
                    }
                    let pod = new_pod(j, indexed.then_some(i), fails);
                    if st.create(pod_rt, ns, pod, &Default::default()).is_ok() {
                        running += 1;
                    }
                }
            }
        }
        // Counted after this pass's creations and deletions.
        let (now_active, now_terminating): (Vec<Value>, Vec<Value>) = st
            .list(pod_rt, Some(ns))
            .into_iter()
            .filter(|p| {
                p.pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array)
                    .is_some_and(|r| r.iter().any(|o| o["uid"] == uid))
                    && !terminal(p)
            })
            .partition(|p| p.pointer("/metadata/deletionTimestamp").is_none());
        let ready = now_active
            .iter()
            .filter(|p| {
                p.pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
            })
            .count();
        status["active"] = json!(now_active.len());
        status["ready"] = json!(ready);
        status["terminating"] = json!(now_terminating.len());
        status["succeeded"] = json!(succeeded);
        status["failed"] = json!(failed);
        status["uncountedTerminatedPods"] = json!({});
        if indexed {
            status["completedIndexes"] = json!(ranges(&completed));
        }
        if per_index.is_some() {
            status["failedIndexes"] = json!(ranges(&failed_indexes));
        }
        // Counts are omitted when zero, except the pointer fields (ready, terminating).
        for zero in ["active", "succeeded", "failed"] {
            if status[zero] == 0 {
                if let Some(m) = status.as_object_mut() {
                    m.remove(zero);
                }
            }
        }
        if status != before {
            let mut next = j.clone();
            next["status"] = status;
            let _ = st.put(job_rt, next, true);
        }
    }
}

/// Parse `0,2-4`.
pub fn parse_ranges(text: &str) -> BTreeSet<i64> {
    let mut out = BTreeSet::new();
    for part in text.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<i64>(), b.parse::<i64>()) {
                    out.extend(a..=b);
                }
            }
            None => {
                if let Ok(a) = part.parse() {
                    out.insert(a);
                }
            }
        }
    }
    out
}

/// Drop the tracking finalizer of a counted pod.
fn release(st: &mut State, pod_rt: &ResourceType, p: &Value) {
    let mut next = (*p).clone();
    if let Some(f) = next["metadata"]["finalizers"].as_array_mut() {
        f.retain(|x| x != TRACKING);
    }
    let _ = st.put(pod_rt, next, false);
}

/// A pod for index `index` from the Job's template.
fn new_pod(j: &Value, index: Option<i64>, failures: i64) -> Value {
    let name = s(j, "/metadata/name");
    let template = &j["spec"]["template"];
    let mut labels = template["metadata"]["labels"].clone();
    let mut annotations = template["metadata"]["annotations"].clone();
    if !annotations.is_object() {
        annotations = json!({});
    }
    if !labels.is_object() {
        labels = json!({});
    }
    let mut spec = template["spec"].clone();
    let prefix = match index {
        Some(i) => {
            annotations[INDEX_KEY] = json!(i.to_string());
            labels[INDEX_KEY] = json!(i.to_string());
            if j["spec"]["backoffLimitPerIndex"].is_i64() {
                annotations[FAILURES_KEY] = json!(failures.to_string());
            }
            if spec.get("hostname").is_none() {
                spec["hostname"] = json!(format!("{name}-{i}"));
            }
            if let Some(cs) = spec["containers"].as_array_mut() {
                for c in cs {
                    if !c["env"].is_array() {
                        c["env"] = json!([]);
                    }
                    if let Some(env) = c["env"].as_array_mut() {
                        env.push(
                            json!({"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {"apiVersion": "v1",
                            "fieldPath": format!("metadata.annotations['{INDEX_KEY}']")}}}),
                        );
                    }
                }
            }
            format!("{name}-{i}-")
        }
        None => format!("{name}-"),
    };
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": prefix,
            "namespace": s(j, "/metadata/namespace"),
            "labels": labels,
            "annotations": annotations,
            "finalizers": [TRACKING],
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": name,
                "uid": s(j, "/metadata/uid"), "controller": true, "blockOwnerDeletion": true}],
        },
        "spec": spec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_ranges_read_and_write_as_the_real_status() {
        let set: BTreeSet<i64> = [0, 2, 3, 4, 7].into_iter().collect();
        assert_eq!(ranges(&set), "0,2-4,7");
        assert_eq!(parse_ranges("0,2-4,7"), set);
        assert_eq!(ranges(&BTreeSet::new()), "");
        assert_eq!(backoff(1), Duration::from_secs(10));
        assert_eq!(backoff(3), Duration::from_secs(40));
        assert_eq!(backoff(9), Duration::from_secs(360));
    }
}
