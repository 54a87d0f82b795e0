//! The test API server's own behaviour, request by request.

use kopeo_test_apiserver::{ApiServer, Options};
use serde_json::{Value, json};

struct C {
    http: reqwest::Client,
    base: String,
}

impl C {
    fn new(s: &ApiServer) -> C {
        C {
            http: reqwest::Client::new(),
            base: s.url(),
        }
    }
    async fn req(&self, method: reqwest::Method, path: &str, ctype: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            r = r.header("content-type", ctype).body(b.to_string());
        }
        let resp = r.send().await.unwrap();
        let code = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (code, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }
    async fn get(&self, p: &str) -> (u16, Value) {
        self.req(reqwest::Method::GET, p, "", None).await
    }
    async fn post(&self, p: &str, b: Value) -> (u16, Value) {
        self.req(reqwest::Method::POST, p, "application/json", Some(b)).await
    }
    async fn put(&self, p: &str, b: Value) -> (u16, Value) {
        self.req(reqwest::Method::PUT, p, "application/json", Some(b)).await
    }
    async fn patch(&self, p: &str, t: &str, b: Value) -> (u16, Value) {
        self.req(reqwest::Method::PATCH, p, t, Some(b)).await
    }
    async fn delete(&self, p: &str) -> (u16, Value) {
        self.req(reqwest::Method::DELETE, p, "", None).await
    }
}

fn crd() -> Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "widgets.example.dev"},
        "spec": {"group": "example.dev", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"], "categories": ["all-widgets"]},
            "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                "additionalPrinterColumns": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                                             {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}],
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "required": ["size"], "properties": {
                        "size": {"type": "integer", "minimum": 1, "maximum": 10},
                        "color": {"type": "string", "enum": ["red", "blue"], "default": "red"},
                        "name": {"type": "string", "pattern": "^[a-z]+$"}}},
                    "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}]}})
}

const W: &str = "/apis/example.dev/v1/namespaces/default/widgets";

async fn with_crd() -> (ApiServer, C) {
    let s = ApiServer::start(Options::default());
    let c = C::new(&s);
    let (code, v) = c
        .post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd())
        .await;
    assert_eq!(code, 201, "{v}");
    (s, c)
}

#[tokio::test]
async fn discovery_and_crd_registration() {
    let s = ApiServer::start(Options::default());
    let c = C::new(&s);
    assert_eq!(c.get("/version").await.1["major"], "1");
    assert_eq!(c.get("/apis/example.dev/v1").await.0, 404);
    assert_eq!(c.get(W).await.0, 404, "not served before its CRD exists");
    let (_, v) = c
        .post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd())
        .await;
    let conds = v["status"]["conditions"].as_array().unwrap();
    assert!(
        conds
            .iter()
            .any(|c| c["type"] == "Established" && c["status"] == "True")
    );
    assert_eq!(v["status"]["acceptedNames"]["kind"], "Widget");
    let (code, list) = c.get("/apis/example.dev/v1").await;
    assert_eq!(code, 200);
    let names: Vec<&str> = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["widgets", "widgets/status"]);
    assert_eq!(list["resources"][0]["shortNames"], json!(["wd"]));
    assert!(
        c.get("/apis").await.1["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == "example.dev")
    );
    assert_eq!(c.get("/openapi/v2").await.0, 404);
    assert!(
        c.get("/openapi/v3").await.1["paths"]
            .get("apis/example.dev/v1")
            .is_some()
    );
    assert_eq!(c.get(W).await.1["kind"], "WidgetList");
}

