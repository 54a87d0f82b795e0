//! What the real API server does to Jobs and Pods on their way in: the
//! batch/v1 Job strategy's defaults, generated selector and validation, and
//! the Pod defaults plus the ServiceAccount admission plugin (the default
//! account, the refused unknown account, the projected API token volume).

use serde_json::{Value, json};

/// Where a container finds its ServiceAccount's token, CA and namespace.
pub const SA_MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The index annotation (and label) of an Indexed Job's pods.
pub const INDEX_KEY: &str = "batch.kubernetes.io/job-completion-index";
/// The label selecting a Job's pods.
pub const UID_LABEL: &str = "batch.kubernetes.io/controller-uid";

const MAX_INT32: i64 = i32::MAX as i64;

fn int(o: &Value, ptr: &str) -> Option<i64> {
    o.pointer(ptr).and_then(Value::as_i64)
}

/// batch/v1 `SetDefaults_Job` and the strategy's validation; `old` is the
/// stored Job on update. Errors are `path: message` causes.
pub fn job(o: &mut Value, old: Option<&Value>) -> Result<(), Vec<String>> {
    let spec = &mut o["spec"];
    if !spec.is_object() {
        return Err(vec!["spec.template.spec.containers: Required value".into()]);
    }
    if spec.get("completionMode").is_none() {
        spec["completionMode"] = json!("NonIndexed");
    }
    if spec.get("completions").is_none() && spec.get("parallelism").is_none() {
        spec["completions"] = json!(1);
    }
    if spec.get("parallelism").is_none() {
        spec["parallelism"] = json!(1);
    }
    if spec.get("backoffLimit").is_none() {
        let per_index = spec.get("backoffLimitPerIndex").is_some_and(|v| !v.is_null());
        spec["backoffLimit"] = json!(if per_index { MAX_INT32 } else { 6 });
    }
    if spec.get("suspend").is_none() {
        spec["suspend"] = json!(false);
    }
    if spec.get("podReplacementPolicy").is_none() {
        spec["podReplacementPolicy"] = json!("TerminatingOrFailed");
    }
    if spec.get("manualSelector").is_none() {
        spec["manualSelector"] = json!(false);
    }
    let mut errs = vec![];
    let indexed = spec["completionMode"] == "Indexed";
    if !matches!(spec["completionMode"].as_str(), Some("Indexed" | "NonIndexed")) {
        errs.push(format!(
            "spec.completionMode: Unsupported value: {}: supported values: \"NonIndexed\", \"Indexed\"",
            spec["completionMode"]
        ));
    }
    if indexed && spec.get("completions").is_none_or(Value::is_null) {
        errs.push("spec.completions: Required value: when completion mode is Indexed".into());
    }
    for field in ["completions", "parallelism", "backoffLimit", "backoffLimitPerIndex"] {
        if int(spec, &format!("/{field}")).is_some_and(|n| n < 0) {
            errs.push(format!(
                "spec.{field}: Invalid value: {}: must be greater than or equal to 0",
                spec[field]
            ));
        }
    }
    if indexed && int(spec, "/completions").is_some_and(|n| n > 100_000) {
        errs.push(
            "spec.completions: Invalid value: must be less than or equal to 100000 when completion mode is Indexed"
                .into(),
        );
    }
    let restart = spec.pointer("/template/spec/restartPolicy").and_then(Value::as_str);
    if spec.get("backoffLimitPerIndex").is_some_and(|v| !v.is_null()) {
        if !indexed {
            errs.push("spec.backoffLimitPerIndex: Forbidden: requires indexed completion mode".into());
        }
        if restart != Some("Never") {
            errs.push(format!(
                "spec.template.spec.restartPolicy: Invalid value: {:?}: must be Never when backoffLimitPerIndex is set",
                restart.unwrap_or("")
            ));
        }
    }
    if !matches!(restart, Some("Never" | "OnFailure")) {
        errs.push("spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\"".into());
    }
    match spec.pointer("/template/spec/containers").and_then(Value::as_array) {
        Some(c) if !c.is_empty() => {}
        _ => errs.push("spec.template.spec.containers: Required value".into()),
    }
    if let Some(old) = old {
        for field in [
            "completionMode",
            "selector",
            "template",
            "completions",
            "backoffLimitPerIndex",
        ] {
            if old["spec"].get(field) != o["spec"].get(field) {
                errs.push(format!("spec.{field}: Invalid value: field is immutable"));
            }
        }
    }
    if errs.is_empty() { Ok(()) } else { Err(errs) }
}

/// The selector and pod labels the Job strategy generates from the Job's uid.
pub fn job_selector(o: &mut Value, uid: &str, name: &str) {
    if o.pointer("/spec/manualSelector") == Some(&json!(true)) {
        return;
    }
    o["spec"]["selector"] = json!({"matchLabels": {UID_LABEL: uid}});
    let labels = &mut o["spec"]["template"]["metadata"]["labels"];
    if !labels.is_object() {
        *labels = json!({});
    }
    for (k, v) in [
        (UID_LABEL, uid),
        ("batch.kubernetes.io/job-name", name),
        ("controller-uid", uid),
        ("job-name", name),
    ] {
        labels[k] = json!(v);
    }
}

/// What the ServiceAccount plugin needs to know of the pod's account.
pub enum Account {
    Missing,
    Found { automount: Option<bool> },
}

