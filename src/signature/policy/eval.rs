//! Evaluating a policy for one image, as containers/image's
//! `IsRunningImageAllowed`: the scope's requirements in order, all of which
//! must allow the image.

use super::config::{IdentityMatch, KeySource, Policy, Requirement};
use crate::reference::DockerReference;
use crate::signature::{SignatureError, openpgp::TrustedKeys};

/// What the policy sees of a source image.
pub struct PolicyImage<'a> {
    /// `transport:reference`, for messages (`docker://localhost:5000/a:b`).
    pub name: String,
    pub transport: &'static str,
    /// The transport's policy identity and namespaces (most specific first).
    pub identity: String,
    pub namespaces: Vec<String>,
    /// The image's Docker reference, where its transport has one.
    pub docker_reference: Option<DockerReference>,
    /// The (instance) manifest the signatures must name.
    pub manifest: &'a [u8],
    /// Its signatures, unverified, in blob form (simple and sigstore).
    pub signatures: &'a [bytes::Bytes],
}

/// An image the policy accepted: by which key, if a signature decided it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verdict {
    /// Fingerprints of the keys whose signatures were accepted.
    pub keys: Vec<String>,
}

/// Why the policy refused an image (upstream's `PolicyRequirementError` texts).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("{0}")]
pub struct Rejection(pub String);

impl Policy {
    /// The requirements for `img`: its transport's most specific scope, else
    /// the transport's `""` scope, else the default.
    pub fn requirements_for(&self, img: &PolicyImage) -> &[Requirement] {
        if let Some((_, scopes)) = self.transports.iter().find(|(t, _)| t == img.transport) {
            let find = |name: &str| scopes.iter().find(|(s, _)| s == name).map(|(_, r)| r.as_slice());
            if let Some(r) = find(&img.identity) {
                return r;
            }
            for ns in &img.namespaces {
                if let Some(r) = find(ns) {
                    return r;
                }
            }
            if let Some(r) = find("") {
                return r;
            }
        }
        &self.default
    }

    /// Whether `img` may be used: every requirement of its scope must allow it.
    pub fn check(&self, img: &PolicyImage) -> Result<Verdict, Rejection> {
        let reqs = self.requirements_for(img);
        if reqs.is_empty() {
            return Err(Rejection(
                "List of verification policy requirements must not be empty".into(),
            ));
        }
        let mut verdict = Verdict::default();
        for r in reqs {
            if let Some(key) = allowed(r, img)? {
                verdict.keys.push(key);
            }
        }
        Ok(verdict)
    }
}

/// One requirement's judgement: `Ok(Some(key))` when a signature by `key` allowed it.
fn allowed(r: &Requirement, img: &PolicyImage) -> Result<Option<String>, Rejection> {
    match r {
        Requirement::InsecureAcceptAnything => Ok(None),
        Requirement::Reject => Err(Rejection(format!("Running image {} is rejected by policy.", img.name))),
        Requirement::SignedBaseLayer => Err(Rejection("signedBaseLayer not implemented yet!".into())),
        Requirement::SigstoreSigned {
            keys,
            keyless,
            identity,
        } => sigstore_allowed(keys.as_ref(), *keyless, identity, img),
        Requirement::SignedBy {
            key_type,
            keys,
            identity,
        } => {
            if key_type != "GPGKeys" {
                return Err(Rejection(format!("Unimplemented \"keyType\" value {key_type:?}")));
            }
            let data = key_data(keys)?;
            let trusted = TrustedKeys::parse(&data).map_err(|e| Rejection(e.to_string()))?;
            if trusted.is_empty() {
                return Err(Rejection("No public keys imported".into()));
            }
            let accepted = trusted.fingerprints();
            let mut reasons = Vec::new();
            // Only simple signatures count for signedBy (upstream's image.Signatures).
            let simple = img
                .signatures
                .iter()
                .filter_map(|b| match crate::signature::blob::Signature::from_blob(b) {
                    Ok(crate::signature::blob::Signature::Simple(s)) => Some(s),
                    _ => None,
                });
            for sig in simple {
                match accept_one(&trusted, &accepted, identity, img, &sig) {
                    Ok(key) => return Ok(Some(key)),
                    Err(e) => reasons.push(e.to_string()),
                }
            }
            Err(Rejection(match reasons.len() {
                0 => "A signature was required, but no signature exists".into(),
                1 => reasons.remove(0),
                _ => format!("None of the signatures were accepted, reasons: {}", reasons.join("; ")),
            }))
        }
    }
}

