//! Validation rules (`x-kubernetes-validations`) of CRD schemas, as the API
//! server runs them: compiled when the CRD is written (a rule that does not
//! compile refuses the CRD), evaluated on every create and update with
//! `self` bound to the value at the rule's place in the schema, and
//! transition rules (those using `oldSelf`) only on updates where an old
//! value exists. The `cel` crate evaluates; Kubernetes' CEL libraries
//! beyond the standard ones (quantity, url, ip, …) are not available.

use serde_json::Value;

/// Every rule in `schema`, with the field path it applies to.
fn rules<'a>(schema: &'a Value, path: &str, out: &mut Vec<(String, &'a Value)>) {
    if let Some(rs) = schema.get("x-kubernetes-validations").and_then(Value::as_array) {
        for r in rs {
            out.push((path.to_string(), r));
        }
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (k, s) in props {
            rules(s, &join(path, k), out);
        }
    }
    for (key, suffix) in [("items", "[*]"), ("additionalProperties", "[*]")] {
        if let Some(s) = schema.get(key).filter(|s| s.is_object()) {
            rules(s, &format!("{path}{suffix}"), out);
        }
    }
}

fn join(path: &str, k: &str) -> String {
    if path.is_empty() {
        k.to_string()
    } else {
        format!("{path}.{k}")
    }
}

/// Compile every rule of a CRD version's schema; the errors name the rule.
pub fn compile_all(schema: &Value, version: &str) -> Result<(), Vec<String>> {
    let mut found = vec![];
    rules(schema, "", &mut found);
    let errs: Vec<String> = found
        .iter()
        .filter_map(|(path, r)| {
            let rule = r.get("rule").and_then(Value::as_str).unwrap_or("");
            let at = format!("spec.validation.openAPIV3Schema[{version}].{path}.x-kubernetes-validations");
            if rule.is_empty() {
                return Some(format!("{at}.rule: Required value"));
            }
            cel::Program::compile(rule)
                .err()
                .map(|e| format!("{at}.rule: Invalid value: {rule:?}: compilation failed: {e}"))
        })
        .collect();
    if errs.is_empty() { Ok(()) } else { Err(errs) }
}

/// Evaluate every rule of `schema` against `obj` (and `old`, for transition rules).
pub fn validate(obj: &Value, old: Option<&Value>, schema: &Value, errs: &mut Vec<String>) {
    walk(obj, old, schema, "", errs);
}

fn walk(v: &Value, old: Option<&Value>, s: &Value, path: &str, errs: &mut Vec<String>) {
    if v.is_null() {
        return;
    }
    if let Some(rs) = s.get("x-kubernetes-validations").and_then(Value::as_array) {
        for r in rs {
            check(v, old, r, path, errs);
        }
    }
    match v {
        Value::Object(o) => {
            if let Some(props) = s.get("properties").and_then(Value::as_object) {
                for (k, ps) in props {
                    if let Some(x) = o.get(k) {
                        walk(x, old.and_then(|o| o.get(k)), ps, &join(path, k), errs);
                    }
                }
            } else if let Some(ap) = s.get("additionalProperties").filter(|a| a.is_object()) {
                for (k, x) in o {
                    walk(x, old.and_then(|o| o.get(k)), ap, &format!("{path}[{k}]"), errs);
                }
            }
        }
        Value::Array(a) => {
            if let Some(items) = s.get("items") {
                // Old list items correlate only for map lists (by key); not tracked here.
                for (i, x) in a.iter().enumerate() {
                    walk(x, None, items, &format!("{path}[{i}]"), errs);
                }
            }
        }
        _ => {}
    }
}

