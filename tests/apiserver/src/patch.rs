//! JSON merge patch (RFC 7386) and JSON patch (RFC 6902), with the API
//! server's quirk: a `test` of a missing path against `null` succeeds.

use serde_json::Value;

/// Apply a JSON merge patch.
pub fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// Lists that strategic merge patches merge element-wise instead of
/// replacing: (path, merge key); an empty key merges a list of scalars as a set.
const MERGED_LISTS: &[(&str, &str)] = &[
    ("metadata.finalizers", ""),
    ("metadata.ownerReferences", "uid"),
    ("secrets", "name"),
];

/// Apply a strategic merge patch to a built-in object: a merge patch whose
/// known lists merge by key, with the `$patch`, `$setElementOrder` and
/// `$deleteFromPrimitiveList` directives kubectl sends.
pub fn strategic(target: &mut Value, patch: &Value) {
    strategic_at(target, patch, "");
}

fn strategic_at(target: &mut Value, patch: &Value, path: &str) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    match p.get("$patch").and_then(Value::as_str) {
        Some("delete") => {
            *target = Value::Null;
            return;
        }
        Some("replace") => {
            let mut clean = p.clone();
            clean.remove("$patch");
            *target = Value::Object(clean);
            return;
        }
        _ => {}
    }
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    let Value::Object(t) = target else { return };
    for (k, v) in p {
        if k.starts_with("$setElementOrder/") || k == "$patch" || k == "$retainKeys" {
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Value::Array(del)) = (t.get_mut(field), v) {
                list.retain(|x| !del.contains(x));
            }
            continue;
        }
        let child = if path.is_empty() {
            k.clone()
        } else {
            format!("{path}.{k}")
        };
        if v.is_null() {
            t.remove(k);
            continue;
        }
        let merge_key = MERGED_LISTS.iter().find(|(p, _)| *p == child).map(|(_, key)| *key);
        match (merge_key, v, t.get_mut(k)) {
            (Some(""), Value::Array(add), Some(Value::Array(have))) => {
                for x in add {
                    if !have.contains(x) {
                        have.push(x.clone());
                    }
                }
            }
            (Some(key), Value::Array(add), Some(Value::Array(have))) => {
                for x in add {
                    let id = x.get(key);
                    match have.iter_mut().find(|h| h.get(key) == id) {
                        Some(h) if x.get("$patch").and_then(Value::as_str) == Some("delete") => *h = Value::Null,
                        Some(h) => strategic_at(h, x, &child),
                        None => have.push(x.clone()),
                    }
                }
                have.retain(|h| !h.is_null());
            }
            _ => strategic_at(t.entry(k.clone()).or_insert(Value::Null), v, &child),
        }
    }
}

fn unescape(s: &str) -> String {
    s.replace("~1", "/").replace("~0", "~")
}

fn split(path: &str) -> Result<(Vec<String>, String), String> {
    if path.is_empty() {
        return Err("the root cannot be patched this way".into());
    }
    let mut parts: Vec<String> = path
        .strip_prefix('/')
        .ok_or(format!("invalid path {path:?}"))?
        .split('/')
        .map(unescape)
        .collect();
    let last = parts.pop().unwrap_or_default();
    Ok((parts, last))
}

fn parent<'a>(doc: &'a mut Value, parts: &[String], path: &str) -> Result<&'a mut Value, String> {
    let mut cur = doc;
    for p in parts {
        cur = match cur {
            Value::Object(o) => o.get_mut(p),
            Value::Array(a) => p.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
            _ => None,
        }
        .ok_or(format!("doc is missing path: {path:?}"))?;
    }
    Ok(cur)
}

fn get<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() { Some(doc) } else { doc.pointer(path) }
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    let (parts, last) = split(path)?;
    match parent(doc, &parts, path)? {
        Value::Object(o) => {
            o.insert(last, value);
            Ok(())
        }
        Value::Array(a) => {
            let i = if last == "-" {
                a.len()
            } else {
                last.parse::<usize>()
                    .map_err(|_| format!("invalid index in {path:?}"))?
            };
            if i > a.len() {
                return Err(format!("index out of range in {path:?}"));
            }
            a.insert(i, value);
            Ok(())
        }
        _ => Err(format!("doc is missing path: {path:?}")),
    }
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, String> {
    let (parts, last) = split(path)?;
    match parent(doc, &parts, path)? {
        Value::Object(o) => o
            .remove(&last)
            .ok_or(format!("unable to remove nonexistent key: {last}: missing value")),
        Value::Array(a) => {
            let i = last
                .parse::<usize>()
                .map_err(|_| format!("invalid index in {path:?}"))?;
            if i >= a.len() {
                return Err(format!("index out of range in {path:?}"));
            }
            Ok(a.remove(i))
        }
        _ => Err(format!("doc is missing path: {path:?}")),
    }
}

