//! The skopeo-compatible command line: flags, output and exit codes follow
//! upstream skopeo so scripts move over unchanged.

mod copy;
mod copy_flags;
mod delete;
mod flags;
mod inspect;
mod list_tags;
mod login;
mod manifest_digest;
mod progress;
mod signing;
mod sync;
pub mod template;
mod worker;

use clap::{Parser, Subcommand};
use std::io::IsTerminal as _;
use std::process::ExitCode;

/// Command-line failure: the message to print and whether skopeo would exit 2.
#[derive(Debug)]
pub struct CliError {
    message: String,
    not_found: bool,
}

impl CliError {
    /// A failure with exit code 1.
    pub fn new(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            not_found: false,
        }
    }
    /// A failure with exit code 2 (image or repository not found).
    pub fn not_found(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            not_found: true,
        }
    }
}

impl From<String> for CliError {
    fn from(s: String) -> Self {
        CliError::new(s)
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "kopeo",
    version,
    about = "Various operations with container images and container image registries",
    disable_help_subcommand = false,
    disable_version_flag = true
)]
struct Cli {
    /// Version for kopeo
    #[arg(short = 'v', long = "version", action = clap::ArgAction::Version)]
    version: Option<bool>,
    /// path to a containers-tls-details.yaml(5) file
    #[arg(long = "tls-details", global = true, value_name = "PATH")]
    tls_details: Option<std::path::PathBuf>,
    /// require any pulled image to be signed
    #[arg(long = "require-signed", global = true)]
    require_signed: bool,
    /// path to the registries.conf file
    #[arg(long = "registries-conf", global = true, value_name = "PATH", hide = true)]
    registries_conf: Option<std::path::PathBuf>,
    /// prefix to add to the user agent string
    #[arg(long = "user-agent-prefix", global = true, value_name = "PREFIX")]
    user_agent_prefix: Option<String>,
    /// Require HTTPS and verify certificates when accessing the registry (deprecated: set it on the subcommand)
    #[arg(long = "tls-verify", value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", hide = true)]
    tls_verify: Option<bool>,
    /// enable debug output
    #[arg(long, global = true)]
    debug: bool,
    /// run the tool without any policy check
    #[arg(long = "insecure-policy", global = true)]
    insecure_policy: bool,
    /// Path to a trust policy file
    #[arg(long, global = true, value_name = "PATH")]
    policy: Option<std::path::PathBuf>,
    /// use registry configuration files in DIR (e.g. for container signature storage)
    #[arg(long = "registries.d", global = true, value_name = "DIR")]
    registries_d: Option<std::path::PathBuf>,
    /// use ARCH instead of the architecture of the machine for choosing images
    #[arg(long = "override-arch", global = true, value_name = "ARCH")]
    override_arch: Option<String>,
    /// use OS instead of the running OS for choosing images
    #[arg(long = "override-os", global = true, value_name = "OS")]
    override_os: Option<String>,
    /// use VARIANT instead of the running architecture variant for choosing images
    #[arg(long = "override-variant", global = true, value_name = "VARIANT")]
    override_variant: Option<String>,
    /// directory used to store temporary files
    #[arg(long, global = true, value_name = "DIR")]
    tmpdir: Option<std::path::PathBuf>,
    /// timeout for the command execution
    #[arg(long = "command-timeout", global = true, value_name = "DURATION", value_parser = flags::parse_duration)]
    command_timeout: Option<std::time::Duration>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Copy an IMAGE-NAME from one location to another
    Copy(Box<copy::CopyArgs>),
    /// Inspect image IMAGE-NAME
    Inspect(inspect::InspectArgs),
    /// List tags in the transport/repository specified by the SOURCE-IMAGE
    ListTags(list_tags::ListTagsArgs),
    /// Delete image IMAGE-NAME
    Delete(delete::DeleteArgs),
    /// Compute a manifest digest of a file
    ManifestDigest(manifest_digest::ManifestDigestArgs),
    /// Synchronize one or more images from one location to another
    Sync(Box<sync::SyncArgs>),
    /// Login to a container registry
    Login(login::LoginArgs),
    /// Print the operator's CustomResourceDefinitions as YAML
    Crd,
    /// Run the operator's controllers against the cluster in the kubeconfig / service account
    Operator(OperatorArgs),
    /// Reconcile ImageCopy/ImageSync/RegistryCredential manifests once, without a cluster
    Run(RunArgs),
    /// Do work the operator hands to the pods of its Jobs
    Worker(worker::WorkerArgs),
    /// Logout of a container registry
    Logout(login::LogoutArgs),
    /// Create a signature using local files
    StandaloneSign(signing::StandaloneSignArgs),
    /// Verify a signature using local files
    StandaloneVerify(signing::StandaloneVerifyArgs),
    /// Generate a sigstore public/private key pair
    GenerateSigstoreKey(signing::GenerateSigstoreKeyArgs),
    /// Dump contents of a signature WITHOUT VERIFYING IT
    #[command(hide = true)]
    UntrustedSignatureDumpWithoutVerification(signing::UntrustedDumpArgs),
}

