//! A small in-memory Kubernetes API server for kopeo's operator tests: real
//! state and API-server semantics (resource versions, watch, status
//! subresource, generation, finalizers, patches, CRDs with structural
//! schemas, discovery), served over plain HTTP on 127.0.0.1. Dev-only.
//!
//! ```no_run
//! let server = kopeo_test_apiserver::ApiServer::start(Default::default());
//! let kubeconfig = server.write_kubeconfig(std::path::Path::new("/tmp/kubeconfig"));
//! ```

mod audit;
pub mod authz;
mod cel;
mod controllers;
mod deployments;
mod discovery;
mod events;
mod http;
pub mod integrated_registry;
mod jobs;
pub mod node;
mod node_files;
pub mod openshift;
pub mod patch;
mod protobuf;
mod registry_signatures;
mod schema;
pub mod select;
mod store;
mod table;
mod time;
mod types;
mod workloads;

use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// How to start a server.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Address to listen on; `127.0.0.1:0` (an ephemeral port) when unset.
    pub listen: Option<SocketAddr>,
    /// Require this bearer token on every request.
    pub token: Option<String>,
    /// Events kept for watches to resume from (default 4096); older
    /// resourceVersions get 410 Gone.
    pub watch_log: Option<usize>,
    /// Append an `audit.k8s.io/v1` Event for every request to this file
    /// (as `kube-apiserver --audit-log-path`).
    pub audit_log: Option<PathBuf>,
    /// Further bearer tokens and the users they authenticate as (with
    /// `token` unset, requests without a token stay the administrator's).
    pub users: Vec<(String, authz::User)>,
    /// Authorize every user but the administrator with RBAC (the Roles,
    /// ClusterRoles and bindings stored in the server), as
    /// `--authorization-mode=RBAC`.
    pub rbac: bool,
    /// Serve OpenShift's image API (`image.openshift.io/v1`) too.
    pub openshift: Option<openshift::ImageApi>,
    /// Also serve HTTPS on another loopback port with this certificate
    /// and key (PEM files), as pods reach a real API server.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Run the job, ServiceAccount and root CA controllers, as
    /// kube-controller-manager does beside a real API server.
    pub controllers: bool,
}

/// A failure the server answers with instead of serving a request, for
/// tests of how clients cope (an API server refusing writes for a while).
#[derive(Debug, Clone, Default)]
pub struct Fault {
    /// Only requests with this method (`PUT`, …); any when unset.
    pub method: Option<String>,
    /// Only requests whose path contains this.
    pub path_contains: String,
    /// Only requests whose body contains this.
    pub body_contains: Option<String>,
    /// The HTTP status to answer with.
    pub code: u16,
    /// How many requests to fail; every matching one while unset.
    pub times: Option<usize>,
}

impl Fault {
    fn matches(&self, method: &str, path: &str, body: &[u8]) -> bool {
        self.method.as_deref().is_none_or(|m| m == method)
            && path.contains(&self.path_contains)
            && self
                .body_contains
                .as_ref()
                .is_none_or(|needle| body.windows(needle.len().max(1)).any(|w| w == needle.as_bytes()))
    }
}

