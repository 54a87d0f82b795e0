//! The state of the server and the API semantics of every write: resource
//! versions from one counter, generation, status isolation, finalizers,
//! garbage collection, CRD registration, secrets, and an event log for watch.

use crate::types::{self, ResourceType};
use crate::{patch, schema, time};
use base64::Engine as _;
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use tokio::sync::broadcast;

/// How many events the watch log keeps by default; older resourceVersions get 410 Gone.
pub const LOG_SIZE: usize = 4096;

/// An API error, rendered as a `Status` object.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }
    /// The `Status` body.
    pub fn status(&self) -> Value {
        let mut s = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                           "message": self.message, "reason": self.reason, "code": self.code});
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

fn not_found(rt: &ResourceType, name: &str) -> ApiError {
    let what = if rt.group.is_empty() {
        rt.plural.clone()
    } else {
        format!("{}.{}", rt.plural, rt.group)
    };
    let mut e = ApiError::new(404, "NotFound", format!("{what} \"{name}\" not found"));
    e.details = Some(json!({"name": name, "group": rt.group, "kind": rt.plural}));
    e
}

fn invalid(rt: &ResourceType, name: &str, errs: &[String]) -> ApiError {
    let what = if rt.group.is_empty() {
        rt.kind.clone()
    } else {
        format!("{}.{}", rt.kind, rt.group)
    };
    let msg = if errs.len() == 1 {
        errs[0].clone()
    } else {
        format!("[{}]", errs.join(", "))
    };
    let causes: Vec<Value> = errs
        .iter()
        .map(|e| {
            // A cause carries the path apart from what is wrong with it.
            let (field, message) = e.split_once(": ").unwrap_or(("", e));
            let reason = if e.contains("Required value") {
                "FieldValueRequired"
            } else if e.contains("Unsupported value") {
                "FieldValueNotSupported"
            } else {
                "FieldValueInvalid"
            };
            json!({"reason": reason, "message": message, "field": field})
        })
        .collect();
    let mut err = ApiError::new(422, "Invalid", format!("{what} \"{name}\" is invalid: {msg}"));
    err.details = Some(json!({"name": name, "group": rt.group, "kind": rt.kind, "causes": causes}));
    err
}

/// One change, as a watch sees it.
#[derive(Debug, Clone)]
pub struct Event {
    pub rv: u64,
    pub kind: &'static str,
    pub type_key: String,
    pub namespace: String,
    pub object: Value,
}

/// Everything the server holds.
pub struct State {
    pub types: Vec<ResourceType>,
    objects: BTreeMap<(String, String, String), Value>,
    pub rv: u64,
    log: VecDeque<Event>,
    /// Events with rv ≤ this are no longer in the log.
    pub log_floor: u64,
    pub tx: broadcast::Sender<Event>,
    uid: u64,
    log_size: usize,
}

fn meta<'a>(o: &'a Value, k: &str) -> Option<&'a Value> {
    o.get("metadata").and_then(|m| m.get(k))
}

fn meta_str(o: &Value, k: &str) -> String {
    meta(o, k).and_then(Value::as_str).unwrap_or("").to_string()
}

fn set_meta(o: &mut Value, k: &str, v: Value) {
    if !o.get("metadata").is_some_and(Value::is_object) {
        o["metadata"] = json!({});
    }
    if v.is_null() {
        if let Some(m) = o["metadata"].as_object_mut() {
            m.remove(k);
        }
    } else {
        o["metadata"][k] = v;
    }
}

/// The parts of an object that count for `generation`: all but metadata and status.
fn spec_part(o: &Value) -> Value {
    let mut c = o.clone();
    if let Some(m) = c.as_object_mut() {
        for k in ["metadata", "status", "apiVersion", "kind"] {
            m.remove(k);
        }
    }
    c
}

/// What kind of patch, and where it goes.
#[derive(Debug, Clone, Copy)]
pub struct PatchRequest<'a> {
    /// `merge`, `json`, `strategic` or `apply`.
    pub kind: &'a str,
    /// The status subresource.
    pub status: bool,
    /// Server-side apply's `force`.
    pub force: bool,
}

