//! `kopeo list-tags`: a registry repository's tags, or a docker-archive's.

use super::flags::{ImageFlags, RetryFlags};
use super::inspect::print_json;
use super::{CliError, Global, failure, parse_image};
use crate::reference::DockerReference;
use crate::transport;
use clap::Args;

#[derive(Args, Debug)]
pub struct ListTagsArgs {
    /// SOURCE-IMAGE (docker://REPOSITORY, without a tag)
    image: String,
    #[command(flatten)]
    flags: ImageFlags,
    #[command(flatten)]
    retry: RetryFlags,
}

/// skopeo's output: `{"Repository": …, "Tags": […]}`, no repository for archives.
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct TagListOutput {
    #[serde(skip_serializing_if = "Option::is_none")]
    repository: Option<String>,
    tags: Vec<String>,
}

fn print_tags(list: transport::TagList) -> Result<(), CliError> {
    let out = TagListOutput {
        repository: list.repository,
        tags: list.tags,
    };
    println!("{}", print_json(&out)?);
    Ok(())
}

/// List a repository's tags as skopeo does (`{"Repository", "Tags"}`).
pub async fn list_tags(args: ListTagsArgs, global: &Global) -> Result<(), CliError> {
    let Some((kind, rest)) = args.image.split_once(':') else {
        return Err(CliError::new(format!(
            "invalid image name {:?}, expected colon-separated transport:reference",
            args.image
        )));
    };
    if kind == "docker-archive" {
        let list = transport::list_archive_tags(&parse_image(&args.image)?)
            .await
            .map_err(|e| failure(&args.image, e))?;
        return print_tags(list);
    }
    if kind != "docker" {
        return Err(CliError::new(format!(
            "Unsupported transport '{kind}' for tag listing. Only supported: docker, docker-archive"
        )));
    }
    let name = rest.strip_prefix("//").ok_or_else(|| {
        CliError::new(format!(
            "invalid image name {:?}: docker: image reference does not start with //",
            args.image
        ))
    })?;
    let r = DockerReference::parse_normalized(name)
        .map_err(|e| CliError::new(format!("invalid image name {:?}: {e}", args.image)))?;
    if !r.is_name_only() {
        // skopeo's words (see skopeo_texts), with the name said.
        return Err(CliError::new(format!(
            "Invalid {:?}: No tag or digest allowed in reference",
            args.image
        )));
    }
    let opts = args
        .flags
        .open_options_with(&None, args.retry.options(), global.tls_verify)?;
    let list = transport::list_repository_tags(&r, &opts)
        .await
        .map_err(|e| failure(&args.image, e))?;
    print_tags(list)
}
