//! The Deployment and ReplicaSet controllers, as kube-controller-manager
//! runs them, reduced to what a single-node test cluster shows: a
//! Deployment owns one ReplicaSet per pod template (named and labelled by
//! its `pod-template-hash`, with the `deployment.kubernetes.io/revision`
//! annotation); the current one is scaled to `spec.replicas` and older ones
//! to zero at once (no surge or gradual rollout); a ReplicaSet keeps
//! `replicas` pods that are neither finished nor being deleted, made from
//! its template and owned by it; both report the real status fields and
//! the Deployment its `Available` and `Progressing` conditions.

use crate::store::State;
use crate::types::ResourceType;
use serde_json::{Value, json};

const HASH: &str = "pod-template-hash";
const REVISION: &str = "deployment.kubernetes.io/revision";

fn s<'a>(o: &'a Value, ptr: &str) -> &'a str {
    o.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn owned_by<'a>(items: &'a [Value], uid: &str) -> Vec<&'a Value> {
    items
        .iter()
        .filter(|o| {
            o.pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .is_some_and(|r| r.iter().any(|x| x["uid"] == uid && x["controller"] == true))
        })
        .collect()
}

/// A stable short hash of a pod template (FNV-1a, as the real one is an FNV
/// of the template), in the safe alphabet the real one uses.
fn template_hash(t: &Value) -> String {
    let h = t.to_string().bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut n = h;
    let mut out = String::new();
    for _ in 0..10 {
        out.push(ALPHABET[(n % ALPHABET.len() as u64) as usize] as char);
        n /= ALPHABET.len() as u64;
    }
    out
}

fn ready(p: &Value) -> bool {
    p.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

fn active(p: &Value) -> bool {
    !matches!(s(p, "/status/phase"), "Succeeded" | "Failed") && p.pointer("/metadata/deletionTimestamp").is_none()
}

fn owner(o: &Value, kind: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": kind, "name": s(o, "/metadata/name"), "uid": s(o, "/metadata/uid"),
           "controller": true, "blockOwnerDeletion": true})
}

fn put_status(st: &mut State, rt: &ResourceType, o: &Value, status: Value) {
    if o.get("status") == Some(&status) {
        return;
    }
    let mut next = o.clone();
    next["status"] = status;
    let _ = st.put(rt, next, true);
}

/// One pass of both controllers.
pub fn sync_all(st: &mut State) {
    let (Some(d_rt), Some(rs_rt), Some(pod_rt)) = (
        st.find("apps", "v1", "deployments").cloned(),
        st.find("apps", "v1", "replicasets").cloned(),
        st.find("", "v1", "pods").cloned(),
    ) else {
        return;
    };
    for d in st.list(&d_rt, None) {
        if d.pointer("/metadata/deletionTimestamp").is_none() {
            deployment(st, &d_rt, &rs_rt, &d);
        }
    }
    let pods = st.list(&pod_rt, None);
    for rs in st.list(&rs_rt, None) {
        if rs.pointer("/metadata/deletionTimestamp").is_none() {
            replica_set(st, &rs_rt, &pod_rt, &rs, &pods);
        }
    }
}