/// Keep `new` from changing what its endpoint may not change: through the
/// status subresource only status changes; through the main resource of a
/// type with a status subresource, status does not.
fn isolate(rt: &ResourceType, old: &Value, new: Value, status: bool) -> Value {
    let (mut out, keep) = if status {
        (old.clone(), new.get("status").cloned())
    } else {
        (new, old.get("status").cloned())
    };
    if !status && !rt.status_subresource {
        return out;
    }
    match keep {
        Some(s) => out["status"] = s,
        None => {
            if let Some(m) = out.as_object_mut() {
                m.remove("status");
            }
        }
    }
    out
}

/// The 409 a stale write gets.
fn conflict(rt: &ResourceType, name: &str) -> ApiError {
    let what = if rt.group.is_empty() {
        rt.plural.clone()
    } else {
        format!("{}.{}", rt.plural, rt.group)
    };
    ApiError::new(
        409,
        "Conflict",
        format!(
            "Operation cannot be fulfilled on {what} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
        ),
    )
}

/// Options of a write that the HTTP layer passes on.
#[derive(Debug, Clone, Default)]
pub struct WriteOpts {
    pub dry_run: bool,
    /// `fieldValidation=Strict`: unknown fields are an error instead of being pruned.
    pub strict: bool,
    pub field_manager: Option<String>,
}

impl State {
    /// A fresh server with `default`, `kube-system` and `kube-public`.
    pub fn new() -> State {
        Self::with_log_size(LOG_SIZE)
    }

    /// A fresh server whose watch log keeps `log_size` events.
    pub fn with_log_size(log_size: usize) -> State {
        let (tx, _) = broadcast::channel(4096);
        let mut s = State {
            types: types::builtins(),
            objects: BTreeMap::new(),
            rv: 1,
            log: VecDeque::new(),
            log_floor: 0,
            tx,
            uid: 0,
            log_size: log_size.max(1),
        };
        for ns in ["default", "kube-system", "kube-public"] {
            let rt = s.find("", "v1", "namespaces").cloned();
            if let Some(rt) = rt {
                let _ = s.create(
                    &rt,
                    "",
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
                    &WriteOpts::default(),
                );
            }
        }
        s
    }

    /// Serve further built-in types (an OpenShift API group).
    pub fn add_types(&mut self, types: Vec<ResourceType>) {
        self.types.extend(types);
    }

