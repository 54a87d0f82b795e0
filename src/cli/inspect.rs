//! `kopeo inspect`.

use super::flags::{ImageFlags, RetryFlags};
use super::template::Template;
use super::{CliError, Global, parse_image};
use crate::digest::Digest;
use crate::manifest::{self, Manifest, is_list_type};
use crate::reference::ImageReference;
use crate::transport::{self, TransportError};
use clap::Args;
use serde::Serialize;
use serde_json::Value;
use std::io::Write as _;

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// IMAGE-NAME
    image: String,
    #[command(flatten)]
    flags: ImageFlags,
    #[command(flatten)]
    retry: RetryFlags,
    /// output raw manifest or configuration
    #[arg(long)]
    raw: bool,
    /// output configuration
    #[arg(long)]
    config: bool,
    /// Format the output to a Go template
    #[arg(short = 'f', long, value_name = "FORMAT")]
    format: Option<String>,
    /// Do not list the available tags from the repository in the output
    #[arg(short = 'n', long = "no-tags")]
    no_tags: bool,
    /// Algorithm to use for computing manifest digest (sha256, sha512); defaults to algorithm used in config digest
    #[arg(long = "manifest-digest", value_name = "ALGORITHM")]
    manifest_digest: Option<crate::digest::Algorithm>,
}

/// One layer in `LayersData`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct LayerData {
    #[serde(rename = "MIMEType")]
    mime_type: String,
    digest: Digest,
    size: i64,
    annotations: Option<std::collections::BTreeMap<String, String>>,
}

/// skopeo's inspect output, field for field.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Output {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    /// A schema1 manifest's own tag.
    #[serde(skip_serializing_if = "String::is_empty")]
    tag: String,
    digest: Digest,
    repo_tags: Vec<String>,
    created: Option<String>,
    docker_version: String,
    labels: Option<Value>,
    architecture: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    variant: String,
    os: String,
    layers: Vec<Digest>,
    layers_data: Vec<LayerData>,
    env: Option<Value>,
}

/// Serialise like Go's json.MarshalIndent with four spaces (HTML-escaped, as Go does).
pub fn print_json<T: Serialize>(v: &T) -> Result<String, CliError> {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    v.serialize(&mut ser)
        .map_err(|e| CliError::new(format!("encoding JSON: {e}")))?;
    let s = String::from_utf8_lossy(&buf).into_owned();
    Ok(s.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026"))
}

fn wrap(image: &ImageReference) -> impl Fn(TransportError) -> CliError + '_ {
    move |e| {
        let msg = format!("inspecting {image}: {e}");
        if e.is_image_not_found() {
            CliError::not_found(msg)
        } else {
            CliError::new(msg)
        }
    }
}

/// Print what skopeo inspect prints.
pub async fn run(args: InspectArgs, global: &Global) -> Result<(), CliError> {
    let image = parse_image(&args.image)?;
    let opts = args
        .flags
        .open_options_with(&None, args.retry.options(), global.tls_verify)?;
    let template = args
        .format
        .as_deref()
        .map(|f| Template::parse(&f.replace("\\n", "\n").replace("\\t", "\t")))
        .transpose()
        .map_err(|e| CliError::new(e.to_string()))?;
    let w = wrap(&image);
    let src = transport::open_source(&image, &opts).await.map_err(&w)?;
    // The tag list is asked for beside the config (and a list's instance),
    // not after them: one round trip fewer. It waits for the top manifest,
    // whose request has fetched the token the tag list shares. Its answer
    // matters only once the image has been read (their errors come first,
    // in skopeo's order).
    let want_tags = !args.raw && !args.config && !args.no_tags && matches!(image, ImageReference::Docker(_));
    let (manifest_read, read_signal) = tokio::sync::oneshot::channel();
    let tags = async {
        if want_tags && read_signal.await.is_ok() {
            Some(src.repo_tags().await)
        } else {
            None
        }
    };
    let (read, tags) = futures::join!(read_image(src.as_ref(), &args, global, &w, manifest_read), tags);
    let (raw, view) = read?;
    let mut out = std::io::stdout().lock();
    let Some(view) = view else {
        return out.write_all(&raw).map_err(|e| CliError::new(e.to_string()));
    };
    if args.config {
        if args.raw {
            return out
                .write_all(&view.raw_config)
                .map_err(|e| CliError::new(e.to_string()));
        }
        // skopeo prints the configuration as the OCI Image type reads it.
        let oci = crate::image_config::OciImage::from_json(&view.config)
            .map_err(|e| CliError::new(format!("Error reading OCI-formatted configuration data: {e}")))?;
        return writeln!(out, "{}", print_json(&oci)?).map_err(|e| CliError::new(e.to_string()));
    }
    let config: Value =
        serde_json::from_slice(&view.fields).map_err(|e| CliError::new(format!("parsing image config: {e}")))?;
    let inner = config.get("config").cloned().unwrap_or(Value::Null);
    let (name, repo_tags) = match &image {
        ImageReference::Docker(r) => {
            let tags = match tags {
                None => vec![],
                Some(tags) => match tags {
                    Ok(t) => t,
                    Err(TransportError::Registry(e @ crate::registry::RegistryError::Unauthorized { .. })) => {
                        tracing::warn!(error = %e, "Registry disallows tag list retrieval; skipping");
                        vec![]
                    }
                    Err(TransportError::Registry(crate::registry::RegistryError::Status { status: 403, .. })) => {
                        tracing::warn!("Registry disallows tag list retrieval; skipping");
                        vec![]
                    }
                    Err(e) => {
                        return Err(CliError::new(format!("Error determining repository tags: {e}")));
                    }
                },
            };
            (Some(r.name()), tags)
        }
        ImageReference::ContainersStorage { image, .. } => {
            (crate::transport::containers_storage::repository_name(image), vec![])
        }
        _ => (None, vec![]),
    };
    let s = |k: &str| config.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let algorithm = args.manifest_digest.unwrap_or(view.algorithm);
    let digest = crate::manifest_digest::manifest_digest_with(&raw, algorithm)
        .map_err(|e| CliError::new(format!("computing manifest digest: {e}")))?;
    let output = Output {
        name,
        tag: view.tag,
        digest,
        repo_tags,
        created: config.get("created").and_then(Value::as_str).map(str::to_string),
        docker_version: s("docker_version"),
        labels: inner.get("Labels").cloned().filter(|v| !v.is_null()),
        architecture: s("architecture"),
        variant: s("variant"),
        os: s("os"),
        layers: view.layers.iter().map(|l| l.digest.clone()).collect(),
        layers_data: view.layers,
        env: inner.get("Env").cloned().filter(|v| !v.is_null()),
    };
    let text = match template {
        Some(t) => {
            let v = serde_json::to_value(&output).map_err(|e| CliError::new(e.to_string()))?;
            let mut s = t.render(&v).map_err(|e| CliError::new(e.to_string()))?;
            if !s.ends_with('\n') {
                s.push('\n');
            }
            s
        }
        None => format!("{}\n", print_json(&output)?),
    };
    out.write_all(text.as_bytes()).map_err(|e| CliError::new(e.to_string()))
}

