//! A small Docker token server: signs RS256 JWTs (with the certificate in
//! `x5c`) for the registry's token auth, for the GET flow with basic auth
//! and the OAuth2 POST flow with a refresh token; anonymous requests get
//! pull access to `public/` repositories only. It records every request.

use super::openssl;
use super::registry::{PASSWORD, USER};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub const SERVICE: &str = "kopeo-test-registry";
pub const ISSUER: &str = "kopeo-test-issuer";
/// The refresh token (auth.json `identitytoken`) the server accepts.
pub const REFRESH_TOKEN: &str = "refresh-token-canary-9f8e7d";

/// One request the token server saw.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub method: String,
    /// Query (GET) or form (POST) parameters.
    pub params: Vec<(String, String)>,
    pub granted: bool,
}

/// A running token server; its thread ends with the process.
pub struct TokenServer {
    port: u16,
    dir: PathBuf,
    pub requests: Arc<Mutex<Vec<TokenRequest>>>,
    /// While above zero, each token issued carries no access (and the count
    /// drops by one): the registry then answers 401, as for an expired or
    /// revoked token.
    pub useless_tokens: Arc<std::sync::atomic::AtomicUsize>,
}

impl TokenServer {
    /// Generate a signing key and start serving on loopback.
    pub fn start(dir: &Path) -> TokenServer {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "token.key",
                "-out",
                "token.crt",
                "-days",
                "2",
                "-subj",
                "/CN=kopeo token signer",
                "-addext",
                "keyUsage=critical,digitalSignature",
            ],
        );
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding token server");
        let port = listener.local_addr().expect("addr").port();
        let requests = Arc::new(Mutex::new(vec![]));
        let useless = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let server = TokenServer {
            port,
            dir: dir.to_path_buf(),
            requests: requests.clone(),
            useless_tokens: useless.clone(),
        };
        let dir = dir.to_path_buf();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (dir, requests, useless) = (dir.clone(), requests.clone(), useless.clone());
                std::thread::spawn(move || handle(conn, &dir, &requests, &useless));
            }
        });
        server
    }

    /// The realm URL to configure in the registry.
    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    /// The certificate the registry trusts.
    pub fn cert_path(&self) -> PathBuf {
        self.dir.join("token.crt")
    }

    /// Requests seen so far.
    pub fn seen(&self) -> Vec<TokenRequest> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

fn parse_form(s: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(s.as_bytes()).into_owned().collect()
}

fn handle(
    conn: std::net::TcpStream,
    dir: &Path,
    requests: &Mutex<Vec<TokenRequest>>,
    useless: &std::sync::atomic::AtomicUsize,
) {
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let mut auth = None;
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        let (k, v) = h.split_once(':').unwrap_or(("", ""));
        match k.to_ascii_lowercase().as_str() {
            "authorization" => auth = Some(v.trim().to_string()),
            "content-length" => len = v.trim().parse().unwrap_or(0),
            _ => {}
        }
    }
    let mut body = vec![0; len];
    let _ = reader.read_exact(&mut body);
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    let params = if method == "POST" {
        parse_form(&String::from_utf8_lossy(&body))
    } else {
        parse_form(query)
    };
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let basic_ok = auth
        .as_deref()
        .and_then(|a| a.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b).ok())
        .is_some_and(|b| b == format!("{USER}:{PASSWORD}").as_bytes());
    let (authenticated, who) = match (method.as_str(), get("grant_type").as_deref()) {
        ("POST", Some("refresh_token")) => (get("refresh_token").as_deref() == Some(REFRESH_TOKEN), USER),
        ("POST", Some("password")) => (
            get("username").as_deref() == Some(USER) && get("password").as_deref() == Some(PASSWORD),
            USER,
        ),
        ("GET", _) if auth.is_some() => (basic_ok, USER),
        ("GET", _) => (true, ""),
        _ => (false, ""),
    };
    let mut scopes: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' ').map(str::to_string).collect::<Vec<_>>())
        .collect();
    let spoil = useless
        .fetch_update(
            std::sync::atomic::Ordering::SeqCst,
            std::sync::atomic::Ordering::SeqCst,
            |n| n.checked_sub(1),
        )
        .is_ok();
    if spoil {
        scopes.clear();
    } else if who.is_empty() {
        // Anonymous users may pull repositories under public/ (as from a
        // public repository on Docker Hub), and do nothing else.
        scopes = scopes
            .iter()
            .filter_map(|s| {
                let mut parts = s.splitn(3, ':');
                match (parts.next(), parts.next(), parts.next()) {
                    (Some("repository"), Some(name), Some(actions))
                        if name.starts_with("public/") && actions.split(',').any(|a| a == "pull") =>
                    {
                        Some(format!("repository:{name}:pull"))
                    }
                    _ => None,
                }
            })
            .collect();
    }
    if let Ok(mut r) = requests.lock() {
        r.push(TokenRequest {
            method: method.clone(),
            params: params.clone(),
            granted: authenticated,
        });
    }
    let mut conn = conn;
    if !authenticated {
        let _ = conn.write_all(b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: 27\r\nConnection: close\r\n\r\n{\"details\":\"unauthorized\"}\n");
        return;
    }
    let token = sign(dir, who, &scopes);
    let body = serde_json::json!({"token": token, "access_token": token, "expires_in": 300}).to_string();
    let _ = write!(
        conn,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

fn sign(dir: &Path, sub: &str, scopes: &[String]) -> String {
    let pem = std::fs::read_to_string(dir.join("token.crt")).expect("token.crt");
    let der: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [der]});
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let access: Vec<_> = scopes
        .iter()
        .filter_map(|s| {
            let mut it = s.splitn(3, ':');
            let (t, n, a) = (it.next()?, it.next()?, it.next()?);
            Some(serde_json::json!({"type": t, "name": n, "actions": a.split(',').collect::<Vec<_>>()}))
        })
        .collect();
    let claims = serde_json::json!({"iss": ISSUER, "sub": sub, "aud": SERVICE, "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("{now}-{}", scopes.len()), "access": access});
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut child = std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-sign", "token.key"])
        .current_dir(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("openssl dgst");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(signing_input.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("openssl dgst output");
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(out.stdout))
}
