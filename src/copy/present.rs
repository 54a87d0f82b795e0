//! "Already at the destination": before any blob moves, the digest the
//! destination holds is compared with the source's (when nothing forces a
//! change) and with the digest of the manifest the copy would write. Either
//! match makes the copy a no-op: an unchanged image costs a manifest HEAD on
//! each side of a registry copy, and no transfer.

use super::plan::plan_image;
use super::rewrite::finished_manifest;
use super::single::caps;
use super::{CopyError, CopyOptions, platform_subset};
use crate::digest::Digest;
use crate::manifest::{self, Manifest, is_list_type};
use crate::options::MultiArch;
use crate::transport::{ImageDestination, ImageSource};

/// What the destination holds, as far as the cheap comparison tells.
pub enum Presence {
    /// It holds this digest, which the copy would write (or the source has).
    Present(Digest),
    /// A copy is needed; the destination holds this digest now, if any.
    Absent(Option<Digest>),
}

/// Compare without reading the source's manifest: the destination's digest
/// against the source's, unless the options force a change.
pub async fn quick(
    src: &dyn ImageSource,
    dst: &dyn ImageDestination,
    opts: &CopyOptions,
) -> Result<Presence, CopyError> {
    let Some(have) = dst.current_digest().await? else {
        return Ok(Presence::Absent(None));
    };
    if opts.format.is_none() && opts.platforms.is_empty() && src.current_digest().await?.as_ref() == Some(&have) {
        return Ok(Presence::Present(have));
    }
    Ok(Presence::Absent(Some(have)))
}

/// The digest of the manifest a copy of this image (bytes, media type) would
/// write, where it is known before any blob is copied: no layer changes
/// compression (a format conversion alone is computable).
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
    let plan = plan_image(&m, &caps(dst), |d| src.layer_compression(d), opts)?;
    if plan.changes.iter().any(Option::is_some) {
        return Ok(None);
    }
    let (out, _) = finished_manifest(src, &m, bytes.clone(), &plan, &[], &[])?;
    Ok(Some(Digest::sha256_of(&out)))
}

/// The full check, for plans that copy nothing (`sync --dry-run`): the
/// digest the destination already holds for this copy, if it does.
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
    let (bytes, mime) = src.manifest(None).await?;
    if !is_list_type(&mime) {
        return Ok(predicted_image(src, dst, &bytes, &mime, opts)?.filter(|d| *d == have));
    }
    let Manifest::Index(index) = Manifest::parse(&bytes, &mime)? else {
        return Ok(None);
    };
    if !opts.platforms.is_empty() {
        let subset = platform_subset(&index, &opts.platforms)?;
        let d = Digest::sha256_of(&manifest::to_bytes(&subset));
        return Ok((d == have).then_some(d));
    }
    if opts.multi_arch == MultiArch::System {
        let want = opts.platform.clone().unwrap_or_else(manifest::host_platform);
        if let Ok(chosen) = manifest::choose_instance(&index, &want) {
            let (ib, im) = src.manifest(Some(&chosen.digest)).await?;
            return Ok(predicted_image(src, dst, &ib, &im, opts)?.filter(|d| *d == have));
        }
    }
    Ok(None)
}
