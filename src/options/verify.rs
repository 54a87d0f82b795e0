//! Verifying the source of an ImageCopy or ImageSync (`spec.verify`): the
//! keys a signature must be made with, from a Secret or ConfigMap of the
//! resource's namespace, and how the signed identity must match. It becomes
//! a one-requirement trust policy, so the CLI's policy code judges it.

use crate::signature::policy::{self, Policy};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `spec.verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifySettings {
    /// Where the public keys are: OpenPGP keys (simple signing) or PEM public keys (sigstore).
    pub keys: KeySelector,
    /// `simpleSigning` or `sigstore`; by default told from the key data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<SignatureKind>,
    /// How the identity a signature names must match the source (policy.json's
    /// `signedIdentity`); `matchRepoDigestOrExact` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentityRule>,
}

/// One key of a Secret or of a ConfigMap in the resource's namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.secretKeyRef) != has(self.configMapKeyRef)", "message": "give exactly one of secretKeyRef and configMapKeyRef"}
]))]
pub struct KeySelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<NameKey>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<NameKey>,
}

/// An object's name and one key of its data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NameKey {
    #[schemars(length(min = 1))]
    pub name: String,
    #[schemars(length(min = 1))]
    pub key: String,
}

/// Which signatures the keys verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum SignatureKind {
    SimpleSigning,
    Sigstore,
}

/// policy.json's `signedIdentity`, as a spec field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentityRule {
    /// matchExact, matchRepoDigestOrExact, matchRepository, exactReference, exactRepository or remapIdentity.
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_repository: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_prefix: Option<String>,
}

impl KeySelector {
    /// `("Secret" | "ConfigMap", name, key)`.
    pub fn target(&self) -> Result<(&'static str, &NameKey), String> {
        match (&self.secret_key_ref, &self.config_map_key_ref) {
            (Some(s), None) => Ok(("Secret", s)),
            (None, Some(c)) => Ok(("ConfigMap", c)),
            _ => Err("verify.keys: give exactly one of secretKeyRef and configMapKeyRef".into()),
        }
    }
}

impl VerifySettings {
    /// The trust policy these settings stand for, given the key data found.
    pub fn policy(&self, keys: &[u8]) -> Result<Policy, String> {
        use base64::Engine as _;
        let kind = self.kind.unwrap_or(
            if keys.windows(15).any(|w| w == b"BEGIN PGP PUBLI") || keys.first().is_some_and(|b| b & 0x80 != 0) {
                SignatureKind::SimpleSigning
            } else {
                SignatureKind::Sigstore
            },
        );
        let identity = match &self.identity {
            Some(i) => serde_json::to_value(i).map_err(|e| e.to_string())?,
            None => serde_json::json!({"type": "matchRepoDigestOrExact"}),
        };
        let data = base64::engine::general_purpose::STANDARD.encode(keys);
        let requirement = match kind {
            SignatureKind::SimpleSigning => {
                serde_json::json!({"type": "signedBy", "keyType": "GPGKeys", "keyData": data, "signedIdentity": identity})
            }
            SignatureKind::Sigstore => {
                serde_json::json!({"type": "sigstoreSigned", "keyData": data, "signedIdentity": identity})
            }
        };
        let doc = serde_json::json!({"default": [requirement]}).to_string();
        policy::config::parse(doc.as_bytes()).map_err(|e| format!("verify: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_become_a_one_requirement_policy() {
        let v: VerifySettings = serde_json::from_value(serde_json::json!({
            "keys": {"configMapKeyRef": {"name": "keys", "key": "cosign.pub"}},
            "identity": {"type": "exactReference", "dockerReference": "example.com/a:1"}
        }))
        .unwrap();
        let p = v
            .policy(b"-----BEGIN PUBLIC KEY-----\nx\n-----END PUBLIC KEY-----\n")
            .unwrap();
        assert!(matches!(
            p.default.as_slice(),
            [policy::Requirement::SigstoreSigned { .. }]
        ));
        let p = v.policy(b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n").unwrap();
        assert!(matches!(p.default.as_slice(), [policy::Requirement::SignedBy { .. }]));
        let bad = VerifySettings {
            identity: Some(IdentityRule {
                type_: "exactReference".into(),
                docker_reference: Some("no-tag".into()),
                docker_repository: None,
                prefix: None,
                signed_prefix: None,
            }),
            ..v
        };
        assert!(
            bad.policy(b"x")
                .unwrap_err()
                .contains("contains neither a tag nor digest")
        );
    }
}
