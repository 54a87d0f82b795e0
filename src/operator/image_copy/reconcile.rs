//! Reconciling one ImageCopy: the same function serves the controller and
//! `kopeo run`. It copies when the spec changed or the source tag moved,
//! and reports kstatus conditions; nothing secret goes into the status.

use crate::copy;
use crate::operator::condition::{Condition, is_true, set};
use crate::operator::image_copy::{ImageCopy, ImageCopyStatus};
use crate::operator::progress::CopyProgress;
use crate::reference::ImageReference;
use crate::transport::{self, OpenOptions};
use kube::ResourceExt;
use std::sync::Arc;

/// How to reach the source and destination (credentials and TLS rendered
/// for the namespace), and which local transports the copy may use.
#[derive(Clone, Default)]
pub struct CopyEnv {
    pub src: OpenOptions,
    pub dest: OpenOptions,
    pub local: crate::operator::local_access::LocalAccess,
    /// The data of `spec.verify.keys`, as found in the namespace (or why not).
    pub verify_keys: Option<Result<Vec<u8>, String>>,
    /// `spec.sign`'s private key and passphrase, as found (or why not).
    pub sign_key: Option<crate::operator::verify_keys::SignKey>,
    /// The data of `spec.encryption` and `spec.decryption` keys.
    pub crypt: crate::operator::verify_keys::CryptKeys,
    /// The operator's policy, used when there is no `spec.verify`.
    pub default_policy: Option<std::sync::Arc<crate::signature::policy::Policy>>,
}

fn cond(t: &str, status: bool, reason: &str, message: &str, generation: Option<i64>, now: &str) -> Condition {
    Condition {
        type_: t.into(),
        status: if status { "True" } else { "False" }.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: now.into(),
    }
}

/// The three kstatus conditions at once.
#[derive(Clone, Copy)]
struct Verdict {
    ready: bool,
    progressing: bool,
    stalled: bool,
}

const DONE: Verdict = Verdict {
    ready: true,
    progressing: false,
    stalled: false,
};
const IDLE: Verdict = Verdict {
    ready: false,
    progressing: false,
    stalled: false,
};
/// Working on it: a copy runs or will be retried.
const RETRYING: Verdict = Verdict {
    ready: false,
    progressing: true,
    stalled: false,
};
const STALLED: Verdict = Verdict {
    ready: false,
    progressing: false,
    stalled: true,
};

/// Set Ready/Progressing/Stalled together.
fn conditions(st: &mut ImageCopyStatus, v: Verdict, reason: &str, message: &str, generation: Option<i64>, now: &str) {
    set(
        &mut st.conditions,
        cond("Ready", v.ready, reason, message, generation, now),
    );
    set(
        &mut st.conditions,
        cond("Progressing", v.progressing, reason, message, generation, now),
    );
    set(
        &mut st.conditions,
        cond("Stalled", v.stalled, reason, message, generation, now),
    );
    st.message = message.into();
    st.observed_generation = generation;
}

/// Why a copy failed, as a condition reason, and whether retrying can help.
fn classify(e: &copy::CopyError) -> (&'static str, bool) {
    if matches!(e, copy::CopyError::Rejected(_)) {
        // Retrying cannot help until the source (or the keys) change.
        ("SignatureRejected", false)
    } else if e.is_image_not_found() {
        ("SourceNotFound", false)
    } else if e.is_unauthorized() {
        ("AuthenticationFailed", false)
    } else if matches!(e, copy::CopyError::Transport(t) if t.is_transient()) {
        ("Retrying", true)
    } else {
        ("CopyFailed", true)
    }
}

/// `ic`'s status while a copy runs: Progressing, not (yet) Ready.
pub fn copying(ic: &ImageCopy, now: &str, progress: CopyProgress) -> ImageCopyStatus {
    let mut st = ic.status.clone().unwrap_or_default();
    let msg = format!("copying {} to {}", ic.spec.source, ic.spec.destination);
    conditions(&mut st, RETRYING, "Copying", &msg, ic.metadata.generation, now);
    st.progress = Some(progress);
    st
}

