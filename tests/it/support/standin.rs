//! A scriptable HTTP server on loopback, standing in for a registry, token
//! endpoint or blob store that misbehaves in a way Distribution never does
//! (hostile tag lists, huge tokens, presigned redirects, failures on cue).
//! It records every request so tests can assert what kopeo sent.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// One request as received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
    /// A header's value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What to answer.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

/// A reply body.
pub enum Body {
    Bytes(Vec<u8>),
    /// `len` bytes of `byte`, streamed (for huge answers), with an honest Content-Length.
    Repeat {
        byte: u8,
        len: u64,
    },
    /// Claims `declared` bytes in Content-Length but sends only `bytes`, then closes.
    Short {
        bytes: Vec<u8>,
        declared: u64,
    },
    /// Claims `declared` bytes (fewer than it has), then sends all of `bytes`.
    Overlong {
        bytes: Vec<u8>,
        declared: u64,
    },
    /// Claims `declared` bytes, then sends nothing and never closes (for time-outs).
    Stall {
        declared: u64,
    },
}

impl Reply {
    /// A JSON answer.
    pub fn json(status: u16, v: serde_json::Value) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: Body::Bytes(v.to_string().into_bytes()),
        }
    }
    /// An answer with a body and no particular type.
    pub fn bytes(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            headers: vec![],
            body: Body::Bytes(body.into()),
        }
    }
    /// Add a header.
    pub fn with(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// A running stand-in; it serves until the test process ends.
pub struct StandIn {
    /// `127.0.0.1:PORT`.
    pub host: String,
    pub requests: Arc<Mutex<Vec<Request>>>,
}

impl StandIn {
    /// Serve `handler`'s answers; `handler` sees the request and this server's `host`.
    pub fn start(handler: impl Fn(&Request, &str) -> Reply + Send + Sync + 'static) -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding a stand-in server");
        let host = listener.local_addr().expect("addr").to_string();
        let requests: Arc<Mutex<Vec<Request>>> = Arc::default();
        let (log, me) = (requests.clone(), host.clone());
        let handler = Arc::new(handler);
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (log, me, handler) = (log.clone(), me.clone(), handler.clone());
                std::thread::spawn(move || {
                    // Answer a TLS ClientHello the way Go's HTTP server does on
                    // a plain port, so clients fall back to HTTP at once.
                    let mut first = [0u8; 1];
                    if conn.peek(&mut first).is_ok() && first[0] == 0x16 {
                        let mut c = conn;
                        let _ = c.write_all(
                            b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n",
                        );
                        return;
                    }
                    let Some(req) = read_request(&conn) else { return };
                    log.lock().unwrap_or_else(|p| p.into_inner()).push(req.clone());
                    let reply = handler(&req, &me);
                    let _ = write_reply(conn, reply, req.method == "HEAD");
                });
            }
        });
        StandIn { host, requests }
    }

    /// The requests so far.
    pub fn seen(&self) -> Vec<Request> {
        self.requests.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

fn read_request(conn: &std::net::TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(conn.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = vec![];
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 || h == "\r\n" {
            break;
        }
        if let Some((n, v)) = h.trim_end().split_once(':') {
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _): &&(String, String)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let mut body = vec![];
    if let Some(len) = header("content-length").and_then(|l| l.parse::<usize>().ok()) {
        body.resize(len, 0);
        reader.read_exact(&mut body).ok()?;
    } else if header("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim(), 16).ok()?;
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    // The body is read (so the connection stays in step) but not kept.
    drop(body);
    Some(Request {
        method,
        target,
        headers,
    })
}

fn write_reply(mut conn: std::net::TcpStream, reply: Reply, head: bool) -> std::io::Result<()> {
    let reason = match reply.status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        307 => "Temporary Redirect",
        401 => "Unauthorized",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let len = match &reply.body {
        Body::Bytes(b) => b.len() as u64,
        Body::Repeat { len, .. } => *len,
        Body::Short { declared, .. } | Body::Overlong { declared, .. } | Body::Stall { declared } => *declared,
    };
    let mut head_text = format!("HTTP/1.1 {} {reason}\r\n", reply.status);
    for (n, v) in &reply.headers {
        head_text.push_str(&format!("{n}: {v}\r\n"));
    }
    head_text.push_str(&format!("Content-Length: {len}\r\nConnection: close\r\n\r\n"));
    conn.write_all(head_text.as_bytes())?;
    if head {
        return Ok(());
    }
    match reply.body {
        Body::Bytes(b) | Body::Short { bytes: b, .. } | Body::Overlong { bytes: b, .. } => conn.write_all(&b)?,
        Body::Stall { .. } => {
            conn.flush()?;
            std::thread::sleep(std::time::Duration::from_secs(120));
        }
        Body::Repeat { byte, len } => {
            let block = vec![byte; 64 * 1024];
            let mut left = len;
            while left > 0 {
                let n = left.min(block.len() as u64) as usize;
                conn.write_all(&block[..n])?;
                left -= n as u64;
            }
        }
    }
    conn.flush()
}

/// A fake registry serving the single-image OCI layout `layout` as
/// repository `repo`, `tags` in its tag list (each naming the image).
/// `intercept` sees every request first (with this server's host) and may
/// answer it instead (a redirect, a demand for credentials, …).
pub fn fake_registry(
    layout: &Path,
    repo: &'static str,
    tags: Vec<&'static str>,
    intercept: impl Fn(&Request, &str) -> Option<Reply> + Send + Sync + 'static,
) -> StandIn {
    let repos = Arc::new(Mutex::new([(repo.to_string(), layout.to_path_buf())].into()));
    fake_registry_of(repos, tags, intercept)
}

/// As [`fake_registry`], serving each repository of `repos` (name → its
/// single-image OCI layout), which may be filled in after the start.
pub fn fake_registry_of(
    repos: Arc<Mutex<std::collections::BTreeMap<String, std::path::PathBuf>>>,
    tags: Vec<&'static str>,
    intercept: impl Fn(&Request, &str) -> Option<Reply> + Send + Sync + 'static,
) -> StandIn {
    StandIn::start(move |req, me| {
        if let Some(r) = intercept(req, me) {
            return r;
        }
        let path = req.path().to_string();
        if path == "/v2/" {
            return Reply::json(200, serde_json::json!({}));
        }
        let found = repos.lock().unwrap().iter().find_map(|(repo, layout)| {
            let rest = path.strip_prefix(&format!("/v2/{repo}/"))?;
            Some((repo.clone(), layout.clone(), rest.to_string()))
        });
        let Some((repo, layout, rest)) = found else {
            return Reply::json(
                404,
                serde_json::json!({"errors": [{"code": "NAME_UNKNOWN", "message": "repository name not known to registry"}]}),
            );
        };
        let read = |hex: &str| std::fs::read(layout.join("blobs/sha256").join(hex)).ok();
        if rest == "tags/list" {
            return Reply::json(200, serde_json::json!({"name": repo, "tags": tags}));
        }
        if let Some(r) = rest.strip_prefix("manifests/") {
            let d = if tags.contains(&r) {
                let index: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
                index["manifests"][0]["digest"].as_str().unwrap().to_string()
            } else {
                r.to_string()
            };
            if let Some(body) = read(d.trim_start_matches("sha256:")) {
                return Reply::bytes(200, body)
                    .with("Content-Type", "application/vnd.oci.image.manifest.v1+json")
                    .with("Docker-Content-Digest", &d);
            }
        }
        if let Some(d) = rest.strip_prefix("blobs/")
            && let Some(body) = read(d.trim_start_matches("sha256:"))
        {
            return Reply::bytes(200, body);
        }
        Reply::json(
            404,
            serde_json::json!({"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]}),
        )
    })
}
