//! Authentication by bearer token and RBAC authorization, evaluated as the
//! real API server's RBAC authorizer does: ClusterRoleBindings, then the
//! RoleBindings of the request's namespace (to a Role there or a
//! ClusterRole); a rule matches on API group, resource (or
//! `resource/subresource`), verb and, for named requests, resourceNames;
//! `*` matches all. Every authenticated user may read discovery and
//! OpenAPI (`system:discovery`). Members of `system:masters` may do anything.

use crate::store::State;
use serde_json::Value;

/// Who sent a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
}

impl User {
    /// A ServiceAccount's user (`system:serviceaccount:NS:NAME`) and groups.
    pub fn service_account(namespace: &str, name: &str) -> User {
        User {
            name: format!("system:serviceaccount:{namespace}:{name}"),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".into(),
            ],
        }
    }

    /// The cluster administrator.
    pub fn admin() -> User {
        User {
            name: "system:admin".into(),
            groups: vec!["system:masters".into(), "system:authenticated".into()],
        }
    }
}

/// What a resource request asks to do.
#[derive(Debug, Clone)]
pub struct Attributes<'a> {
    pub verb: &'a str,
    pub group: &'a str,
    pub resource: &'a str,
    pub subresource: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
}

fn has(list: Option<&Value>, want: &str) -> bool {
    list.and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|v| v.as_str().is_some_and(|s| s == "*" || s == want)))
}

fn rule_allows(rule: &Value, a: &Attributes<'_>) -> bool {
    let resource = match a.subresource {
        Some(sub) => format!("{}/{sub}", a.resource),
        None => a.resource.to_string(),
    };
    let names = rule.get("resourceNames").and_then(Value::as_array);
    let name_ok = match names {
        None => true,
        Some(n) if n.is_empty() => true,
        Some(n) => a.name.is_some_and(|want| n.iter().any(|v| v.as_str() == Some(want))),
    };
    has(rule.get("apiGroups"), a.group)
        && has(rule.get("resources"), &resource)
        && has(rule.get("verbs"), a.verb)
        && name_ok
}

fn subject_matches(subject: &Value, user: &User) -> bool {
    let kind = subject.get("kind").and_then(Value::as_str).unwrap_or("");
    let name = subject.get("name").and_then(Value::as_str).unwrap_or("");
    match kind {
        "User" => name == user.name,
        "Group" => user.groups.iter().any(|g| g == name),
        "ServiceAccount" => {
            let ns = subject.get("namespace").and_then(Value::as_str).unwrap_or("");
            user.name == format!("system:serviceaccount:{ns}:{name}")
        }
        _ => false,
    }
}

fn objects(state: &State, plural: &str, ns: Option<&str>) -> Vec<Value> {
    match state.find("rbac.authorization.k8s.io", "v1", plural) {
        Some(rt) => state.list(&rt.clone(), ns),
        None => vec![],
    }
}

fn role_rules(state: &State, role_ref: &Value, ns: Option<&str>) -> Vec<Value> {
    let kind = role_ref.get("kind").and_then(Value::as_str).unwrap_or("");
    let name = role_ref.get("name").and_then(Value::as_str).unwrap_or("");
    let found = match (kind, ns) {
        ("ClusterRole", _) => objects(state, "clusterroles", None),
        ("Role", Some(ns)) => objects(state, "roles", Some(ns)),
        _ => vec![],
    };
    found
        .into_iter()
        .find(|r| r.pointer("/metadata/name").and_then(Value::as_str) == Some(name))
        .and_then(|r| r.get("rules").and_then(Value::as_array).cloned())
        .unwrap_or_default()
}

/// Whether `user` may do what `a` describes.
pub fn allowed(state: &State, user: &User, a: &Attributes<'_>) -> bool {
    if user.groups.iter().any(|g| g == "system:masters") {
        return true;
    }
    let bound = |binding: &Value| {
        binding
            .get("subjects")
            .and_then(Value::as_array)
            .is_some_and(|s| s.iter().any(|s| subject_matches(s, user)))
    };
    let mut rules = vec![];
    for b in objects(state, "clusterrolebindings", None).iter().filter(|b| bound(b)) {
        rules.extend(role_rules(state, &b["roleRef"], None));
    }
    if let Some(ns) = a.namespace {
        for b in objects(state, "rolebindings", Some(ns)).iter().filter(|b| bound(b)) {
            rules.extend(role_rules(state, &b["roleRef"], Some(ns)));
        }
    }
    rules.iter().any(|r| rule_allows(r, a))
}

/// The API server's message for a refused request.
pub fn forbidden_message(user: &User, a: &Attributes<'_>, kind_group: &str) -> String {
    let resource = match a.subresource {
        Some(s) => format!("{}/{s}", a.resource),
        None => a.resource.to_string(),
    };
    let what = match a.name {
        Some(n) => format!("{kind_group} {n:?} is forbidden"),
        None => format!("{kind_group} is forbidden"),
    };
    let scope = match a.namespace {
        Some(ns) => format!(" in the namespace {ns:?}"),
        None => " at the cluster scope".to_string(),
    };
    format!(
        "{what}: User {:?} cannot {} resource {resource:?} in API group {:?}{scope}",
        user.name, a.verb, a.group
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rules_match_group_resource_verb_and_names() {
        let rule =
            json!({"apiGroups": [""], "resources": ["secrets", "pods/log"], "verbs": ["get"], "resourceNames": ["a"]});
        let a = |verb, resource, sub, name| Attributes {
            verb,
            group: "",
            resource,
            subresource: sub,
            namespace: Some("ns"),
            name,
        };
        assert!(rule_allows(&rule, &a("get", "secrets", None, Some("a"))));
        assert!(!rule_allows(&rule, &a("get", "secrets", None, Some("b"))));
        assert!(!rule_allows(&rule, &a("list", "secrets", None, None)));
        assert!(rule_allows(&rule, &a("get", "pods", Some("log"), Some("a"))));
        assert!(!rule_allows(&rule, &a("get", "pods", None, Some("a"))));
        let star = json!({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]});
        assert!(rule_allows(&star, &a("delete", "anything", Some("status"), None)));
    }
}