/// `kopeo operator`.
#[derive(clap::Args, Debug)]
struct OperatorArgs {
    /// Reconciles (copies) running at once
    #[arg(long, default_value_t = 4)]
    concurrency: u16,
    /// Serve /metrics, /healthz and /readyz here
    #[arg(long = "metrics-addr", default_value = "0.0.0.0:8080")]
    metrics_addr: std::net::SocketAddr,
    /// Run the controllers only while holding the leader Lease (for several replicas)
    #[arg(long = "leader-elect", default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// Namespace of the leader Lease (default: $POD_NAMESPACE, else "default")
    #[arg(long = "lease-namespace")]
    lease_namespace: Option<String>,
    /// Name of the leader Lease
    #[arg(long = "lease-name", default_value = "kopeo-leader")]
    lease_name: String,
    /// Watch only these namespaces (comma-separated; default: the whole cluster)
    #[arg(long = "watch-namespaces", value_name = "NAMESPACES", value_delimiter = ',')]
    watch_namespaces: Vec<String>,
    /// Write a running copy's progress to its status at most this often
    #[arg(long = "progress-interval", default_value = "10s", value_parser = flags::parse_duration)]
    progress_interval: std::time::Duration,
    /// Let ImageCopy use oci:, oci-archive:, dir: and docker-archive: with
    /// paths relative to DIR/<namespace>/ (default: registries only)
    #[arg(long = "local-storage", value_name = "DIR")]
    local_storage: Option<std::path::PathBuf>,
    /// A request budget for a registry host, HOST=REQUESTS_PER_SECOND[/CONCURRENT_BLOBS] (repeatable)
    #[arg(long = "registry-rate-limit", value_name = "HOST=RPS[/BLOBS]")]
    registry_rate_limits: Vec<crate::options::rate_limit::HostRateLimit>,
    /// The image worker pods run (ImageSync spec.workers); usually the operator's own
    #[arg(long = "worker-image", value_name = "IMAGE", env = "KOPEO_WORKER_IMAGE")]
    worker_image: Option<String>,
    /// The ServiceAccount made for worker pods in each namespace
    #[arg(long = "worker-service-account", default_value = "kopeo-worker")]
    worker_service_account: String,
    /// The ClusterRole that account is bound to (the chart's worker role)
    #[arg(long = "worker-cluster-role", default_value = "kopeo-worker")]
    worker_cluster_role: String,
    /// Pod settings for every worker, as JSON (ImageSync workerPod's fields:
    /// resources, nodeSelector, tolerations, priorityClassName, serviceAccountName)
    #[arg(long = "worker-pod", value_name = "JSON", value_parser = parse_worker_pod)]
    worker_pod: Option<crate::operator::image_sync::workers::WorkerPod>,
}

fn parse_worker_pod(s: &str) -> Result<crate::operator::image_sync::workers::WorkerPod, String> {
    serde_json::from_str(s).map_err(|e| format!("invalid --worker-pod: {e}"))
}