fn sigstore_allowed(
    keys: Option<&super::config::KeySources>,
    keyless: bool,
    identity: &IdentityMatch,
    img: &PolicyImage,
) -> Result<Option<String>, Rejection> {
    use super::config::KeySources;
    use crate::signature::blob::{SIGSTORE_MIME_TYPE, Signature};
    if keyless {
        // Certificates and transparency logs need checks kopeo does not make
        // yet: refusing is the only safe answer.
        return Err(Rejection(
            "sigstoreSigned with fulcio, pki or a Rekor key is not yet supported by kopeo (only keyPath/keyPaths/keyData/keyDatas)".into(),
        ));
    }
    let datas = match keys {
        Some(KeySources::Datas(d)) => d.clone(),
        Some(KeySources::Paths(p)) => p
            .iter()
            .map(|p| key_data(&KeySource::Path(p.clone())))
            .collect::<Result<_, _>>()?,
        None => vec![],
    };
    let mut public = Vec::new();
    for (i, d) in datas.iter().enumerate() {
        public.extend(
            crate::signature::sigstore::parse_public_keys(d)
                .map_err(|e| Rejection(format!("parsing public key {}: {e}", i + 1)))?,
        );
    }
    let (mut others, mut non_attachments, mut reasons) = (0, 0, Vec::new());
    for blob in img.signatures {
        let s = match Signature::from_blob(blob) {
            Ok(Signature::Sigstore(s)) if s.mime_type == SIGSTORE_MIME_TYPE => s,
            Ok(Signature::Sigstore(_)) => {
                non_attachments += 1;
                continue;
            }
            _ => {
                others += 1;
                continue;
            }
        };
        let verdict = crate::signature::sigstore::verify(
            &public,
            &s,
            |d| digest_matches(img, d),
            |signed| identity_matches(identity, img, signed),
        );
        match verdict {
            Ok((_, key)) => return Ok(Some(key)),
            Err(e) => reasons.push(e.to_string()),
        }
    }
    Err(Rejection(match reasons.len() {
        0 if others == 0 && non_attachments == 0 => "A signature was required, but no signature exists".into(),
        0 => format!(
            "A signature was required, but no signature exists ({others} non-sigstore signatures, {non_attachments} sigstore non-signature attachments)"
        ),
        1 => reasons.remove(0),
        _ => format!("None of the signatures were accepted, reasons: {}", reasons.join("; ")),
    }))
}

fn digest_matches(img: &PolicyImage, d: &crate::digest::Digest) -> Result<(), SignatureError> {
    if crate::signature::manifest_digest(img.manifest)? == *d {
        Ok(())
    } else {
        Err(SignatureError::Invalid(format!(
            "Signature for digest {d} does not match"
        )))
    }
}

fn identity_matches(identity: &IdentityMatch, img: &PolicyImage, signed: &str) -> Result<(), SignatureError> {
    if matches(identity, img.docker_reference.as_ref(), signed) {
        Ok(())
    } else {
        Err(SignatureError::Invalid(format!(
            "Signature for identity {signed:?} is not accepted"
        )))
    }
}

fn accept_one(
    trusted: &TrustedKeys,
    accepted: &[String],
    identity: &IdentityMatch,
    img: &PolicyImage,
    sig: &[u8],
) -> Result<String, SignatureError> {
    let ok = crate::signature::verify_simple(
        trusted,
        accepted,
        sig,
        |d| digest_matches(img, d),
        |signed| identity_matches(identity, img, signed),
    )?;
    Ok(ok.key)
}