#[tokio::test]
async fn create_semantics_and_errors() {
    let (_s, c) = with_crd().await;
    let (code, v) = c.post(W, json!({"apiVersion": "example.dev/v1", "kind": "Widget", "metadata": {"generateName": "w-"}, "spec": {"size": 3}, "status": {"x": 1}})).await;
    assert_eq!(code, 201, "{v}");
    assert!(v["metadata"]["name"].as_str().unwrap().starts_with("w-"));
    assert_eq!(v["metadata"]["generation"], 1);
    assert!(v["metadata"]["uid"].is_string() && v["metadata"]["creationTimestamp"].is_string());
    assert!(v.get("status").is_none(), "status dropped on create");
    assert_eq!(v["spec"]["color"], "red", "schema default applied");
    let name = v["metadata"]["name"].as_str().unwrap().to_string();
    let again = c
        .post(W, json!({"metadata": {"name": name}, "spec": {"size": 3}}))
        .await;
    assert_eq!((again.0, again.1["reason"].as_str()), (409, Some("AlreadyExists")));
    let missing_ns = c
        .post(
            "/apis/example.dev/v1/namespaces/nope/widgets",
            json!({"metadata": {"name": "a"}, "spec": {"size": 1}}),
        )
        .await;
    assert_eq!(missing_ns.0, 404);
    let (code, v) = c
        .post(
            W,
            json!({"metadata": {"name": "bad"}, "spec": {"size": 11, "color": "green", "name": "X1", "extra": 1}}),
        )
        .await;
    assert_eq!(code, 422);
    let msg = v["message"].as_str().unwrap();
    assert!(
        msg.contains("spec.size") && msg.contains("spec.color") && msg.contains("spec.name"),
        "{msg}"
    );
    let (code, v) = c.post(W, json!({"metadata": {"name": "req"}, "spec": {}})).await;
    assert_eq!(code, 422);
    assert!(v["message"].as_str().unwrap().contains("spec.size: Required value"));
    let (_, v) = c
        .post(
            W,
            json!({"metadata": {"name": "pruned"}, "spec": {"size": 2, "unknown": true}, "junk": 1}),
        )
        .await;
    assert!(
        v["spec"].get("unknown").is_none() && v.get("junk").is_none(),
        "unknown fields pruned: {v}"
    );
    assert_eq!(c.get(&format!("{W}/nope")).await.1["reason"], "NotFound");
}

