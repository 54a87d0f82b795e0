//! A loopback TCP proxy in front of a registry that breaks off the response
//! to a chosen blob download part-way, a given number of times.

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// A running proxy.
pub struct DropProxy {
    pub host: String,
    /// How many connections were cut so far.
    pub cut: Arc<AtomicUsize>,
}

impl DropProxy {
    /// Proxy to `upstream`; the first `cuts` GETs of blob `hex` (resumptions
    /// included) are cut after `after` response bytes.
    pub fn start(upstream: &str, hex: &str, cuts: usize, after: usize) -> DropProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding proxy");
        let host = listener.local_addr().expect("addr").to_string();
        let remaining = Arc::new(AtomicUsize::new(cuts));
        let cut = Arc::new(AtomicUsize::new(0));
        let (upstream, needle) = (upstream.to_string(), format!("/blobs/sha256:{hex}"));
        let cut2 = cut.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let armed = Arc::new(AtomicBool::new(false));
                let (mut c_read, mut s_write) =
                    (client.try_clone().expect("clone"), server.try_clone().expect("clone"));
                let (needle, remaining, armed_w) = (needle.clone(), remaining.clone(), armed.clone());
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    while let Ok(n) = c_read.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        let text = String::from_utf8_lossy(&buf[..n]);
                        if text.starts_with("GET ") && text.contains(&needle) {
                            let took = remaining
                                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |r| r.checked_sub(1))
                                .is_ok();
                            if took {
                                armed_w.store(true, Ordering::SeqCst);
                            }
                        }
                        if s_write.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = s_write.shutdown(Shutdown::Write);
                });
                let (mut s_read, mut c_write) = (server, client);
                let cut = cut2.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    let mut sent_armed = 0usize;
                    while let Ok(n) = s_read.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        let mut n = n;
                        if armed.load(Ordering::SeqCst) {
                            if sent_armed + n >= after {
                                n = after.saturating_sub(sent_armed);
                                let _ = c_write.write_all(&buf[..n]);
                                cut.fetch_add(1, Ordering::SeqCst);
                                let _ = c_write.shutdown(Shutdown::Both);
                                let _ = s_read.shutdown(Shutdown::Both);
                                return;
                            }
                            sent_armed += n;
                        }
                        if c_write.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = c_write.shutdown(Shutdown::Write);
                });
            }
        });
        DropProxy { host, cut }
    }
}

/// What a relay does with each chunk before passing it on (one per connection and direction).
type Tap = Box<dyn FnMut(&[u8]) + Send>;

/// A loopback proxy to `upstream` that passes each connection's bytes on
/// chunk by chunk, showing what the client sends to a tap from `up` and
/// what the server answers to one from `down`; its address.
fn relay(upstream: &str, up: impl Fn() -> Tap + Send + 'static, down: impl Fn() -> Tap + Send + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding proxy");
    let host = listener.local_addr().expect("addr").to_string();
    let upstream = upstream.to_string();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let Ok(server) = TcpStream::connect(&upstream) else {
                continue;
            };
            pipe(
                client.try_clone().expect("clone"),
                server.try_clone().expect("clone"),
                up(),
            );
            pipe(server, client, down());
        }
    });
    host
}

fn pipe(mut from: TcpStream, mut to: TcpStream, mut tap: Tap) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16384];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            tap(&buf[..n]);
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

/// A loopback proxy that passes responses on slowly (one 16 KiB chunk per
/// `pause`), so that a copy through it takes a while; returns its address.
pub fn slow(upstream: &str, pause: std::time::Duration) -> String {
    relay(
        upstream,
        || Box::new(|_| {}),
        move || Box::new(move |_| std::thread::sleep(pause)),
    )
}

/// A loopback proxy that notes when each request passes it (for requests
/// without bodies: GET and HEAD, what a copy sends a source); its address
/// and the times.
pub fn counting(upstream: &str) -> (String, Arc<std::sync::Mutex<Vec<std::time::Instant>>>) {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let times = seen.clone();
    let up = move || -> Tap {
        let times = times.clone();
        // A request starts at the connection's start and after each blank
        // line ending a header block.
        let (mut at_start, mut tail) = (true, [0u8; 4]);
        Box::new(move |chunk: &[u8]| {
            for &b in chunk {
                if at_start && !b.is_ascii_whitespace() {
                    times.lock().unwrap().push(std::time::Instant::now());
                    at_start = false;
                }
                tail = [tail[1], tail[2], tail[3], b];
                if &tail == b"\r\n\r\n" {
                    at_start = true;
                }
            }
        })
    };
    (relay(upstream, up, || Box::new(|_| {})), seen)
}
