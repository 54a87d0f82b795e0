//! The Distribution registry (`docker-registry`), started per test on an
//! ephemeral loopback port with its own storage, in one of four modes.

use super::{openssl, require_tool};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How the registry is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Plain,
    Tls,
    /// TLS with a self-signed certificate made as the Distribution docs make
    /// it (`openssl req -x509`, so `CA:TRUE`), for `localhost`; the registry
    /// is reached as `localhost:PORT`.
    SelfSigned,
    /// TLS that also requires a client certificate signed by the test CA.
    MutualTls,
    Htpasswd,
    /// TLS (test CA) and htpasswd together, as most private registries run.
    TlsHtpasswd,
    Token,
    /// Plain HTTP, with Distribution's schema1 compatibility on: it takes
    /// signed schema1 pushes and serves schema2 images as schema1 (signed
    /// with its own libtrust key) to clients that accept only that.
    Schema1,
}

/// Test credentials accepted by the htpasswd and token modes.
pub const USER: &str = "kopeo-user";
pub const PASSWORD: &str = "s3cret-Passw0rd-canary";

/// A running registry; killed on drop.
pub struct Registry {
    pub host: String,
    pub dir: tempfile::TempDir,
    pub mode: Mode,
    child: Child,
    pub token: Option<super::token::TokenServer>,
}

/// `docker-registry serve CONFIG`, its output into `log`.
fn serve(bin: &str, config: &Path, log: std::fs::File) -> Child {
    Command::new(bin)
        .arg("serve")
        .arg(config)
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .expect("starting docker-registry")
}

/// The registry certificate of the Distribution docs, exactly as they make it:
/// `domain.crt` and `domain.key` in `dir`.
pub fn make_self_signed(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:4096",
            "-nodes",
            "-sha256",
            "-keyout",
            "domain.key",
            "-x509",
            "-days",
            "2",
            "-out",
            "domain.crt",
            "-subj",
            "/CN=registry host certificate",
            "-addext",
            "subjectAltName=DNS:localhost",
        ],
    );
}

/// A self-signed `CA:TRUE` certificate for `localhost` with the given validity
/// (`YYYYMMDDHHMMSSZ`), made with `openssl ca -selfsign` (`req -x509` cannot
/// date a certificate in the past).
pub fn make_self_signed_dated(dir: &Path, start: &str, end: &str) {
    std::fs::write(dir.join("index.txt"), "").expect("index.txt");
    std::fs::write(dir.join("serial"), "01\n").expect("serial");
    std::fs::write(
        dir.join("ca.cnf"),
        "[ca]\ndefault_ca = x\n[x]\ndir = .\ndatabase = ./index.txt\nserial = ./serial\nnew_certs_dir = .\ndefault_md = sha256\npolicy = p\ncopy_extensions = copy\n[p]\ncommonName = supplied\n",
    )
    .expect("ca.cnf");
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "domain.key",
            "-out",
            "domain.csr",
            "-subj",
            "/CN=registry host certificate",
            "-addext",
            "subjectAltName=DNS:localhost",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
        ],
    );
    openssl(
        dir,
        &[
            "ca",
            "-batch",
            "-config",
            "ca.cnf",
            "-selfsign",
            "-keyfile",
            "domain.key",
            "-in",
            "domain.csr",
            "-out",
            "domain.crt",
            "-startdate",
            start,
            "-enddate",
            end,
        ],
    );
}

/// Make a CA and a server certificate for 127.0.0.1 in `dir`:
/// `ca.crt`, `server.crt`, `server.key`; also a client pair `client.cert`/`client.key`.
pub fn make_certs(dir: &Path) {
    let run = |args: &str| openssl(dir, &args.split(' ').collect::<Vec<_>>());
    run(
        "req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=kopeo-test-CA \
         -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign",
    );
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n",
    )
    .expect("writing san.ext");
    for who in ["server", "client"] {
        run(&format!(
            "req -newkey rsa:2048 -nodes -keyout {who}.key -out {who}.csr -subj /CN=kopeo-test-{who}"
        ));
    }
    run("x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile san.ext");
    run("x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out client.cert -days 2 -extfile san.ext");
}

impl Registry {
    /// Start a registry in `mode`.
    pub fn start(mode: Mode) -> Registry {
        Self::start_inner(mode, make_self_signed)
    }

    /// A [`Mode::SelfSigned`] registry whose `domain.crt`/`domain.key` `make` writes.
    pub fn self_signed_by(make: impl FnOnce(&Path)) -> Registry {
        Self::start_inner(Mode::SelfSigned, make)
    }

