//! The signature stages of a copy: the policy gate before anything of an
//! image is written, the source's signatures carried along, and new ones
//! made once the manifest is final — stored before commit. None re-reads a blob.

use super::{CopyError, CopyOptions, KeepReason, ProgressEvent};
use crate::digest::Digest;
use crate::reference::{DockerReference, ImageReference};
use crate::signature::policy::{self, Policy, PolicyImage, Requirement};
use crate::transport::{ImageDestination, ImageSource, TransportError};
use bytes::Bytes;
use std::sync::Arc;

/// What the signature stages know of the two references.
#[derive(Debug, Clone, Default)]
pub struct SignatureContext {
    /// The policy judging the source; `None` accepts anything.
    pub policy: Option<Arc<Policy>>,
    source_name: String,
    source_transport: &'static str,
    identity: String,
    namespaces: Vec<String>,
    source_docker: Option<DockerReference>,
    dest_docker: Option<DockerReference>,
    dest_name: String,
}

impl SignatureContext {
    /// The context of a copy from `src` to `dst`.
    pub fn new(src: &ImageReference, dst: &ImageReference, policy: Option<Arc<Policy>>) -> Self {
        let (identity, namespaces) = policy::policy_identity(src);
        SignatureContext {
            policy,
            source_name: src.to_string(),
            source_transport: src.transport(),
            identity,
            namespaces,
            source_docker: policy::docker_reference_of(src),
            dest_docker: policy::docker_reference_of(dst),
            dest_name: dst.to_string(),
        }
    }

    /// Whether the policy for the source asks more than "accept anything":
    /// then every image must be judged, even one the destination already has.
    pub fn judges(&self) -> bool {
        let Some(p) = &self.policy else { return false };
        let img = self.policy_image(&[], &[]);
        !p.requirements_for(&img)
            .iter()
            .all(|r| matches!(r, Requirement::InsecureAcceptAnything))
    }

    fn policy_image<'a>(&self, manifest: &'a [u8], signatures: &'a [Bytes]) -> PolicyImage<'a> {
        PolicyImage {
            name: self.source_name.clone(),
            transport: self.source_transport,
            identity: self.identity.clone(),
            namespaces: self.namespaces.clone(),
            docker_reference: self.source_docker.clone(),
            manifest,
            signatures,
        }
    }
}

/// Whether the copy writes signatures or must judge every image: then the
/// "already there" shortcut cannot end it early.
pub(super) fn forbids_shortcut(ctx: &SignatureContext, opts: &CopyOptions) -> bool {
    ctx.judges() || opts.signing.signs()
}

/// The source's signatures of the image whose manifest is `manifest`
/// (`instance`: its digest in the source's list), read once for both the
/// policy gate and carrying them along — not at all when neither wants them.
pub(super) async fn read(
    ctx: &SignatureContext,
    src: &dyn ImageSource,
    instance: Option<&Digest>,
    manifest: &[u8],
    opts: &CopyOptions,
) -> Result<Vec<Bytes>, CopyError> {
    if opts.remove_signatures && !ctx.judges() {
        return Ok(vec![]);
    }
    // Signatures name the manifest digest (a signed schema1's is its payload's).
    let digest = crate::manifest_digest::manifest_digest(manifest).map_err(TransportError::from)?;
    src.signatures(instance, &digest)
        .await
        .map_err(CopyError::ReadingSignatures)
}

/// The policy gate for one image, before anything of it is written:
/// `Source image rejected: …` unless the policy allows it; the keys whose
/// signatures it accepted.
pub(super) fn admit(ctx: &SignatureContext, signatures: &[Bytes], manifest: &[u8]) -> Result<Vec<String>, CopyError> {
    let Some(p) = ctx.policy.as_ref().filter(|_| ctx.judges()) else {
        return Ok(vec![]);
    };
    match p.check(&ctx.policy_image(manifest, signatures)) {
        Ok(v) => {
            tracing::debug!(keys = ?v.keys, image = %ctx.source_name, "the policy accepted the source image");
            Ok(v.keys)
        }
        Err(e) => Err(CopyError::Rejected(e)),
    }
}

