//! JSON read the way containers/image's "paranoid" parser reads signatures
//! and policies: duplicate keys anywhere are an error (serde_json would keep
//! the last one silently), and objects are checked field by field.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// A JSON value whose objects keep their keys in order and had no duplicates.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<Value>),
    Object(Vec<(String, Value)>),
}

/// Parse `data` as one JSON value with no trailing data.
pub fn parse(data: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(data).map_err(|e| e.to_string())
}

impl Value {
    /// Go's name for the JSON type, for "cannot unmarshal" messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }

    /// The entries of an object, or the error upstream gives for anything else.
    pub fn object(&self) -> Result<&[(String, Value)], String> {
        match self {
            Value::Object(o) => Ok(o),
            other => Err(format!("JSON object expected, got {}", other.kind())),
        }
    }

    /// The string, or Go's unmarshal error naming `what`.
    pub fn string(&self, what: &str) -> Result<&str, String> {
        match self {
            Value::String(s) => Ok(s),
            other => Err(cannot_unmarshal(other, what, "string")),
        }
    }
}

/// Go's `json: cannot unmarshal X into Go value of type T` for field `what`.
pub fn cannot_unmarshal(v: &Value, what: &str, want: &str) -> String {
    format!(
        "json: cannot unmarshal {} into Go struct field {what} of type {want}",
        v.kind()
    )
}

/// The fields of `obj`, which must be exactly `names` (upstream's
/// `ParanoidUnmarshalJSONObjectExactFields`), in the order of `names`.
pub fn exact_fields<'a, const N: usize>(obj: &'a Value, names: [&str; N]) -> Result<[&'a Value; N], String> {
    let entries = obj.object()?;
    for (k, _) in entries {
        if !names.contains(&k.as_str()) {
            return Err(format!("Unknown key {k:?}"));
        }
    }
    let mut out = Vec::with_capacity(N);
    for name in names {
        match entries.iter().find(|(k, _)| k == name) {
            Some((_, v)) => out.push(v),
            None => return Err(format!("Key {name:?} missing in a JSON object")),
        }
    }
    out.try_into().map_err(|_| "internal error: field count".to_string())
}

/// `obj`'s value for `name`, if present.
pub fn field<'a>(obj: &'a [(String, Value)], name: &str) -> Option<&'a Value> {
    obj.iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::Number(n as f64))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::Number(n as f64))
    }
    fn visit_f64<E>(self, n: f64) -> Result<Value, E> {
        Ok(Value::Number(n))
    }
    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_string()))
    }
    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut v = Vec::new();
        while let Some(x) = seq.next_element()? {
            v.push(x);
        }
        Ok(Value::Array(v))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries: Vec<(String, Value)> = Vec::new();
        while let Some(k) = map.next_key::<String>()? {
            if entries.iter().any(|(e, _)| *e == k) {
                return Err(de::Error::custom(format!("Duplicate key {k:?}")));
            }
            let v = map.next_value()?;
            entries.push((k, v));
        }
        Ok(Value::Object(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_at_any_depth_are_refused() {
        assert!(parse(br#"{"a":1,"a":2}"#).unwrap_err().contains(r#"Duplicate key "a""#));
        assert!(
            parse(br#"{"a":{"b":1,"b":1}}"#)
                .unwrap_err()
                .contains(r#"Duplicate key "b""#)
        );
        assert!(parse(br#"{"a":1} x"#).is_err());
    }

    #[test]
    fn exact_fields_name_what_is_wrong() {
        let v = parse(br#"{"a":1,"c":2}"#).unwrap();
        assert_eq!(exact_fields(&v, ["a", "c"]).unwrap()[1], &Value::Number(2.0));
        assert_eq!(exact_fields(&v, ["a"]).unwrap_err(), r#"Unknown key "c""#);
        assert_eq!(
            exact_fields(&v, ["a", "b", "c"]).unwrap_err(),
            r#"Key "b" missing in a JSON object"#
        );
        assert_eq!(
            exact_fields(&Value::Null, ["a"]).unwrap_err(),
            "JSON object expected, got null"
        );
    }
}
