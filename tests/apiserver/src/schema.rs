//! Structural-schema handling for custom resources, as the API server does
//! it on every write: defaults applied, unknown fields pruned, then types,
//! `required`, `enum`, `pattern`, lengths and bounds validated. Errors name
//! the field (`spec.replicas: Invalid value: ...`).

use serde_json::{Map, Value};

/// Default, prune and validate `obj` against `schema` (the CRD version's
/// `openAPIV3Schema`). `apiVersion`, `kind` and `metadata` are never pruned.
pub fn apply(obj: &mut Value, schema: &Value) -> Result<(), Vec<String>> {
    let mut errs = vec![];
    if let (Value::Object(o), Some(props)) = (&mut *obj, schema.get("properties").and_then(Value::as_object)) {
        for (k, s) in props {
            if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            default_into(o, k, s);
            if let Some(v) = o.get_mut(k) {
                walk(v, s, k, &mut errs);
            }
        }
        let preserve = schema
            .get("x-kubernetes-preserve-unknown-fields")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if !preserve {
            o.retain(|k, _| matches!(k.as_str(), "apiVersion" | "kind" | "metadata") || props.contains_key(k));
        }
        required(o, schema, "", &mut errs);
    }
    if errs.is_empty() { Ok(()) } else { Err(errs) }
}

fn default_into(o: &mut Map<String, Value>, k: &str, s: &Value) {
    if !o.contains_key(k) {
        if let Some(d) = s.get("default") {
            o.insert(k.to_string(), d.clone());
        }
    }
}

fn required(o: &Map<String, Value>, s: &Value, path: &str, errs: &mut Vec<String>) {
    for r in s
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !o.contains_key(r) {
            let field = if path.is_empty() {
                r.to_string()
            } else {
                format!("{path}.{r}")
            };
            errs.push(format!("{field}: Required value"));
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn walk(v: &mut Value, s: &Value, path: &str, errs: &mut Vec<String>) {
    if v.is_null() {
        if !s.get("nullable").and_then(Value::as_bool).unwrap_or(false) {
            // The API server drops nulls for non-nullable fields; here the
            // caller keeps the key, so report only when a type is required.
            if s.get("type").is_some() {
                errs.push(format!(
                    "{path}: Invalid value: \"null\": {path} in body must be of type {}",
                    s["type"].as_str().unwrap_or("object")
                ));
            }
        }
        return;
    }
    let int_or_string = s
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if let Some(t) = s.get("type").and_then(Value::as_str) {
        let actual = type_name(v);
        let ok = actual == t
            || (t == "number" && actual == "integer")
            || (int_or_string && matches!(actual, "integer" | "string"));
        if !ok {
            errs.push(format!(
                "{path}: Invalid value: \"{actual}\": {path} in body must be of type {t}: \"{actual}\""
            ));
            return;
        }
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        if !e.contains(v) {
            let allowed: Vec<String> = e.iter().map(|x| x.to_string()).collect();
            errs.push(format!(
                "{path}: Unsupported value: {v}: supported values: {}",
                allowed.join(", ")
            ));
        }
    }
    match v {
        Value::Object(o) => {
            let preserve = s
                .get("x-kubernetes-preserve-unknown-fields")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if let Some(props) = s.get("properties").and_then(Value::as_object) {
                for (k, ps) in props {
                    default_into(o, k, ps);
                    if let Some(x) = o.get_mut(k) {
                        walk(x, ps, &format!("{path}.{k}"), errs);
                    }
                }
                if !preserve {
                    o.retain(|k, _| props.contains_key(k));
                }
            } else if let Some(ap) = s.get("additionalProperties").filter(|a| a.is_object()) {
                for (k, x) in o.iter_mut() {
                    walk(x, ap, &format!("{path}[{k}]"), errs);
                }
            } else if !preserve && s.get("type").and_then(Value::as_str) == Some("object") {
                o.clear();
            }
            required(o, s, path, errs);
            bounds(
                path,
                o.len() as f64,
                s,
                "minProperties",
                "maxProperties",
                "properties",
                errs,
            );
        }
        Value::Array(a) => {
            if let Some(items) = s.get("items") {
                for (i, x) in a.iter_mut().enumerate() {
                    walk(x, items, &format!("{path}[{i}]"), errs);
                }
            }
            bounds(path, a.len() as f64, s, "minItems", "maxItems", "items", errs);
        }
        Value::String(st) => {
            bounds(
                path,
                st.chars().count() as f64,
                s,
                "minLength",
                "maxLength",
                "characters",
                errs,
            );
            if let Some(p) = s.get("pattern").and_then(Value::as_str) {
                match regex::Regex::new(p) {
                    Ok(re) if !re.is_match(st) => {
                        errs.push(format!(
                            "{path}: Invalid value: \"{st}\": {path} in body should match '{p}'"
                        ));
                    }
                    _ => {}
                }
            }
        }
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(0.0);
            if let Some(min) = s.get("minimum").and_then(Value::as_f64) {
                let excl = s.get("exclusiveMinimum").and_then(Value::as_bool).unwrap_or(false);
                if x < min || (excl && x == min) {
                    errs.push(format!(
                        "{path}: Invalid value: {n}: {path} in body should be greater than or equal to {min}"
                    ));
                }
            }
            if let Some(max) = s.get("maximum").and_then(Value::as_f64) {
                let excl = s.get("exclusiveMaximum").and_then(Value::as_bool).unwrap_or(false);
                if x > max || (excl && x == max) {
                    errs.push(format!(
                        "{path}: Invalid value: {n}: {path} in body should be less than or equal to {max}"
                    ));
                }
            }
        }
        _ => {}
    }
}

fn bounds(path: &str, n: f64, s: &Value, min: &str, max: &str, what: &str, errs: &mut Vec<String>) {
    if let Some(m) = s.get(min).and_then(Value::as_f64) {
        if n < m {
            errs.push(format!(
                "{path}: Invalid value: {n}: {path} in body should have at least {m} {what}"
            ));
        }
    }
    if let Some(m) = s.get(max).and_then(Value::as_f64) {
        if n > m {
            errs.push(format!("{path}: Too many: {n}: must have at most {m} {what}"));
        }
    }
}

/// Paths present in `before` but not in `after` (the fields pruning dropped).
pub fn dropped_fields(before: &Value, after: &Value, path: &str, out: &mut Vec<String>) {
    if let (Value::Object(b), Value::Object(a)) = (before, after) {
        for (k, v) in b {
            let p = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            match a.get(k) {
                None => out.push(p),
                Some(av) => dropped_fields(v, av, &p, out),
            }
        }
    }
}