    /// The type served at group/version/plural.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
    }

    fn next_uid(&mut self) -> String {
        self.uid += 1;
        let n = self.uid;
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0) as u64;
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            (t >> 32) as u32,
            (t >> 16) as u16,
            n & 0xfff,
            (n >> 12) & 0xfff,
            t & 0xffff_ffff_ffff
        )
    }

    fn uid_exists(&self, uid: &str) -> bool {
        self.objects
            .values()
            .any(|o| meta(o, "uid").and_then(Value::as_str) == Some(uid))
    }

    fn emit(&mut self, kind: &'static str, rt: &ResourceType, object: Value) {
        let ev = Event {
            rv: self.rv,
            kind,
            type_key: rt.key(),
            namespace: meta_str(&object, "namespace"),
            object,
        };
        self.log.push_back(ev.clone());
        while self.log.len() > self.log_size {
            if let Some(old) = self.log.pop_front() {
                self.log_floor = old.rv;
            }
        }
        let _ = self.tx.send(ev);
    }

    /// Events after `rv` for a type, or `None` if the log no longer reaches back that far.
    pub fn events_since(&self, rv: u64, type_key: &str) -> Option<Vec<Event>> {
        if rv < self.log_floor {
            return None;
        }
        Some(
            self.log
                .iter()
                .filter(|e| e.rv > rv && e.type_key == type_key)
                .cloned()
                .collect(),
        )
    }

    /// An object as served for `rt` (its apiVersion is the requested version).
    fn present(rt: &ResourceType, o: &Value) -> Value {
        rt.present(o)
    }

    fn key(rt: &ResourceType, ns: &str, name: &str) -> (String, String, String) {
        (
            rt.key(),
            if rt.namespaced { ns.to_string() } else { String::new() },
            name.to_string(),
        )
    }

    /// Get one object.
    pub fn get(&self, rt: &ResourceType, ns: &str, name: &str) -> Result<Value, ApiError> {
        self.objects
            .get(&Self::key(rt, ns, name))
            .map(|o| Self::present(rt, o))
            .ok_or_else(|| not_found(rt, name))
    }

    /// All objects of a type (in one namespace, or all), sorted by namespace and name.
    pub fn list(&self, rt: &ResourceType, ns: Option<&str>) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|((k, n, _), _)| *k == rt.key() && ns.is_none_or(|want| !rt.namespaced || n == want))
            .map(|(_, o)| Self::present(rt, o))
            .collect()
    }

    fn check_namespace(&self, rt: &ResourceType, ns: &str) -> Result<(), ApiError> {
        if !rt.namespaced {
            return Ok(());
        }
        let key = ("/namespaces".to_string(), String::new(), ns.to_string());
        match self.objects.get(&key) {
            None => Err(ApiError::new(404, "NotFound", format!("namespaces \"{ns}\" not found"))),
            Some(n) if meta(n, "deletionTimestamp").is_some() => Err(ApiError::new(
                403,
                "Forbidden",
                format!("unable to create new content in namespace {ns} because it is being terminated"),
            )),
            Some(_) => Ok(()),
        }
    }

    /// Type-specific normalisation and validation of a new object version.
    fn admit(
        &self,
        rt: &ResourceType,
        name: &str,
        o: &mut Value,
        old: Option<&Value>,
        strict: bool,
    ) -> Result<(), ApiError> {
        if rt.custom {
            if let Some(s) = &rt.schema {
                let before = if strict { Some(o.clone()) } else { None };
                schema::apply(o, s).map_err(|errs| invalid(rt, name, &errs))?;
                // Validation rules run on the defaulted, pruned object.
                let mut errs = vec![];
                crate::cel::validate(o, old, s, &mut errs);
                if !errs.is_empty() {
                    return Err(invalid(rt, name, &errs));
                }
                if let Some(b) = before {
                    let mut unknown = vec![];
                    schema::dropped_fields(&b, o, "", &mut unknown);
                    if !unknown.is_empty() {
                        let list: Vec<String> = unknown.iter().map(|u| format!("unknown field \"{u}\"")).collect();
                        return Err(ApiError::new(
                            400,
                            "BadRequest",
                            format!(
                                "{} in body is invalid: strict decoding error: {}",
                                rt.kind,
                                list.join(", ")
                            ),
                        ));
                    }
                }
            }
        }
        match (rt.group.as_str(), rt.plural.as_str()) {
            ("", "secrets") => {
                if let Some(Value::Object(sd)) = o.as_object_mut().and_then(|m| m.remove("stringData")) {
                    for (k, v) in sd {
                        let s = v.as_str().unwrap_or("").to_string();
                        o["data"][k] = Value::String(base64::engine::general_purpose::STANDARD.encode(s));
                    }
                }
                let mut errs = vec![];
                if let Some(Value::Object(d)) = o.get("data") {
                    for (k, v) in d {
                        if v.as_str()
                            .is_none_or(|s| base64::engine::general_purpose::STANDARD.decode(s).is_err())
                        {
                            errs.push(format!("data[{k}]: Invalid value: illegal base64 data"));
                        }
                    }
                }
                if !errs.is_empty() {
                    return Err(invalid(rt, name, &errs));
                }
                if o.get("type").is_none() {
                    o["type"] = Value::String("Opaque".into());
                }
            }
            ("apiextensions.k8s.io", "customresourcedefinitions") => {
                for t in types::from_crd(o).map_err(|e| invalid(rt, name, &[e]))? {
                    if let Some(s) = &t.schema {
                        crate::cel::compile_all(s, &t.version).map_err(|errs| invalid(rt, name, &errs))?;
                    }
                }
            }
            ("batch", "jobs") => crate::workloads::job(o, old).map_err(|errs| invalid(rt, name, &errs))?,
            ("", "pods") if old.is_none() => {
                let ns = meta_str(o, "namespace");
                let suffix = format!("{:05x}", (self.rv * 104_729 + self.uid) % 0xfffff);
                let sa_rt = self.find("", "v1", "serviceaccounts").cloned();
                let account = |sa: &str| match sa_rt.as_ref().map(|t| self.get(t, &ns, sa)) {
                    Some(Ok(a)) => crate::workloads::Account::Found {
                        automount: a.get("automountServiceAccountToken").and_then(Value::as_bool),
                    },
                    _ => crate::workloads::Account::Missing,
                };
                crate::workloads::pod(o, &ns, account, &suffix).map_err(|(code, msg)| match code {
                    403 => ApiError::new(403, "Forbidden", msg),
                    _ => invalid(rt, name, &[msg]),
                })?;
            }
            ("", "namespaces") if o.pointer("/status/phase").is_none() => {
                o["status"] = json!({"phase": "Active"});
            }
            _ => {}
        }
        Ok(())
    }

    /// Create an object.
    pub fn create(&mut self, rt: &ResourceType, ns: &str, o: Value, opts: &WriteOpts) -> Result<Value, ApiError> {
        if !o.is_object() {
            return Err(ApiError::new(400, "BadRequest", "the body is not an object"));
        }
        let mut o = rt.to_storage(o);
        let mut name = meta_str(&o, "name");
        if name.is_empty() {
            let prefix = meta_str(&o, "generateName");
            if prefix.is_empty() {
                return Err(invalid(
                    rt,
                    "",
                    &["metadata.name: Required value: name or generateName is required".into()],
                ));
            }
            name = format!("{prefix}{:05x}", (self.rv * 7919 + self.uid) % 0xfffff);
            set_meta(&mut o, "name", Value::String(name.clone()));
        }
        if rt.namespaced {
            let body_ns = meta_str(&o, "namespace");
            if !body_ns.is_empty() && body_ns != ns {
                return Err(ApiError::new(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            set_meta(&mut o, "namespace", Value::String(ns.to_string()));
            self.check_namespace(rt, ns)?;
        } else {
            set_meta(&mut o, "namespace", Value::Null);
        }
        let key = Self::key(rt, ns, &name);
        if self.objects.contains_key(&key) {
            let what = if rt.group.is_empty() {
                rt.plural.clone()
            } else {
                format!("{}.{}", rt.plural, rt.group)
            };
            let mut e = ApiError::new(409, "AlreadyExists", format!("{what} \"{name}\" already exists"));
            e.details = Some(json!({"name": name, "group": rt.group, "kind": rt.plural}));
            return Err(e);
        }
        if rt.status_subresource && rt.plural != "namespaces" && rt.plural != "customresourcedefinitions" {
            if let Some(m) = o.as_object_mut() {
                m.remove("status");
            }
        }
        for k in ["deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion"] {
            set_meta(&mut o, k, Value::Null);
        }
        self.admit(rt, &name, &mut o, None, opts.strict)?;
        let uid = self.next_uid();
        if rt.group == "batch" && rt.plural == "jobs" {
            crate::workloads::job_selector(&mut o, &uid, &name);
        }
        set_meta(&mut o, "uid", Value::String(uid));
        set_meta(&mut o, "creationTimestamp", Value::String(time::now()));
        if rt.has_generation() {
            set_meta(&mut o, "generation", json!(1));
        }
        if let Some(m) = &opts.field_manager {
            set_meta(
                &mut o,
                "managedFields",
                json!([{"manager": m, "operation": "Update", "apiVersion": rt.api_version(), "time": time::now(), "fieldsType": "FieldsV1", "fieldsV1": {}}]),
            );
        }
        if opts.dry_run {
            return Ok(Self::present(rt, &o));
        }
        self.rv += 1;
        set_meta(&mut o, "resourceVersion", Value::String(self.rv.to_string()));
        if rt.plural == "customresourcedefinitions" {
            self.register_crd(&mut o);
        }
        self.objects.insert(key, o.clone());
        self.emit("ADDED", rt, o.clone());
        Ok(Self::present(rt, &o))
    }

    /// Serve a CRD's versions and report it established.
    fn register_crd(&mut self, crd: &mut Value) {
        let Ok(new_types) = types::from_crd(crd) else { return };
        if let Some(first) = new_types.first() {
            let (g, p) = (first.group.clone(), first.plural.clone());
            self.types.retain(|t| !(t.group == g && t.plural == p && t.custom));
        }
        self.types.extend(new_types);
        let now = time::now();
        crd["status"] = json!({
            "acceptedNames": crd["spec"]["names"].clone(),
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now},
            ],
            "storedVersions": crd["spec"]["versions"].as_array().map(|v| v.iter().filter(|x| x["storage"] == true).map(|x| x["name"].clone()).collect::<Vec<_>>()).unwrap_or_default(),
        });
    }

    /// Replace an object (PUT), or its status (`status` = true).
    pub fn update(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        o: Value,
        status: bool,
        opts: &WriteOpts,
    ) -> Result<Value, ApiError> {
        let old = self
            .objects
            .get(&Self::key(rt, ns, name))
            .cloned()
            .ok_or_else(|| not_found(rt, name))?;
        let body_name = meta_str(&o, "name");
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::new(
                400,
                "BadRequest",
                "the name of the object does not match the name on the URL",
            ));
        }
        let rv = meta_str(&o, "resourceVersion");
        if !rv.is_empty() && rv != meta_str(&old, "resourceVersion") {
            return Err(conflict(rt, name));
        }
        let o = isolate(rt, &old, rt.to_storage(o), status);
        self.write(rt, ns, name, o, &old, opts)
    }

    /// The common path of updates and patches: keep server-owned metadata,
    /// enforce finalizer rules, bump generation on spec changes, skip no-ops.
    fn write(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        mut o: Value,
        old: &Value,
        opts: &WriteOpts,
    ) -> Result<Value, ApiError> {
        if !o.is_object() {
            return Err(ApiError::new(400, "BadRequest", "the body is not an object"));
        }
        for k in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "name",
            "namespace",
        ] {
            set_meta(&mut o, k, meta(old, k).cloned().unwrap_or(Value::Null));
        }
        if meta(old, "deletionTimestamp").is_some() {
            let before: Vec<Value> = meta(old, "finalizers")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let after: Vec<Value> = meta(&o, "finalizers")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if after.iter().any(|f| !before.contains(f)) {
                return Err(ApiError::new(
                    422,
                    "Invalid",
                    format!(
                        "{} \"{name}\" is invalid: metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted",
                        rt.kind
                    ),
                ));
            }
        }
        if meta(&o, "finalizers")
            .and_then(Value::as_array)
            .is_some_and(|a| a.is_empty())
        {
            set_meta(&mut o, "finalizers", Value::Null);
        }
        self.admit(rt, name, &mut o, Some(old), opts.strict)?;
        if rt.has_generation() && spec_part(&o) != spec_part(old) {
            let g = meta(old, "generation").and_then(Value::as_i64).unwrap_or(1);
            set_meta(&mut o, "generation", json!(g + 1));
        }
        if let Some(m) = &opts.field_manager {
            let mut mf: Vec<Value> = meta(old, "managedFields")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if !mf.iter().any(|e| e["manager"] == *m) {
                mf.push(json!({"manager": m, "operation": "Update", "apiVersion": rt.api_version(), "time": time::now(), "fieldsType": "FieldsV1", "fieldsV1": {}}));
            }
            set_meta(&mut o, "managedFields", Value::Array(mf));
        } else if meta(&o, "managedFields").is_none() {
            set_meta(
                &mut o,
                "managedFields",
                meta(old, "managedFields").cloned().unwrap_or(Value::Null),
            );
        }
        set_meta(
            &mut o,
            "resourceVersion",
            meta(old, "resourceVersion").cloned().unwrap_or(Value::Null),
        );
        o["apiVersion"] = old["apiVersion"].clone();
        o["kind"] = old["kind"].clone();
        if o == *old {
            // Nothing changed: no new resourceVersion, no event.
            return Ok(Self::present(rt, old));
        }
        if opts.dry_run {
            return Ok(Self::present(rt, &o));
        }
        self.rv += 1;
        set_meta(&mut o, "resourceVersion", Value::String(self.rv.to_string()));
        if rt.plural == "customresourcedefinitions" {
            self.register_crd(&mut o);
        }
        let finished = meta(&o, "deletionTimestamp").is_some() && meta(&o, "finalizers").is_none();
        self.objects.insert(Self::key(rt, ns, name), o.clone());
        if finished {
            self.remove(rt, ns, name);
            return Ok(Self::present(rt, &o));
        }
        self.emit("MODIFIED", rt, o.clone());
        Ok(Self::present(rt, &o))
    }

    /// Write back `o` (an object as read, then changed), as a controller
    /// writes its latest read: no resourceVersion precondition; through the
    /// status subresource when `status`.
    pub fn put(&mut self, rt: &ResourceType, mut o: Value, status: bool) -> Result<Value, ApiError> {
        let (ns, name) = (meta_str(&o, "namespace"), meta_str(&o, "name"));
        if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        self.update(rt, &ns, &name, o, status, &WriteOpts::default())
    }

    /// Patch an object (merge, JSON patch, strategic merge, or apply).
    pub fn patch(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        req: &PatchRequest<'_>,
        body: &Value,
        opts: &WriteOpts,
    ) -> Result<Value, ApiError> {
        let (kind, status, force) = (req.kind, req.status, req.force);
        let old = match self.objects.get(&Self::key(rt, ns, name)) {
            Some(o) => o.clone(),
            None if kind == "apply" => {
                let mut o = body.clone();
                set_meta(&mut o, "name", Value::String(name.to_string()));
                record_apply(&mut o, body, opts, rt);
                return self.create(
                    rt,
                    ns,
                    o,
                    &WriteOpts {
                        field_manager: None,
                        ..opts.clone()
                    },
                );
            }
            None => return Err(not_found(rt, name)),
        };
        // A patch applies to the object as the requested version shows it.
        let mut new = rt.present(&old);
        match kind {
            "merge" => patch::merge(&mut new, body),
            "strategic" => patch::strategic(&mut new, body),
            "json" => patch::json_patch(&mut new, body).map_err(|e| ApiError::new(422, "Invalid", e))?,
            "apply" => {
                self.check_apply_conflicts(&old, body, opts, force)?;
                patch::merge(&mut new, body);
            }
            other => {
                return Err(ApiError::new(
                    415,
                    "UnsupportedMediaType",
                    format!("unsupported patch type {other}"),
                ));
            }
        }
        // A resourceVersion in the patch is a precondition.
        let want = meta_str(body, "resourceVersion");
        if kind != "json" && !want.is_empty() && want != meta_str(&old, "resourceVersion") {
            return Err(conflict(rt, name));
        }
        set_meta(&mut new, "resourceVersion", Value::Null);
        let mut new = isolate(rt, &old, rt.to_storage(new), status);
        if kind == "apply" {
            record_apply(&mut new, body, opts, rt);
        }
        let w = WriteOpts {
            field_manager: if kind == "apply" {
                None
            } else {
                opts.field_manager.clone()
            },
            ..opts.clone()
        };
        self.write(rt, ns, name, new, &old, &w)
    }

    /// Server-side apply: a field another manager set (to another value) is a
    /// conflict unless forced. Ownership is tracked for the fields one level
    /// below the top (`spec.x`, `data.k`, `metadata.labels.l`).
    fn check_apply_conflicts(&self, old: &Value, body: &Value, opts: &WriteOpts, force: bool) -> Result<(), ApiError> {
        let me = opts.field_manager.clone().unwrap_or_default();
        if force {
            return Ok(());
        }
        let managed = meta(old, "managedFields")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut conflicts = vec![];
        for (path, value) in applied_fields(body) {
            for m in &managed {
                if m["manager"] == me.as_str() || m["operation"] != "Apply" {
                    continue;
                }
                let owned = m["fieldsV1"].as_object().is_some_and(|f| f.contains_key(&path));
                let current = old.pointer(&format!("/{}", path.replace('.', "/")));
                if owned && current.is_some_and(|c| *c != value) {
                    conflicts.push(format!(
                        "conflict with \"{}\": .{path}",
                        m["manager"].as_str().unwrap_or("")
                    ));
                }
            }
        }
        if conflicts.is_empty() {
            return Ok(());
        }
        Err(ApiError::new(
            409,
            "Conflict",
            format!(
                "Apply failed with {} conflict(s): {}",
                conflicts.len(),
                conflicts.join("; ")
            ),
        ))
    }

    /// Delete an object: with finalizers it only gets a deletionTimestamp.
    pub fn delete(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        preconditions: &Value,
        opts: &WriteOpts,
    ) -> Result<Value, ApiError> {
        let old = self
            .objects
            .get(&Self::key(rt, ns, name))
            .cloned()
            .ok_or_else(|| not_found(rt, name))?;
        for (k, field) in [("uid", "uid"), ("resourceVersion", "resourceVersion")] {
            if let Some(want) = preconditions.get(k).and_then(Value::as_str) {
                if want != meta_str(&old, field) {
                    return Err(ApiError::new(
                        409,
                        "Conflict",
                        format!(
                            "Precondition failed: {k} in precondition: {want}, {k} in object meta: {}",
                            meta_str(&old, field)
                        ),
                    ));
                }
            }
        }
        if opts.dry_run {
            return Ok(Self::present(rt, &old));
        }
        let has_finalizers = meta(&old, "finalizers")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        if has_finalizers || rt.plural == "namespaces" {
            if meta(&old, "deletionTimestamp").is_some() {
                return Ok(Self::present(rt, &old));
            }
            let mut o = old.clone();
            set_meta(&mut o, "deletionTimestamp", Value::String(time::now()));
            set_meta(&mut o, "deletionGracePeriodSeconds", json!(0));
            if rt.plural == "namespaces" {
                o["status"] = json!({"phase": "Terminating"});
            }
            self.rv += 1;
            set_meta(&mut o, "resourceVersion", Value::String(self.rv.to_string()));
            self.objects.insert(Self::key(rt, ns, name), o.clone());
            self.emit("MODIFIED", rt, o.clone());
            if rt.plural == "namespaces" {
                self.empty_namespace(name);
            }
            return Ok(Self::present(rt, &o));
        }
        let gone = self.remove(rt, ns, name).unwrap_or(old);
        Ok(Self::present(rt, &gone))
    }

    /// Delete everything in a terminating namespace, then the namespace.
    fn empty_namespace(&mut self, ns: &str) {
        let inside: Vec<(String, String, String)> = self.objects.keys().filter(|(_, n, _)| n == ns).cloned().collect();
        for (tk, n, name) in inside {
            if let Some(rt) = self.types.iter().find(|t| t.key() == tk).cloned() {
                let _ = self.delete(&rt, &n, &name, &Value::Null, &WriteOpts::default());
            }
        }
        self.finish_namespace(ns);
    }

    fn finish_namespace(&mut self, ns: &str) {
        let remaining = self.objects.keys().any(|(_, n, _)| n == ns);
        let nskey = ("/namespaces".to_string(), String::new(), ns.to_string());
        let terminating = self
            .objects
            .get(&nskey)
            .is_some_and(|o| meta(o, "deletionTimestamp").is_some());
        if !remaining && terminating {
            if let Some(rt) = self.types.iter().find(|t| t.key() == "/namespaces").cloned() {
                self.remove(&rt, "", ns);
            }
        }
    }

    /// Remove an object for good, emit DELETED, and collect its dependents.
    fn remove(&mut self, rt: &ResourceType, ns: &str, name: &str) -> Option<Value> {
        let mut o = self.objects.remove(&Self::key(rt, ns, name))?;
        self.rv += 1;
        set_meta(&mut o, "resourceVersion", Value::String(self.rv.to_string()));
        self.emit("DELETED", rt, o.clone());
        if rt.plural == "customresourcedefinitions" {
            if let Ok(ts) = types::from_crd(&o) {
                if let Some(t) = ts.first() {
                    let (g, p) = (t.group.clone(), t.plural.clone());
                    self.types.retain(|x| !(x.group == g && x.plural == p && x.custom));
                    let key = format!("{g}/{p}");
                    self.objects.retain(|(k, _, _), _| *k != key);
                }
            }
        }
        // Background garbage collection of dependents.
        let uid = meta_str(&o, "uid");
        let dependents: Vec<(String, String, String)> = self
            .objects
            .iter()
            .filter(|(_, d)| {
                meta(d, "ownerReferences")
                    .and_then(Value::as_array)
                    .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid.as_str()))
            })
            .map(|(k, _)| k.clone())
            .collect();
        // As the garbage collector does: a dependent goes only when none of
        // its owners is left; otherwise it loses the references to the gone.
        for (tk, n, name) in dependents {
            let Some(drt) = self.types.iter().find(|t| t.key() == tk).cloned() else {
                continue;
            };
            let key = (tk, n.clone(), name.clone());
            let Some(mut d) = self.objects.get(&key).cloned() else {
                continue;
            };
            let live: Vec<Value> = meta(&d, "ownerReferences")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|r| r["uid"] != uid.as_str() && r["uid"].as_str().is_some_and(|u| self.uid_exists(u)))
                .cloned()
                .collect();
            if live.is_empty() {
                let _ = self.delete(&drt, &n, &name, &Value::Null, &WriteOpts::default());
            } else {
                set_meta(&mut d, "ownerReferences", Value::Array(live));
                self.rv += 1;
                set_meta(&mut d, "resourceVersion", Value::String(self.rv.to_string()));
                self.objects.insert(key, d.clone());
                self.emit("MODIFIED", &drt, d);
            }
        }
        if rt.namespaced {
            self.finish_namespace(ns);
        }
        Some(o)
    }
}

