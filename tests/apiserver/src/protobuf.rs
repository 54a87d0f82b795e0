//! Request bodies in `application/vnd.kubernetes.protobuf`, as client-go's
//! typed clients send built-in kinds (kubectl's `create namespace|secret|
//! configmap|serviceaccount`, helm's release Secrets and `--create-namespace`,
//! the DeleteOptions of a typed delete). A real API server decodes every
//! built-in kind; this one knows the kinds those clients send and says which
//! others it does not, rather than misreading them. Answers stay JSON, which
//! every such client also accepts.
//!
//! The format: the magic `k8s\0`, then a `runtime.Unknown` message whose
//! `raw` field holds the object's own message (field numbers from
//! k8s.io/api's generated.proto).

use base64::Engine;
use prost::encoding::{WireType, decode_key, decode_varint, skip_field};
use serde_json::{Map, Value};

/// The magic every Kubernetes protobuf body starts with.
const MAGIC: &[u8] = b"k8s\0";

/// How one field's value is written and what JSON it becomes.
#[derive(Clone, Copy)]
enum Kind {
    Str,
    Int,
    Bool,
    /// `bytes`, base64 in JSON.
    Bytes,
    Msg(&'static [Field]),
    /// metav1.Time: `{seconds, nanos}` → RFC 3339.
    Time,
    /// metav1.FieldsV1: its `raw` bytes are JSON.
    FieldsV1,
    StrMap,
    BytesMap,
    RepStr,
    RepMsg(&'static [Field]),
}

type Field = (u64, &'static str, Kind);

use Kind::*;

const OWNER: &[Field] = &[
    (5, "apiVersion", Str),
    (1, "kind", Str),
    (3, "name", Str),
    (4, "uid", Str),
    (6, "controller", Bool),
    (7, "blockOwnerDeletion", Bool),
];
const MANAGED: &[Field] = &[
    (1, "manager", Str),
    (2, "operation", Str),
    (3, "apiVersion", Str),
    (4, "time", Time),
    (6, "fieldsType", Str),
    (7, "fieldsV1", FieldsV1),
    (8, "subresource", Str),
];
const META: &[Field] = &[
    (1, "name", Str),
    (2, "generateName", Str),
    (3, "namespace", Str),
    (4, "selfLink", Str),
    (5, "uid", Str),
    (6, "resourceVersion", Str),
    (7, "generation", Int),
    (8, "creationTimestamp", Time),
    (9, "deletionTimestamp", Time),
    (10, "deletionGracePeriodSeconds", Int),
    (11, "labels", StrMap),
    (12, "annotations", StrMap),
    (13, "ownerReferences", RepMsg(OWNER)),
    (14, "finalizers", RepStr),
    (17, "managedFields", RepMsg(MANAGED)),
];
const NAMESPACE: &[Field] = &[
    (1, "metadata", Msg(META)),
    (2, "spec", Msg(&[(1, "finalizers", RepStr)])),
    (3, "status", Msg(&[(1, "phase", Str)])),
];
const SECRET: &[Field] = &[
    (1, "metadata", Msg(META)),
    (2, "data", BytesMap),
    (3, "type", Str),
    (4, "stringData", StrMap),
    (5, "immutable", Bool),
];
const CONFIGMAP: &[Field] = &[
    (1, "metadata", Msg(META)),
    (2, "data", StrMap),
    (3, "binaryData", BytesMap),
    (4, "immutable", Bool),
];
const OBJECT_REFERENCE: &[Field] = &[
    (1, "kind", Str),
    (2, "namespace", Str),
    (3, "name", Str),
    (4, "uid", Str),
    (5, "apiVersion", Str),
    (6, "resourceVersion", Str),
    (7, "fieldPath", Str),
];
const SERVICEACCOUNT: &[Field] = &[
    (1, "metadata", Msg(META)),
    (2, "secrets", RepMsg(OBJECT_REFERENCE)),
    (3, "imagePullSecrets", RepMsg(&[(1, "name", Str)])),
    (4, "automountServiceAccountToken", Bool),
];
const DELETE_OPTIONS: &[Field] = &[
    (1, "gracePeriodSeconds", Int),
    (2, "preconditions", Msg(&[(1, "uid", Str), (2, "resourceVersion", Str)])),
    (3, "orphanDependents", Bool),
    (4, "propagationPolicy", Str),
    (5, "dryRun", RepStr),
];
const UNKNOWN: &[Field] = &[
    (1, "typeMeta", Msg(&[(1, "apiVersion", Str), (2, "kind", Str)])),
    (2, "raw", Bytes),
];
const TIME: &[Field] = &[(1, "seconds", Int), (2, "nanos", Int)];

/// The kinds decoded, by `apiVersion` and `kind`.
const KINDS: &[(&str, &str, &[Field])] = &[
    ("v1", "Namespace", NAMESPACE),
    ("v1", "Secret", SECRET),
    ("v1", "ConfigMap", CONFIGMAP),
    ("v1", "ServiceAccount", SERVICEACCOUNT),
    ("v1", "DeleteOptions", DELETE_OPTIONS),
    ("meta.k8s.io/v1", "DeleteOptions", DELETE_OPTIONS),
];

/// Whether a Content-Type is the Kubernetes protobuf one.
pub fn is_protobuf(content_type: &str) -> bool {
    content_type.split(';').next().map(str::trim) == Some("application/vnd.kubernetes.protobuf")
}

/// Why a protobuf body was not taken: bad bytes, or a kind not known here.
pub enum Refusal {
    Malformed(String),
    Unsupported(String),
}

/// The JSON object a protobuf body holds.
pub fn decode(body: &[u8]) -> Result<Value, Refusal> {
    let rest = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| Refusal::Malformed("no k8s protobuf magic prefix".into()))?;
    let envelope = message(rest, UNKNOWN).map_err(Refusal::Malformed)?;
    let api_version = envelope["typeMeta"]["apiVersion"].as_str().unwrap_or_default();
    let kind = envelope["typeMeta"]["kind"].as_str().unwrap_or_default();
    let Some((_, _, schema)) = KINDS.iter().find(|(v, k, _)| *v == api_version && *k == kind) else {
        return Err(Refusal::Unsupported(format!(
            "this test API server reads application/vnd.kubernetes.protobuf bodies of {} only, not {api_version} {kind}; send application/json",
            KINDS.iter().map(|(_, k, _)| *k).collect::<Vec<_>>().join(", ")
        )));
    };
    let raw = envelope["raw"]
        .as_str()
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .unwrap_or_default();
    let mut object = Map::new();
    object.insert("apiVersion".into(), api_version.into());
    object.insert("kind".into(), kind.into());
    match message(&raw, schema).map_err(Refusal::Malformed)? {
        Value::Object(fields) => object.extend(fields),
        _ => unreachable!("message() builds objects"),
    }
    Ok(Value::Object(object))
}

fn length_delimited<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8], String> {
    let len = decode_varint(buf).map_err(|e| e.to_string())?;
    let len = usize::try_from(len).map_err(|_| "length out of range".to_string())?;
    if len > buf.len() {
        return Err(format!("a field of {len} bytes with {} left", buf.len()));
    }
    let (field, rest) = buf.split_at(len);
    *buf = rest;
    Ok(field)
}

fn string(bytes: &[u8]) -> Result<Value, String> {
    std::str::from_utf8(bytes)
        .map(Value::from)
        .map_err(|_| "a string field is not UTF-8".to_string())
}

fn expect(wire: WireType, want: WireType) -> Result<(), String> {
    (wire == want)
        .then_some(())
        .ok_or_else(|| format!("wire type {wire:?} where {want:?} belongs"))
}

/// One map entry (`{1: key, 2: value}`).
fn entry(bytes: &[u8], value: Kind) -> Result<(String, Value), String> {
    let e = message(bytes, &[(1, "key", Str), (2, "value", value)])?;
    let key = e["key"].as_str().unwrap_or_default().to_string();
    // An empty value is not written at all.
    let value = e.get("value").cloned().unwrap_or_else(|| "".into());
    Ok((key, value))
}

fn message(mut buf: &[u8], schema: &[Field]) -> Result<Value, String> {
    let mut out = Map::new();
    while !buf.is_empty() {
        let (tag, wire) = decode_key(&mut buf).map_err(|e| e.to_string())?;
        let Some(&(_, name, kind)) = schema.iter().find(|(t, _, _)| u64::from(tag) == *t) else {
            // Fields a client does not set on writes (status conditions, …).
            skip_field(wire, tag, &mut buf, Default::default()).map_err(|e| e.to_string())?;
            continue;
        };
        let value = match kind {
            Int => {
                expect(wire, WireType::Varint)?;
                // int64 and int32 are both two's complement varints.
                Value::from(decode_varint(&mut buf).map_err(|e| e.to_string())? as i64)
            }
            Bool => {
                expect(wire, WireType::Varint)?;
                Value::from(decode_varint(&mut buf).map_err(|e| e.to_string())? != 0)
            }
            _ => {
                expect(wire, WireType::LengthDelimited)?;
                let bytes = length_delimited(&mut buf)?;
                match kind {
                    Str => string(bytes)?,
                    Bytes => base64::engine::general_purpose::STANDARD.encode(bytes).into(),
                    Msg(s) => message(bytes, s)?,
                    Time => match message(bytes, TIME)?["seconds"].as_u64() {
                        // The zero time is JSON null.
                        None | Some(0) => Value::Null,
                        Some(s) => crate::time::format(s).into(),
                    },
                    FieldsV1 => {
                        let raw = message(bytes, &[(1, "raw", Bytes)])?;
                        let raw = raw["raw"]
                            .as_str()
                            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                            .unwrap_or_default();
                        serde_json::from_slice(&raw).map_err(|e| format!("fieldsV1: {e}"))?
                    }
                    StrMap | BytesMap => {
                        let (k, v) = entry(bytes, if matches!(kind, StrMap) { Str } else { Bytes })?;
                        let map = out.entry(name).or_insert_with(|| Value::Object(Map::new()));
                        if let Some(m) = map.as_object_mut() {
                            m.insert(k, v);
                        }
                        continue;
                    }
                    RepStr | RepMsg(_) => {
                        let item = match kind {
                            RepMsg(s) => message(bytes, s)?,
                            _ => string(bytes)?,
                        };
                        let list = out.entry(name).or_insert_with(|| Value::Array(Vec::new()));
                        if let Some(l) = list.as_array_mut() {
                            l.push(item);
                        }
                        continue;
                    }
                    Int | Bool => unreachable!("handled above"),
                }
            }
        };
        // Go's generated code writes every non-pointer field, empty or not;
        // its JSON (omitempty) leaves those out, and so does the server.
        let empty = match &value {
            Value::String(s) => s.is_empty(),
            Value::Number(n) => matches!(kind, Int) && n.as_i64() == Some(0) && !name.ends_with("Seconds"),
            Value::Null => true,
            _ => false,
        };
        if !empty {
            out.insert(name.to_string(), value);
        }
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(tag: u64, wire: u64, out: &mut Vec<u8>) {
        prost::encoding::encode_varint(tag << 3 | wire, out);
    }
    fn bytes(tag: u64, b: &[u8], out: &mut Vec<u8>) {
        key(tag, 2, out);
        prost::encoding::encode_varint(b.len() as u64, out);
        out.extend_from_slice(b);
    }

    #[test]
    fn a_secret_as_client_go_writes_it() {
        let mut meta = Vec::new();
        bytes(1, b"s1", &mut meta);
        bytes(3, b"mirror", &mut meta);
        let mut label = Vec::new();
        bytes(1, b"owner", &mut label);
        bytes(2, b"helm", &mut label);
        bytes(11, &label, &mut meta);
        let mut secret = Vec::new();
        bytes(1, &meta, &mut secret);
        let mut data = Vec::new();
        bytes(1, b"a", &mut data);
        bytes(2, &[0, 255], &mut data);
        bytes(2, &data, &mut secret);
        bytes(3, b"Opaque", &mut secret);
        key(5, 0, &mut secret);
        secret.push(1);
        let mut tm = Vec::new();
        bytes(1, b"v1", &mut tm);
        bytes(2, b"Secret", &mut tm);
        let mut unknown = Vec::new();
        bytes(1, &tm, &mut unknown);
        bytes(2, &secret, &mut unknown);
        let body = [MAGIC, &unknown].concat();
        let Ok(v) = decode(&body) else { panic!("decodes") };
        assert_eq!(
            v,
            serde_json::json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "s1", "namespace": "mirror", "labels": {"owner": "helm"}},
                "data": {"a": "AP8="}, "type": "Opaque", "immutable": true})
        );
    }

    #[test]
    fn truncated_and_unknown_bodies_are_refused() {
        assert!(matches!(decode(b"{}"), Err(Refusal::Malformed(_))));
        let unknown = [0x0a, 0x05, b'x'];
        assert!(matches!(
            decode(&[MAGIC, &unknown].concat()),
            Err(Refusal::Malformed(_))
        ));
        let mut tm = Vec::new();
        bytes(1, b"apps/v1", &mut tm);
        bytes(2, b"Deployment", &mut tm);
        let mut unknown = Vec::new();
        bytes(1, &tm, &mut unknown);
        let Err(Refusal::Unsupported(msg)) = decode(&[MAGIC, &unknown].concat()) else {
            panic!("refused")
        };
        assert!(msg.contains("apps/v1 Deployment"), "{msg}");
    }
}
