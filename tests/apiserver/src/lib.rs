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
mod cel;
mod discovery;
mod http;
pub mod patch;
mod schema;
pub mod select;
mod store;
mod table;
mod time;
mod types;

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
}

/// A running server; it stops when dropped.
pub struct ApiServer {
    pub addr: SocketAddr,
    token: Option<String>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ApiServer {
    /// Start serving on its own thread and runtime.
    pub fn start(opts: Options) -> ApiServer {
        let listen = opts.listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let std_listener = std::net::TcpListener::bind(listen).expect("binding the test API server");
        std_listener.set_nonblocking(true).expect("nonblocking listener");
        let addr = std_listener.local_addr().expect("local address");
        let shared = Arc::new(http::Shared {
            state: Mutex::new(store::State::with_log_size(opts.watch_log.unwrap_or(store::LOG_SIZE))),
            token: opts.token.clone(),
            audit: opts
                .audit_log
                .as_deref()
                .map(|p| audit::AuditLog::open(p).expect("opening the audit log")),
        });
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
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
            token: opts.token,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Write a kubeconfig pointing at this server (with the token, if any).
    pub fn write_kubeconfig(&self, path: &Path) -> PathBuf {
        let user = match &self.token {
            Some(t) => format!("    token: {t}\n"),
            None => "    username: test\n".to_string(),
        };
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
