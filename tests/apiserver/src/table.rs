//! `Table` output for `kubectl get` (`Accept: ...;as=Table;g=meta.k8s.io;v=v1`),
//! with a CRD's `additionalPrinterColumns` evaluated as simple JSONPaths.

use crate::types::ResourceType;
use serde_json::{Value, json};

/// Evaluate `.a.b`, `.a[0].b` and `.a[?(@.k=="v")].b` paths.
pub fn jsonpath(o: &Value, path: &str) -> Value {
    let mut cur = vec![o.clone()];
    let p = path
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .trim_start_matches('$');
    let mut rest = p;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let key = &r[..end];
            cur = cur.iter().filter_map(|v| v.get(key).cloned()).collect();
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').unwrap_or(r.len());
            let sel = &r[..end];
            rest = r.get(end + 1..).unwrap_or("");
            if let Some(f) = sel.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')')) {
                let (k, v) = f.split_once("==").unwrap_or((f, ""));
                let v = v.trim().trim_matches(['"', '\'']);
                cur = cur
                    .iter()
                    .filter_map(Value::as_array)
                    .flatten()
                    .filter(|x| x.get(k.trim()).and_then(Value::as_str) == Some(v))
                    .cloned()
                    .collect();
            } else if let Ok(i) = sel.parse::<usize>() {
                cur = cur.iter().filter_map(|v| v.get(i).cloned()).collect();
            } else {
                cur = cur.iter().filter_map(Value::as_array).flatten().cloned().collect();
            }
        } else {
            return Value::Null;
        }
    }
    cur.into_iter().next().unwrap_or(Value::Null)
}

/// The objects as a `meta.k8s.io/v1` Table.
pub fn table(rt: &ResourceType, items: Vec<Value>) -> Value {
    if rt.key() == "/events" {
        return events(rt, items);
    }
    if rt.key() == "/pods" {
        return printed(pod_columns(), items, pod_cells);
    }
    if rt.key() == "batch/jobs" {
        return printed(job_columns(), items, job_cells);
    }
    let mut cols =
        vec![json!({"name": "Name", "type": "string", "format": "name", "description": "Name", "priority": 0})];
    for c in &rt.printer_columns {
        cols.push(json!({"name": c["name"], "type": c.get("type").cloned().unwrap_or(json!("string")), "format": c.get("format").cloned().unwrap_or(json!("")),
                         "description": c.get("description").cloned().unwrap_or(json!("")), "priority": c.get("priority").cloned().unwrap_or(json!(0))}));
    }
    let has_age = rt.printer_columns.iter().any(|c| c["name"] == "Age");
    if !has_age {
        cols.push(
            json!({"name": "Age", "type": "date", "format": "", "description": "CreationTimestamp", "priority": 0}),
        );
    }
    let rows: Vec<Value> = items
        .into_iter()
        .map(|o| {
            let mut cells = vec![o.pointer("/metadata/name").cloned().unwrap_or(Value::Null)];
            for c in &rt.printer_columns {
                let v = jsonpath(&o, c["jsonPath"].as_str().unwrap_or(""));
                // A date column is printed as an age, as the CRD table convertor does.
                cells.push(match (&v, c["type"].as_str()) {
                    (Value::String(ts), Some("date")) => Value::String(crate::time::age(ts)),
                    _ => v,
                });
            }
            if !has_age {
                let created = o
                    .pointer("/metadata/creationTimestamp")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                cells.push(Value::String(crate::time::age(created)));
            }
            let meta =
                json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]});
            json!({"cells": cells, "object": meta})
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {}, "columnDefinitions": cols, "rows": rows})
}

