//! `kopeo sync`.

use super::copy_flags::CopyFlags;
use super::flags::{DestFlags, SrcFlags};
use super::{CliError, Global, log_line, progress};
use crate::registry::ClientPool;
use crate::sync::{self, Action, SyncDestination, SyncOptions, SyncSource};
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Args, Debug)]
pub struct SyncArgs {
    /// SOURCE
    source: String,
    /// DESTINATION
    destination: String,
    /// SOURCE transport type (docker, dir, or yaml)
    #[arg(short = 's', long = "src", value_name = "TRANSPORT")]
    src: String,
    /// DESTINATION transport type (docker or dir)
    #[arg(short = 'd', long = "dest", value_name = "TRANSPORT")]
    dest: String,
    /// path of the authentication file. Default is ${XDG_RUNTIME_DIR}/containers/auth.json
    #[arg(long, value_name = "PATH", env = "REGISTRY_AUTH_FILE", hide_env = true)]
    authfile: Option<PathBuf>,
    #[command(flatten)]
    src_flags: SrcFlags,
    #[command(flatten)]
    dest_flags: DestFlags,
    #[command(flatten)]
    copy: CopyFlags,
    /// Images at DESTINATION are prefixed using the full source image path as scope
    #[arg(long)]
    scoped: bool,
    /// String to append to DESTINATION tags
    #[arg(
        long = "append-suffix",
        value_name = "SUFFIX",
        default_value = "",
        allow_hyphen_values = true
    )]
    append_suffix: String,
    /// Do not abort the sync if any image copy fails
    #[arg(long = "keep-going")]
    keep_going: bool,
    /// Run without actually copying data
    #[arg(long = "dry-run")]
    dry_run: bool,
    /// Write the digests and references of the resulting images to the specified file
    #[arg(long, value_name = "PATH")]
    digestfile: Option<PathBuf>,
    /// Images copied at once (kopeo)
    #[arg(long = "parallel-images", value_name = "N", default_value_t = sync::DEFAULT_PARALLEL_IMAGES)]
    parallel_images: usize,
    /// Leave out tags matching this regular expression; repeatable (kopeo)
    #[arg(long = "exclude-tag", value_name = "REGEX")]
    exclude_tag: Vec<String>,
    /// Keep only the newest N semver tags of each repository (kopeo)
    #[arg(long = "keep-newest", value_name = "N")]
    keep_newest: Option<usize>,
    /// Tags are immutable: skip every tag the destination already has (kopeo)
    #[arg(long = "skip-existing")]
    skip_existing: bool,
    /// SOURCE (--src docker) is REGISTRY[/PREFIX]: every repository in its catalog (kopeo)
    #[arg(long)]
    catalog: bool,
    /// Delete destination tags of the synced repositories that the source no longer has (kopeo)
    #[arg(long)]
    prune: bool,
    /// Copy only shard INDEX of COUNT (repositories split by a hash of their name);
    /// COUNT alone takes INDEX from $JOB_COMPLETION_INDEX (kopeo)
    #[arg(long, value_name = "INDEX/COUNT")]
    shard: Option<String>,
    /// Write a JSON report of every image to PATH (kopeo)
    #[arg(long, value_name = "PATH")]
    report: Option<PathBuf>,
    /// Suppress per-layer progress output
    #[arg(short = 'q', long)]
    quiet: bool,
}

fn parse_source(args: &SyncArgs) -> Result<SyncSource, CliError> {
    match args.src.as_str() {
        "docker" if args.catalog => Ok(SyncSource::Catalog(args.source.clone())),
        "docker" => Ok(SyncSource::Docker(args.source.clone())),
        "dir" | "yaml" if args.catalog => Err(CliError::new("--catalog goes with --src docker")),
        "dir" => Ok(SyncSource::Dir(PathBuf::from(&args.source))),
        "yaml" => {
            let text = std::fs::read_to_string(&args.source)
                .map_err(|e| CliError::new(format!("reading YAML source {}: {e}", args.source)))?;
            let cfg = sync::config::parse(&text)
                .map_err(|e| CliError::new(format!("parsing YAML source {}: {e}", args.source)))?;
            Ok(SyncSource::Yaml(cfg))
        }
        other => Err(CliError::new(format!(
            "{other:?} is not a valid source transport: use docker, dir or yaml"
        ))),
    }
}

