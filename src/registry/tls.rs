//! Per-registry HTTP clients: TLS verification, certs.d-style CA and client
//! certificate directories.
//!
//! The rustls configuration is built here rather than by reqwest, for one
//! behaviour reqwest's verifier cannot have: a registry whose certificate is
//! self-signed (`openssl req -x509`, marked `CA:TRUE`) and trusted by putting
//! that very certificate into the cert directory. Go, hence skopeo, accepts
//! a leaf that is itself a configured root; webpki refuses it as
//! `CaUsedAsEndEntity`. [`RegistryVerifier`] verifies as webpki and the
//! platform do, and accepts such a leaf only when it is byte-identical to a
//! configured certificate, is valid now and names the host.

use super::RegistryError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// TLS settings for one side of an operation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// `--tls-verify`: `Some(false)` skips certificate checks and allows plain HTTP.
    pub verify: Option<bool>,
    /// `--cert-dir`: `*.crt` CAs, `*.cert` + `*.key` client certificate pairs.
    pub cert_dir: Option<PathBuf>,
    /// Certificates held in memory (the operator's, from Secrets), used
    /// instead of any directory.
    pub material: Option<std::sync::Arc<TlsMaterial>>,
}

/// What a certs.d directory holds, in memory: PEM CA certificates, and a
/// PEM client certificate chain with its key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsMaterial {
    pub roots: Vec<Vec<u8>>,
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

impl TlsOptions {
    /// Whether certificates are verified (the default).
    pub fn verifies(&self) -> bool {
        self.verify.unwrap_or(true)
    }
}

/// The certificate directories that apply to `host` when none was given.
fn default_cert_dirs(host: &str) -> Vec<PathBuf> {
    let mut dirs = vec![];
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".config/containers/certs.d").join(host));
    }
    dirs.push(Path::new("/etc/containers/certs.d").join(host));
    dirs.push(Path::new("/etc/docker/certs.d").join(host));
    dirs
}

/// What the cert directories of a host hold.
#[derive(Default)]
struct CertDirs {
    roots: Vec<CertificateDer<'static>>,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
}

/// The certificates `m` holds, parsed.
fn from_material(m: &TlsMaterial, err: &impl Fn(String) -> RegistryError) -> Result<CertDirs, RegistryError> {
    let mut out = CertDirs::default();
    for pem in &m.roots {
        let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<_, _>>()
            .map_err(|e| err(format!("CA certificate: {e}")))?;
        if certs.is_empty() {
            return Err(err("CA certificate: no PEM certificate in it".into()));
        }
        out.roots.extend(certs);
    }
    if let Some((cert, key)) = &m.client {
        let chain: Vec<_> = CertificateDer::pem_slice_iter(cert)
            .collect::<Result<_, _>>()
            .map_err(|e| err(format!("client certificate: {e}")))?;
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| err(format!("client key: {e}")))?;
        out.identity = Some((chain, key));
    }
    Ok(out)
}

