//! `kopeo worker`: the work the operator hands to pods of its Jobs.

use super::{CliError, flags};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct WorkerArgs {
    #[command(subcommand)]
    command: WorkerCommand,
}

#[derive(Subcommand, Debug)]
enum WorkerCommand {
    /// Copy one shard of an ImageSync with spec.workers (run by its Job's pods)
    ImageSync(ImageSyncArgs),
}

#[derive(Args, Debug)]
struct ImageSyncArgs {
    /// The ImageSync's namespace
    #[arg(long)]
    namespace: String,
    /// The ImageSync's name
    #[arg(long)]
    name: String,
    /// The hash of the ImageSync spec the Job was made for (a changed spec stops the shard)
    #[arg(long = "spec-hash")]
    spec_hash: String,
    /// The Job running this shard (its reports are tagged with it)
    #[arg(long)]
    job: String,
    /// This pod's name, for its reports
    #[arg(long, env = "POD_NAME", default_value = "")]
    pod: String,
    /// How many shards the sync is split into
    #[arg(long)]
    shards: usize,
    /// This shard's index (default: $JOB_COMPLETION_INDEX)
    #[arg(long)]
    index: Option<usize>,
    /// The auth.json (pull Secret) to log in with; a missing file means no credentials
    #[arg(long, value_name = "PATH")]
    authfile: Option<PathBuf>,
    /// Where the Secrets and ConfigMaps holding the sync's keys are mounted (DIR/secret/NAME, DIR/configmap/NAME)
    #[arg(long = "keys-dir", value_name = "DIR")]
    keys_dir: Option<PathBuf>,
    /// Where the registries' CA and client certificates are (DIR/HOST/ca-N.crt, client.cert, client.key)
    #[arg(long = "certs-dir", value_name = "DIR")]
    certs_dir: Option<PathBuf>,
    /// A registry to reach without TLS verification (repeatable)
    #[arg(long = "insecure-registry", value_name = "HOST")]
    insecure: Vec<String>,
    /// This worker's request budget for a host, HOST=REQUESTS_PER_SECOND[/CONCURRENT_BLOBS] (repeatable)
    #[arg(long = "registry-rate-limit", value_name = "HOST=RPS[/BLOBS]")]
    limits: Vec<crate::options::rate_limit::HostRateLimit>,
    /// Write the shard's progress to the ImageSync's status at most this often
    #[arg(long = "report-interval", default_value = "10s", value_parser = flags::parse_duration)]
    report_interval: std::time::Duration,
}

/// Run a worker; its exit code tells the Job whether to retry the shard.
pub async fn run(a: WorkerArgs) -> Result<(), CliError> {
    let WorkerCommand::ImageSync(a) = a.command;
    let index = match a.index {
        Some(i) => i.to_string(),
        None => std::env::var("JOB_COMPLETION_INDEX")
            .map_err(|_| CliError::new("worker image-sync: --index or $JOB_COMPLETION_INDEX is required"))?,
    };
    let shard = crate::sync::shard::Shard::parse(&format!("{index}/{}", a.shards), None)
        .map_err(|e| CliError::new(format!("worker image-sync: {e}")))?;
    let client = kube::Client::try_default()
        .await
        .map_err(|e| CliError::new(format!("connecting to the cluster: {e}")))?;
    let job = crate::operator::image_sync::worker::WorkerJob {
        namespace: a.namespace,
        name: a.name,
        spec_hash: a.spec_hash,
        job: a.job,
        pod: a.pod,
        shard,
        authfile: a.authfile,
        keys_dir: a.keys_dir,
        certs_dir: a.certs_dir,
        insecure: a.insecure,
        limits: a.limits,
        report_interval: a.report_interval,
    };
    let shard_text = format!("shard {}/{}", shard.index, shard.count);
    // The exit code tells the Job whether to run the shard again: only a
    // shard that could not finish is. Images that failed are in the report
    // (a rejected signature fails again; a retry would only copy, and sign,
    // the rest once more); the ImageSync's own backoff runs the sync again.
    match crate::operator::image_sync::worker::run(client, job).await {
        Ok(true) => Ok(()),
        Ok(false) => {
            tracing::warn!(shard = %shard_text, "some images failed (see the ImageSync's status)");
            Ok(())
        }
        // The spec changed under the Job: the controller replaces it, and a
        // retry of this pod would only find the same.
        Err(e @ crate::operator::image_sync::worker::WorkerError::Changed { .. }) => {
            tracing::warn!(shard = %shard_text, reason = %e, "not copying");
            Ok(())
        }
        Err(e) => Err(CliError::new(format!("{shard_text}: {e}"))),
    }
}
