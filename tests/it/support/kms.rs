//! The tests' key provider, in Rust: the same XOR "wrapping" as
//! keyprovider.py (so either can unwrap what the other wrapped), the
//! protocol's answers, and a gRPC server of
//! `keyprovider.KeyProviderService` on a unix socket or loopback TCP,
//! written from ocicrypt's keyprovider.proto — not kopeo's client code.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};

/// The command provider script.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/support/keyprovider.py")
}

/// An `OCICRYPT_KEYPROVIDER_CONFIG` file naming the command provider `testkms`.
pub fn cmd_config(dir: &Path, secret: &str, mode: &str) -> PathBuf {
    crate::support::require_tool("python3", "python3-minimal");
    let cfg = json!({"key-providers": {"testkms": {"cmd": {
        "path": script(),
        "args": [secret, dir.join("kms.log"), mode],
    }}}});
    let path = dir.join(format!("ocicrypt-{mode}.json"));
    std::fs::write(&path, cfg.to_string()).expect("writing the provider config");
    path
}

/// The requests the command provider logged, in order.
pub fn logged(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("kms.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a logged request"))
        .collect()
}

fn pad(secret: &str, kid: &str, n: usize) -> Vec<u8> {
    let mut out = vec![];
    let mut i = 0;
    while out.len() < n {
        out.extend_from_slice(&Sha256::digest(format!("{secret}/{kid}/{i}").as_bytes()));
        i += 1;
    }
    out.truncate(n);
    out
}

fn xor(secret: &str, data: &[u8], kid: &str) -> Vec<u8> {
    data.iter()
        .zip(pad(secret, kid, data.len()))
        .map(|(a, b)| a ^ b)
        .collect()
}

/// The private options a provider annotation (its bytes) wraps.
pub fn unwrap(secret: &str, annotation: &[u8]) -> Vec<u8> {
    let a: Value = serde_json::from_slice(annotation).expect("annotation JSON");
    let wrapped = B64.decode(a["wrapped"].as_str().expect("wrapped")).expect("base64");
    xor(secret, &wrapped, a["kid"].as_str().expect("kid"))
}

/// The answer of provider `name` to one protocol request.
pub fn answer(secret: &str, name: &str, req: &Value) -> Value {
    match req["op"].as_str() {
        Some("keywrap") => {
            let kid = B64
                .decode(req["keywrapparams"]["ec"]["Parameters"][name][0].as_str().unwrap_or(""))
                .unwrap();
            let kid = String::from_utf8(kid).expect("kid");
            let opts = B64
                .decode(req["keywrapparams"]["optsdata"].as_str().unwrap_or(""))
                .unwrap();
            let annotation = json!({"kid": kid, "wrapped": B64.encode(xor(secret, &opts, &kid))}).to_string();
            json!({"keywrapresults": {"annotation": B64.encode(annotation)}})
        }
        _ => {
            let annotation = B64
                .decode(req["keyunwrapparams"]["annotation"].as_str().unwrap_or(""))
                .unwrap();
            json!({"keyunwrapresults": {"optsdata": B64.encode(unwrap(secret, &annotation))}})
        }
    }
}