/// `kopeo run`.
#[derive(clap::Args, Debug)]
struct RunArgs {
    /// A manifest file or a directory of them (repeatable)
    #[arg(short = 'f', long = "filename", value_name = "PATH", required = true)]
    files: Vec<std::path::PathBuf>,
}

/// Options every command sees.
pub(crate) struct Global {
    pub platform: Option<crate::manifest::Platform>,
    /// The deprecated global `--tls-verify`, for sides that set none.
    pub tls_verify: Option<bool>,
    /// `--policy`, `--insecure-policy`, `--registries.d`.
    pub policy: Option<std::path::PathBuf>,
    pub insecure_policy: bool,
    pub registries_d: Option<std::path::PathBuf>,
}

impl Global {
    /// The trust policy copies are judged by: accept-anything with
    /// `--insecure-policy`, else `--policy` or the default policy.json.
    pub fn trust_policy(&self) -> Result<std::sync::Arc<crate::signature::policy::Policy>, CliError> {
        use crate::signature::policy;
        if self.insecure_policy {
            return Ok(std::sync::Arc::new(policy::insecure_accept_anything()));
        }
        let load = || -> Result<_, policy::PolicyConfigError> {
            policy::config::load(&policy::config::default_path(self.policy.as_deref())?)
        };
        load()
            .map(std::sync::Arc::new)
            .map_err(|e| CliError::new(format!("Error loading trust policy: {e}")))
    }

    /// Where registry images' signatures are read and written (registries.d).
    pub fn signature_storage(&self) -> Result<std::sync::Arc<crate::signature::lookaside::SignatureStorage>, CliError> {
        use crate::signature::lookaside::{RegistriesD, SignatureStorage, default_dir};
        let dir = default_dir(self.registries_d.as_deref());
        let config = RegistriesD::load(&dir).map_err(|e| CliError::new(e.to_string()))?;
        Ok(std::sync::Arc::new(SignatureStorage::new(config)))
    }
}

