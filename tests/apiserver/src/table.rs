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
                cells.push(jsonpath(&o, c["jsonPath"].as_str().unwrap_or("")));
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