/// Bring `ic` to its desired state once and return its new status;
/// `progress` receives the copy's events when one runs.
pub async fn reconcile(
    ic: &ImageCopy,
    env: &CopyEnv,
    now: &str,
    progress: Option<Arc<dyn copy::Progress>>,
) -> ImageCopyStatus {
    let generation = ic.metadata.generation;
    let mut st = ic.status.clone().unwrap_or_default();
    st.progress = None;
    if ic.spec.suspend {
        conditions(
            &mut st,
            IDLE,
            "Suspended",
            "reconciliation is suspended",
            generation,
            now,
        );
        return st;
    }
    let parsed = (
        ic.spec.source.parse::<ImageReference>(),
        ic.spec.destination.parse::<ImageReference>(),
        ic.spec.copy.to_options(),
    );
    let (src, dst, opts) = match parsed {
        _ if ic.spec.source == ic.spec.destination => {
            let msg = "source and destination must differ";
            conditions(&mut st, STALLED, "InvalidSpec", msg, generation, now);
            return st;
        }
        (Ok(s), Ok(d), Ok(o)) => {
            let ns = ic.namespace().unwrap_or_else(|| "default".into());
            match (env.local.resolve(s, &ns), env.local.resolve(d, &ns)) {
                (Ok(s), Ok(d)) => (s, d, copy::CopyOptions { progress, ..o }),
                (Err(e), _) | (_, Err(e)) => {
                    conditions(&mut st, STALLED, "TransportNotAllowed", &e.to_string(), generation, now);
                    return st;
                }
            }
        }
        (s, d, o) => {
            let msg = [
                s.err().map(|e| e.to_string()),
                d.err().map(|e| e.to_string()),
                o.err().map(|e| e.to_string()),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("; ");
            conditions(&mut st, STALLED, "InvalidSpec", &msg, generation, now);
            return st;
        }
    };
    let mut opts = opts;
    if ic.spec.verify.is_none() {
        opts.policy = env.default_policy.clone();
    }
    if let Some(v) = &ic.spec.verify {
        let keys = match &env.verify_keys {
            Some(Ok(k)) => k,
            Some(Err(why)) => {
                conditions(&mut st, STALLED, "VerifyKeysNotFound", why, generation, now);
                return st;
            }
            None => {
                conditions(
                    &mut st,
                    STALLED,
                    "VerifyKeysNotFound",
                    "verify.keys were not looked up",
                    generation,
                    now,
                );
                return st;
            }
        };
        match v.policy(keys) {
            Ok(p) => opts.policy = Some(Arc::new(p)),
            Err(e) => {
                conditions(&mut st, STALLED, "InvalidSpec", &e, generation, now);
                return st;
            }
        }
    }
    if let Some(sign) = &ic.spec.sign {
        let found = env
            .sign_key
            .clone()
            .unwrap_or_else(|| Err("sign: the key was not looked up".into()));
        match found.and_then(|(k, p)| sign.options(&k, &p)) {
            Ok(signing) => opts.signing = signing,
            Err(why) => {
                conditions(&mut st, STALLED, "SigningKeyInvalid", &why, generation, now);
                return st;
            }
        }
    }
    match env
        .crypt
        .options(ic.spec.encryption.as_ref(), ic.spec.decryption.as_ref())
    {
        Ok((enc, dec)) => (opts.encryption, opts.decryption) = (enc, dec),
        Err(why) => {
            conditions(&mut st, STALLED, "EncryptionKeysInvalid", &why, generation, now);
            return st;
        }
    }
    // The spec's retries cover registry requests too, as `--retry-times` does.
    let mut env = env.clone();
    env.src.registry.retry = opts.retry;
    env.dest.registry.retry = opts.retry;
    let env = &env;
    // Unchanged spec and unmoved source tag: nothing to copy.
    let current = transport::current_digest(&src, &env.src).await;
    if let Ok(Some(d)) = &current {
        let same_spec = st.observed_generation == generation;
        if same_spec && is_true(&st.conditions, "Ready") && st.source_digest.as_deref() == Some(d.to_string().as_str())
        {
            return st;
        }
    }
    match copy::copy_image(&src, &dst, &env.src, &env.dest, &opts).await {
        Ok(report) => {
            st.source_digest = current.ok().flatten().map(|d| d.to_string());
            st.destination_digest = Some(report.manifest_digest.to_string());
            st.blobs_copied = report.blobs_copied;
            st.blobs_reused = report.blobs_reused;
            st.bytes_copied = report.bytes_copied;
            st.verified_by = report.verified_by.clone();
            st.last_copy_time = Some(now.to_string());
            let msg = format!(
                "copied {} to {} ({})",
                ic.spec.source, ic.spec.destination, report.manifest_digest
            );
            conditions(&mut st, DONE, "Copied", &msg, generation, now);
        }
        Err(e) => {
            let (reason, retry) = classify(&e);
            tracing::warn!(imagecopy = %ic.name_any(), reason, error = %e, "copy failed");
            conditions(
                &mut st,
                if retry { RETRYING } else { STALLED },
                reason,
                &e.to_string(),
                generation,
                now,
            );
        }
    }
    st
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_copy_onto_itself_is_an_invalid_spec() {
        let ic: ImageCopy = serde_json::from_value(serde_json::json!({
            "apiVersion": "kopeo.dev/v1alpha1", "kind": "ImageCopy", "metadata": {"name": "same", "generation": 1},
            "spec": {"source": "oci:/tmp/x:a", "destination": "oci:/tmp/x:a"}
        }))
        .unwrap();
        let st = reconcile(&ic, &CopyEnv::default(), "2026-01-01T00:00:00Z", None).await;
        let stalled = st.conditions.iter().find(|c| c.type_ == "Stalled").unwrap();
        assert_eq!(
            (stalled.status.as_str(), stalled.reason.as_str()),
            ("True", "InvalidSpec")
        );
        assert_eq!(st.message, "source and destination must differ");
    }

    #[test]
    fn failures_are_classified_by_their_cause_not_their_words() {
        use crate::registry::RegistryError;
        use crate::transport::TransportError;
        let registry = |e: RegistryError| copy::CopyError::Transport(TransportError::Registry(e));
        let refused = RegistryError::Unauthorized {
            op: "reading manifest".into(),
            detail: "denied".into(),
        };
        assert_eq!(classify(&registry(refused)), ("AuthenticationFailed", false));
        // Words alone say nothing: a 500 that quotes "authentication required" is a server error.
        let quoted = RegistryError::Status {
            op: "reading manifest".into(),
            status: 500,
            code: None,
            message: "authentication required".into(),
        };
        assert_eq!(classify(&registry(quoted)), ("Retrying", true));
        let upload = RegistryError::Upload(Box::new(RegistryError::Unauthorized {
            op: "uploading".into(),
            detail: "x".into(),
        }));
        assert_eq!(classify(&registry(upload)), ("AuthenticationFailed", false));
        let missing = copy::CopyError::Transport(TransportError::ImageNotFound("no such image".into()));
        assert_eq!(classify(&missing), ("SourceNotFound", false));
        assert_eq!(classify(&copy::CopyError::ZstdNeedsOci), ("CopyFailed", true));
    }
}