/// What inspect reports of an image besides its top manifest.
struct ImageView {
    layers: Vec<LayerData>,
    /// The config whose fields the output shows (a schema1 image's top
    /// `v1Compatibility`, whose fields have the same names).
    fields: Vec<u8>,
    /// The config `--config` shows (a schema1 image's converted one).
    config: Vec<u8>,
    /// What `--raw --config` prints: the config blob (schema1 has none).
    raw_config: Vec<u8>,
    /// The manifest digest's algorithm unless asked: the config digest's.
    algorithm: crate::digest::Algorithm,
    tag: String,
}

/// A schema1 image as containers/image inspects it: layers bottom first
/// without the empty ones, of unknown type and size; no config blob, and a
/// converted config with unknown diff_ids.
fn schema1_view(bytes: &[u8]) -> Result<ImageView, CliError> {
    use crate::copy::schema1;
    let bad = |e: crate::copy::CopyError| CliError::new(format!("parsing manifest: {e}"));
    let (s1, v1s) = schema1::parse(bytes).map_err(bad)?;
    let (history, blobs) = schema1::history_and_layers(&s1, &v1s);
    let fields = serde_json::to_vec(&v1s[0]).map_err(|e| CliError::new(e.to_string()))?;
    let unknown = blobs.iter().map(|_| Value::String(String::new())).collect();
    let config = schema1::config(v1s, history, unknown).map_err(bad)?;
    let layers = blobs
        .into_iter()
        .map(|digest| LayerData {
            mime_type: String::new(),
            digest,
            size: -1,
            annotations: None,
        })
        .collect();
    let tag = serde_json::from_slice::<Value>(bytes)
        .ok()
        .and_then(|v| v.get("tag").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_default();
    Ok(ImageView {
        layers,
        fields,
        config,
        raw_config: vec![],
        algorithm: crate::digest::Algorithm::Sha256,
        tag,
    })
}

/// The top manifest as read, and (unless only it is wanted, `--raw`) what
/// inspect shows of the image (a list's instance for the platform).
async fn read_image(
    src: &dyn transport::ImageSource,
    args: &InspectArgs,
    global: &Global,
    w: &impl Fn(TransportError) -> CliError,
    manifest_read: tokio::sync::oneshot::Sender<()>,
) -> Result<(bytes::Bytes, Option<ImageView>), CliError> {
    let (raw, mime) = src.manifest(None).await.map_err(w)?;
    // Nobody listening (no tag list wanted) is fine.
    let _ = manifest_read.send(());
    if args.raw && !args.config {
        return Ok((raw, None));
    }
    let (img_bytes, img_mime) = if is_list_type(&mime) {
        let Manifest::Index(index) = Manifest::parse(&raw, &mime).map_err(|e| w(e.into()))? else {
            return Err(CliError::new("manifest list did not parse as a list"));
        };
        let want = global.platform.clone().unwrap_or_else(manifest::host_platform);
        let chosen = manifest::choose_instance(&index, &want).map_err(|e| {
            use crate::skopeo_texts::{CHOOSING_INSTANCE, INSPECT_PARSING_MANIFEST};
            CliError::new(format!("{INSPECT_PARSING_MANIFEST}: {CHOOSING_INSTANCE}: {e}"))
        })?;
        src.manifest(Some(&chosen.digest)).await.map_err(&w)?
    } else {
        (raw.clone(), mime.clone())
    };
    if img_mime == manifest::media::DOCKER_V2S1 || img_mime == manifest::media::DOCKER_V2S1_SIGNED {
        return Ok((raw, Some(schema1_view(&img_bytes)?)));
    }
    let Manifest::Image(m) = Manifest::parse(&img_bytes, &img_mime).map_err(|e| w(e.into()))? else {
        return Err(CliError::new("nested manifest list"));
    };
    let config = crate::copy::read_config(src, &m.config).await.map_err(w)?;
    let layers = m
        .layers
        .iter()
        .map(|l| LayerData {
            mime_type: l.media_type.clone(),
            digest: l.digest.clone(),
            size: l.size,
            annotations: l.annotations.clone(),
        })
        .collect();
    let view = ImageView {
        layers,
        fields: config.clone(),
        raw_config: config.clone(),
        config,
        algorithm: m.config.digest.algorithm(),
        tag: String::new(),
    };
    Ok((raw, Some(view)))
}
