//! `kopeo list-tags`, `kopeo delete`, `kopeo manifest-digest`.

use super::flags::{ImageFlags, RetryFlags};
use super::inspect::print_json;
use super::{CliError, Global, parse_image};
use crate::digest::Digest;
use crate::reference::{DockerReference, ImageReference};
use crate::registry::RegistryClient;
use crate::transport::TransportError;
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct ListTagsArgs {
    /// SOURCE-IMAGE (docker://REPOSITORY, without a tag)
    image: String,
    #[command(flatten)]
    flags: ImageFlags,
    #[command(flatten)]
    retry: RetryFlags,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct TagListOutput {
    /// Left out for archives, as skopeo leaves it out.
    #[serde(skip_serializing_if = "String::is_empty")]
    repository: String,
    tags: Vec<String>,
}

fn registry_error(image: &str, e: impl Into<TransportError>) -> CliError {
    let e = e.into();
    let msg = format!("{image}: {e}");
    if e.is_image_not_found() {
        CliError::not_found(msg)
    } else {
        CliError::new(msg)
    }
}

/// List a repository's tags as skopeo does (`{"Repository", "Tags"}`).
pub async fn list_tags(args: ListTagsArgs, global: &Global) -> Result<(), CliError> {
    let Some((transport, rest)) = args.image.split_once(':') else {
        return Err(CliError::new(format!(
            "invalid image name {:?}, expected colon-separated transport:reference",
            args.image
        )));
    };
    if transport == "docker-archive" {
        let image = parse_image(&args.image)?;
        let ImageReference::DockerArchive { path, .. } = &image else {
            return Err(CliError::new(format!("invalid image name {:?}", args.image)));
        };
        let tags = crate::transport::docker_archive::list_tags(path)
            .await
            .map_err(|e| registry_error(&args.image, e))?;
        println!(
            "{}",
            print_json(&TagListOutput {
                repository: String::new(),
                tags
            })?
        );
        return Ok(());
    }
    if transport != "docker" {
        return Err(CliError::new(format!(
            "Unsupported transport '{transport}' for tag listing. Only supported: docker, docker-archive"
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
        return Err(CliError::new(format!(
            "tag or digest is not supported in the repository name {:?}",
            args.image
        )));
    }
    let opts = args
        .flags
        .open_options_with(&None, args.retry.options(), global.tls_verify)?;
    let client = RegistryClient::new(r.domain(), opts.registry).map_err(|e| registry_error(&args.image, e))?;
    let tags = client
        .list_tags(r.path())
        .await
        .map_err(|e| registry_error(&args.image, e))?;
    println!(
        "{}",
        print_json(&TagListOutput {
            repository: r.name(),
            tags
        })?
    );
    Ok(())
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// IMAGE-NAME
    image: String,
    #[command(flatten)]
    flags: ImageFlags,
    #[command(flatten)]
    retry: RetryFlags,
}

/// Delete an image from a registry: resolve the tag to its manifest digest,
/// then DELETE that manifest (which removes every tag pointing at it).
pub async fn delete(args: DeleteArgs, global: &Global) -> Result<(), CliError> {
    let image = parse_image(&args.image)?;
    let ImageReference::Docker(r) = &image else {
        return Err(CliError::new(format!(
            "deleting images in the {} transport is not yet supported by kopeo",
            image.transport()
        )));
    };
    let opts = args
        .flags
        .open_options_with(&None, args.retry.options(), global.tls_verify)?;
    let client = RegistryClient::new(r.domain(), opts.registry).map_err(|e| registry_error(&args.image, e))?;
    let digest = match r.digest() {
        Some(d) => d.clone(),
        None => {
            let tag = r.tag().unwrap_or("latest");
            let (bytes, _) = client
                .get_manifest(r.path(), tag)
                .await
                .map_err(|e| registry_error(&args.image, e))?;
            Digest::sha256_of(&bytes)
        }
    };
    client
        .delete_manifest(r.path(), &digest)
        .await
        .map_err(|e| registry_error(&args.image, e))?;
    Ok(())
}

#[derive(Args, Debug)]
pub struct ManifestDigestArgs {
    /// MANIFEST file
    manifest: PathBuf,
}

/// Print the digest of a manifest file.
pub fn manifest_digest(args: ManifestDigestArgs) -> Result<(), CliError> {
    let data = std::fs::read(&args.manifest)
        .map_err(|e| CliError::new(format!("reading manifest from {}: {e}", args.manifest.display())))?;
    let mime = crate::manifest::guess_mime_type(&data);
    if mime == crate::manifest::media::DOCKER_V2S1_SIGNED {
        return Err(CliError::new(
            "computing the digest of signed Docker schema1 manifests is not supported by kopeo",
        ));
    }
    println!("{}", Digest::sha256_of(&data));
    Ok(())
}