/// Sync as skopeo does, with kopeo's extras.
pub async fn run(args: SyncArgs, global: &Global) -> Result<(), CliError> {
    let source = parse_source(&args)?;
    let dest = match args.dest.as_str() {
        "docker" => SyncDestination::Docker(args.destination.trim_start_matches("docker://").to_string()),
        "dir" => SyncDestination::Dir(PathBuf::from(&args.destination)),
        other => {
            return Err(CliError::new(format!(
                "{other:?} is not a valid destination transport: use docker or dir"
            )));
        }
    };
    if args.parallel_images == 0 {
        return Err(CliError::new("--parallel-images must be at least 1"));
    }
    args.copy.refuse_unsupported()?;
    args.copy.warn_deprecated();
    let exclude = args
        .exclude_tag
        .iter()
        .map(|r| regex::Regex::new(r).map_err(|e| CliError::new(format!("invalid --exclude-tag {r:?}: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let retry = args.copy.retry.options();
    let tls = args.copy.deprecated_tls_verify.or(global.tls_verify);
    let mut src = args.src_flags.open_options_with(&args.authfile, retry, tls)?;
    let mut dst = args.dest_flags.open_options_with(&args.authfile, retry, tls)?;
    src.pool = Some(Arc::new(ClientPool::default()));
    dst.pool = Some(Arc::new(ClientPool::default()));
    let storage = global.signature_storage()?;
    src.signature_storage = Some(storage.clone());
    dst.signature_storage = Some(storage);
    // Per-layer progress only makes sense one image at a time.
    let per_layer = !args.quiet && args.parallel_images == 1;
    let mut copy = args
        .copy
        .settings(None)?
        .to_options()
        .map_err(|e| CliError::new(e.to_string()))?
        .for_platform(global.platform.clone())
        .with_progress(per_layer.then(progress::reporter));
    copy.signing = args.copy.signing(None)?;
    copy.policy = Some(global.trust_policy()?);
    let opts = SyncOptions {
        copy,
        scoped: args.scoped,
        append_suffix: args.append_suffix.clone(),
        parallel_images: args.parallel_images,
        keep_going: args.keep_going,
        dry_run: args.dry_run,
        skip_existing: args.skip_existing,
        exclude_tags: exclude,
        keep_newest: args.keep_newest,
        prune: args.prune,
        shard: match &args.shard {
            Some(s) => Some(
                sync::shard::Shard::parse(s, std::env::var("JOB_COMPLETION_INDEX").ok().as_deref())
                    .map_err(|e| CliError::new(e.to_string()))?,
            ),
            None => None,
        },
        src,
        dest: dst,
        on_start: Some(Arc::new(|s: &sync::ImageStart<'_>| {
            let verb = if s.dry_run { "Would have copied" } else { "Copying" };
            log_line(
                "info",
                &format!(
                    "{verb} image ref {}/{} from \"{}\" to \"{}\"",
                    s.n, s.total, s.source, s.destination
                ),
            );
        })),
        on_done: None,
    };
    let plan = sync::plan(&source, &dest, &opts)
        .await
        .map_err(|e| CliError::new(e.to_string()))?;
    let report = sync::execute(&plan, &opts).await;
    if let Some(path) = &args.report {
        let body = serde_json::to_vec_pretty(&report).map_err(|e| CliError::new(e.to_string()))?;
        std::fs::write(path, body).map_err(|e| CliError::new(format!("writing report {}: {e}", path.display())))?;
    }
    if let Some(path) = &args.digestfile {
        let lines: String = report
            .images
            .iter()
            .filter(|i| matches!(i.action, Action::Copied | Action::Skipped))
            .filter_map(|i| i.digest.as_ref().map(|d| format!("{d} {}\n", i.destination)))
            .collect();
        std::fs::write(path, lines)
            .map_err(|e| CliError::new(format!("writing digest file {}: {e}", path.display())))?;
    }
    for failed in report.images.iter().filter(|i| i.action == Action::Failed) {
        log_line(
            "error",
            &format!(
                "Error copying ref \"{}\": {}",
                failed.source,
                failed.error.as_deref().unwrap_or("")
            ),
        );
    }
    for p in &report.pruned {
        use crate::sync::prune::PruneAction;
        let reason = p.reason.as_deref().unwrap_or("");
        match p.action {
            PruneAction::Pruned => log_line("info", &format!("Pruned \"{}\"", p.destination)),
            PruneAction::Planned => log_line("info", &format!("Would have pruned \"{}\"", p.destination)),
            PruneAction::Kept => log_line("warning", &format!("Not pruning \"{}\": {reason}", p.destination)),
            PruneAction::Failed => log_line("error", &format!("Error pruning \"{}\": {reason}", p.destination)),
        }
    }
    let prune_failed = report
        .pruned
        .iter()
        .filter(|p| p.action == crate::sync::prune::PruneAction::Failed)
        .count();
    let (copied, skipped, failed) = (
        report.count(Action::Copied),
        report.count(Action::Skipped),
        report.count(Action::Failed),
    );
    if args.dry_run {
        log_line(
            "info",
            &format!(
                "Would have synced {} images from {} sources",
                report.count(Action::Planned),
                plan.sources
            ),
        );
    } else {
        log_line(
            "info",
            &format!(
                "Synced {copied} images from {} sources ({skipped} already present)",
                plan.sources
            ),
        );
    }
    if failed > 0 {
        return Err(CliError::new(format!(
            "Sync failed due to previous reported error(s) for one or more images ({failed} failed)"
        )));
    }
    if prune_failed > 0 {
        return Err(CliError::new(format!(
            "Pruning failed for {prune_failed} destination tags"
        )));
    }
    Ok(())
}
