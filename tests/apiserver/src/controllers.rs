//! The controllers of kube-controller-manager this server runs when asked
//! ([`crate::Options::controllers`]): the job, Deployment and ReplicaSet
//! controllers, the ServiceAccount
//! controller's `default` account in every namespace, and the root CA
//! publisher's `kube-root-ca.crt` ConfigMap (when the server serves TLS).

use crate::http::{Shared, lock};
use crate::store::{State, WriteOpts};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// Run every controller until the runtime stops.
pub async fn run(shared: Arc<Shared>, ca: Option<String>) {
    let mut jobs = crate::jobs::JobController::default();
    let mut rx = lock(&shared).tx.subscribe();
    loop {
        {
            let mut st = lock(&shared);
            namespaces(&mut st, ca.as_deref());
            jobs.sync_all(&mut st);
            crate::deployments::sync_all(&mut st);
        }
        // Wake on any change, and at least twice a second for backoffs.
        let _ = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await;
    }
}

fn namespaces(st: &mut State, ca: Option<&str>) {
    let (Some(ns_rt), Some(sa_rt), Some(cm_rt)) = (
        st.find("", "v1", "namespaces").cloned(),
        st.find("", "v1", "serviceaccounts").cloned(),
        st.find("", "v1", "configmaps").cloned(),
    ) else {
        return;
    };
    for n in st.list(&ns_rt, None) {
        if n.pointer("/metadata/deletionTimestamp").is_some() {
            continue;
        }
        let name = n
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if st.get(&sa_rt, &name, "default").is_err() {
            let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}});
            let _ = st.create(&sa_rt, &name, sa, &WriteOpts::default());
        }
        // Published even without TLS (then empty), as every real cluster has it.
        let ca = ca.unwrap_or("");
        {
            if st.get(&cm_rt, &name, "kube-root-ca.crt").is_err() {
                let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kube-root-ca.crt",
                    "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}},
                    "data": {"ca.crt": ca}});
                let _ = st.create(&cm_rt, &name, cm, &WriteOpts::default());
            }
        }
    }
}