/// Apply a JSON patch (a list of operations).
pub fn json_patch(doc: &mut Value, ops: &Value) -> Result<(), String> {
    let ops = ops.as_array().ok_or("a JSON patch is a list of operations")?;
    for op in ops {
        let kind = op.get("op").and_then(Value::as_str).ok_or("operation without \"op\"")?;
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .ok_or("operation without \"path\"")?;
        let value = || {
            op.get("value")
                .cloned()
                .ok_or(format!("{kind} operation at {path:?} has no value"))
        };
        match kind {
            "add" => add(doc, path, value()?)?,
            "remove" => {
                remove(doc, path)?;
            }
            "replace" => {
                remove(doc, path)?;
                add(doc, path, value()?)?;
            }
            "move" | "copy" => {
                let from = op
                    .get("from")
                    .and_then(Value::as_str)
                    .ok_or("move/copy without \"from\"")?;
                let v = if kind == "move" {
                    remove(doc, from)?
                } else {
                    get(doc, from)
                        .cloned()
                        .ok_or(format!("doc is missing path: {from:?}"))?
                };
                add(doc, path, v)?;
            }
            "test" => {
                let want = op.get("value").cloned().unwrap_or(Value::Null);
                let have = get(doc, path).cloned().unwrap_or(Value::Null);
                if have != want {
                    return Err(format!("testing value {path} failed"));
                }
            }
            other => return Err(format!("unexpected operation {other:?}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch() {
        let mut d = json!({"a": 1, "b": {"c": 2, "d": 3}});
        merge(&mut d, &json!({"a": null, "b": {"c": 5}, "e": [1]}));
        assert_eq!(d, json!({"b": {"c": 5, "d": 3}, "e": [1]}));
    }

    #[test]
    fn strategic_merge_lists_and_directives() {
        let mut d = json!({"metadata": {"finalizers": ["a"], "ownerReferences": [{"uid": "1", "name": "x"}]}, "secrets": [{"name": "s1"}], "data": {"k": "v"}});
        strategic(
            &mut d,
            &json!({"metadata": {"finalizers": ["b"], "ownerReferences": [{"uid": "2", "name": "y"}], "$setElementOrder/finalizers": ["a", "b"]},
                                  "secrets": [{"name": "s1", "$patch": "delete"}, {"name": "s2"}], "data": {"$patch": "replace", "n": "m"}}),
        );
        assert_eq!(d["metadata"]["finalizers"], json!(["a", "b"]));
        assert_eq!(d["metadata"]["ownerReferences"].as_array().unwrap().len(), 2);
        assert_eq!(d["secrets"], json!([{"name": "s2"}]));
        assert_eq!(d["data"], json!({"n": "m"}));
        strategic(
            &mut d,
            &json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
        );
        assert_eq!(d["metadata"]["finalizers"], json!(["b"]));
    }

    #[test]
    fn json_patch_ops_and_null_test_on_missing_path() {
        let mut d = json!({"metadata": {"name": "x"}});
        json_patch(
            &mut d,
            &json!([{"op": "test", "path": "/metadata/finalizers", "value": null},
                                   {"op": "add", "path": "/metadata/finalizers", "value": ["f"]},
                                   {"op": "add", "path": "/metadata/finalizers/-", "value": "g"}]),
        )
        .unwrap();
        assert_eq!(d["metadata"]["finalizers"], json!(["f", "g"]));
        json_patch(&mut d, &json!([{"op": "remove", "path": "/metadata/finalizers/0"}])).unwrap();
        assert_eq!(d["metadata"]["finalizers"], json!(["g"]));
        assert!(json_patch(&mut d, &json!([{"op": "test", "path": "/metadata/name", "value": "y"}])).is_err());
        assert!(json_patch(&mut d, &json!([{"op": "remove", "path": "/nope"}])).is_err());
    }
}