/// The signatures to carry along (none with `--remove-signatures`); the
/// destination must be able to keep them.
pub(super) fn carry(
    dst: &dyn ImageDestination,
    signatures: Vec<Bytes>,
    opts: &CopyOptions,
) -> Result<Vec<Bytes>, CopyError> {
    if opts.remove_signatures || signatures.is_empty() {
        return Ok(vec![]);
    }
    dst.supports_signatures()
        .map_err(|source| CopyError::SignaturesNotStorable {
            destination: dst.describe(),
            source,
        })?;
    Ok(signatures)
}

/// The options for writing an image whose `carried` signatures must stay
/// valid: its manifest may not change.
pub(super) fn keeping(carried: &[Bytes], opts: &CopyOptions) -> Option<CopyOptions> {
    (!carried.is_empty() && !opts.preserve_digests).then(|| CopyOptions {
        preserve_digests: true,
        keep_reason: KeepReason::Signatures,
        ..opts.clone()
    })
}

/// Store `carried` plus a new signature (when signing) over `manifest`, the
/// final manifest of the top-level image (`instance` = `None`) or of an instance.
pub(super) async fn store(
    ctx: &SignatureContext,
    dst: &dyn ImageDestination,
    mut sigs: Vec<Bytes>,
    manifest: &[u8],
    instance: Option<&Digest>,
    opts: &CopyOptions,
) -> Result<(), CopyError> {
    if opts.signing.signs() {
        let identity = match &opts.signing.identity {
            Some(i) if i.is_name_only() => return Err(CopyError::SignIdentityNotFull(i.to_string())),
            Some(i) => i.clone(),
            None => ctx
                .dest_docker
                .clone()
                .ok_or_else(|| CopyError::NoSignIdentity(ctx.dest_name.clone()))?,
        };
        let both = opts.signing.sign_by.is_some() && opts.signing.sigstore.is_some();
        if let Some(key) = &opts.signing.sign_by {
            note(
                opts,
                if both {
                    "Creating signature 1: Signing image using simple signing"
                } else {
                    "Creating signature: Signing image using simple signing"
                },
            );
            let key = key.clone();
            let (manifest, identity) = (manifest.to_vec(), identity.to_string());
            let passphrase = opts.signing.passphrase.clone();
            // gpg runs as a child process: off the async threads.
            let sig = tokio::task::spawn_blocking(move || {
                crate::signature::sign_simple(&manifest, &identity, &key, passphrase.as_ref().map(|p| p.0.as_str()))
            })
            .await
            .map_err(|e| CopyError::Signing(crate::signature::SignatureError::Gpg(e.to_string())))?
            .map_err(CopyError::Signing)?;
            sigs.push(Bytes::from(sig));
        }
        if let Some(key) = &opts.signing.openpgp {
            note(opts, "Creating signature: Signing image using simple signing");
            let sig = key
                .0
                .sign(manifest, &identity.to_string())
                .map_err(CopyError::Signing)?;
            sigs.push(Bytes::from(sig));
        }
        if let Some(key) = &opts.signing.sigstore {
            note(
                opts,
                if both {
                    "Creating signature 2: Signing image using a sigstore signature"
                } else {
                    "Creating signature: Signing image using a sigstore signature"
                },
            );
            let s = key.0.sign(manifest, &identity).map_err(CopyError::Signing)?;
            sigs.push(crate::signature::blob::Signature::Sigstore(s).to_blob());
        }
    }
    if sigs.is_empty() {
        return Ok(());
    }
    note(opts, "Storing signatures");
    dst.put_signatures(&sigs, instance)
        .await
        .map_err(CopyError::WritingSignatures)
}

fn note(opts: &CopyOptions, line: &'static str) {
    if let Some(p) = &opts.progress {
        p.event(ProgressEvent::Note(line));
    }
}
