//! `kopeo delete`.

use super::flags::{ImageFlags, RetryFlags};
use super::{CliError, Global, failure, parse_image};
use crate::transport;
use clap::Args;

#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// IMAGE-NAME
    image: String,
    #[command(flatten)]
    flags: ImageFlags,
    #[command(flatten)]
    retry: RetryFlags,
}

/// Delete an image: from a registry, by resolving the tag to its manifest
/// digest and DELETEing that manifest (which removes every tag pointing at
/// it); from an `oci:` layout, its index.json entry and the blobs no other
/// image of the layout uses.
pub async fn delete(args: DeleteArgs, global: &Global) -> Result<(), CliError> {
    let image = parse_image(&args.image)?;
    let opts = args
        .flags
        .open_options_with(&None, args.retry.options(), global.tls_verify)?;
    transport::delete(&image, &opts)
        .await
        .map_err(|e| failure(&args.image, e))
}
