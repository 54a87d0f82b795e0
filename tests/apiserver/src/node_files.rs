//! What the test node gives a container: its volumes as files and its
//! environment, resolved as the kubelet resolves them.

use crate::http::Shared;
use crate::node::decode;
use crate::store::State;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn s<'a>(o: &'a Value, ptr: &str) -> &'a str {
    o.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

/// A downward-API field of the pod (`metadata.labels['k']` and the like).
pub fn field(pod: &Value, path: &str) -> Option<String> {
    let keyed = |prefix: &str, map: &str| -> Option<Option<String>> {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(
            pod["metadata"][map]
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_string),
        )
    };
    if let Some(v) = keyed("metadata.labels['", "labels") {
        return Some(v.unwrap_or_default());
    }
    if let Some(v) = keyed("metadata.annotations['", "annotations") {
        return Some(v.unwrap_or_default());
    }
    let ptr = match path {
        "metadata.name" => "/metadata/name",
        "metadata.namespace" => "/metadata/namespace",
        "metadata.uid" => "/metadata/uid",
        "spec.nodeName" => "/spec/nodeName",
        "spec.serviceAccountName" => "/spec/serviceAccountName",
        "status.hostIP" | "status.podIP" => return Some("127.0.0.1".into()),
        _ => return None,
    };
    Some(s(pod, ptr).to_string())
}

fn object(st: &State, plural: &str, ns: &str, name: &str) -> Option<Value> {
    let rt = st.find("", "v1", plural)?.clone();
    st.get(&rt, ns, name).ok()
}

/// Key → bytes of a Secret (`data`) or ConfigMap (`data`, `binaryData`).
fn entries(o: &Value, secret: bool) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![];
    if let Some(d) = o["data"].as_object() {
        for (k, v) in d {
            let bytes = if secret {
                decode(v)
            } else {
                v.as_str().unwrap_or("").as_bytes().to_vec()
            };
            out.push((k.clone(), bytes));
        }
    }
    if let Some(d) = o["binaryData"].as_object() {
        for (k, v) in d {
            out.push((k.clone(), decode(v)));
        }
    }
    out
}

