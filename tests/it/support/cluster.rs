//! The operator's test harness: the test API server with the CRDs
//! installed, in-process operators and `kopeo operator` processes, and
//! registries set up the way the operator scenarios need them.

use super::{kopeo, tempdir};
use kopeo_test_apiserver::ApiServer;
use serde_json::{Value, json};

/// Tags of a repository, read straight from the registry's API (kopeo
/// not involved): empty only when the registry says the repository is
/// unknown; any other failure fails the test.
pub async fn registry_tags(reg: &crate::support::registry::Registry, repo: &str) -> Vec<String> {
    let url = format!("http://{}/v2/{repo}/tags/list", reg.host);
    let r = reqwest::get(&url).await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = r.status().as_u16();
    let body: Value = r
        .json()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: body is not JSON: {e}"));
    match status {
        200 => {
            let mut tags: Vec<String> =
                serde_json::from_value(body["tags"].clone()).unwrap_or_else(|e| panic!("{url}: {e}: {body}"));
            tags.sort();
            tags
        }
        404 if body["errors"][0]["code"] == "NAME_UNKNOWN" => vec![],
        other => panic!("GET {url}: {other}: {body}"),
    }
}

/// A two-thread runtime for tests that run the operator in-process.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Install the CRDs into the test API server; a client for it.
pub async fn cluster(server: &ApiServer) -> kube::Client {
    kopeo::install_crypto_provider();
    for crd in crd_documents() {
        post(server, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", &crd).await;
    }
    kube::Client::try_from(kube::Config::new(server.url().parse().unwrap())).unwrap()
}

/// The operator, in-process, without leader election.
pub fn start_operator(client: &kube::Client) -> tokio::task::JoinHandle<()> {
    tokio::spawn(kopeo::operator::controller::run(client.clone(), operator_options()))
}

/// Options for an in-process operator without leader election.
pub fn operator_options() -> kopeo::operator::controller::OperatorOptions {
    kopeo::operator::controller::OperatorOptions {
        concurrency: 2,
        instance: "test".into(),
        ..Default::default()
    }
}

/// The `kopeo.dev/v1alpha1` resources of `kind` in namespace `default`.
pub fn kopeo_api(client: &kube::Client, kind: &str, plural: &str) -> kube::Api<kube::api::DynamicObject> {
    let ar = kube::api::ApiResource {
        group: "kopeo.dev".into(),
        version: "v1alpha1".into(),
        api_version: "kopeo.dev/v1alpha1".into(),
        kind: kind.into(),
        plural: plural.into(),
    };
    kube::Api::namespaced_with(client.clone(), "default", &ar)
}

/// The checked-in CRDs, one JSON value each.
pub fn crd_documents() -> Vec<Value> {
    let yaml = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/crds/kopeo.dev.yaml")).unwrap();
    yaml.split("---\n")
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_yaml_ng::from_str(d).unwrap())
        .collect()
}

/// POST a JSON body that must be accepted (setup: a refusal fails the
/// test, or a scenario would prove nothing); the stored object.
#[track_caller]
pub fn post<'a>(
    server: &'a ApiServer,
    path: &'a str,
    body: &'a Value,
) -> impl std::future::Future<Output = Value> + 'a {
    let at = std::panic::Location::caller();
    async move {
        let (code, v) = post_answer(server, path, body).await;
        assert!((200..300).contains(&code), "POST {path} refused ({code}) at {at}: {v}");
        v
    }
}

/// POST a JSON body to the test API server; its status code and reply.
pub async fn post_answer(server: &ApiServer, path: &str, body: &Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}{path}", server.url()))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let code = r.status().as_u16();
    (code, r.json::<Value>().await.unwrap_or(Value::Null))
}

/// A `kopeo operator` process of the real binary, its metrics address and log.
pub struct OperatorProcess {
    pub name: &'static str,
    pub child: std::process::Child,
    pub metrics: std::net::SocketAddr,
    pub log: std::path::PathBuf,
}