#[tokio::test]
async fn updates_generation_status_isolation_and_noops() {
    let (_s, c) = with_crd().await;
    let (_, v) = c
        .post(
            W,
            json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"size": 1}}),
        )
        .await;
    let rv1 = v["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    // Labels change: new resourceVersion, same generation.
    let (_, v) = c
        .patch(
            &format!("{W}/a"),
            "application/merge-patch+json",
            json!({"metadata": {"labels": {"x": "2"}}}),
        )
        .await;
    assert_eq!(v["metadata"]["generation"], 1);
    assert_ne!(v["metadata"]["resourceVersion"], rv1.as_str());
    // Spec change bumps generation; status in a main-resource write is ignored.
    let (_, v) = c
        .patch(
            &format!("{W}/a"),
            "application/merge-patch+json",
            json!({"spec": {"size": 2}, "status": {"ignored": true}}),
        )
        .await;
    assert_eq!(v["metadata"]["generation"], 2);
    assert!(v.get("status").is_none());
    // Status writes change only status.
    let (_, v) = c
        .patch(
            &format!("{W}/a/status"),
            "application/merge-patch+json",
            json!({"spec": {"size": 9}, "status": {"observedGeneration": 2}}),
        )
        .await;
    assert_eq!(
        (
            v["spec"]["size"].as_i64(),
            v["status"]["observedGeneration"].as_i64(),
            v["metadata"]["generation"].as_i64()
        ),
        (Some(2), Some(2), Some(2))
    );
    let rv = v["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    // A write that changes nothing keeps the resourceVersion.
    let (_, v) = c
        .patch(
            &format!("{W}/a/status"),
            "application/merge-patch+json",
            json!({"status": {"observedGeneration": 2}}),
        )
        .await;
    assert_eq!(v["metadata"]["resourceVersion"], rv.as_str());
    // PUT with a stale resourceVersion conflicts; server-owned metadata is kept.
    let mut stale = v.clone();
    stale["metadata"]["resourceVersion"] = json!(rv1);
    assert_eq!(c.put(&format!("{W}/a"), stale).await.0, 409);
    let mut put = v.clone();
    put["metadata"]["uid"] = json!("forged");
    put["spec"]["size"] = json!(5);
    let (code, v) = c.put(&format!("{W}/a"), put).await;
    assert_eq!(code, 200, "{v}");
    assert_ne!(v["metadata"]["uid"], "forged");
    assert_eq!(v["metadata"]["generation"], 3);
    // A resourceVersion in a merge patch is a precondition.
    let r = c
        .patch(
            &format!("{W}/a"),
            "application/merge-patch+json",
            json!({"metadata": {"resourceVersion": rv1}, "spec": {"size": 4}}),
        )
        .await;
    assert_eq!(r.0, 409);
    // Strategic merge is for built-in kinds only.
    assert_eq!(
        c.patch(&format!("{W}/a"), "application/strategic-merge-patch+json", json!({}))
            .await
            .0,
        415
    );
}

#[tokio::test]
async fn finalizers_json_patch_and_deletion() {
    let (_s, c) = with_crd().await;
    c.post(W, json!({"metadata": {"name": "f"}, "spec": {"size": 1}})).await;
    // kube's finalizer helper: test that the list is absent (null), then add it.
    let (code, v) = c
        .patch(
            &format!("{W}/f"),
            "application/json-patch+json",
            json!([
        {"op": "test", "path": "/metadata/finalizers", "value": null},
        {"op": "add", "path": "/metadata/finalizers", "value": ["example.dev/cleanup"]}]),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    let (code, v) = c.delete(&format!("{W}/f")).await;
    assert_eq!(code, 200);
    assert!(v["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(c.get(&format!("{W}/f")).await.0, 200, "still there while finalized");
    let r = c
        .patch(
            &format!("{W}/f"),
            "application/merge-patch+json",
            json!({"metadata": {"finalizers": ["example.dev/cleanup", "new"]}}),
        )
        .await;
    assert_eq!(r.0, 422, "no new finalizers while deleting");
    c.patch(
        &format!("{W}/f"),
        "application/json-patch+json",
        json!([{"op": "remove", "path": "/metadata/finalizers/0"}]),
    )
    .await;
    assert_eq!(
        c.get(&format!("{W}/f")).await.0,
        404,
        "gone once the last finalizer is removed"
    );
    // Preconditions and garbage collection of dependents.
    let (_, owner) = c
        .post(W, json!({"metadata": {"name": "owner"}, "spec": {"size": 1}}))
        .await;
    let uid = owner["metadata"]["uid"].clone();
    c.post("/api/v1/namespaces/default/configmaps", json!({"metadata": {"name": "child", "ownerReferences": [{"apiVersion": "example.dev/v1", "kind": "Widget", "name": "owner", "uid": uid}]}, "data": {"a": "b"}})).await;
    let r = c
        .req(
            reqwest::Method::DELETE,
            &format!("{W}/owner"),
            "application/json",
            Some(json!({"preconditions": {"uid": "other"}})),
        )
        .await;
    assert_eq!(r.0, 409);
    c.delete(&format!("{W}/owner")).await;
    assert_eq!(
        c.get("/api/v1/namespaces/default/configmaps/child").await.0,
        404,
        "dependent collected"
    );
    // With two owners, a dependent outlives the first and loses its reference.
    let mut uids = vec![];
    for n in ["o1", "o2"] {
        let (_, o) = c.post(W, json!({"metadata": {"name": n}, "spec": {"size": 1}})).await;
        uids.push(o["metadata"]["uid"].clone());
    }
    let refs: Vec<Value> = ["o1", "o2"]
        .iter()
        .zip(&uids)
        .map(|(n, u)| json!({"apiVersion": "example.dev/v1", "kind": "Widget", "name": n, "uid": u}))
        .collect();
    c.post(
        "/api/v1/namespaces/default/configmaps",
        json!({"metadata": {"name": "shared", "ownerReferences": refs}}),
    )
    .await;
    c.delete(&format!("{W}/o1")).await;
    let (code, shared) = c.get("/api/v1/namespaces/default/configmaps/shared").await;
    assert_eq!(code, 200, "one owner is left");
    assert_eq!(
        shared["metadata"]["ownerReferences"].as_array().map(Vec::len),
        Some(1),
        "{shared}"
    );
    assert_eq!(shared["metadata"]["ownerReferences"][0]["name"], "o2");
    c.delete(&format!("{W}/o2")).await;
    assert_eq!(
        c.get("/api/v1/namespaces/default/configmaps/shared").await.0,
        404,
        "the last owner took it along"
    );
}

#[tokio::test]
async fn lists_selectors_paging_and_table() {
    let (_s, c) = with_crd().await;
    for (n, tier) in [("a", "front"), ("b", "back"), ("c", "front"), ("d", "db")] {
        c.post(
            W,
            json!({"metadata": {"name": n, "labels": {"tier": tier}}, "spec": {"size": 2}}),
        )
        .await;
    }
    let names = |v: &Value| {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(&c.get(&format!("{W}?labelSelector=tier%3Dfront")).await.1),
        ["a", "c"]
    );
    assert_eq!(
        names(&c.get(&format!("{W}?labelSelector=tier%20notin%20(front)")).await.1),
        ["b", "d"]
    );
    assert_eq!(
        names(&c.get(&format!("{W}?fieldSelector=metadata.name%3Db")).await.1),
        ["b"]
    );
    let (_, p1) = c.get(&format!("{W}?limit=3")).await;
    assert_eq!(names(&p1), ["a", "b", "c"]);
    let cont = p1["metadata"]["continue"].as_str().unwrap();
    assert_eq!(names(&c.get(&format!("{W}?limit=3&continue={cont}")).await.1), ["d"]);
    assert!(p1["metadata"]["resourceVersion"].is_string());
    let resp = c
        .http
        .get(format!("{}{W}", c.base))
        .header("accept", "application/json;as=Table;g=meta.k8s.io;v=v1")
        .send()
        .await
        .unwrap();
    let t: Value = resp.json().await.unwrap();
    assert_eq!(t["kind"], "Table");
    let cols: Vec<&str> = t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(cols, ["Name", "Size", "Ready", "Age"]);
    assert_eq!(t["rows"][0]["cells"][1], 2);
    assert_eq!(
        names(&c.get("/apis/example.dev/v1/widgets").await.1).len(),
        4,
        "list across namespaces"
    );
}

#[tokio::test]
async fn watch_replays_from_a_resource_version_and_reports_gone() {
    use futures::StreamExt;
    let (_s, c) = with_crd().await;
    let (_, list) = c.get(W).await;
    let rv = list["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    c.post(W, json!({"metadata": {"name": "w1"}, "spec": {"size": 1}}))
        .await;
    c.patch(
        &format!("{W}/w1"),
        "application/merge-patch+json",
        json!({"spec": {"size": 2}}),
    )
    .await;
    let resp = c
        .http
        .get(format!(
            "{}{W}?watch=true&resourceVersion={rv}&timeoutSeconds=2",
            c.base
        ))
        .send()
        .await
        .unwrap();
    let mut body = resp.bytes_stream();
    let mut buf = String::new();
    while let Some(chunk) = body.next().await {
        buf.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        if buf.lines().count() >= 2 {
            break;
        }
    }
    let kinds: Vec<String> = buf
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(kinds, ["ADDED", "MODIFIED"], "nothing lost between list and watch");
    // Initial events and the end-of-initial-events bookmark.
    let resp = c
        .http
        .get(format!(
            "{}{W}?watch=true&sendInitialEvents=true&allowWatchBookmarks=true&timeoutSeconds=1",
            c.base
        ))
        .send()
        .await
        .unwrap();
    let text = resp.text().await.unwrap();
    let evs: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(evs[0]["type"], "ADDED");
    assert!(
        evs.iter().any(|e| e["type"] == "BOOKMARK"
            && e["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"] == "true")
    );
}

#[tokio::test]
async fn builtins_secrets_and_server_side_apply() {
    let s = ApiServer::start(Options::default());
    let c = C::new(&s);
    let (code, v) = c
        .post(
            "/api/v1/namespaces/default/secrets",
            json!({"metadata": {"name": "s"}, "stringData": {"password": "hunter2"}}),
        )
        .await;
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["data"]["password"], "aHVudGVyMg==");
    assert!(v.get("stringData").is_none());
    assert_eq!(v["type"], "Opaque");
    let bad = c
        .post(
            "/api/v1/namespaces/default/secrets",
            json!({"metadata": {"name": "b"}, "data": {"k": "not base64!"}}),
        )
        .await;
    assert_eq!(bad.0, 422);
    for ns in ["default", "kube-system"] {
        assert_eq!(c.get(&format!("/api/v1/namespaces/{ns}")).await.0, 200);
    }
    let lease = json!({"metadata": {"name": "leader"}, "spec": {"holderIdentity": "a"}});
    let (_, l) = c
        .post("/apis/coordination.k8s.io/v1/namespaces/default/leases", lease)
        .await;
    let mut stale = l.clone();
    c.put("/apis/coordination.k8s.io/v1/namespaces/default/leases/leader", json!({"metadata": {"name": "leader", "resourceVersion": l["metadata"]["resourceVersion"]}, "spec": {"holderIdentity": "b"}})).await;
    stale["spec"]["holderIdentity"] = json!("c");
    assert_eq!(
        c.put("/apis/coordination.k8s.io/v1/namespaces/default/leases/leader", stale)
            .await
            .0,
        409
    );
    // Server-side apply: fieldManager required, creates, then detects conflicts.
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"a": "1"}});
    assert_eq!(
        c.patch(
            "/api/v1/namespaces/default/configmaps/applied",
            "application/apply-patch+yaml",
            cm.clone()
        )
        .await
        .0,
        400
    );
    let (code, v) = c
        .patch(
            "/api/v1/namespaces/default/configmaps/applied?fieldManager=one",
            "application/apply-patch+yaml",
            cm,
        )
        .await;
    assert_eq!(code, 201, "{v}");
    let other = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"a": "2"}});
    assert_eq!(
        c.patch(
            "/api/v1/namespaces/default/configmaps/applied?fieldManager=two",
            "application/apply-patch+yaml",
            other.clone()
        )
        .await
        .0,
        409
    );
    let (code, v) = c
        .patch(
            "/api/v1/namespaces/default/configmaps/applied?fieldManager=two&force=true",
            "application/apply-patch+yaml",
            other,
        )
        .await;
    assert_eq!((code, v["data"]["a"].as_str()), (200, Some("2")));
    // Events (core and events.k8s.io) with field selectors on involvedObject.
    c.post("/apis/events.k8s.io/v1/namespaces/default/events", json!({"metadata": {"name": "e1"}, "regarding": {"kind": "Widget", "name": "a"}, "reason": "Copied", "note": "done", "type": "Normal", "eventTime": "2026-01-01T00:00:00.000000Z", "action": "Copy", "reportingController": "kopeo", "reportingInstance": "x"})).await;
    c.post(
        "/api/v1/namespaces/default/events",
        json!({"metadata": {"name": "e2"}, "involvedObject": {"kind": "Widget", "name": "a"}, "reason": "Copied"}),
    )
    .await;
    let (_, evs) = c
        .get("/api/v1/namespaces/default/events?fieldSelector=involvedObject.kind%3DWidget")
        .await;
    // One resource in two versions, as a real cluster stores Events.
    assert_eq!(evs["items"].as_array().unwrap().len(), 2, "{evs}");
    assert_eq!(evs["items"][0]["message"], "done", "{evs}");
    let (_, evs) = c
        .get("/apis/events.k8s.io/v1/namespaces/default/events?fieldSelector=regarding.kind%3DWidget")
        .await;
    assert_eq!(evs["items"].as_array().unwrap().len(), 2, "{evs}");
    assert_eq!(evs["items"][1]["regarding"]["name"], "a", "{evs}");
    // Deleting a namespace removes what is in it.
    c.post("/api/v1/namespaces", json!({"metadata": {"name": "tmp"}})).await;
    c.post("/api/v1/namespaces/tmp/configmaps", json!({"metadata": {"name": "x"}}))
        .await;
    c.delete("/api/v1/namespaces/tmp").await;
    assert_eq!(c.get("/api/v1/namespaces/tmp/configmaps/x").await.0, 404);
    assert_eq!(c.get("/api/v1/namespaces/tmp").await.0, 404);
}