/// Events as the API server's printer shows them (pkg/printers/internalversion
/// printEvent): last seen, type, reason, object, message; the wide columns
/// at priority 1.
fn events(rt: &ResourceType, items: Vec<Value>) -> Value {
    let col = |name: &str, ty: &str, priority: u8| json!({"name": name, "type": ty, "format": "", "description": "", "priority": priority});
    let cols = vec![
        col("Last Seen", "string", 0),
        col("Type", "string", 0),
        col("Reason", "string", 0),
        col("Object", "string", 0),
        col("Subobject", "string", 1),
        col("Source", "string", 1),
        col("Message", "string", 0),
        col("First Seen", "string", 1),
        col("Count", "integer", 1),
        col("Name", "string", 1),
    ];
    let rows: Vec<Value> = items
        .into_iter()
        .map(|served| {
            // Cells come from the stored (core) form whichever version asked.
            let o = rt.to_storage(served.clone());
            let s = |p: &str| o.pointer(p).and_then(Value::as_str).unwrap_or("").to_string();
            let age = |ts: String| if ts.is_empty() { "<unknown>".to_string() } else { crate::time::age(&ts) };
            let first = age(if s("/firstTimestamp").is_empty() { s("/eventTime") } else { s("/firstTimestamp") });
            let mut last = if s("/lastTimestamp").is_empty() { first.clone() } else { age(s("/lastTimestamp")) };
            let mut count = o["count"].as_i64().unwrap_or(0);
            if o["series"].is_object() {
                last = age(s("/series/lastObservedTime"));
                count = o["series"]["count"].as_i64().unwrap_or(0);
            } else if count == 0 {
                count = 1;
            }
            let kind = s("/involvedObject/kind").to_lowercase();
            let name = s("/involvedObject/name");
            let target = if name.is_empty() { kind } else { format!("{kind}/{name}") };
            let mut source = [s("/source/component"), s("/source/host")];
            if source[0].is_empty() {
                source = [s("/reportingComponent"), s("/reportingInstance")];
            }
            let source = source.iter().filter(|p| !p.is_empty()).cloned().collect::<Vec<_>>().join(", ");
            let cells = json!([last, s("/type"), s("/reason"), target, s("/involvedObject/fieldPath"), source,
                s("/message").trim(), first, count, s("/metadata/name")]);
            let meta = json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": served["metadata"]});
            json!({"cells": cells, "object": meta})
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {}, "columnDefinitions": cols, "rows": rows})
}

fn col(name: &str, ty: &str, priority: u8) -> Value {
    json!({"name": name, "type": ty, "format": "", "description": "", "priority": priority})
}

/// A Table of `items` with built-in columns, each row's cells from `cells`.
fn printed(cols: Vec<Value>, items: Vec<Value>, cells: fn(&Value) -> Value) -> Value {
    let rows: Vec<Value> = items
        .into_iter()
        .map(|o| {
            let meta =
                json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]});
            json!({"cells": cells(&o), "object": meta})
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {}, "columnDefinitions": cols, "rows": rows})
}

fn pod_columns() -> Vec<Value> {
    vec![
        col("Name", "string", 0),
        col("Ready", "string", 0),
        col("Status", "string", 0),
        col("Restarts", "string", 0),
        col("Age", "string", 0),
        col("IP", "string", 1),
        col("Node", "string", 1),
        col("Nominated Node", "string", 1),
        col("Readiness Gates", "string", 1),
    ]
}

/// pkg/printers/internalversion printPod: the phase, or the reason a
/// container waits or ended, or Terminating; ready of all containers;
/// restarts summed.
fn pod_cells(o: &Value) -> Value {
    let s = |p: &str| o.pointer(p).and_then(Value::as_str).unwrap_or("").to_string();
    let statuses = o["status"]["containerStatuses"].as_array().cloned().unwrap_or_default();
    let total = o["spec"]["containers"].as_array().map_or(0, Vec::len);
    let ready = statuses.iter().filter(|c| c["ready"] == true).count();
    let restarts: i64 = statuses.iter().map(|c| c["restartCount"].as_i64().unwrap_or(0)).sum();
    let mut reason = match s("/status/reason") {
        r if !r.is_empty() => r,
        _ => s("/status/phase"),
    };
    for c in statuses.iter().rev() {
        let st = &c["state"];
        if let Some(r) = st
            .pointer("/waiting/reason")
            .and_then(Value::as_str)
            .filter(|r| !r.is_empty())
        {
            reason = r.to_string();
        } else if let Some(r) = st
            .pointer("/terminated/reason")
            .and_then(Value::as_str)
            .filter(|r| !r.is_empty())
        {
            reason = r.to_string();
        } else if let Some(t) = st.get("terminated") {
            reason = match t["signal"].as_i64().filter(|n| *n != 0) {
                Some(sig) => format!("Signal:{sig}"),
                None => format!("ExitCode:{}", t["exitCode"].as_i64().unwrap_or(0)),
            };
        }
    }
    if o.pointer("/metadata/deletionTimestamp").is_some() {
        reason = "Terminating".into();
    }
    let or_none = |v: String| if v.is_empty() { "<none>".to_string() } else { v };
    json!([
        s("/metadata/name"),
        format!("{ready}/{total}"),
        reason,
        restarts.to_string(),
        crate::time::age(&s("/metadata/creationTimestamp")),
        or_none(s("/status/podIP")),
        or_none(s("/spec/nodeName")),
        or_none(s("/status/nominatedNodeName")),
        "<none>"
    ])
}