impl OperatorProcess {
    pub fn start(home: &std::path::Path, kubeconfig: &std::path::Path, name: &'static str) -> OperatorProcess {
        Self::start_with(home, kubeconfig, name, &[])
    }

    pub fn start_with(
        home: &std::path::Path,
        kubeconfig: &std::path::Path,
        name: &'static str,
        env: &[(&str, &str)],
    ) -> OperatorProcess {
        Self::launch(home, kubeconfig, name, &["--lease-namespace", "default"], env)
    }

    /// `kopeo operator ARGS` (plus its metrics address) as replica `name`.
    pub fn launch(
        home: &std::path::Path,
        kubeconfig: &std::path::Path,
        name: &'static str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> OperatorProcess {
        let log = home.join(format!("{name}.log"));
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kopeo"))
            .args(["operator", "--metrics-addr", "127.0.0.1:0"])
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("POD_NAME", name)
            .env("HOME", home)
            .envs(env.iter().copied())
            .stdout(std::fs::File::create(home.join(format!("{name}.out"))).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawning kopeo operator");
        // The port kopeo bound itself (no pick-release-bind race), from its log.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let metrics = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(addr) = text
                .lines()
                .find(|l| l.contains("serving /metrics"))
                .and_then(|l| l.split("addr=").nth(1))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|a| a.trim_matches('"').parse().ok())
            {
                break addr;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("kopeo operator {name} exited ({status}) before serving metrics:\n{text}");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "kopeo operator {name} never served metrics:\n{text}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        OperatorProcess {
            name,
            child,
            metrics,
            log,
        }
    }

    /// Whether its `/metrics` says it leads (`None` while it does not answer).
    pub async fn leading(&self) -> Option<bool> {
        let (code, m) = self.get("/metrics").await;
        (code == 200).then(|| m.lines().any(|l| l == "kopeo_leader 1"))
    }

