//! The resource types the server knows: built-ins, and those registered by
//! CustomResourceDefinitions.

use serde_json::{Value, json};

/// One served resource type (a group/version/plural).
#[derive(Debug, Clone)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub status_subresource: bool,
    /// The structural OpenAPI v3 schema (custom resources only).
    pub schema: Option<Value>,
    /// `additionalPrinterColumns` (custom resources only).
    pub printer_columns: Vec<Value>,
    /// Custom resources take no strategic merge patches.
    pub custom: bool,
}

impl ResourceType {
    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The key objects of this type are stored under (events.k8s.io Events
    /// are core Events, see [`crate::events`]).
    pub fn key(&self) -> String {
        if crate::events::is_events_v1(&self.group, &self.plural) {
            return "/events".into();
        }
        format!("{}/{}", self.group, self.plural)
    }

    /// Whether the API server keeps `metadata.generation` for this type (its
    /// registry strategy sets it: custom resources and the kinds with a spec
    /// a controller acts on; not Secrets, ConfigMaps or Namespaces).
    pub fn has_generation(&self) -> bool {
        self.custom
            || matches!(
                (self.group.as_str(), self.plural.as_str()),
                ("apps", _) | ("batch", _) | ("apiextensions.k8s.io", _)
            )
    }

    /// An object of this type in its stored form.
    pub fn to_storage(&self, o: Value) -> Value {
        if crate::events::is_events_v1(&self.group, &self.plural) {
            return crate::events::to_core(&o);
        }
        o
    }

    /// A stored object as this type (version) serves it.
    pub fn present(&self, o: &Value) -> Value {
        let mut o = if crate::events::is_events_v1(&self.group, &self.plural) {
            crate::events::from_core(o)
        } else {
            o.clone()
        };
        o["apiVersion"] = Value::String(self.api_version());
        o["kind"] = Value::String(self.kind.clone());
        o
    }

    pub(crate) fn builtin(
        group: &str,
        version: &str,
        kind: &str,
        plural: &str,
        namespaced: bool,
        short: &[&str],
        status: bool,
    ) -> Self {
        ResourceType {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            plural: plural.into(),
            singular: kind.to_lowercase(),
            namespaced,
            short_names: short.iter().map(|s| s.to_string()).collect(),
            // `kubectl get all`: the workload kinds the real server puts in it.
            categories: if matches!(plural, "services" | "deployments" | "pods" | "jobs") {
                vec!["all".into()]
            } else {
                vec![]
            },
            status_subresource: status,
            schema: None,
            printer_columns: vec![],
            custom: false,
        }
    }

    /// The discovery entry (`APIResource`) of this type.
    pub fn api_resource(&self) -> Vec<Value> {
        let mut verbs = vec!["create", "delete", "get", "list", "patch", "update", "watch"];
        if self.namespaced {
            verbs.push("deletecollection");
        }
        let mut out = vec![json!({
            "name": self.plural, "singularName": self.singular, "namespaced": self.namespaced, "kind": self.kind,
            "verbs": verbs, "shortNames": self.short_names, "categories": self.categories,
        })];
        if self.status_subresource {
            out.push(
                json!({"name": format!("{}/status", self.plural), "singularName": "", "namespaced": self.namespaced,
                             "kind": self.kind, "verbs": ["get", "patch", "update"]}),
            );
        }
        out
    }
}

/// The built-in types every server has.
pub fn builtins() -> Vec<ResourceType> {
    vec![
        ResourceType::builtin("", "v1", "Namespace", "namespaces", false, &["ns"], true),
        ResourceType::builtin("", "v1", "Secret", "secrets", true, &[], false),
        ResourceType::builtin("", "v1", "ConfigMap", "configmaps", true, &["cm"], false),
        ResourceType::builtin("", "v1", "ServiceAccount", "serviceaccounts", true, &["sa"], false),
        ResourceType::builtin("", "v1", "Event", "events", true, &["ev"], false),
        ResourceType::builtin("events.k8s.io", "v1", "Event", "events", true, &["ev"], false),
        ResourceType::builtin("coordination.k8s.io", "v1", "Lease", "leases", true, &[], false),
        ResourceType::builtin("", "v1", "Service", "services", true, &["svc"], true),
        ResourceType::builtin("apps", "v1", "Deployment", "deployments", true, &["deploy"], true),
        ResourceType::builtin("apps", "v1", "ReplicaSet", "replicasets", true, &["rs"], true),
        ResourceType::builtin("", "v1", "Pod", "pods", true, &["po"], true),
        ResourceType::builtin("batch", "v1", "Job", "jobs", true, &[], true),
        ResourceType::builtin("rbac.authorization.k8s.io", "v1", "Role", "roles", true, &[], false),
        ResourceType::builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "RoleBinding",
            "rolebindings",
            true,
            &[],
            false,
        ),
        ResourceType::builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRole",
            "clusterroles",
            false,
            &[],
            false,
        ),
        ResourceType::builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
            false,
            &[],
            false,
        ),
        ResourceType::builtin(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
            &["crd", "crds"],
            true,
        ),
    ]
}

/// The types a CustomResourceDefinition serves (one per served version).
pub fn from_crd(crd: &Value) -> Result<Vec<ResourceType>, String> {
    let spec = crd.get("spec").ok_or("spec is required")?;
    let s = |p: &str| spec.pointer(p).and_then(Value::as_str).map(str::to_string);
    let group = s("/group").ok_or("spec.group is required")?;
    let kind = s("/names/kind").ok_or("spec.names.kind is required")?;
    let plural = s("/names/plural").ok_or("spec.names.plural is required")?;
    let name = crd.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    if name != format!("{plural}.{group}") {
        return Err(format!(
            "metadata.name: Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"
        ));
    }
    let namespaced = match s("/scope").as_deref() {
        Some("Namespaced") => true,
        Some("Cluster") => false,
        _ => return Err("spec.scope: Unsupported value: must be Namespaced or Cluster".into()),
    };
    let strings = |p: &str| -> Vec<String> {
        spec.pointer(p)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    };
    let versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .ok_or("spec.versions is required")?;
    let mut out = vec![];
    for v in versions {
        if !v.get("served").and_then(Value::as_bool).unwrap_or(false) {
            continue;
        }
        out.push(ResourceType {
            group: group.clone(),
            version: v
                .get("name")
                .and_then(Value::as_str)
                .ok_or("spec.versions[].name is required")?
                .to_string(),
            kind: kind.clone(),
            plural: plural.clone(),
            singular: s("/names/singular").unwrap_or_else(|| kind.to_lowercase()),
            namespaced,
            short_names: strings("/names/shortNames"),
            categories: strings("/names/categories"),
            status_subresource: v.pointer("/subresources/status").is_some(),
            schema: v.pointer("/schema/openAPIV3Schema").cloned(),
            printer_columns: v
                .get("additionalPrinterColumns")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            custom: true,
        });
    }
    Ok(out)
}
