//! What a copy does with the source image's signatures (`spec.signatures`):
//! keep them where they live beside the image, remove them, or keep them
//! and also carry the signatures that live as OCI referrers (cosign v3's
//! sigstore bundles, Notary signatures), which a mirror otherwise loses.

use super::referrers::ReferrerSettings;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `spec.signatures`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum SignatureHandling {
    /// Carry the signatures stored beside the image (lookaside, sigstore
    /// attachments, the registry's signature API), as `kopeo copy` does.
    #[default]
    Keep,
    /// Carry none (`--remove-signatures`).
    Remove,
    /// Keep them, and carry the image's signature referrers too; the
    /// image's digest is then kept, since they name it.
    Referrers,
}

/// The artifact types of signatures stored as OCI referrers.
pub const SIGNATURE_ARTIFACT_TYPES: &[&str] = &[
    // Sigstore bundles, as cosign v3 attaches them (and earlier bundle versions).
    "application/vnd.dev.sigstore.bundle.v0.3+json",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
    // cosign's OCI 1.1 signatures (--registry-referrers-mode=oci-1-1).
    "application/vnd.dev.cosign.artifact.sig.v1+json",
    // Notary Project (notation) signatures.
    "application/vnd.cncf.notary.signature",
];

/// Why the signature settings contradict each other.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureHandlingError {
    #[error("removeSignatures: true contradicts signatures: {0}")]
    RemoveContradicted(&'static str),
    #[error(
        "signatures: remove contradicts referrers, which would carry signature referrers \
         (give referrers.artifactTypes without {0:?})"
    )]
    ReferrersCarrySignatures(String),
}

impl SignatureHandling {
    fn name(self) -> &'static str {
        match self {
            SignatureHandling::Keep => "keep",
            SignatureHandling::Remove => "remove",
            SignatureHandling::Referrers => "referrers",
        }
    }
}

/// What `signatures`, the older `removeSignatures` and `referrers` amount
/// to together: whether to remove signatures, and the referrers to carry.
pub fn resolve(
    signatures: Option<SignatureHandling>,
    remove_signatures: bool,
    referrers: Option<&ReferrerSettings>,
) -> Result<(bool, Option<ReferrerSettings>), SignatureHandlingError> {
    let handling = match (signatures, remove_signatures) {
        (Some(h @ (SignatureHandling::Keep | SignatureHandling::Referrers)), true) => {
            return Err(SignatureHandlingError::RemoveContradicted(h.name()));
        }
        (_, true) => SignatureHandling::Remove,
        (h, false) => h.unwrap_or_default(),
    };
    match handling {
        SignatureHandling::Keep => Ok((false, referrers.cloned())),
        SignatureHandling::Remove => {
            if let Some(r) = referrers {
                let carried = match r.artifact_types.is_empty() {
                    true => Some(SIGNATURE_ARTIFACT_TYPES[0].to_string()),
                    false => r
                        .artifact_types
                        .iter()
                        .find(|t| SIGNATURE_ARTIFACT_TYPES.contains(&t.as_str()))
                        .cloned(),
                };
                if let Some(t) = carried {
                    return Err(SignatureHandlingError::ReferrersCarrySignatures(t));
                }
            }
            Ok((true, referrers.cloned()))
        }
        SignatureHandling::Referrers => {
            let mut r = referrers.cloned().unwrap_or_default();
            // An empty filter (all referrers) already takes every signature.
            if referrers.is_none() || !r.artifact_types.is_empty() {
                for t in SIGNATURE_ARTIFACT_TYPES {
                    if !r.artifact_types.iter().any(|x| x == t) {
                        r.artifact_types.push(t.to_string());
                    }
                }
            }
            Ok((false, Some(r)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn types(v: &[&str]) -> ReferrerSettings {
        ReferrerSettings {
            artifact_types: v.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn handling_and_referrers_combine() {
        assert_eq!(resolve(None, false, None), Ok((false, None)));
        assert_eq!(resolve(None, true, None), Ok((true, None)));
        assert_eq!(resolve(Some(SignatureHandling::Remove), false, None), Ok((true, None)));
        let (remove, r) = resolve(Some(SignatureHandling::Referrers), false, None).unwrap();
        assert!(!remove);
        assert_eq!(r.unwrap().artifact_types.len(), SIGNATURE_ARTIFACT_TYPES.len());
        // Added to a filter; an empty filter (everything) stays empty.
        let (_, r) = resolve(
            Some(SignatureHandling::Referrers),
            false,
            Some(&types(&["application/spdx+json"])),
        )
        .unwrap();
        assert_eq!(r.unwrap().artifact_types.len(), SIGNATURE_ARTIFACT_TYPES.len() + 1);
        let (_, r) = resolve(Some(SignatureHandling::Referrers), false, Some(&types(&[]))).unwrap();
        assert!(r.unwrap().artifact_types.is_empty());
        // Contradictions are named.
        let e = resolve(Some(SignatureHandling::Keep), true, None).unwrap_err();
        assert_eq!(e.to_string(), "removeSignatures: true contradicts signatures: keep");
        let e = resolve(Some(SignatureHandling::Remove), false, Some(&types(&[]))).unwrap_err();
        assert!(
            e.to_string().contains("signatures: remove contradicts referrers"),
            "{e}"
        );
        let sbom = types(&["application/spdx+json"]);
        assert_eq!(
            resolve(Some(SignatureHandling::Remove), false, Some(&sbom)),
            Ok((true, Some(sbom)))
        );
    }
}
