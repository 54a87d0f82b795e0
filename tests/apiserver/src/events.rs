//! Events are one resource served in two versions, as a real cluster stores
//! them: `events.k8s.io/v1` and core `v1` read and write the same objects
//! (stored in the core form), so what kube-rs's recorder writes shows in
//! `kubectl get events` and `kubectl describe`. The field mapping is
//! Kubernetes' own conversion (pkg/apis/events/v1).

use serde_json::{Map, Value};

/// `events.k8s.io/v1` field ↔ core `v1` field, where the names differ.
const RENAMED: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
    ("reportingController", "reportingComponent"),
];

/// Whether a resource type is the events.k8s.io view of core Events.
pub fn is_events_v1(group: &str, plural: &str) -> bool {
    group == "events.k8s.io" && plural == "events"
}

fn rename(o: &Value, to_core: bool) -> Value {
    let Some(m) = o.as_object() else { return o.clone() };
    let out: Map<String, Value> = m
        .iter()
        .map(|(k, v)| {
            let k = RENAMED
                .iter()
                .find(|(v1, core)| if to_core { v1 == k } else { core == k })
                .map(|(v1, core)| if to_core { *core } else { *v1 })
                .unwrap_or(k);
            (k.to_string(), v.clone())
        })
        .collect();
    Value::Object(out)
}

/// An `events.k8s.io/v1` Event in its stored (core) form.
pub fn to_core(o: &Value) -> Value {
    rename(o, true)
}

/// A stored (core) Event as `events.k8s.io/v1` shows it.
pub fn from_core(o: &Value) -> Value {
    rename(o, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_two_forms_carry_the_same_fields() {
        let v1 = json!({"metadata": {"name": "e"}, "regarding": {"kind": "ImageCopy", "name": "c"},
            "note": "copied", "reason": "Copied", "type": "Normal", "reportingController": "kopeo",
            "eventTime": "2026-12-03T18:00:00.000000Z", "series": {"count": 2}});
        let core = to_core(&v1);
        assert_eq!(core["involvedObject"]["name"], "c");
        assert_eq!(core["message"], "copied");
        assert_eq!(core["reportingComponent"], "kopeo");
        assert_eq!(core["series"]["count"], 2);
        assert!(core.get("note").is_none());
        assert_eq!(from_core(&core), v1);
    }
}