    /// GET `path` on its metrics address: status code and body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        match reqwest::get(format!("http://{}{path}", self.metrics)).await {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(_) => (0, String::new()),
        }
    }

    /// SIGTERM, then the exit code.
    pub fn terminate(mut self) -> Option<i32> {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..200 {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.code();
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.child.kill();
        None
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Wait until the ImageCopy `name` is Ready.
pub async fn wait_ready(copies: &kube::Api<kube::api::DynamicObject>, name: &str, tries: usize) -> bool {
    for _ in 0..tries {
        if let Ok(o) = copies.get(name).await
            && o.data["status"]["conditions"]
                .as_array()
                .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
        {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}

/// A registry that needs a login (holding `team/app:1`) and a plain one.
pub struct LoginSource {
    pub home: tempfile::TempDir,
    pub src: crate::support::registry::Registry,
    pub dst: crate::support::registry::Registry,
    pub img: crate::support::image::Built,
}

pub fn login_source() -> LoginSource {
    use crate::support::image::{Spec, build};
    use crate::support::registry::{Mode, PASSWORD, Registry, USER};
    let home = tempdir();
    let (src, dst) = (Registry::start(Mode::Htpasswd), Registry::start(Mode::Plain));
    let img = build(&home.path().join("l"), "x", &Spec::default());
    let login = format!("--dest-creds={USER}:{PASSWORD}");
    kopeo(
        home.path(),
        &[
            "copy",
            "-q",
            "--dest-tls-verify=false",
            &login,
            &img.reference(),
            &src.image("team/app:1"),
        ],
    )
    .ok();
    LoginSource { home, src, dst, img }
}

/// Two plain registries and a ~3 MB image on the first, served through a
/// slow proxy: about two seconds a copy.
pub struct SlowCopy {
    pub home: tempfile::TempDir,
    pub src: crate::support::registry::Registry,
    pub dst: crate::support::registry::Registry,
    pub img: crate::support::image::Built,
    pub slow: String,
}

pub fn slow_copy(seed: u64) -> SlowCopy {
    use crate::support::image::Spec;
    use crate::support::registry::{Mode, Registry};
    let home = tempdir();
    let (src, dst) = (Registry::start(Mode::Plain), Registry::start(Mode::Plain));
    let spec = Spec {
        layers: vec![3_000_000],
        seed,
        ..Spec::default()
    };
    let img = crate::registry_copy::seed(&src, home.path(), "big/app:1", &spec);
    // 16 KiB per 10 ms.
    let slow = crate::support::proxy::slow(&src.host, std::time::Duration::from_millis(10));
    SlowCopy {
        home,
        src,
        dst,
        img,
        slow,
    }
}

/// RegistryCredentials in `default` with only `tls.insecure`, one per host.
pub async fn insecure_credentials(server: &ApiServer, hosts: &[&String]) {
    for host in hosts {
        post(server, "/apis/kopeo.dev/v1alpha1/namespaces/default/registrycredentials",
            &json!({"metadata": {"name": host.replace([':', '.'], "-")}, "spec": {"registry": host, "tls": {"insecure": true}}})).await;
    }
}

/// How many writes to the status of `resource`/`name` the audit log records.
pub fn status_writes(audit: &std::path::Path, resource: &str, name: &str) -> usize {
    std::fs::read_to_string(audit)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| {
            matches!(e["verb"].as_str(), Some("patch" | "update"))
                && e["objectRef"]["resource"] == resource
                && e["objectRef"]["name"] == name
                && e["objectRef"]["subresource"] == "status"
        })
        .count()
}

/// `helm template kopeo charts/kopeo ARGS`: the rendered objects, as JSON.
pub fn helm_template(args: &[&str]) -> Vec<Value> {
    let helm = crate::support::tool("HELM", "helm");
    let out = std::process::Command::new(helm)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["template", "kopeo", "charts/kopeo"])
        .args(args)
        .output()
        .expect("helm");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .split("\n---")
        .filter_map(|d| serde_yaml_ng::from_str::<Value>(d).ok())
        .filter(|d| d.is_object())
        .collect()
}

/// The container `name` of a rendered Deployment's pod.
pub fn container<'a>(pod: &'a Value, name: &str) -> &'a Value {
    pod["containers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no container {name} in {pod}"))
}

/// A certificate for the API server's HTTPS port (127.0.0.1), as a
/// cluster's serving certificate: an EC key, not a CA.
pub fn serving_cert(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (crt, key) = (dir.join("apiserver.crt"), dir.join("apiserver.key"));
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
        ])
        .args(["-subj", "/CN=kube-apiserver", "-addext", "subjectAltName=IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .expect("openssl is required (apt-get install openssl)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (crt, key)
}

/// The test API server as a small cluster: HTTPS for pods, the controllers,
/// RBAC on, and a node running the kopeo binary as image `image`.
pub fn node_cluster(h: &std::path::Path, image: &str) -> (ApiServer, kopeo_test_apiserver::node::Node) {
    let (crt, key) = serving_cert(h);
    let server = ApiServer::start(kopeo_test_apiserver::Options {
        tls: Some((crt, key)),
        controllers: true,
        rbac: true,
        ..Default::default()
    });
    let node = server.start_node(kopeo_test_apiserver::node::NodeOptions {
        name: "node-1".into(),
        dir: h.join("node"),
        images: vec![(image.into(), env!("CARGO_BIN_EXE_kopeo").into())],
        api: None,
    });
    (server, node)
}

/// The chart's worker ClusterRole, as `helm template` renders it.
pub fn chart_worker_role() -> Value {
    helm_template(&[])
        .into_iter()
        .find(|d| d["kind"] == "ClusterRole" && d["metadata"]["name"] == "kopeo-worker")
        .expect("the chart's worker ClusterRole")
}