/// A running gRPC provider; stops when dropped.
pub struct GrpcServer {
    pub addr: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub requests: std::sync::Arc<std::sync::Mutex<Vec<(String, Value)>>>,
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

fn frame(msg: &[u8]) -> Vec<u8> {
    // keyProviderKeyWrapProtocolOutput { bytes field 1 }.
    let mut pb = vec![0x0a];
    let mut n = msg.len();
    while n >= 0x80 {
        pb.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    pb.push(n as u8);
    pb.extend_from_slice(msg);
    let mut out = vec![0];
    out.extend_from_slice(&(pb.len() as u32).to_be_bytes());
    out.extend(pb);
    out
}

fn unframe(body: &[u8]) -> Vec<u8> {
    let pb = &body[5..];
    assert_eq!(pb[0], 0x0a, "field 1, bytes");
    let (mut n, mut i, mut shift) = (0usize, 1, 0);
    loop {
        let b = pb[i];
        n |= ((b & 0x7f) as usize) << shift;
        i += 1;
        shift += 7;
        if b & 0x80 == 0 {
            break;
        }
    }
    pb[i..i + n].to_vec()
}

/// Serve provider `name` (wrapping with `secret`) at `unix:PATH` (when
/// `socket`) or on loopback TCP.
pub fn grpc_server(secret: &str, name: &str, socket: Option<&Path>) -> GrpcServer {
    serve(secret, name, socket, None)
}

/// Serve provider `name` over TLS on loopback TCP, with a certificate for
/// 127.0.0.1 made in `dir` (`ca.crt` is its CA).
pub fn grpc_tls_server(secret: &str, name: &str, dir: &Path) -> GrpcServer {
    use rustls::pki_types::pem::PemObject as _;
    crate::support::registry::make_certs(dir);
    let chain: Vec<_> = rustls::pki_types::CertificateDer::pem_file_iter(dir.join("server.crt"))
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let mut config =
        rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    serve(
        secret,
        name,
        None,
        Some(tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config))),
    )
}

fn serve(secret: &str, name: &str, socket: Option<&Path>, tls: Option<tokio_rustls::TlsAcceptor>) -> GrpcServer {
    use http_body_util::BodyExt as _;
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let requests = std::sync::Arc::new(std::sync::Mutex::new(vec![]));
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let secret = secret.to_string();
    let name = name.to_string();
    let socket = socket.map(Path::to_path_buf);
    let log = requests.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            enum L {
                Unix(tokio::net::UnixListener),
                Tcp(tokio::net::TcpListener),
            }
            let listener = match &socket {
                Some(p) => {
                    addr_tx.send(format!("unix://{}", p.display())).unwrap();
                    L::Unix(tokio::net::UnixListener::bind(p).expect("binding the socket"))
                }
                None => {
                    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                    addr_tx.send(l.local_addr().unwrap().to_string()).unwrap();
                    L::Tcp(l)
                }
            };
            loop {
                let io: Box<dyn ServerIo> = tokio::select! {
                    _ = &mut stopped => return,
                    c = async { match &listener {
                        L::Unix(l) => l.accept().await.map(|(s, _)| Box::new(s) as Box<dyn ServerIo>),
                        L::Tcp(l) => match (l.accept().await, &tls) {
                            (Ok((s, _)), Some(acceptor)) => acceptor.accept(s).await.map(|t| Box::new(t) as Box<dyn ServerIo>),
                            (Ok((s, _)), None) => Ok(Box::new(s) as Box<dyn ServerIo>),
                            (Err(e), _) => Err(e),
                        },
                    }} => match c { Ok(io) => io, Err(_) => continue },
                };
                let (secret, name) = (secret.clone(), name.clone());
                let log = log.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (secret, name) = (secret.clone(), name.clone());
                        let log = log.clone();
                        async move {
                            let method = req.uri().path().to_string();
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let input: Value = serde_json::from_slice(&unframe(&body)).expect("request JSON");
                            log.lock().unwrap().push((method.clone(), input.clone()));
                            let out = answer(&secret, &name, &input);
                            let mut trailers = hyper::HeaderMap::new();
                            trailers.insert("grpc-status", "0".parse().unwrap());
                            let frames = vec![
                                Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(bytes::Bytes::from(frame(
                                    out.to_string().as_bytes(),
                                )))),
                                Ok(hyper::body::Frame::trailers(trailers)),
                            ];
                            let body = http_body_util::StreamBody::new(futures::stream::iter(frames));
                            Ok::<_, std::convert::Infallible>(
                                hyper::Response::builder()
                                    .header("content-type", "application/grpc")
                                    .body(body)
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(io), svc)
                        .await;
                });
            }
        });
    });
    GrpcServer {
        addr: addr_rx.recv().expect("the server's address"),
        stop: Some(stop),
        requests,
    }
}

trait ServerIo: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static> ServerIo for T {}
