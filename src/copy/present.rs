//! "Already at the destination": before any blob moves, the digest the
//! destination holds is compared with the digest of the manifest the copy
//! would write (the source's own, where nothing changes it). A match makes
//! the copy a no-op: an unchanged image costs a manifest HEAD on each side
//! of a registry copy, sent at once, and no transfer (and no pull).

use super::plan::plan_image;
use super::rewrite::finished_manifest;
use super::single::caps;
use super::{CopyError, CopyOptions, platform_subset};
use crate::digest::Digest;
use crate::manifest::{self, Manifest, is_list_type};
use crate::options::MultiArch;
use crate::transport::{ImageDestination, ImageSource};

/// What a copy knows before it reads the source's manifest.
pub enum Presence {
    /// The destination holds this digest, which is the source's, and the
    /// copy would write the source's manifest as it is: nothing to do.
    Present(Digest),
    /// A closer look is needed; the destination holds this digest now, if any.
    Absent(Option<Digest>),
}

/// Ask both sides for their current digest at once (a HEAD each for
/// registries: a no-op copy counts as no pull). When they match and the
/// options change nothing, the copy is done; a source that is not there
/// fails here, before the destination's answer matters.
pub async fn quick(
    src: &dyn ImageSource,
    dst: &dyn ImageDestination,
    opts: &CopyOptions,
) -> Result<Presence, CopyError> {
    if opts.destination_absent {
        return Ok(Presence::Absent(None));
    }
    let (theirs, have) = futures::join!(src.current_manifest(), dst.current_digest());
    let (theirs, have) = (theirs?, have?);
    match (theirs, have) {
        (Some(s), Some(h)) if s.digest == h && writes_source_as_is(&s.media_type, opts) => Ok(Presence::Present(h)),
        (_, have) => Ok(Presence::Absent(have)),
    }
}

/// Whether a copy with `opts` writes a source manifest of `media_type`
/// unchanged when the destination holds it already: no conversion, no
/// recompression asked for, and a list copied whole. (A single image chosen
/// from a list, the default, is judged after reading the list.)
fn writes_source_as_is(media_type: &str, opts: &CopyOptions) -> bool {
    opts.platforms.is_empty()
        && opts.format.is_none()
        && opts.compression.format.is_none()
        && !opts.compression.decompress
        && opts.encryption.is_none()
        && opts.decryption.is_none()
        && (!is_list_type(media_type) || opts.multi_arch == MultiArch::All)
}

/// The digest of the manifest a copy of this image (bytes, media type) would
/// write, where it is known before any blob is copied: no layer changes
/// compression or encryption (a format conversion alone is computable).
pub fn predicted_image(
    src: &dyn ImageSource,
    dst: &dyn ImageDestination,
    bytes: &bytes::Bytes,
    mime: &str,
    opts: &CopyOptions,
) -> Result<Option<Digest>, CopyError> {
    let Ok(Manifest::Image(m)) = Manifest::parse(bytes, mime) else {
        return Ok(None);
    };
    let Ok((m, bytes)) = super::single::with_layers_for_copy(src, dst, m, bytes.clone(), opts) else {
        // A copy that cannot keep its digests is judged when it runs.
        return Ok(None);
    };
    let bytes = &bytes;
    let plan = plan_image(&m, &caps(dst), |d| src.layer_compression(d), opts)?;
    if plan.changes.iter().any(Option::is_some) || plan.crypts() {
        return Ok(None);
    }
    let (out, _) = finished_manifest(src, &m, bytes.clone(), &plan, &[], &[])?;
    Ok(Some(Digest::sha256_of(&out)))
}

/// The full check, for plans that copy nothing (`sync --dry-run`): the
/// digest the destination already holds for this copy, if it does. The
/// same decisions as [`super::copy`] takes before moving a blob.
pub async fn check(
    src: &dyn ImageSource,
    dst: &dyn ImageDestination,
    opts: &CopyOptions,
) -> Result<Option<Digest>, CopyError> {
    let have = match quick(src, dst, opts).await? {
        Presence::Present(d) => return Ok(Some(d)),
        Presence::Absent(None) => return Ok(None),
        Presence::Absent(Some(h)) => h,
    };
    let matching = |d: Option<Digest>| d.filter(|d| *d == have);
    let (bytes, mime) = src.manifest(None).await?;
    if !is_list_type(&mime) {
        return Ok(matching(predicted_image(src, dst, &bytes, &mime, opts)?));
    }
    let Manifest::Index(index) = Manifest::parse(&bytes, &mime)? else {
        return Ok(None);
    };
    if !opts.platforms.is_empty() {
        let subset = platform_subset(&index, &opts.platforms)?;
        return Ok(matching(Some(Digest::sha256_of(&manifest::to_bytes(&subset)))));
    }
    if opts.multi_arch == MultiArch::System {
        let want = opts.platform.clone().unwrap_or_else(manifest::host_platform);
        if let Ok(chosen) = manifest::choose_instance(&index, &want) {
            let (ib, im) = src.manifest(Some(&chosen.digest)).await?;
            return Ok(matching(predicted_image(src, dst, &ib, &im, opts)?));
        }
    }
    Ok(None)
}