fn read_cert_dirs(
    host: &str,
    tls: &TlsOptions,
    err: &impl Fn(String) -> RegistryError,
) -> Result<CertDirs, RegistryError> {
    if let Some(m) = &tls.material {
        return from_material(m, err);
    }
    let dirs = match &tls.cert_dir {
        Some(d) => vec![d.clone()],
        None => default_cert_dirs(host),
    };
    let mut out = CertDirs::default();
    for dir in dirs {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && tls.cert_dir.is_none() => continue,
            Err(e) => return Err(err(format!("reading {}: {e}", dir.display()))),
        };
        let mut names: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        names.sort();
        let read = |p: &Path| std::fs::read(p).map_err(|e| err(format!("reading {}: {e}", p.display())));
        for path in names {
            match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
                "crt" => {
                    let pem = read(&path)?;
                    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
                        .collect::<Result<_, _>>()
                        .map_err(|e| err(format!("{}: {e}", path.display())))?;
                    if certs.is_empty() {
                        return Err(err(format!("{}: no PEM certificate in it", path.display())));
                    }
                    out.roots.extend(certs);
                }
                "cert" => {
                    let key = path.with_extension("key");
                    if !key.exists() {
                        return Err(err(format!(
                            "missing key {} for client certificate {}",
                            key.display(),
                            path.display()
                        )));
                    }
                    let chain: Vec<_> = CertificateDer::pem_slice_iter(&read(&path)?)
                        .collect::<Result<_, _>>()
                        .map_err(|e| err(format!("client certificate {}: {e}", path.display())))?;
                    let private = PrivateKeyDer::from_pem_slice(&read(&key)?)
                        .map_err(|e| err(format!("client key {}: {e}", key.display())))?;
                    out.identity = Some((chain, private));
                }
                "key" if !path.with_extension("cert").exists() => {
                    return Err(err(format!(
                        "missing client certificate {} for key {}",
                        path.with_extension("cert").display(),
                        path.display()
                    )));
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

/// Build the HTTP client for `host` with `tls`.
pub fn build_client(host: &str, tls: &TlsOptions, user_agent: &str) -> Result<reqwest::Client, RegistryError> {
    let err = |reason: String| RegistryError::Tls {
        registry: host.to_string(),
        reason,
    };
    let mut config = client_config(host, tls)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .user_agent(user_agent)
        .connect_timeout(Duration::from_secs(30))
        .read_timeout(read_timeout())
        .pool_idle_timeout(Duration::from_secs(90))
        // reqwest drops Authorization on a redirect to another host.
        .redirect(reqwest::redirect::Policy::limited(10))
        // A redirect target (object storage) learns nothing of the registry URL.
        .referer(false)
        .use_preconfigured_tls(config)
        .build()
        .map_err(|e| err(e.to_string()))
}

/// The rustls configuration for `host` with `tls` (no ALPN set): the
/// registries' verifier, and a client certificate where one is given.
pub fn client_config(host: &str, tls: &TlsOptions) -> Result<rustls::ClientConfig, RegistryError> {
    let err = |reason: String| RegistryError::Tls {
        registry: host.to_string(),
        reason,
    };
    let dirs = read_cert_dirs(host, tls, &err)?;
    let policy = super::tls_details::policy();
    let provider = policy.provider.clone();
    let verifier: Arc<dyn ServerCertVerifier> = if tls.verifies() {
        Arc::new(RegistryVerifier::new(dirs.roots, provider.clone()).map_err(|e| err(e.to_string()))?)
    } else {
        Arc::new(AcceptAny(provider.clone()))
    };
    let versions: &[&rustls::SupportedProtocolVersion] = if policy.tls13_only {
        &[&rustls::version::TLS13]
    } else {
        rustls::DEFAULT_VERSIONS
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| err(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    Ok(match dirs.identity {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| err(format!("client certificate: {e}")))?,
        None => builder.with_no_client_auth(),
    })
}

/// How long a registry may send nothing while kopeo waits for an answer or
/// reads a body; past it the read fails like a dropped connection (replayed,
/// or resumed for a blob). skopeo waits for ever: a stalled registry should
/// not hold a copy or a reconcile that long. `KOPEO_READ_TIMEOUT` (seconds)
/// sets it.
pub(super) fn read_timeout() -> Duration {
    std::env::var("KOPEO_READ_TIMEOUT")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map_or(Duration::from_secs(300), Duration::from_secs)
}

/// The platform's verification plus the configured roots, and the one case
/// Go accepts that webpki does not: a leaf that is a configured certificate.
#[derive(Debug)]
struct RegistryVerifier {
    inner: Arc<rustls_platform_verifier::Verifier>,
    configured: Vec<CertificateDer<'static>>,
}

impl RegistryVerifier {
    fn new(roots: Vec<CertificateDer<'static>>, provider: Arc<CryptoProvider>) -> Result<Self, rustls::Error> {
        let inner = if roots.is_empty() {
            rustls_platform_verifier::Verifier::new(provider)?
        } else {
            rustls_platform_verifier::Verifier::new_with_extra_roots(roots.clone(), provider)?
        };
        Ok(RegistryVerifier {
            inner: Arc::new(inner),
            configured: roots,
        })
    }
}

/// Whether `cert` is valid at `now` and names `server_name`.
fn valid_for(cert: &CertificateDer<'_>, server_name: &ServerName<'_>, now: UnixTime) -> Result<(), rustls::Error> {
    use rustls::CertificateError;
    use x509_cert::der::Decode as _;
    let parsed = x509_cert::Certificate::from_der(cert.as_ref())
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let validity = &parsed.tbs_certificate.validity;
    let now = Duration::from_secs(now.as_secs());
    if now < validity.not_before.to_unix_duration() {
        return Err(rustls::Error::InvalidCertificate(CertificateError::NotValidYet));
    }
    if now > validity.not_after.to_unix_duration() {
        return Err(rustls::Error::InvalidCertificate(CertificateError::Expired));
    }
    let end_entity = rustls::server::ParsedCertificate::try_from(cert)?;
    rustls::client::verify_server_name(&end_entity, server_name)
}

impl ServerCertVerifier for RegistryVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Ok(v) => Ok(v),
            Err(e) if self.configured.iter().any(|c| c.as_ref() == end_entity.as_ref()) => {
                tracing::debug!(error = %e, "the server's certificate is a configured one; checking its name and validity");
                valid_for(end_entity, server_name, now).map(|()| ServerCertVerified::assertion())
            }
            Err(e) => Err(e),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `--tls-verify=false`: any certificate; the handshake's signatures are
/// still checked, so the peer holds the key of the certificate it showed.
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