impl Default for State {
    fn default() -> Self {
        State::new()
    }
}

/// The fields (one level below the top) an applied configuration sets.
fn applied_fields(body: &Value) -> Vec<(String, Value)> {
    let mut out = vec![];
    if let Value::Object(top) = body {
        for (k, v) in top {
            if matches!(k.as_str(), "apiVersion" | "kind" | "status") {
                continue;
            }
            match (k.as_str(), v) {
                ("metadata", Value::Object(m)) => {
                    for sub in ["labels", "annotations"] {
                        if let Some(Value::Object(l)) = m.get(sub) {
                            for (lk, lv) in l {
                                out.push((format!("metadata.{sub}.{lk}"), lv.clone()));
                            }
                        }
                    }
                }
                (_, Value::Object(inner)) => {
                    for (ik, iv) in inner {
                        out.push((format!("{k}.{ik}"), iv.clone()));
                    }
                }
                _ => out.push((k.clone(), v.clone())),
            }
        }
    }
    out
}

/// Record what an apply set as owned by its manager (in `managedFields`).
fn record_apply(o: &mut Value, body: &Value, opts: &WriteOpts, rt: &ResourceType) {
    let me = opts.field_manager.clone().unwrap_or_default();
    let fields: serde_json::Map<String, Value> =
        applied_fields(body).into_iter().map(|(p, _)| (p, json!({}))).collect();
    let mut mf: Vec<Value> = meta(o, "managedFields")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    mf.retain(|e| !(e["manager"] == me.as_str() && e["operation"] == "Apply"));
    // Fields now owned by this applier are no longer owned by other appliers.
    for e in &mut mf {
        if let Some(f) = e["fieldsV1"].as_object_mut() {
            f.retain(|k, _| !fields.contains_key(k));
        }
    }
    mf.push(json!({"manager": me, "operation": "Apply", "apiVersion": rt.api_version(), "time": time::now(), "fieldsType": "FieldsV1", "fieldsV1": fields}));
    set_meta(o, "managedFields", Value::Array(mf));
}