/// Key files are small; a bound keeps a policy naming `/dev/zero` from
/// reading forever.
const MAX_KEY_FILE: u64 = 16 << 20;

fn key_data(keys: &KeySource) -> Result<Vec<u8>, Rejection> {
    let read = |p: &std::path::Path| -> Result<Vec<u8>, Rejection> {
        use std::io::Read as _;
        let f = std::fs::File::open(p).map_err(|e| Rejection(format!("open {}: {e}", p.display())))?;
        let mut data = Vec::new();
        f.take(MAX_KEY_FILE + 1)
            .read_to_end(&mut data)
            .map_err(|e| Rejection(format!("read {}: {e}", p.display())))?;
        if data.len() as u64 > MAX_KEY_FILE {
            return Err(Rejection(format!("{}: a key file of more than 16 MiB", p.display())));
        }
        Ok(data)
    };
    match keys {
        KeySource::Data(d) => Ok(d.clone()),
        KeySource::Path(p) => read(p),
        KeySource::Paths(ps) => {
            let mut all = Vec::new();
            for p in ps {
                all.extend(read(p)?);
            }
            Ok(all)
        }
    }
}

/// Whether a signature claiming `signed` satisfies `m` for an image whose
/// own reference is `image` (policy_reference_match.go).
pub fn matches(m: &IdentityMatch, image: Option<&DockerReference>, signed: &str) -> bool {
    let Ok(sig) = DockerReference::parse_normalized(signed) else {
        return false;
    };
    let same = |a: &DockerReference, b: &DockerReference| a.to_string() == b.to_string();
    match m {
        IdentityMatch::ExactReference(r) => !r.is_name_only() && !sig.is_name_only() && same(r, &sig),
        IdentityMatch::ExactRepository(r) => r.name() == sig.name(),
        _ => {
            let Some(intended) = image else { return false };
            match m {
                IdentityMatch::MatchExact => !intended.is_name_only() && !sig.is_name_only() && same(intended, &sig),
                IdentityMatch::MatchRepository => intended.name() == sig.name(),
                IdentityMatch::MatchRepoDigestOrExact => repo_digest_or_exact(intended, &sig),
                IdentityMatch::RemapIdentity { prefix, signed_prefix } => {
                    let remapped = remap(intended, prefix, signed_prefix);
                    remapped.is_some_and(|r| repo_digest_or_exact(&r, &sig))
                }
                _ => false,
            }
        }
    }
}

fn repo_digest_or_exact(intended: &DockerReference, sig: &DockerReference) -> bool {
    if sig.is_name_only() {
        return false;
    }
    if intended.tag().is_some() {
        intended.to_string() == sig.to_string()
    } else if intended.digest().is_some() {
        intended.name() == sig.name()
    } else {
        false
    }
}

/// `r` with `prefix` replaced by `signed_prefix`, when its name starts with
/// `prefix` at a path boundary; `r` itself otherwise; `None` if the result
/// does not parse.
fn remap(r: &DockerReference, prefix: &str, signed_prefix: &str) -> Option<DockerReference> {
    let name = r.name();
    let hit = name == prefix || (name.starts_with(prefix) && name.as_bytes().get(prefix.len()) == Some(&b'/'));
    if !hit {
        return Some(r.clone());
    }
    let s = r.to_string().replacen(prefix, signed_prefix, 1);
    DockerReference::parse_qualified(&s).ok()
}

#[cfg(test)]
mod tests {
    use super::super::config::parse;
    use super::*;

    fn r(s: &str) -> DockerReference {
        DockerReference::parse_normalized(s).unwrap()
    }

