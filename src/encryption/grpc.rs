//! The gRPC side of ocicrypt's key provider protocol, as a small client of
//! its own: one unary call (`keyprovider.KeyProviderService/WrapKey` or
//! `/UnWrapKey`) whose messages hold one `bytes` field (the protocol's
//! JSON). hyper speaks the HTTP/2, over TCP (`host:port`), TLS (`grpc-tls`)
//! or a unix socket (`unix:///path`, as sidecars in a pod listen). A full
//! gRPC stack (tonic, prost, codegen) would add much for these two messages.

use super::provider::GrpcTls;
use bytes::{Buf as _, Bytes};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::sync::Arc;

/// A message with one `bytes` field numbered 1, as protobuf encodes it.
fn encode(payload: &[u8]) -> Vec<u8> {
    let mut msg = vec![0x0a];
    let mut n = payload.len();
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            msg.push(b);
            break;
        }
        msg.push(b | 0x80);
    }
    msg.extend_from_slice(payload);
    msg
}

fn varint(buf: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Field 1 of a message (other fields skipped); empty when absent.
fn decode(mut msg: &[u8]) -> Result<Vec<u8>, String> {
    let bad = || "malformed protobuf answer".to_string();
    let mut out = vec![];
    while !msg.is_empty() {
        let key = varint(&mut msg).ok_or_else(bad)?;
        match key & 7 {
            0 => {
                varint(&mut msg).ok_or_else(bad)?;
            }
            1 | 5 => {
                let n = if key & 7 == 1 { 8 } else { 4 };
                msg = msg.get(n..).ok_or_else(bad)?;
            }
            2 => {
                let n = usize::try_from(varint(&mut msg).ok_or_else(bad)?).map_err(|_| bad())?;
                let (field, rest) = (msg.get(..n).ok_or_else(bad)?, &msg[n..]);
                if key >> 3 == 1 {
                    out = field.to_vec();
                }
                msg = rest;
            }
            _ => return Err(bad()),
        }
    }
    Ok(out)
}

/// Anything hyper can speak HTTP/2 over.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static> Io for T {}

async fn connect(addr: &str, tls: Option<&GrpcTls>) -> Result<(Box<dyn Io>, String), String> {
    let addr = addr.strip_prefix("dns:///").unwrap_or(addr);
    if let Some(path) = addr.strip_prefix("unix://").or_else(|| addr.strip_prefix("unix:")) {
        let s = tokio::net::UnixStream::connect(path)
            .await
            .map_err(|e| format!("error while dialing rpc server {addr}: {e}"))?;
        return Ok((Box::new(s), "localhost".into()));
    }
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("error while dialing rpc server {addr}: {e}"))?;
    let host = addr
        .rsplit_once(':')
        .map_or(addr, |(h, _)| h)
        .trim_matches(['[', ']'])
        .to_string();
    let Some(tls) = tls else {
        return Ok((Box::new(tcp), host));
    };
    let name = tls.server_name.clone().unwrap_or_else(|| host.clone());
    let read = |p: &std::path::Path| std::fs::read(p).map_err(|e| format!("reading {}: {e}", p.display()));
    let roots = match &tls.root_ca_file {
        Some(p) => vec![read(p)?],
        None => vec![],
    };
    let client = match (&tls.cert_file, &tls.key_file) {
        (Some(c), Some(k)) => Some((read(c)?, read(k)?)),
        _ => None,
    };
    let options = crate::registry::TlsOptions {
        verify: Some(!tls.insecure_skip_verify),
        cert_dir: None,
        material: Some(Arc::new(crate::registry::TlsMaterial { roots, client })),
    };
    let mut config = crate::registry::tls::client_config(&name, &options).map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    let server =
        rustls::pki_types::ServerName::try_from(name.clone()).map_err(|e| format!("server name {name}: {e}"))?;
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(server, tcp)
        .await
        .map_err(|e| format!("error while dialing TLS rpc server {addr}: {e}"))?;
    Ok((Box::new(stream), name))
}

/// Call `method` of the provider at `addr` with the protocol JSON `input`;
/// the answer's JSON. Errors in grpc-go's words where it has some.
pub async fn call(addr: &str, tls: Option<&GrpcTls>, method: &str, input: &[u8]) -> Result<Vec<u8>, String> {
    let (io, authority) = connect(addr, tls).await?;
    let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
        .await
        .map_err(|e| format!("error while dialing rpc server {addr}: {e}"))?;
    let driver = tokio::spawn(conn);
    let msg = encode(input);
    let mut body = Vec::with_capacity(5 + msg.len());
    body.push(0);
    body.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    body.extend_from_slice(&msg);
    let scheme = if tls.is_some() { "https" } else { "http" };
    let req = hyper::Request::post(format!(
        "{scheme}://{authority}/keyprovider.KeyProviderService/{method}"
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .body(Full::new(Bytes::from(body)))
    .map_err(|e| e.to_string())?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("Error from grpc method: {e}"))?;
    let (parts, body) = resp.into_parts();
    let collected = body
        .collect()
        .await
        .map_err(|e| format!("Error from grpc method: {e}"))?;
    driver.abort();
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let status = |name: &str| {
        trailers
            .get(name)
            .or_else(|| parts.headers.get(name))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    if !parts.status.is_success() {
        return Err(format!("Error from grpc method: HTTP status {}", parts.status));
    }
    match status("grpc-status").as_deref() {
        Some("0") => {}
        Some(code) => {
            let desc = status("grpc-message").unwrap_or_default();
            return Err(format!(
                "Error from grpc method: rpc error: code = {code} desc = {desc}"
            ));
        }
        None => return Err("Error from grpc method: the answer has no grpc-status".into()),
    }
    let mut data = collected.to_bytes();
    if data.len() < 5 || data[0] != 0 {
        return Err("Error from grpc method: malformed or compressed answer frame".into());
    }
    data.advance(1);
    let n = data.get_u32() as usize;
    let frame = data.get(..n).ok_or("Error from grpc method: truncated answer frame")?;
    decode(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_one_field_round_trips_and_others_are_skipped() {
        let long = vec![7u8; 300];
        let m = encode(&long);
        assert_eq!(&m[..3], &[0x0a, 0xac, 0x02]);
        assert_eq!(decode(&m).unwrap(), long);
        let mut with_other = vec![0x10, 0x05]; // field 2, varint 5
        with_other.extend(encode(b"x"));
        assert_eq!(decode(&with_other).unwrap(), b"x");
        assert!(decode(&[0x0a, 0x05, 1]).is_err());
    }
}