#[tokio::test]
async fn bearer_token_is_checked_when_configured() {
    let s = ApiServer::start(Options {
        token: Some("t0ken".into()),
        ..Default::default()
    });
    let c = C::new(&s);
    assert_eq!(c.get("/api/v1/namespaces").await.0, 401);
    let ok = c
        .http
        .get(format!("{}/api/v1/namespaces", c.base))
        .bearer_auth("t0ken")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
}

#[tokio::test]
async fn watch_from_a_resource_version_older_than_the_log_is_gone() {
    let s = ApiServer::start(Options {
        watch_log: Some(3),
        ..Default::default()
    });
    let c = C::new(&s);
    let (_, list) = c.get("/api/v1/namespaces/default/configmaps").await;
    let rv = list["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    for i in 0..6 {
        c.post(
            "/api/v1/namespaces/default/configmaps",
            json!({"metadata": {"name": format!("c{i}")}}),
        )
        .await;
    }
    let text = c
        .http
        .get(format!(
            "{}/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=1",
            c.base
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let ev: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(ev["type"], "ERROR");
    assert_eq!(ev["object"]["code"], 410);
    assert_eq!(ev["object"]["reason"], "Expired");
    // Strategic merge on a built-in merges metadata.finalizers.
    c.patch(
        "/api/v1/namespaces/default/configmaps/c0",
        "application/merge-patch+json",
        json!({"metadata": {"finalizers": ["a"]}}),
    )
    .await;
    let (_, v) = c
        .patch(
            "/api/v1/namespaces/default/configmaps/c0",
            "application/strategic-merge-patch+json",
            json!({"metadata": {"finalizers": ["b"]}}),
        )
        .await;
    assert_eq!(v["metadata"]["finalizers"], json!(["a", "b"]));
}

#[tokio::test]
async fn the_audit_log_records_every_request_with_its_verb_and_object() {
    let dir = std::env::temp_dir().join(format!("audit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("audit.log");
    let s = ApiServer::start(Options {
        audit_log: Some(path.clone()),
        ..Default::default()
    });
    let c = C::new(&s);
    c.post(
        "/api/v1/namespaces/default/configmaps",
        json!({"metadata": {"name": "a"}}),
    )
    .await;
    c.patch(
        "/api/v1/namespaces/default/configmaps/a",
        "application/merge-patch+json",
        json!({"data": {"k": "v"}}),
    )
    .await;
    c.get("/api/v1/namespaces/default/configmaps/missing").await;
    c.get("/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1")
        .await;
    let lines: Vec<Value> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    let summary: Vec<(String, String, u64)> = lines
        .iter()
        .map(|l| {
            (
                l["verb"].as_str().unwrap().to_string(),
                l["objectRef"]["name"].as_str().unwrap_or("").to_string(),
                l["responseStatus"]["code"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("create".into(), "".into(), 201),
            ("patch".into(), "a".into(), 200),
            ("get".into(), "missing".into(), 404),
            ("watch".into(), "".into(), 200),
        ]
    );
    assert!(
        lines
            .iter()
            .all(|l| l["apiVersion"] == "audit.k8s.io/v1" && l["objectRef"]["resource"] == "configmaps")
    );
}

#[tokio::test]
async fn validation_rules_are_compiled_with_the_crd_and_run_on_writes() {
    let s = ApiServer::start(Options::default());
    let c = C::new(&s);
    let crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    let mut broken = crd();
    broken["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-validations"] =
        json!([{"rule": "self.size >"}]);
    let (code, v) = c.post(crds, broken).await;
    assert_eq!(code, 422, "a rule that does not compile refuses the CRD: {v}");
    assert!(v["message"].as_str().unwrap().contains("compilation failed"), "{v}");
    let mut ruled = crd();
    ruled["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-validations"] = json!([
        {"rule": "self.size % 2 == 0", "message": "size must be even"},
        {"rule": "self.color == oldSelf.color", "message": "color is immutable"}]);
    assert_eq!(c.post(crds, ruled).await.0, 201);
    let (code, v) = c
        .post(W, json!({"metadata": {"name": "odd"}, "spec": {"size": 3}}))
        .await;
    assert_eq!(code, 422);
    assert_eq!(
        v["message"],
        "Widget.example.dev \"odd\" is invalid: spec: Invalid value: \"object\": size must be even"
    );
    // The transition rule runs only on updates, against the stored value
    // (after defaulting: color is "red").
    assert_eq!(
        c.post(W, json!({"metadata": {"name": "w"}, "spec": {"size": 2}}))
            .await
            .0,
        201
    );
    let (code, v) = c
        .patch(
            &format!("{W}/w"),
            "application/merge-patch+json",
            json!({"spec": {"color": "blue"}}),
        )
        .await;
    assert_eq!(code, 422, "{v}");
    assert!(v["message"].as_str().unwrap().contains("color is immutable"), "{v}");
    let (code, v) = c
        .patch(
            &format!("{W}/w"),
            "application/merge-patch+json",
            json!({"spec": {"size": 4}}),
        )
        .await;
    assert_eq!(code, 200, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_only_requests_get_no_secret_data() {
    let s = ApiServer::start(Options::default());
    let c = C::new(&s);
    c.post("/api/v1/namespaces", json!({"metadata": {"name": "default"}}))
        .await;
    let (code, _) = c
        .post(
            "/api/v1/namespaces/default/secrets",
            json!({"metadata": {"name": "s"}, "stringData": {"password": "hunter2"}}),
        )
        .await;
    assert_eq!(code, 201);
    let meta = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";
    let list: Value = c
        .http
        .get(format!("{}/api/v1/namespaces/default/secrets", c.base))
        .header("accept", meta)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["kind"], "PartialObjectMetadataList");
    assert_eq!(list["items"][0]["kind"], "PartialObjectMetadata");
    assert_eq!(list["items"][0]["metadata"]["name"], "s");
    assert!(!list.to_string().contains("hunter2") && list["items"][0].get("data").is_none());
    // A watch in that shape too.
    let mut w = c
        .http
        .get(format!(
            "{}/api/v1/namespaces/default/secrets?watch=true&timeoutSeconds=1",
            c.base
        ))
        .header("accept", "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1")
        .send()
        .await
        .unwrap();
    let first = w.chunk().await.unwrap().unwrap();
    let ev: Value = serde_json::from_slice(&first).unwrap();
    assert_eq!(ev["object"]["kind"], "PartialObjectMetadata");
    assert!(!String::from_utf8_lossy(&first).contains("hunter2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_allows_what_roles_grant_and_refuses_the_rest() {
    use kopeo_test_apiserver::authz::User;
    let s = ApiServer::start(Options {
        token: Some("admin".into()),
        users: vec![("sa".into(), User::service_account("ops", "bot"))],
        rbac: true,
        ..Default::default()
    });
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, token: &'static str, path: String, body: Option<Value>| {
        let r = http.request(method, format!("{}{path}", s.url())).bearer_auth(token);
        let r = match body {
            Some(b) => r.header("content-type", "application/json").body(b.to_string()),
            None => r,
        };
        async move {
            let resp = r.send().await.unwrap();
            (
                resp.status().as_u16(),
                resp.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    use reqwest::Method;
    for ns in ["ops", "other"] {
        call(
            Method::POST,
            "admin",
            "/api/v1/namespaces".into(),
            Some(json!({"metadata": {"name": ns}})),
        )
        .await;
    }
    let role = json!({"metadata": {"name": "reader"}, "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]});
    call(
        Method::POST,
        "admin",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/ops/roles".into(),
        Some(role),
    )
    .await;
    let binding = json!({"metadata": {"name": "reader"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "bot", "namespace": "ops"}]});
    call(
        Method::POST,
        "admin",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/ops/rolebindings".into(),
        Some(binding),
    )
    .await;
    assert_eq!(
        call(Method::GET, "sa", "/api/v1/namespaces/ops/configmaps".into(), None)
            .await
            .0,
        200
    );
    let (code, status) = call(Method::GET, "sa", "/api/v1/namespaces/other/configmaps".into(), None).await;
    assert_eq!(code, 403, "a Role grants in its own namespace only");
    assert_eq!(
        status["message"],
        "configmaps is forbidden: User \"system:serviceaccount:ops:bot\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"other\""
    );
    let cm = json!({"metadata": {"name": "x"}});
    assert_eq!(
        call(Method::POST, "sa", "/api/v1/namespaces/ops/configmaps".into(), Some(cm))
            .await
            .0,
        403
    );
    assert_eq!(
        call(Method::GET, "nobody", "/api/v1/namespaces/ops/configmaps".into(), None)
            .await
            .0,
        401
    );
    assert_eq!(
        call(Method::GET, "admin", "/api/v1/namespaces/other/configmaps".into(), None)
            .await
            .0,
        200
    );
}