    #[test]
    fn identity_matchers_as_policy_reference_match_go() {
        let tagged = r("example.com/ns/app:1");
        let digested = r("example.com/ns/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
        let remap = IdentityMatch::RemapIdentity {
            prefix: "mirror.local/m".into(),
            signed_prefix: "example.com".into(),
        };
        let (mirrored, mirrored_other) = (r("mirror.local/m/ns/app:1"), r("mirror.local/mm/ns/app:1"));
        let cases: Vec<(IdentityMatch, Option<&DockerReference>, &str, bool)> = vec![
            (IdentityMatch::MatchExact, Some(&tagged), "example.com/ns/app:1", true),
            (IdentityMatch::MatchExact, Some(&tagged), "example.com/ns/app:2", false),
            (IdentityMatch::MatchExact, Some(&tagged), "example.com/ns/app", false),
            (
                IdentityMatch::MatchRepoDigestOrExact,
                Some(&tagged),
                "example.com/ns/app:1",
                true,
            ),
            (
                IdentityMatch::MatchRepoDigestOrExact,
                Some(&tagged),
                "example.com/ns/app:2",
                false,
            ),
            (
                IdentityMatch::MatchRepoDigestOrExact,
                Some(&digested),
                "example.com/ns/app:anything",
                true,
            ),
            (
                IdentityMatch::MatchRepoDigestOrExact,
                Some(&digested),
                "example.com/ns/other:1",
                false,
            ),
            (
                IdentityMatch::MatchRepository,
                Some(&tagged),
                "example.com/ns/app:9",
                true,
            ),
            (
                IdentityMatch::MatchRepository,
                Some(&tagged),
                "example.com/ns/apps:1",
                false,
            ),
            (IdentityMatch::MatchRepository, None, "example.com/ns/app:1", false),
            (
                IdentityMatch::ExactReference(r("example.com/x:1")),
                None,
                "example.com/x:1",
                true,
            ),
            (
                IdentityMatch::ExactReference(r("example.com/x:1")),
                Some(&tagged),
                "example.com/x:2",
                false,
            ),
            (
                IdentityMatch::ExactRepository(r("example.com/x")),
                None,
                "example.com/x:7",
                true,
            ),
            (remap.clone(), Some(&mirrored), "example.com/ns/app:1", true),
            (remap.clone(), Some(&mirrored), "mirror.local/m/ns/app:1", false),
            (remap.clone(), Some(&mirrored_other), "example.com/ns/app:1", false),
            (remap, Some(&tagged), "example.com/ns/app:1", true),
            (IdentityMatch::MatchExact, Some(&tagged), "Not A Reference", false),
        ];
        for (m, image, signed, want) in cases {
            assert_eq!(matches(&m, image, signed), want, "{m:?} {image:?} {signed}");
        }
    }

    #[test]
    fn the_most_specific_scope_applies() {
        let p = parse(
            br#"{"default":[{"type":"reject"}],"transports":{"docker":{
                "example.com/ns/app:1":[{"type":"insecureAcceptAnything"}],
                "example.com/ns":[{"type":"reject"},{"type":"insecureAcceptAnything"}],
                "*.com":[{"type":"signedBaseLayer","baseLayerIdentity":{"type":"matchExact"}}],
                "":[{"type":"insecureAcceptAnything"},{"type":"insecureAcceptAnything"},{"type":"insecureAcceptAnything"}]}}}"#,
        )
        .unwrap();
        let img = |s: &str| {
            let (identity, namespaces) = super::super::policy_identity(&crate::reference::ImageReference::Docker(r(s)));
            PolicyImage {
                name: format!("docker://{s}"),
                transport: "docker",
                identity,
                namespaces,
                docker_reference: Some(r(s)),
                manifest: b"{}",
                signatures: &[],
            }
        };
        assert_eq!(p.requirements_for(&img("example.com/ns/app:1")).len(), 1);
        assert_eq!(p.requirements_for(&img("example.com/ns/app:2")).len(), 2);
        assert_eq!(p.requirements_for(&img("sub.example.com/x:1")).len(), 1);
        assert_eq!(p.requirements_for(&img("quay.io/x:1")).len(), 3);
        assert!(p.check(&img("example.com/ns/app:1")).is_ok());
        let e = p.check(&img("example.com/ns/app:2")).unwrap_err();
        assert_eq!(
            e.0,
            "Running image docker://example.com/ns/app:2 is rejected by policy."
        );
        assert_eq!(
            p.check(&img("x.com/y:1")).unwrap_err().0,
            "signedBaseLayer not implemented yet!"
        );
    }
}
