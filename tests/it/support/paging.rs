//! A minimal tag-list endpoint that pages with `Link` headers, as the
//! distribution spec describes. Debian's Distribution 2.8 ignores `n` for
//! tag lists, so paging needs this stand-in.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A running paging server.
pub struct PagingServer {
    pub host: String,
    pub pages_served: Arc<AtomicUsize>,
}

impl PagingServer {
    /// Serve `tags` for repository `repo`, `page` at a time unless the client asks for `n`.
    pub fn start(repo: &'static str, tags: &'static [&'static str], page: usize) -> PagingServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding paging server");
        let host = listener.local_addr().expect("addr").to_string();
        let pages_served = Arc::new(AtomicUsize::new(0));
        let counter = pages_served.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                // Answer a TLS ClientHello the way Go's HTTP server does on a
                // plain port, so clients fall back to HTTP at once.
                let mut first = [0u8; 1];
                if conn.peek(&mut first).is_ok() && first[0] == 0x16 {
                    let mut c = conn;
                    let _ = c.write_all(
                        b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n",
                    );
                    continue;
                }
                let mut reader = BufReader::new(conn.try_clone().expect("clone"));
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                }
                let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
                let (path, query) = target.split_once('?').unwrap_or((&target, ""));
                let params: Vec<(String, String)> =
                    url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
                let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
                let mut conn = conn;
                let (status, extra, body) = if path == "/v2/" {
                    ("200 OK", String::new(), "{}".to_string())
                } else if path == format!("/v2/{repo}/tags/list") {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let n = get("n").and_then(|n| n.parse().ok()).unwrap_or(page);
                    let start = get("last")
                        .and_then(|l| tags.iter().position(|t| *t == l))
                        .map_or(0, |i| i + 1);
                    let chunk: Vec<&str> = tags.iter().skip(start).take(n).copied().collect();
                    let link = match chunk.last() {
                        Some(last) if start + chunk.len() < tags.len() => {
                            format!("Link: </v2/{repo}/tags/list?n={n}&last={last}>; rel=\"next\"\r\n")
                        }
                        _ => String::new(),
                    };
                    (
                        "200 OK",
                        link,
                        serde_json::json!({"name": repo, "tags": chunk}).to_string(),
                    )
                } else {
                    (
                        "404 Not Found",
                        String::new(),
                        r#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}"#
                            .to_string(),
                    )
                };
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        PagingServer { host, pages_served }
    }
}