/// A running server; it stops when dropped.
pub struct ApiServer {
    pub addr: SocketAddr,
    /// The HTTPS address, when [`Options::tls`] was given.
    pub tls_addr: Option<SocketAddr>,
    ca: Option<String>,
    token: Option<String>,
    shared: Arc<http::Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    runtime: tokio::runtime::Handle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ApiServer {
    /// Start serving on its own thread and runtime.
    pub fn start(opts: Options) -> ApiServer {
        let listen = opts.listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let std_listener = std::net::TcpListener::bind(listen).expect("binding the test API server");
        std_listener.set_nonblocking(true).expect("nonblocking listener");
        let addr = std_listener.local_addr().expect("local address");
        let mut state = store::State::with_log_size(opts.watch_log.unwrap_or(store::LOG_SIZE));
        if opts.openshift.is_some() {
            state.add_types(openshift::types());
        }
        let shared = Arc::new(http::Shared {
            openshift: opts.openshift.clone(),
            state: Mutex::new(state),
            token: opts.token.clone(),
            users: Mutex::new(opts.users.clone()),
            rbac: opts.rbac,
            faults: Mutex::new(vec![]),
            audit: opts
                .audit_log
                .as_deref()
                .map(|p| audit::AuditLog::open(p).expect("opening the audit log")),
        });
        let tls = opts.tls.as_ref().map(|(cert, key)| {
            let l = std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).expect("binding the TLS port");
            l.set_nonblocking(true).expect("nonblocking listener");
            let ca = std::fs::read_to_string(cert).expect("reading the TLS certificate");
            (l, tls_config(cert, key), ca)
        });
        let tls_addr = tls.as_ref().and_then(|(l, _, _)| l.local_addr().ok());
        let ca = tls.as_ref().map(|(_, _, ca)| ca.clone());
        let controllers = opts.controllers;
        let ca_for_controllers = ca.clone();
        let kept = shared.clone();
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            let _ = handle_tx.send(rt.handle().clone());
            if controllers {
                rt.spawn(controllers::run(shared.clone(), ca_for_controllers));
            }
            if let Some((l, config, _)) = tls {
                rt.spawn(serve_tls(l, config, shared.clone()));
            }
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).expect("tokio listener");
                loop {
                    tokio::select! {
                        _ = &mut rx => return,
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            let shared = shared.clone();
                            tokio::spawn(async move {
                                let svc = hyper::service::service_fn(move |req| http::handle(shared.clone(), req));
                                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                            });
                        }
                    }
                }
            });
        });
        ApiServer {
            addr,
            tls_addr,
            ca,
            runtime: handle_rx.recv().expect("the server's runtime"),
            token: opts.token,
            shared: kept,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// OpenShift's integrated registry in front of the Distribution
    /// registry at `upstream` (`HOST:PORT`, plain HTTP); the server must
    /// serve the image API ([`Options::openshift`]).
    pub fn integrated_registry(&self, upstream: &str) -> integrated_registry::IntegratedRegistry {
        let api = self.shared.openshift.clone().expect("the image API is served");
        integrated_registry::start(self.shared.clone(), api, upstream, &self.runtime)
    }

    /// Run a node that starts pods as local processes (see [`node`]); its
    /// pods reach this server over HTTPS when it serves it.
    pub fn start_node(&self, mut opts: node::NodeOptions) -> node::Node {
        if let (Some(a), Some(ca)) = (self.tls_addr, &self.ca) {
            opts.api = Some((a, ca.clone()));
        }
        node::start(self.shared.clone(), opts, &self.runtime)
    }

    /// Answer requests matching `fault` with its failure from now on.
    pub fn inject(&self, fault: Fault) {
        self.shared.faults.lock().unwrap_or_else(|p| p.into_inner()).push(fault);
    }

    /// How many more requests the injected faults will fail (`None` when
    /// one fails every matching request).
    pub fn pending_faults(&self) -> Option<usize> {
        let faults = self.shared.faults.lock().unwrap_or_else(|p| p.into_inner());
        faults.iter().map(|f| f.times).sum()
    }

    /// Serve every request again.
    pub fn clear_faults(&self) {
        self.shared.faults.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Write a kubeconfig pointing at this server that authenticates with `token`.
    pub fn write_kubeconfig_with_token(&self, path: &Path, token: &str) -> PathBuf {
        self.kubeconfig(path, &format!("    token: {token}\n"))
    }

    /// Write a kubeconfig pointing at this server (with the token, if any).
    pub fn write_kubeconfig(&self, path: &Path) -> PathBuf {
        let user = match &self.token {
            Some(t) => format!("    token: {t}\n"),
            None => "    username: test\n".to_string(),
        };
        self.kubeconfig(path, &user)
    }

    fn kubeconfig(&self, path: &Path, user: &str) -> PathBuf {
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: test\n    namespace: default\ncurrent-context: test\nusers:\n- name: test\n  user:\n{user}",
            self.url()
        );
        std::fs::write(path, text).expect("writing kubeconfig");
        path.to_path_buf()
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn tls_config(cert: &Path, key: &Path) -> Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .expect("reading the TLS certificate")
        .collect::<Result<_, _>>()
        .expect("parsing the TLS certificate");
    let key = PrivateKeyDer::from_pem_file(key).expect("reading the TLS key");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("the TLS certificate and key");
    Arc::new(config)
}

async fn serve_tls(l: std::net::TcpListener, config: Arc<rustls::ServerConfig>, shared: Arc<http::Shared>) {
    let Ok(listener) = tokio::net::TcpListener::from_std(l) else {
        return;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (acceptor, shared) = (acceptor.clone(), shared.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else { return };
            let svc = hyper::service::service_fn(move |req| http::handle(shared.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), svc)
                .await;
        });
    }
}
