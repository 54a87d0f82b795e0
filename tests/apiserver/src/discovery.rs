//! Discovery (`/version`, `/api`, `/apis`, group and group-version resource
//! lists) and OpenAPI v3 documents.

use crate::store::{ApiError, State};
use serde_json::{Value, json};
use std::collections::BTreeMap;

fn groups(state: &State) -> BTreeMap<String, Vec<String>> {
    let mut g: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for t in state.types.iter().filter(|t| !t.group.is_empty()) {
        let vs = g.entry(t.group.clone()).or_default();
        if !vs.contains(&t.version) {
            vs.push(t.version.clone());
        }
    }
    g
}

fn group_json(name: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({"name": name, "versions": vs, "preferredVersion": vs.first().cloned().unwrap_or(Value::Null)})
}

fn resource_list(state: &State, group: &str, version: &str) -> Option<Value> {
    let rs: Vec<Value> = state
        .types
        .iter()
        .filter(|t| t.group == group && t.version == version)
        .flat_map(|t| t.api_resource())
        .collect();
    if rs.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": rs}))
}

fn openapi_doc(state: &State, group: &str, version: &str) -> Option<Value> {
    let types: Vec<_> = state
        .types
        .iter()
        .filter(|t| t.group == group && t.version == version)
        .collect();
    if types.is_empty() {
        return None;
    }
    let mut schemas = serde_json::Map::new();
    let mut paths = serde_json::Map::new();
    for t in &types {
        // kubectl looks for a `fieldValidation` parameter on these operations
        // to decide that the server validates (then it sends
        // fieldValidation=Strict instead of validating against OpenAPI v2).
        let gvk = json!({"group": t.group, "version": t.version, "kind": t.kind});
        let param = json!([{"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                           {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
                           {"name": "fieldManager", "in": "query", "schema": {"type": "string"}}]);
        let op = |action: &str| json!({"x-kubernetes-action": action, "x-kubernetes-group-version-kind": gvk, "parameters": param, "responses": {}});
        let prefix = if t.group.is_empty() {
            format!("/api/{}", t.version)
        } else {
            format!("/apis/{}/{}", t.group, t.version)
        };
        let collection = if t.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}", t.plural)
        } else {
            format!("{prefix}/{}", t.plural)
        };
        paths.insert(collection.clone(), json!({"post": op("post"), "get": op("list")}));
        paths.insert(
            format!("{collection}/{{name}}"),
            json!({"put": op("put"), "patch": op("patch"), "get": op("get"), "delete": op("delete")}),
        );
    }
    for t in types {
        let mut s = t
            .schema
            .clone()
            .unwrap_or_else(|| json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
        s["x-kubernetes-group-version-kind"] = json!([{"group": t.group, "version": t.version, "kind": t.kind}]);
        let prefix = if t.group.is_empty() {
            "io.k8s.api.core.v1".to_string()
        } else {
            t.group.split('.').rev().collect::<Vec<_>>().join(".")
        };
        schemas.insert(format!("{prefix}.{}.{}", t.version, t.kind), s);
    }
    Some(
        json!({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.33.0"}, "paths": paths, "components": {"schemas": schemas}}),
    )
}

/// Answer a discovery or OpenAPI GET; `None` when `path` is not one.
pub fn serve(state: &State, path: &str) -> Option<Result<Value, ApiError>> {
    let nf = || {
        Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ))
    };
    let segs: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    Some(match segs.as_slice() {
        ["version"] => Ok(
            json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-kopeo-test", "gitCommit": "", "gitTreeState": "clean",
                                  "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24", "compiler": "gc", "platform": "linux/amd64"}),
        ),
        ["api"] => Ok(json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})),
        ["api", "v1"] => resource_list(state, "", "v1").map_or_else(nf, Ok),
        ["apis"] => {
            let gs: Vec<Value> = groups(state).iter().map(|(n, vs)| group_json(n, vs)).collect();
            Ok(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": gs}))
        }
        ["apis", g] => match groups(state).get(*g) {
            Some(vs) => {
                let mut v = group_json(g, vs);
                v["kind"] = json!("APIGroup");
                v["apiVersion"] = json!("v1");
                Ok(v)
            }
            None => nf(),
        },
        ["apis", g, v] => resource_list(state, g, v).map_or_else(nf, Ok),
        ["openapi", "v2"] => nf(),
        ["openapi", "v3"] => {
            let mut paths = serde_json::Map::new();
            paths.insert(
                "api/v1".into(),
                json!({"serverRelativeURL": format!("/openapi/v3/api/v1?hash={}", state.rv)}),
            );
            for (g, vs) in groups(state) {
                for v in vs {
                    paths.insert(
                        format!("apis/{g}/{v}"),
                        json!({"serverRelativeURL": format!("/openapi/v3/apis/{g}/{v}?hash={}", state.rv)}),
                    );
                }
            }
            Ok(json!({"paths": paths}))
        }
        ["openapi", "v3", "api", "v1"] => openapi_doc(state, "", "v1").map_or_else(nf, Ok),
        ["openapi", "v3", "apis", g, v] => openapi_doc(state, g, v).map_or_else(nf, Ok),
        _ => return None,
    })
}