fn init_tracing(debug: bool, service: bool) {
    // A long-running operator reports what it does (leading, copies); a
    // command stays quiet unless something is wrong.
    let level = match (debug, service) {
        (true, _) => "debug",
        (false, true) => "info",
        (false, false) => "warn",
    };
    // Other crates' messages only with --debug or in the operator: a refused
    // certificate is kopeo's error to report, not a library's log line.
    let others = if debug || service { "warn" } else { "off" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("KOPEO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("kopeo={level},{others}")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Print a log line on stderr the way skopeo (logrus) does: `INFO[0000] msg`
/// on a terminal, `time="…" level=info msg="…"` otherwise.
pub(crate) fn log_line(level: &str, msg: &str) {
    if std::io::stderr().is_terminal() {
        let tag: String = level.to_uppercase().chars().take(4).collect();
        eprintln!("{tag}[0000] {msg}");
    } else {
        let escaped = msg.replace('\\', "\\\\").replace('"', "\\\"");
        eprintln!(
            "time=\"{}\" level={level} msg=\"{escaped}\"",
            crate::timestamp::now_rfc3339()
        );
    }
}

/// Print a fatal error the way skopeo does.
fn print_fatal(msg: &str) {
    log_line("fatal", msg);
}

/// Run the CLI; returns the process exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => 1,
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_tracing(cli.debug, matches!(cli.command, Command::Operator(_)));
    if cli.insecure_policy && cli.require_signed {
        print_fatal("--insecure-policy and --require-signed are mutually exclusive");
        return ExitCode::from(1);
    }
    if cli.require_signed {
        // Accepting it without verifying would let unsigned images through.
        print_fatal("--require-signed: signature verification is not yet supported by kopeo");
        return ExitCode::from(1);
    }
    if let Some(p) = &cli.registries_conf {
        log_line(
            "warning",
            &format!(
                "--registries-conf {}: registries.conf is not applied by kopeo",
                p.display()
            ),
        );
    }
    if let Some(p) = &cli.tls_details
        && let Err(e) = crate::registry::tls_details::install(p)
    {
        print_fatal(&e.to_string());
        return ExitCode::from(1);
    }
    let platform =
        (cli.override_arch.is_some() || cli.override_os.is_some() || cli.override_variant.is_some()).then(|| {
            let host = crate::manifest::host_platform();
            crate::manifest::Platform {
                architecture: cli.override_arch.clone().unwrap_or(host.architecture),
                os: cli.override_os.clone().unwrap_or(host.os),
                variant: cli.override_variant.clone(),
                ..Default::default()
            }
        });
    if cli.tls_verify.is_some() {
        log_line(
            "warning",
            "'--tls-verify' is deprecated, please set this on the specific subcommand",
        );
    }
    if let Some(prefix) = &cli.user_agent_prefix {
        crate::registry::set_user_agent_prefix(prefix);
    }
    let global = Global {
        platform,
        tls_verify: cli.tls_verify,
        policy: cli.policy.clone(),
        insecure_policy: cli.insecure_policy,
        registries_d: cli.registries_d.clone(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            print_fatal(&format!("starting the async runtime: {e}"));
            return ExitCode::from(1);
        }
    };
    let timeout = cli.command_timeout;
    // The operator stops on signals by itself (releasing its Lease).
    let own_signals = matches!(cli.command, Command::Operator(_));
    let outcome = runtime.block_on(async move {
        let work = async {
            let work = run(cli.command, &global);
            match timeout {
                Some(t) => tokio::time::timeout(t, work)
                    .await
                    .unwrap_or_else(|_| Err(CliError::new(format!("command timed out after {t:?}")))),
                None => work.await,
            }
        };
        if own_signals {
            return Ok(work.await);
        }
        // On SIGINT/SIGTERM/SIGHUP the work is dropped: every unfinished
        // destination removes its temporary files and staging directories.
        tokio::select! {
            r = work => Ok(r),
            sig = interrupted() => Err(sig),
        }
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    let result = match outcome {
        Ok(r) => r,
        Err(sig) => die_by(sig),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            print_fatal(&e.message);
            ExitCode::from(if e.not_found { 2 } else { 1 })
        }
    }
}

/// The first of SIGINT, SIGTERM and SIGHUP to arrive (never, if they cannot be watched).
async fn interrupted() -> i32 {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => libc::SIGINT,
        _ = term.recv() => libc::SIGTERM,
        _ = hup.recv() => libc::SIGHUP,
    }
}

/// End the process by `sig` with its default action, as skopeo (which does
/// not catch it) ends: the parent sees the same wait status.
fn die_by(sig: i32) -> ! {
    // SAFETY: resetting a handler and raising a signal in a single-threaded
    // tail of the program (the runtime has been shut down).
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
    std::process::exit(128 + sig)
}

async fn run(command: Command, global: &Global) -> Result<(), CliError> {
    match command {
        Command::Copy(a) => copy::run(*a, global).await,
        Command::Inspect(a) => inspect::run(a, global).await,
        Command::ListTags(a) => list_tags::list_tags(a, global).await,
        Command::Delete(a) => delete::delete(a, global).await,
        Command::ManifestDigest(a) => manifest_digest::manifest_digest(a),
        Command::Sync(a) => sync::run(*a, global).await,
        Command::Login(a) => login::login(a).await,
        Command::Logout(a) => login::logout(a),
        Command::StandaloneSign(a) => signing::standalone_sign(a),
        Command::StandaloneVerify(a) => signing::standalone_verify(a),
        Command::GenerateSigstoreKey(a) => signing::generate_sigstore_key(a),
        Command::UntrustedSignatureDumpWithoutVerification(a) => signing::untrusted_signature_dump(a),
        Command::Run(a) => {
            let (out, ready) = crate::operator::from_files::run(&a.files, &crate::timestamp::now_rfc3339())
                .await
                .map_err(|e| CliError::new(e.to_string()))?;
            print!("{out}");
            if ready {
                Ok(())
            } else {
                Err(CliError::new("not every resource is Ready"))
            }
        }
        Command::Operator(a) => {
            let client = kube::Client::try_default()
                .await
                .map_err(|e| CliError::new(format!("connecting to the cluster: {e}")))?;
            operator(client, a, global).await
        }
        Command::Worker(a) => worker::run(a).await,
        Command::Crd => {
            let yaml = crate::operator::crd_yaml().map_err(|e| CliError::new(format!("rendering the CRDs: {e}")))?;
            print!("{yaml}");
            Ok(())
        }
    }
}

/// `kopeo operator`: metrics and health served, leader election, and a
/// clean stop on SIGTERM or SIGINT.
async fn operator(client: kube::Client, a: OperatorArgs, global: &Global) -> Result<(), CliError> {
    use crate::operator::controller::run_until;
    use crate::operator::{LeaderElection, OperatorOptions};
    let mut opts = OperatorOptions {
        concurrency: a.concurrency,
        progress_interval: a.progress_interval,
        namespaces: a.watch_namespaces.into_iter().filter(|n| !n.is_empty()).collect(),
        local: match a.local_storage {
            Some(dir) => crate::operator::local_access::LocalAccess::Under(dir),
            None => crate::operator::local_access::LocalAccess::RegistriesOnly,
        },
        workers: crate::operator::image_sync::workers::WorkerSettings {
            image: a.worker_image,
            service_account: a.worker_service_account,
            cluster_role: a.worker_cluster_role,
            report_interval: a.progress_interval,
            pod: a.worker_pod.unwrap_or_default(),
        },
        ..Default::default()
    };
    opts.budgets
        .set_limits("flags", a.registry_rate_limits.into_iter().map(|h| (h.host, h.limit)));
    // --registries.d configures signature storage as for copies; without
    // it, sigstore attachments (kept in the registries) are carried along.
    if global.registries_d.is_some() {
        opts.signatures = global.signature_storage()?;
    }
    // --policy: a cluster-wide trust policy (the chart mounts one); without
    // it a pod judges nothing it was not told to verify.
    if global.policy.is_some() {
        opts.default_policy = Some(global.trust_policy()?);
    }
    if a.leader_elect {
        opts.leader_election = Some(LeaderElection {
            namespace: a
                .lease_namespace
                .or_else(|| std::env::var("POD_NAMESPACE").ok())
                .unwrap_or_else(|| "default".into()),
            lease: a.lease_name,
        });
    }
    let listener = tokio::net::TcpListener::bind(a.metrics_addr)
        .await
        .map_err(|e| CliError::new(format!("listening on {} for metrics: {e}", a.metrics_addr)))?;
    // The bound address, so `--metrics-addr 127.0.0.1:0` can be found.
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
    }
    tokio::spawn(crate::operator::metrics::serve(listener, opts.metrics.clone()));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| CliError::new(format!("handling SIGTERM: {e}")))?;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    run_until(client, opts, shutdown).await;
    Ok(())
}

/// A failed operation on `image`: exit 2 when the image or repository does not exist.
pub(crate) fn failure(image: &str, e: crate::transport::TransportError) -> CliError {
    let msg = format!("{image}: {e}");
    if e.is_image_not_found() {
        CliError::not_found(msg)
    } else {
        CliError::new(msg)
    }
}

/// Parse an image name argument, with skopeo's wording on failure.
pub(crate) fn parse_image(s: &str) -> Result<crate::reference::ImageReference, CliError> {
    s.parse()
        .map_err(|e: crate::reference::ParseError| CliError::new(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn skopeo_style_flags_parse() {
        let cli = Cli::try_parse_from([
            "kopeo",
            "--override-arch",
            "arm64",
            "copy",
            "--src-tls-verify=false",
            "--dest-creds",
            "u:p",
            "--retry-times",
            "3",
            "--retry-delay",
            "1s",
            "-a",
            "docker://a",
            "oci:/tmp/x",
        ])
        .unwrap();
        assert_eq!(cli.override_arch.as_deref(), Some("arm64"));
        assert!(matches!(cli.command, Command::Copy(_)));
        assert!(Cli::try_parse_from(["kopeo", "inspect", "--tls-verify", "docker://a"]).is_ok());
    }
}
