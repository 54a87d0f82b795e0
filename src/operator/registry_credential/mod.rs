//! RegistryCredential: credentials for a registry (or a namespace of it),
//! from a Secret in the same namespace, rendered with the namespace's other
//! credentials into one auth.json.

pub(crate) mod controller;
pub mod render;

use crate::operator::condition::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A reference to a Secret in the same namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SecretRef {
    #[schemars(length(min = 1))]
    pub name: String,
}

/// TLS settings for the registry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsSettings {
    /// A Secret whose `ca.crt` is trusted for this registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretRef>,
    /// A Secret of type `kubernetes.io/tls` presented as client certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_secret_ref: Option<SecretRef>,
    /// Skip certificate verification and allow plain HTTP.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
}

/// Credentials for `registry` from `secretRef`.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kopeo.dev",
    version = "v1alpha1",
    kind = "RegistryCredential",
    namespaced,
    status = "RegistryCredentialStatus",
    shortname = "rcred",
    category = "kopeo",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Registry","type":"string","jsonPath":".spec.registry"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.secretRef) || has(self.tls)", "message": "set secretRef, tls, or both"}
]))]
pub struct RegistryCredentialSpec {
    /// A registry host, or host/namespace prefix (auth.json key semantics).
    #[schemars(length(min = 1), regex(pattern = r"^[a-zA-Z0-9.\-\[\]:]+(/[a-z0-9._\-/]+)?$"))]
    pub registry: String,
    /// A Secret of type `kubernetes.io/dockerconfigjson`, `kubernetes.io/basic-auth`,
    /// or Opaque with `username`/`password` or `token`. Without one the
    /// registry is used anonymously (with the TLS settings below).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSettings>,
    /// A request budget for the registry host, honoured by all the
    /// operator's work against it (with other limits for the host, the
    /// tightest applies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<crate::options::rate_limit::RateLimitSettings>,
}

/// Whether the Secret was found and usable.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistryCredentialStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
