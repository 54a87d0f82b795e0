//! One Docker daemon for the whole test run, started on first use with its
//! own socket, data root and exec root in a temporary directory (vfs storage,
//! no iptables, no bridge), and stopped when the test process exits.

use super::require_tool;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The running daemon.
pub struct Dockerd {
    pub dir: PathBuf,
    /// The daemon and the watchdog that stops it when the test process ends.
    _processes: Vec<std::process::Child>,
}

impl Dockerd {
    /// `unix://…/docker.sock`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.dir.join("docker.sock").display())
    }

    /// Run the docker CLI against this daemon.
    pub fn docker(&self, args: &[&str]) -> super::Run {
        let out = Command::new(require_tool("docker", "docker.io"))
            .args(args)
            .env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", self.dir.join("cli"))
            .output()
            .expect("running docker");
        super::Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// The shared daemon, started on first call.
pub fn dockerd() -> &'static Dockerd {
    static D: OnceLock<Dockerd> = OnceLock::new();
    D.get_or_init(|| {
        let bin = require_tool("dockerd", "docker.io");
        // Short path: unix socket paths are limited to 108 bytes.
        let dir = tempfile::Builder::new().prefix("kd").tempdir_in("/tmp").expect("temp dir").keep();
        let log = std::fs::File::create(dir.join("dockerd.log")).expect("log");
        let child = Command::new(bin)
            .args(["--storage-driver=vfs", "--iptables=false", "--ip6tables=false", "--bridge=none"])
            .arg(format!("-H=unix://{}", dir.join("docker.sock").display()))
            .arg(format!("--data-root={}", dir.join("data").display()))
            .arg(format!("--exec-root={}", dir.join("exec").display()))
            .arg(format!("--pidfile={}", dir.join("docker.pid").display()))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("starting dockerd");
        // Stop the daemon (and remove its files) once this test process is gone.
        let watchdog = format!(
            "while kill -0 {me} 2>/dev/null; do sleep 0.5; done; kill {d}; sleep 3; kill -9 {d} 2>/dev/null; rm -rf {dir}",
            me = std::process::id(),
            d = child.id(),
            dir = dir.display()
        );
        let watchdog = Command::new("sh")
            .args(["-c", &watchdog])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("watchdog");
        let d = Dockerd { dir, _processes: vec![child, watchdog] };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if d.docker(&["version"]).code == 0 {
                return d;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("dockerd did not start: {}", std::fs::read_to_string(d.dir.join("dockerd.log")).unwrap_or_default());
    })
}