fn deployment(st: &mut State, d_rt: &ResourceType, rs_rt: &ResourceType, d: &Value) {
    let ns = s(d, "/metadata/namespace").to_string();
    let replicas = d.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
    let template = d["spec"]["template"].clone();
    let hash = template_hash(&template);
    let all = st.list(rs_rt, Some(&ns));
    let mine: Vec<Value> = owned_by(&all, s(d, "/metadata/uid")).into_iter().cloned().collect();
    let revision = |r: &Value| -> i64 {
        s(r, &format!("/metadata/annotations/{}", REVISION.replace('/', "~1")))
            .parse()
            .unwrap_or(0)
    };
    let newest = mine.iter().map(&revision).max().unwrap_or(0);
    let current = mine
        .iter()
        .find(|r| s(r, &format!("/metadata/labels/{HASH}")) == hash)
        .cloned();
    let current = match current {
        Some(r) => r,
        None => {
            let name = format!("{}-{hash}", s(d, "/metadata/name"));
            let mut t = template.clone();
            t["metadata"]["labels"][HASH] = json!(hash);
            let mut selector = d["spec"]["selector"].clone();
            selector["matchLabels"][HASH] = json!(hash);
            let mut labels = template["metadata"]["labels"].clone();
            labels[HASH] = json!(hash);
            let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": name, "namespace": ns, "labels": labels,
                    "annotations": {REVISION: (newest + 1).to_string(), "deployment.kubernetes.io/desired-replicas": replicas.to_string()},
                    "ownerReferences": [owner(d, "Deployment")]},
                "spec": {"replicas": replicas, "selector": selector, "template": t}});
            match st.create(rs_rt, &ns, rs, &Default::default()) {
                Ok(r) => r,
                Err(_) => return,
            }
        }
    };
    // Scale: the current ReplicaSet to the Deployment's replicas, the rest to zero.
    for r in mine.iter().chain(std::iter::once(&current)) {
        let want = if s(r, "/metadata/uid") == s(&current, "/metadata/uid") {
            replicas
        } else {
            0
        };
        if r.pointer("/spec/replicas").and_then(Value::as_i64) != Some(want) {
            let mut next = r.clone();
            next["spec"]["replicas"] = json!(want);
            let _ = st.put(rs_rt, next, false);
        }
    }
    let sets: Vec<Value> = owned_by(&st.list(rs_rt, Some(&ns)), s(d, "/metadata/uid"))
        .into_iter()
        .cloned()
        .collect();
    let sum = |f: &str| -> i64 { sets.iter().map(|r| r["status"][f].as_i64().unwrap_or(0)).sum() };
    let updated = sets
        .iter()
        .find(|r| s(r, "/metadata/uid") == s(&current, "/metadata/uid"))
        .map(|r| r["status"]["replicas"].as_i64().unwrap_or(0))
        .unwrap_or(0);
    let available = sum("availableReplicas");
    let now = crate::time::now();
    let keep = |t: &str, v: &str| -> Value {
        d["status"]["conditions"]
            .as_array()
            .and_then(|l| l.iter().find(|c| c["type"] == t && c["status"] == v))
            .and_then(|c| c.get("lastTransitionTime").cloned())
            .unwrap_or_else(|| json!(now))
    };
    let avail = if available >= replicas { "True" } else { "False" };
    let rs_name = s(&current, "/metadata/name");
    let (p_reason, p_msg) = if available >= replicas && updated >= replicas {
        (
            "NewReplicaSetAvailable",
            format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
        )
    } else {
        ("ReplicaSetUpdated", format!("ReplicaSet \"{rs_name}\" is progressing."))
    };
    let mut status = json!({
        "observedGeneration": d["metadata"]["generation"],
        "replicas": sum("replicas"),
        "updatedReplicas": updated,
        "readyReplicas": sum("readyReplicas"),
        "availableReplicas": available,
        "conditions": [
            {"type": "Available", "status": avail,
             "reason": if avail == "True" { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" },
             "message": if avail == "True" { "Deployment has minimum availability." } else { "Deployment does not have minimum availability." },
             "lastUpdateTime": keep("Available", avail), "lastTransitionTime": keep("Available", avail)},
            {"type": "Progressing", "status": "True", "reason": p_reason, "message": p_msg,
             "lastUpdateTime": keep("Progressing", "True"), "lastTransitionTime": keep("Progressing", "True")},
        ],
    });
    if replicas > available {
        status["unavailableReplicas"] = json!(replicas - available);
    }
    for zero in ["replicas", "updatedReplicas", "readyReplicas", "availableReplicas"] {
        if status[zero] == 0 {
            if let Some(m) = status.as_object_mut() {
                m.remove(zero);
            }
        }
    }
    put_status(st, d_rt, d, status);
}

fn replica_set(st: &mut State, rs_rt: &ResourceType, pod_rt: &ResourceType, rs: &Value, pods: &[Value]) {
    let ns = s(rs, "/metadata/namespace").to_string();
    let want = rs.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
    let mine = owned_by(pods, s(rs, "/metadata/uid"));
    let live: Vec<&&Value> = mine.iter().filter(|p| active(p)).collect();
    // Finished pods of a ReplicaSet are replaced (their containers restart
    // in place unless restartPolicy says otherwise, which a ReplicaSet's
    // template may not).
    for p in mine
        .iter()
        .filter(|p| !active(p) && p.pointer("/metadata/deletionTimestamp").is_none())
    {
        let _ = st.delete(pod_rt, &ns, s(p, "/metadata/name"), &Value::Null, &Default::default());
    }
    let have = live.len() as i64;
    if have < want {
        for _ in have..want {
            let t = &rs["spec"]["template"];
            let pod = json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"generateName": format!("{}-", s(rs, "/metadata/name")), "namespace": ns,
                    "labels": t["metadata"]["labels"], "annotations": t["metadata"]["annotations"],
                    "ownerReferences": [owner(rs, "ReplicaSet")]},
                "spec": t["spec"]});
            let _ = st.create(pod_rt, &ns, pod, &Default::default());
        }
    } else {
        for p in live.iter().skip(want as usize) {
            let _ = st.delete(pod_rt, &ns, s(p, "/metadata/name"), &Value::Null, &Default::default());
        }
    }
    let now_pods = st.list(pod_rt, Some(&ns));
    let mine: Vec<&Value> = owned_by(&now_pods, s(rs, "/metadata/uid"))
        .into_iter()
        .filter(|p| active(p))
        .collect();
    let ready_n = mine.iter().filter(|p| ready(p)).count();
    let mut status = json!({
        "replicas": mine.len(),
        "fullyLabeledReplicas": mine.len(),
        "readyReplicas": ready_n,
        "availableReplicas": ready_n,
        "observedGeneration": rs["metadata"]["generation"],
    });
    for zero in ["readyReplicas", "availableReplicas", "fullyLabeledReplicas"] {
        if status[zero] == 0 {
            if let Some(m) = status.as_object_mut() {
                m.remove(zero);
            }
        }
    }
    put_status(st, rs_rt, rs, status);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_hashes_the_same_every_time_and_differs_with_the_template() {
        let a = json!({"spec": {"containers": [{"name": "c", "image": "i:1"}]}});
        let b = json!({"spec": {"containers": [{"name": "c", "image": "i:2"}]}});
        assert_eq!(template_hash(&a), template_hash(&a));
        assert_ne!(template_hash(&a), template_hash(&b));
        assert_eq!(template_hash(&a).len(), 10);
    }
}