/// A JSON value as Kubernetes hands it to CEL: whole numbers are `int`
/// (serde would make positive ones `uint`, and `size % 2` would not compile).
fn to_cel(v: &Value) -> cel::Value {
    match v {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => cel::Value::Int(i),
            None => cel::Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => cel::Value::String(s.clone().into()),
        Value::Array(a) => cel::Value::List(a.iter().map(to_cel).collect::<Vec<_>>().into()),
        Value::Object(o) => o
            .iter()
            .map(|(k, v)| (k.clone(), to_cel(v)))
            .collect::<std::collections::HashMap<String, cel::Value>>()
            .into(),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Object(_) => "object",
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "boolean",
        Value::Null => "null",
    }
}

fn check(v: &Value, old: Option<&Value>, r: &Value, path: &str, errs: &mut Vec<String>) {
    let rule = r.get("rule").and_then(Value::as_str).unwrap_or("");
    let transition = rule.contains("oldSelf");
    if transition && old.is_none() {
        return;
    }
    let at = match r.get("fieldPath").and_then(Value::as_str) {
        Some(f) => format!("{path}{f}"),
        None if path.is_empty() => "<nil>".to_string(),
        None => path.to_string(),
    };
    let fail = |detail: String| {
        let what = match r.get("reason").and_then(Value::as_str) {
            Some("FieldValueForbidden") => "Forbidden".to_string(),
            Some("FieldValueRequired") => "Required value".to_string(),
            Some("FieldValueDuplicate") => format!("Duplicate value: \"{}\"", type_name(v)),
            _ => format!("Invalid value: \"{}\"", type_name(v)),
        };
        format!("{at}: {what}: {detail}")
    };
    let program = match cel::Program::compile(rule) {
        Ok(p) => p,
        Err(e) => return errs.push(fail(format!("compilation failed: {e}"))),
    };
    let mut ctx = cel::Context::default();
    ctx.add_variable_from_value("self", to_cel(v));
    if let (true, Some(o)) = (transition, old) {
        ctx.add_variable_from_value("oldSelf", to_cel(o));
    }
    match program.execute(&ctx) {
        Ok(cel::Value::Bool(true)) => {}
        Ok(cel::Value::Bool(false)) => errs.push(fail(
            r.get("message")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| format!("failed rule: {rule}")),
        )),
        Ok(other) => errs.push(fail(format!("rule did not evaluate to a bool ({other:?}): {rule}"))),
        Err(e) => errs.push(fail(format!("{e} evaluating rule: {rule}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {"spec": {"type": "object",
            "x-kubernetes-validations": [
                {"rule": "self.a != self.b", "message": "a and b must differ"},
                {"rule": "!has(self.n) || self.n <= 9", "fieldPath": ".n", "reason": "FieldValueForbidden", "message": "n too big"},
                {"rule": "self.a == oldSelf.a", "message": "a is immutable"}],
            "properties": {"a": {"type": "string"}, "b": {"type": "string"}, "n": {"type": "integer"}}}}})
    }

    #[test]
    fn rules_are_evaluated_with_self_and_old_self() {
        let s = schema();
        let mut errs = vec![];
        validate(&json!({"spec": {"a": "x", "b": "y"}}), None, &s, &mut errs);
        assert!(errs.is_empty(), "{errs:?}");
        validate(&json!({"spec": {"a": "x", "b": "x", "n": 10}}), None, &s, &mut errs);
        assert_eq!(
            errs,
            [
                "spec: Invalid value: \"object\": a and b must differ",
                "spec.n: Forbidden: n too big"
            ]
        );
        errs.clear();
        let old = json!({"spec": {"a": "x", "b": "y"}});
        validate(&json!({"spec": {"a": "z", "b": "y"}}), Some(&old), &s, &mut errs);
        assert_eq!(errs, ["spec: Invalid value: \"object\": a is immutable"]);
    }

    #[test]
    fn rules_that_do_not_compile_are_refused() {
        assert!(compile_all(&schema(), "v1").is_ok());
        let bad = json!({"type": "object", "x-kubernetes-validations": [{"rule": "self.a =="}]});
        let errs = compile_all(&bad, "v1").unwrap_err();
        assert!(errs[0].contains("compilation failed"), "{errs:?}");
    }
}
