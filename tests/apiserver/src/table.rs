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

#[cfg(test)]
mod tests {
    use super::*;

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