fn job_columns() -> Vec<Value> {
    vec![
        col("Name", "string", 0),
        col("Status", "string", 0),
        col("Completions", "string", 0),
        col("Duration", "string", 0),
        col("Age", "string", 0),
        col("Containers", "string", 1),
        col("Images", "string", 1),
        col("Selector", "string", 1),
    ]
}

/// pkg/printers/internalversion printJob (1.33): status from the
/// conditions, succeeded of completions, how long it ran.
fn job_cells(o: &Value) -> Value {
    let s = |p: &str| o.pointer(p).and_then(Value::as_str).unwrap_or("").to_string();
    let has = |t: &str| {
        o["status"]["conditions"]
            .as_array()
            .is_some_and(|l| l.iter().any(|c| c["type"] == t && c["status"] == "True"))
    };
    let status = if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else if o.pointer("/metadata/deletionTimestamp").is_some() {
        "Terminating"
    } else if has("SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else if has("FailureTarget") {
        "FailureTarget"
    } else if has("Suspended") {
        "Suspended"
    } else {
        "Running"
    };
    let succeeded = o["status"]["succeeded"].as_i64().unwrap_or(0);
    let completions = match o["spec"]["completions"].as_i64() {
        Some(n) => format!("{succeeded}/{n}"),
        None => format!("{succeeded}/1 of {}", o["spec"]["parallelism"].as_i64().unwrap_or(1)),
    };
    let duration = match crate::time::parse(&s("/status/startTime")) {
        None => String::new(),
        Some(start) => {
            let end = crate::time::parse(&s("/status/completionTime")).unwrap_or_else(crate::time::now_secs);
            crate::time::duration((end - start).max(0))
        }
    };
    let containers = o["spec"]["template"]["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = containers.iter().filter_map(|c| c["name"].as_str()).collect();
    let images: Vec<&str> = containers.iter().filter_map(|c| c["image"].as_str()).collect();
    let selector = o["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    json!([
        s("/metadata/name"),
        status,
        completions,
        duration,
        crate::time::age(&s("/metadata/creationTimestamp")),
        names.join(","),
        images.join(","),
        selector
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_and_jobs_print_as_kubectl_shows_them() {
        let pod = json!({"metadata": {"name": "p", "creationTimestamp": crate::time::now()},
            "spec": {"nodeName": "node-1", "containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Pending", "podIP": "127.0.0.1", "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 2, "state": {"running": {}}},
                {"name": "b", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ErrImagePull"}}}]}});
        let cells = pod_cells(&pod);
        assert_eq!(cells[1], "1/2");
        assert_eq!(cells[2], "ErrImagePull");
        assert_eq!(cells[3], "2");
        assert_eq!(cells[6], "node-1");
        let mut killed = pod.clone();
        killed["status"]["containerStatuses"] = json!([{"name": "a", "state": {"terminated": {"exitCode": 137}}}]);
        assert_eq!(pod_cells(&killed)[2], "ExitCode:137");
        let job = json!({"metadata": {"name": "j", "creationTimestamp": crate::time::now()},
            "spec": {"completions": 4, "template": {"spec": {"containers": [{"name": "w", "image": "kopeo:1"}]}}},
            "status": {"succeeded": 3, "startTime": "2026-01-01T00:00:00Z", "completionTime": "2026-01-01T00:01:05Z",
                       "conditions": [{"type": "Suspended", "status": "True"}]}});
        let cells = job_cells(&job);
        assert_eq!(cells[1], "Suspended");
        assert_eq!(cells[2], "3/4");
        assert_eq!(cells[3], "65s");
        assert_eq!(cells[6], "kopeo:1");
    }

    #[test]
    fn jsonpaths() {
        let o = json!({"status": {"conditions": [{"type": "Stalled", "status": "False"}, {"type": "Ready", "status": "True"}]}, "spec": {"a": [1, 2]}});
        assert_eq!(
            jsonpath(&o, ".status.conditions[?(@.type==\"Ready\")].status"),
            json!("True")
        );
        assert_eq!(jsonpath(&o, ".spec.a[1]"), json!(2));
        assert_eq!(jsonpath(&o, ".spec.missing"), Value::Null);
    }
}