fn write(dir: &Path, rel: &str, bytes: &[u8]) -> Result<(), String> {
    if rel.split('/').any(|c| c == ".." || c.is_empty()) {
        return Err(format!("invalid volume item path {rel:?}"));
    }
    let path = dir.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    }
    std::fs::write(&path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// Write a Secret's or ConfigMap's keys (or the listed `items`) into `dir`.
fn project(st: &State, ns: &str, src: &Value, secret: bool, dir: &Path) -> Result<(), String> {
    let (plural, name) = if secret {
        ("secrets", s(src, "/secretName").to_string())
    } else {
        ("configmaps", s(src, "/name").to_string())
    };
    let name = if name.is_empty() {
        s(src, "/name").to_string()
    } else {
        name
    };
    let Some(o) = object(st, plural, ns, &name) else {
        if src["optional"] == true {
            return Ok(());
        }
        let kind = if secret { "secret" } else { "configmap" };
        return Err(format!("{kind} \"{name}\" not found"));
    };
    let all = entries(&o, secret);
    match src["items"].as_array() {
        Some(items) if !items.is_empty() => {
            for i in items {
                let key = s(i, "/key");
                let Some((_, bytes)) = all.iter().find(|(k, _)| k == key) else {
                    if src["optional"] == true {
                        continue;
                    }
                    return Err(format!("key {key:?} not in {plural} {name:?}"));
                };
                write(dir, s(i, "/path"), bytes)?;
            }
        }
        _ => {
            for (k, bytes) in &all {
                write(dir, k, bytes)?;
            }
        }
    }
    Ok(())
}

fn downward(pod: &Value, items: &Value, dir: &Path) -> Result<(), String> {
    for i in items.as_array().into_iter().flatten() {
        let path = s(i, "/fieldRef/fieldPath");
        let v = field(pod, path).ok_or_else(|| format!("unsupported fieldPath {path:?}"))?;
        write(dir, s(i, "/path"), v.as_bytes())?;
    }
    Ok(())
}

/// A fresh bearer token the server authenticates as the pod's ServiceAccount.
fn token(shared: &Shared, pod: &Value) -> String {
    let t = format!(
        "node-{}-{:x}",
        s(pod, "/metadata/uid"),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    let user = crate::authz::User::service_account(s(pod, "/metadata/namespace"), s(pod, "/spec/serviceAccountName"));
    shared
        .users
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((t.clone(), user));
    t
}

/// Write every volume of `pod` under `root`; volume name → its directory.
pub fn write_volumes(
    shared: &Shared,
    st: &State,
    pod: &Value,
    root: &Path,
) -> Result<HashMap<String, PathBuf>, String> {
    let ns = s(pod, "/metadata/namespace");
    let mut out = HashMap::new();
    let _ = std::fs::remove_dir_all(root);
    for v in pod["spec"]["volumes"].as_array().into_iter().flatten() {
        let name = s(v, "/name").to_string();
        let dir = root.join(&name);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        if let Some(src) = v.get("secret") {
            project(st, ns, src, true, &dir)?;
        } else if let Some(src) = v.get("configMap") {
            project(st, ns, src, false, &dir)?;
        } else if v.get("emptyDir").is_some() {
        } else if let Some(d) = v.get("downwardAPI") {
            downward(pod, &d["items"], &dir)?;
        } else if let Some(p) = v.get("projected") {
            for src in p["sources"].as_array().into_iter().flatten() {
                if let Some(x) = src.get("secret") {
                    project(st, ns, x, true, &dir)?;
                } else if let Some(x) = src.get("configMap") {
                    project(st, ns, x, false, &dir)?;
                } else if let Some(x) = src.get("downwardAPI") {
                    downward(pod, &x["items"], &dir)?;
                } else if let Some(x) = src.get("serviceAccountToken") {
                    write(&dir, s(x, "/path"), token(shared, pod).as_bytes())?;
                } else {
                    return Err(format!(
                        "volume {name:?}: a projected source the test node does not serve"
                    ));
                }
            }
        } else if let Some(h) = v.get("hostPath") {
            out.insert(name, PathBuf::from(s(h, "/path")));
            continue;
        } else {
            return Err(format!("volume {name:?}: a volume type the test node does not serve"));
        }
        out.insert(name, dir);
    }
    Ok(out)
}

/// Expand `$(VAR)` from `env`, as the kubelet does (`$$` escapes; unknown stay).
pub fn expand(text: &str, env: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(').and_then(|a| a.find(')').map(|j| &a[..j])) {
            match env.iter().rev().find(|(k, _)| k == inner) {
                Some((_, v)) => out.push_str(v),
                None => out.push_str(&format!("$({inner})")),
            }
            rest = &after[inner.len() + 2..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// A container's environment: the runtime's, the API's, then `envFrom` and `env`.
pub fn environment(
    st: &State,
    pod: &Value,
    c: &Value,
    api: Option<std::net::SocketAddr>,
) -> Result<Vec<(String, String)>, (&'static str, String)> {
    let ns = s(pod, "/metadata/namespace");
    let host = match s(pod, "/spec/hostname") {
        "" => s(pod, "/metadata/name"),
        h => h,
    };
    let mut env: Vec<(String, String)> = vec![
        (
            "PATH".into(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        ),
        ("HOSTNAME".into(), host.into()),
        ("HOME".into(), "/root".into()),
    ];
    if let Some(a) = api {
        let (h, p) = (a.ip().to_string(), a.port().to_string());
        env.extend([
            ("KUBERNETES_SERVICE_HOST".into(), h.clone()),
            ("KUBERNETES_SERVICE_PORT".into(), p.clone()),
            ("KUBERNETES_SERVICE_PORT_HTTPS".into(), p.clone()),
            ("KUBERNETES_PORT".into(), format!("tcp://{h}:{p}")),
        ]);
    }
    let bad = |m: String| ("CreateContainerConfigError", m);
    for from in c["envFrom"].as_array().into_iter().flatten() {
        let prefix = s(from, "/prefix");
        let (plural, src, secret) = match (from.get("secretRef"), from.get("configMapRef")) {
            (Some(r), _) => ("secrets", r, true),
            (_, Some(r)) => ("configmaps", r, false),
            _ => continue,
        };
        match object(st, plural, ns, s(src, "/name")) {
            Some(o) => {
                for (k, v) in entries(&o, secret) {
                    env.push((format!("{prefix}{k}"), String::from_utf8_lossy(&v).into_owned()));
                }
            }
            None if src["optional"] == true => {}
            None => return Err(bad(format!("{plural} {:?} not found", s(src, "/name")))),
        }
    }
    for e in c["env"].as_array().into_iter().flatten() {
        let name = s(e, "/name").to_string();
        let value = if let Some(v) = e.get("value").and_then(Value::as_str) {
            expand(v, &env)
        } else if let Some(f) = e.pointer("/valueFrom/fieldRef/fieldPath").and_then(Value::as_str) {
            field(pod, f).ok_or_else(|| bad(format!("env {name}: unsupported fieldPath {f:?}")))?
        } else if let Some(r) = e
            .pointer("/valueFrom/secretKeyRef")
            .or(e.pointer("/valueFrom/configMapKeyRef"))
        {
            let secret = e.pointer("/valueFrom/secretKeyRef").is_some();
            let plural = if secret { "secrets" } else { "configmaps" };
            let found = object(st, plural, ns, s(r, "/name"))
                .and_then(|o| entries(&o, secret).into_iter().find(|(k, _)| k == s(r, "/key")));
            match found {
                Some((_, v)) => String::from_utf8_lossy(&v).into_owned(),
                None if r["optional"] == true => continue,
                None => {
                    return Err(bad(format!(
                        "env {name}: key {:?} of {plural} {:?} not found",
                        s(r, "/key"),
                        s(r, "/name")
                    )));
                }
            }
        } else if e.get("valueFrom").is_some() {
            return Err(bad(format!("env {name}: a valueFrom the test node does not resolve")));
        } else {
            String::new()
        };
        env.push((name, value));
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_expand_as_the_kubelet_does() {
        let env = vec![("A".to_string(), "x".to_string())];
        assert_eq!(expand("$(A)/$(B)/$$(A)/$", &env), "x/$(B)/$(A)/$");
        let pod = serde_json::json!({"metadata": {"name": "p", "annotations": {"k": "3"}}});
        assert_eq!(field(&pod, "metadata.annotations['k']").as_deref(), Some("3"));
        assert_eq!(field(&pod, "metadata.name").as_deref(), Some("p"));
        assert_eq!(field(&pod, "spec.unknown"), None);
    }
}
