//! Recognising an encrypted copy made before. Encrypted layers are new
//! random bytes every time, so "already at the destination" cannot compare
//! digests: the top-level manifest of an encrypted copy carries an
//! annotation, an opaque hash of the source manifest's digest and of whom
//! and what it was encrypted for; a later copy with the same source and
//! recipients finds it there and stops as an unchanged copy does (an
//! ImageSync does not re-encrypt, and re-upload, every image each interval).

use super::CopyError;
use crate::digest::Digest;
use crate::manifest::{self, Manifest};
use crate::options::encryption::EncryptionOptions;
use crate::reference::ImageReference;
use crate::transport::{self, OpenOptions};
use bytes::Bytes;

/// The annotation.
pub const ANNOTATION: &str = "dev.kopeo.encrypted-from";

/// The marker of encrypting the source manifest `source` with `enc`.
pub fn marker(source: &Digest, enc: &EncryptionOptions) -> String {
    Digest::sha256_of(format!("{source}\n{}", enc.fingerprint()).as_bytes()).to_string()
}

/// The digest of what `dst` holds when it is an encrypted copy with
/// `marker`; `None` when it holds nothing, something else, or cannot be read.
pub async fn find(dst: &ImageReference, opts: &OpenOptions, marker: &str) -> Option<Digest> {
    let src = transport::open_source(dst, opts).await.ok()?;
    let (bytes, mime) = src.manifest(None).await.ok()?;
    let annotations = match Manifest::parse(&bytes, &mime).ok()? {
        Manifest::Image(m) => m.annotations,
        Manifest::Index(i) => i.annotations,
    };
    (annotations?.get(ANNOTATION)? == marker).then(|| Digest::sha256_of(&bytes))
}

/// The top-level manifest `out` with the marker added.
pub fn annotate(out: Bytes, mime: &str, marker: &str) -> Result<Bytes, CopyError> {
    let mut parsed = Manifest::parse(&out, mime)?;
    let annotations = match &mut parsed {
        Manifest::Image(m) => &mut m.annotations,
        Manifest::Index(i) => &mut i.annotations,
    };
    annotations
        .get_or_insert_with(Default::default)
        .insert(ANNOTATION.to_string(), marker.to_string());
    Ok(Bytes::from(match parsed {
        Manifest::Image(m) => manifest::to_bytes(&m),
        Manifest::Index(i) => manifest::to_bytes(&i),
    }))
}

/// `annotations` without the marker (`None` when nothing else is left).
pub fn remove(annotations: &mut Option<std::collections::BTreeMap<String, String>>) {
    if let Some(a) = annotations {
        a.remove(ANNOTATION);
        if a.is_empty() {
            *annotations = None;
        }
    }
}
