//! An audit log like the API server's `--audit-log-path`: one
//! `audit.k8s.io/v1` Event per request, at level Metadata, stage
//! ResponseComplete, as a JSON line. Tests and benchmarks count requests
//! (status writes per object, say) from it, as one would from a real cluster.

use serde_json::{Value, json};
use std::io::Write;
use std::sync::Mutex;

/// An append-only audit log file.
pub struct AuditLog {
    file: Mutex<std::fs::File>,
}

impl AuditLog {
    /// Open (create or append to) the log at `path`.
    pub fn open(path: &std::path::Path) -> std::io::Result<AuditLog> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        Ok(AuditLog { file: Mutex::new(file) })
    }

    /// Record one request and the code it was answered with.
    /// `shape` is what the client asked for (`Object`, `PartialObjectMetadata`
    /// or `Table`), recorded as the annotation `test.kopeo.dev/response-shape`.
    pub fn record(&self, method: &str, uri: &str, watch: bool, code: u16, user: &str, shape: &str) {
        let path = uri.split('?').next().unwrap_or("");
        let (object_ref, named) = object_ref(path);
        let verb = match (method, named, watch) {
            ("GET", _, true) => "watch",
            ("GET", true, _) => "get",
            ("GET", false, _) => "list",
            ("POST", _, _) => "create",
            ("PUT", _, _) => "update",
            ("PATCH", _, _) => "patch",
            ("DELETE", true, _) => "delete",
            ("DELETE", false, _) => "deletecollection",
            (other, _, _) => other,
        };
        let line = json!({
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": "Metadata",
            // A watch is logged as its response starts; it may stream for long.
            "stage": if watch { "ResponseStarted" } else { "ResponseComplete" },
            "requestURI": uri,
            "verb": verb,
            "objectRef": object_ref,
            "responseStatus": {"metadata": {}, "code": code},
            "user": {"username": user},
            "annotations": {
                "authorization.k8s.io/decision": if code == 403 { "forbid" } else { "allow" },
                "test.kopeo.dev/response-shape": shape,
            },
            "stageTimestamp": crate::time::now(),
        });
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        // A failed write loses one line of a test aid, not state: ignored.
        let _ = writeln!(f, "{line}");
    }
}

/// The `objectRef` of a resource path, and whether it names one object.
fn object_ref(path: &str) -> (Value, bool) {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return (Value::Null, false),
    };
    let (ns, rest) = match rest {
        ["namespaces", ns, more @ ..] if !more.is_empty() => (Some(*ns), more),
        other => (None, other),
    };
    let mut r = json!({"apiGroup": group, "apiVersion": version});
    if let Some(ns) = ns {
        r["namespace"] = json!(ns);
    }
    match rest {
        [] => match ns {
            // `/api/v1/namespaces/NAME` names a namespace.
            Some(n) => {
                r["resource"] = json!("namespaces");
                r["name"] = json!(n);
                r.as_object_mut().map(|o| o.remove("namespace"));
                (r, true)
            }
            None => (r, false),
        },
        [plural] => {
            r["resource"] = json!(plural);
            (r, false)
        }
        [plural, name, sub @ ..] => {
            r["resource"] = json!(plural);
            r["name"] = json!(name);
            if let [s, ..] = sub {
                r["subresource"] = json!(s);
            }
            (r, true)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::object_ref;
    use serde_json::json;

    #[test]
    fn object_refs_of_paths() {
        let (r, named) = object_ref("/apis/kopeo.dev/v1alpha1/namespaces/a/imagecopies/x/status");
        assert!(named);
        assert_eq!(
            r,
            json!({"apiGroup": "kopeo.dev", "apiVersion": "v1alpha1", "namespace": "a", "resource": "imagecopies", "name": "x", "subresource": "status"})
        );
        let (r, named) = object_ref("/api/v1/secrets");
        assert!(!named);
        assert_eq!(r["resource"], "secrets");
        let (r, named) = object_ref("/api/v1/namespaces/kube-system");
        assert!(named);
        assert_eq!(
            (r["resource"].as_str(), r["name"].as_str()),
            (Some("namespaces"), Some("kube-system"))
        );
    }
}