/// Pod defaults and ServiceAccount admission on create.
pub fn pod(o: &mut Value, ns: &str, account: impl Fn(&str) -> Account, suffix: &str) -> Result<(), (u16, String)> {
    let name = o
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let spec = &mut o["spec"];
    let containers_ok = spec
        .get("containers")
        .and_then(Value::as_array)
        .is_some_and(|c| !c.is_empty());
    if !containers_ok {
        return Err((422, "spec.containers: Required value".into()));
    }
    let sa = spec
        .get("serviceAccountName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or("default")
        .to_string();
    spec["serviceAccountName"] = json!(sa);
    spec["serviceAccount"] = json!(sa);
    for (k, v) in [
        ("restartPolicy", json!("Always")),
        ("dnsPolicy", json!("ClusterFirst")),
        ("terminationGracePeriodSeconds", json!(30)),
        ("schedulerName", json!("default-scheduler")),
        ("enableServiceLinks", json!(true)),
        ("priority", json!(0)),
        ("securityContext", json!({})),
    ] {
        if spec.get(k).is_none() {
            spec[k] = v;
        }
    }
    let automount_sa = match account(&sa) {
        Account::Missing => {
            return Err((
                403,
                format!(
                    "pods \"{name}\" is forbidden: error looking up service account {ns}/{sa}: serviceaccount \"{sa}\" not found"
                ),
            ));
        }
        Account::Found { automount } => automount,
    };
    let automount = spec
        .get("automountServiceAccountToken")
        .and_then(Value::as_bool)
        .or(automount_sa)
        .unwrap_or(true);
    let volume = format!("kube-api-access-{suffix}");
    if automount {
        let vols = &mut spec["volumes"];
        if !vols.is_array() {
            *vols = json!([]);
        }
        if let Some(v) = vols.as_array_mut() {
            v.push(json!({"name": volume, "projected": {"defaultMode": 420, "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
            ]}}));
        }
    }
    for list in ["initContainers", "containers"] {
        let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for c in cs {
            let image = c.get("image").and_then(Value::as_str).unwrap_or("").to_string();
            let tagged = image
                .rsplit('/')
                .next()
                .is_some_and(|last| last.contains(':') || last.contains('@'));
            let latest = !tagged || image.ends_with(":latest");
            for (k, v) in [
                ("terminationMessagePath", json!("/dev/termination-log")),
                ("terminationMessagePolicy", json!("File")),
                ("imagePullPolicy", json!(if latest { "Always" } else { "IfNotPresent" })),
                ("resources", json!({})),
            ] {
                if c.get(k).is_none() {
                    c[k] = v;
                }
            }
            if !automount {
                continue;
            }
            let mounts = &mut c["volumeMounts"];
            if !mounts.is_array() {
                *mounts = json!([]);
            }
            if let Some(m) = mounts.as_array_mut() {
                if !m.iter().any(|x| x["mountPath"] == SA_MOUNT) {
                    m.push(json!({"name": volume, "mountPath": SA_MOUNT, "readOnly": true}));
                }
            }
        }
    }
    o["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_are_defaulted_and_checked_as_the_strategy_does() {
        let mut j = json!({"spec": {"completionMode": "Indexed", "completions": 4, "backoffLimitPerIndex": 1,
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i:1"}]}}}});
        job(&mut j, None).unwrap();
        assert_eq!(j["spec"]["backoffLimit"], MAX_INT32);
        assert_eq!(j["spec"]["parallelism"], 1);
        let mut bad =
            json!({"spec": {"completionMode": "Indexed", "parallelism": 2, "template": {"spec": {"containers": []}}}});
        let errs = job(&mut bad, None).unwrap_err();
        assert!(
            errs.iter().any(|e| e.starts_with("spec.completions: Required value")),
            "{errs:?}"
        );
        assert!(
            errs.iter().any(|e| e.starts_with("spec.template.spec.restartPolicy")),
            "{errs:?}"
        );
        let mut changed = j.clone();
        changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("i:2");
        changed["spec"]["parallelism"] = json!(3);
        let errs = job(&mut changed, Some(&j)).unwrap_err();
        assert_eq!(
            errs,
            vec!["spec.template: Invalid value: field is immutable".to_string()]
        );
    }

    #[test]
    fn pods_get_the_account_and_its_token_volume() {
        let mut p = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "kopeo"}]}});
        pod(&mut p, "ns", |_| Account::Found { automount: None }, "abcde").unwrap();
        assert_eq!(p["spec"]["serviceAccountName"], "default");
        assert_eq!(p["spec"]["containers"][0]["volumeMounts"][0]["mountPath"], SA_MOUNT);
        assert_eq!(p["spec"]["containers"][0]["imagePullPolicy"], "Always");
        let mut q =
            json!({"metadata": {"name": "q"}, "spec": {"serviceAccountName": "w", "containers": [{"name": "c"}]}});
        let (code, msg) = pod(&mut q, "ns", |_| Account::Missing, "x").unwrap_err();
        assert_eq!(code, 403);
        assert!(msg.contains("serviceaccount \"w\" not found"), "{msg}");
        let mut r = json!({"metadata": {"name": "r"}, "spec": {"containers": [{"name": "c"}]}});
        pod(&mut r, "ns", |_| Account::Found { automount: Some(false) }, "x").unwrap();
        assert!(r["spec"].get("volumes").is_none());
    }
}