    fn start_inner(mode: Mode, self_signed: impl FnOnce(&Path)) -> Registry {
        let bin = require_tool("docker-registry", "docker-registry");
        let dir = super::tempdir();
        // Port 0: the registry binds a port itself and logs it, so no other
        // test can take it between a pick and the bind.
        let listen = "127.0.0.1:0";
        let mut token = None;
        let mut extra = String::new();
        let mut top = String::new();
        match mode {
            Mode::Plain => {}
            Mode::Schema1 => top.push_str("compatibility:\n  schema1:\n    enabled: true\n"),
            Mode::SelfSigned => {
                self_signed(dir.path());
                extra.push_str(&format!(
                    "  tls:\n    certificate: {0}/domain.crt\n    key: {0}/domain.key\n",
                    dir.path().display()
                ));
            }
            Mode::Tls | Mode::MutualTls | Mode::TlsHtpasswd => {
                make_certs(dir.path());
                extra.push_str(&format!(
                    "  tls:\n    certificate: {0}/server.crt\n    key: {0}/server.key\n",
                    dir.path().display()
                ));
                if mode == Mode::MutualTls {
                    extra.push_str(&format!("    clientcas:\n      - {}/ca.crt\n", dir.path().display()));
                }
            }
            Mode::Htpasswd | Mode::Token => {}
        }
        let auth = match mode {
            Mode::Htpasswd | Mode::TlsHtpasswd => {
                let out = Command::new(require_tool("htpasswd", "apache2-utils"))
                    .args(["-Bbn", USER, PASSWORD])
                    .output()
                    .expect("running htpasswd");
                std::fs::write(dir.path().join("htpasswd"), &out.stdout).expect("writing htpasswd");
                format!(
                    "auth:\n  htpasswd:\n    realm: kopeo-test\n    path: {}/htpasswd\n",
                    dir.path().display()
                )
            }
            Mode::Token => {
                let t = super::token::TokenServer::start(dir.path());
                let s = format!(
                    "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                    t.realm(),
                    super::token::SERVICE,
                    super::token::ISSUER,
                    t.cert_path().display()
                );
                token = Some(t);
                s
            }
            _ => String::new(),
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\n{top}http:\n  addr: {listen}\n{extra}{auth}",
            root = dir.path().join("storage").display(),
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("writing registry config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("creating log");
        let child = serve(&bin, &config_path, log);
        let mut reg = Registry {
            host: String::new(),
            dir,
            mode,
            child,
            token,
        };
        let port = reg.wait_listening();
        reg.host = if mode == Mode::SelfSigned {
            format!("localhost:{port}")
        } else {
            format!("127.0.0.1:{port}")
        };
        reg
    }

    /// Stop the registry, leave it gone for `down`, then start it again on
    /// the same port with the same storage (its log goes on in the same file).
    pub fn restart(&mut self, down: Duration) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(down);
        let config_path = self.dir.path().join("config.yml");
        let config = std::fs::read_to_string(&config_path).expect("registry config");
        let port = self.host.rsplit(':').next().unwrap_or_default().to_string();
        std::fs::write(
            &config_path,
            config.replace("addr: 127.0.0.1:0", &format!("addr: 127.0.0.1:{port}")),
        )
        .expect("writing registry config");
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.path().join("registry.log"))
            .expect("registry log");
        self.child = serve(&require_tool("docker-registry", "docker-registry"), &config_path, log);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(format!("127.0.0.1:{port}")).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not come back on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The port this registry logs it listens on (Distribution logs
    /// `listening on 127.0.0.1:PORT` once bound, before serving).
    fn wait_listening(&mut self) -> u16 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let log = self.log();
            if let Some(port) = log
                .lines()
                .find_map(|l| l.split("listening on 127.0.0.1:").nth(1))
                .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|p| p.parse().ok())
            {
                return port;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("docker-registry exited ({status}):\n{log}");
            }
            assert!(Instant::now() < deadline, "docker-registry did not start:\n{log}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the registry logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Log lines of completed requests with this method whose URI contains `needle`.
    /// Distribution logs a request after answering it, so a client may be
    /// done before the line is written: wait until the log stops growing.
    pub fn requests(&self, method: &str, needle: &str) -> usize {
        let path = self.dir.path().join("registry.log");
        let size = || std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut last = size();
        loop {
            std::thread::sleep(Duration::from_millis(30));
            let now = size();
            if now == last || Instant::now() > deadline {
                break;
            }
            last = now;
        }
        self.log()
            .lines()
            .filter(|l| l.contains("response completed"))
            .filter(|l| l.contains(&format!("http.request.method={method}")))
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Flags that let a CLI side reach this registry (`--src-` / `--dest-` / ``).
    pub fn flags(&self, prefix: &str) -> Vec<String> {
        let mut f = vec![];
        match self.mode {
            Mode::Tls | Mode::SelfSigned | Mode::TlsHtpasswd => {
                f.push(format!("--{prefix}cert-dir={}", self.cert_dir().display()))
            }
            Mode::MutualTls => f.push(format!("--{prefix}cert-dir={}", self.client_cert_dir().display())),
            _ => f.push(format!("--{prefix}tls-verify=false")),
        }
        if matches!(self.mode, Mode::Htpasswd | Mode::TlsHtpasswd | Mode::Token) {
            f.push(format!("--{prefix}creds={USER}:{PASSWORD}"));
        }
        f
    }

    /// A directory holding just this registry's CA as `ca.crt` (its own
    /// certificate as `domain.crt` when self-signed).
    pub fn cert_dir(&self) -> PathBuf {
        let d = self.dir.path().join("certs.d");
        if !d.exists() {
            std::fs::create_dir_all(&d).expect("creating certs.d");
            let name = if self.mode == Mode::SelfSigned {
                "domain.crt"
            } else {
                "ca.crt"
            };
            std::fs::copy(self.dir.path().join(name), d.join(name)).expect("copying the certificate");
        }
        d
    }

    /// A directory with the CA and a client certificate pair (`client.cert`, `client.key`).
    pub fn client_cert_dir(&self) -> PathBuf {
        let d = self.dir.path().join("certs.d-client");
        if !d.exists() {
            std::fs::create_dir_all(&d).expect("creating certs.d");
            for f in ["ca.crt", "client.cert", "client.key"] {
                std::fs::copy(self.dir.path().join(f), d.join(f)).expect("copying cert");
            }
        }
        d
    }

    /// `docker://HOST/repo`.
    pub fn image(&self, repo: &str) -> String {
        format!("docker://{}/{repo}", self.host)
    }

    /// The digest of `repo_tag` here, judged by an independent reader: the
    /// manifest bytes skopeo fetches, hashed. Panics unless it is there.
    #[track_caller]
    pub fn digest(&self, home: &Path, repo_tag: &str) -> String {
        use sha2::Digest as _;
        let raw = self.raw_manifest(home, repo_tag);
        format!("sha256:{}", hex::encode(sha2::Sha256::digest(raw.as_bytes())))
    }

    /// The manifest of `repo_tag` as skopeo reads it (`inspect --raw`);
    /// panics unless skopeo finds it.
    #[track_caller]
    pub fn raw_manifest(&self, home: &Path, repo_tag: &str) -> String {
        let out = self.run_skopeo(home, &["inspect", "--raw"], repo_tag);
        assert_eq!(out.code, 0, "skopeo cannot read {repo_tag}:\n{}", out.stderr);
        out.stdout
    }

    /// Whether skopeo finds no `repo_tag` here (a clean "manifest unknown",
    /// not any failure).
    #[track_caller]
    pub fn lacks(&self, home: &Path, repo_tag: &str) -> bool {
        let out = self.run_skopeo(home, &["inspect", "--raw"], repo_tag);
        if out.code == 0 {
            return false;
        }
        assert_absence(&out.stderr);
        true
    }

    /// Whether the registry knows no repository `repo` (no tag was ever
    /// pushed to it): its own answer to a plain tag-list GET, 404 with
    /// NAME_UNKNOWN, as opposed to any other failure. Plain HTTP registries.
    #[track_caller]
    pub fn lacks_repo(&self, repo: &str) -> bool {
        assert_eq!(self.mode, Mode::Plain, "lacks_repo asks over plain HTTP");
        let (status, body) = super::http_answer(&format!("http://{}/v2/{repo}/tags/list", self.host));
        match status {
            200 => false,
            404 => {
                let body = String::from_utf8_lossy(&body);
                assert!(body.contains("NAME_UNKNOWN"), "404 for another reason: {body}");
                true
            }
            other => panic!("tag list of {repo}: status {other}"),
        }
    }

    /// The tags skopeo lists for `repo` here; panics if it cannot list them.
    #[track_caller]
    pub fn tags(&self, home: &Path, repo: &str) -> Vec<String> {
        let out = self.run_skopeo(home, &["list-tags"], repo);
        assert_eq!(out.code, 0, "skopeo cannot list {repo}:\n{}", out.stderr);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("skopeo's tag list is JSON");
        let mut tags: Vec<String> = v["Tags"]
            .as_array()
            .map(|a| a.iter().filter_map(|t| t.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        tags.sort();
        tags
    }

    fn run_skopeo(&self, home: &Path, cmd: &[&str], repo_tag: &str) -> super::Run {
        let mut args: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
        args.extend(self.flags(""));
        args.push(self.image(repo_tag));
        super::skopeo(home, &args.iter().map(String::as_str).collect::<Vec<_>>())
    }
}

/// Distribution's answers for something that is not there, as skopeo prints them.
#[track_caller]
fn assert_absence(stderr: &str) {
    assert!(
        ["manifest unknown", "name unknown", "repository name not known"]
            .iter()
            .any(|s| stderr.contains(s)),
        "skopeo failed for another reason than absence:\n{stderr}"
    );
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
