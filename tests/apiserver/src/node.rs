//! A dev-only node: the scheduler's binding and the kubelet's work for
//! pods, with local processes instead of containers. A pod is bound to the
//! node, its volumes are written to files (Secrets, ConfigMaps, emptyDir,
//! downward API, the projected ServiceAccount token, which the server then
//! authenticates as that account), and each container runs as the
//! executable given for its image, with the container's args, environment
//! (values, field/Secret/ConfigMap references, `$(VAR)` expansion,
//! `KUBERNETES_SERVICE_HOST`/`PORT`) and its volume mounts at their paths:
//! in private mount and UTS namespaces (`unshare`, as root; the hostname
//! is the pod's), where /run,
//! /tmp and the home directory are the pod's own (mounts go at /tmp, or
//! under /run, /var/run or /root). Pod phases and container
//! states are reported as the kubelet does; a deleted pod's processes get
//! SIGTERM, then SIGKILL after the grace period; `restartPolicy: Always`
//! and `OnFailure` containers are restarted.
//!
//! `httpGet` readiness probes gate a container's readiness.
//!
//! Not done: init containers (a pod with them waits, saying so), liveness
//! and startup probes, resource limits, users (everything runs as root),
//! networking (everything is the host's loopback), images (an image not
//! given to the node fails to pull).

use crate::http::{Shared, lock};
use crate::store::State;
use base64::Engine as _;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How to run a node.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// The node's name (`spec.nodeName` of its pods).
    pub name: String,
    /// Where pods' files and container logs go (`DIR/NS_POD/`).
    pub dir: PathBuf,
    /// Image name (without tag or digest) → the executable that is its entrypoint.
    pub images: Vec<(String, PathBuf)>,
    /// The API server's TLS address and CA, given to pods as in-cluster config.
    pub api: Option<(std::net::SocketAddr, String)>,
}

struct Running {
    child: Child,
    started: String,
    restarts: u32,
    /// When SIGTERM was sent, for the SIGKILL after the grace period.
    stopping: Option<Instant>,
}

#[derive(Default)]
struct Agent {
    /// `ns/pod/container` → its process.
    running: HashMap<String, Running>,
    /// Pods (by uid) whose containers were started at least once.
    started: std::collections::HashSet<String>,
}

/// A running node; its processes are killed when it is dropped.
pub struct Node {
    agent: Arc<Mutex<Agent>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    pub dir: PathBuf,
}

impl Node {
    /// The pid of a pod's (first) container, while it runs.
    pub fn pid(&self, ns: &str, pod: &str) -> Option<u32> {
        let a = self.agent.lock().unwrap_or_else(|p| p.into_inner());
        let prefix = format!("{ns}/{pod}/");
        a.running
            .iter()
            .find(|(k, _)| k.starts_with(&prefix))
            .map(|(_, r)| r.child.id())
    }

    /// Where a container's stdout and stderr go.
    pub fn log_path(&self, ns: &str, pod: &str, container: &str) -> PathBuf {
        self.dir.join(format!("{ns}_{pod}")).join(format!("{container}.log"))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let mut a = self.agent.lock().unwrap_or_else(|p| p.into_inner());
        for r in a.running.values_mut() {
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
    }
}

fn s<'a>(o: &'a Value, ptr: &str) -> &'a str {
    o.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

/// Start the node's loop on `rt`.
pub fn start(shared: Arc<Shared>, opts: NodeOptions, rt: &tokio::runtime::Handle) -> Node {
    let agent = Arc::new(Mutex::new(Agent::default()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (a, st) = (agent.clone(), stop.clone());
    let o = opts.clone();
    rt.spawn(async move {
        let mut rx = lock(&shared).tx.subscribe();
        while !st.load(std::sync::atomic::Ordering::SeqCst) {
            {
                let mut agent = a.lock().unwrap_or_else(|p| p.into_inner());
                agent.pass(&shared, &o);
            }
            let _ = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await;
        }
    });
    Node {
        agent,
        stop,
        dir: opts.dir,
    }
}

fn pod_status_update(st: &mut State, pod: &Value, status: Value) {
    let Some(rt) = st.find("", "v1", "pods").cloned() else {
        return;
    };
    if pod.get("status") == Some(&status) {
        return;
    }
    let mut next = pod.clone();
    next["status"] = status;
    let _ = st.put(&rt, next, true);
}

impl Agent {
    fn pass(&mut self, shared: &Shared, o: &NodeOptions) {
        let mut st = lock(shared);
        let Some(pod_rt) = st.find("", "v1", "pods").cloned() else {
            return;
        };
        let pods = st.list(&pod_rt, None);
        // Processes of pods that are gone entirely.
        let live: std::collections::HashSet<String> = pods
            .iter()
            .map(|p| format!("{}/{}/", s(p, "/metadata/namespace"), s(p, "/metadata/name")))
            .collect();
        self.running.retain(|k, r| {
            let keep = live.iter().any(|p| k.starts_with(p.as_str()));
            if !keep {
                let _ = r.child.kill();
                let _ = r.child.wait();
            }
            keep
        });
        for p in pods {
            let node = s(&p, "/spec/nodeName");
            if node.is_empty() && p.pointer("/metadata/deletionTimestamp").is_none() {
                let mut bound = p.clone();
                bound["spec"]["nodeName"] = json!(o.name);
                let _ = st.put(&pod_rt, bound, false);
                continue;
            }
            if node != o.name {
                continue;
            }
            self.sync_pod(shared, &mut st, &p, o);
        }
    }

    fn sync_pod(&mut self, shared: &Shared, st: &mut State, p: &Value, o: &NodeOptions) {
        let (ns, name, uid) = (
            s(p, "/metadata/namespace"),
            s(p, "/metadata/name"),
            s(p, "/metadata/uid"),
        );
        let phase = s(p, "/status/phase").to_string();
        let deleting = p.pointer("/metadata/deletionTimestamp").is_some();
        let restart = s(p, "/spec/restartPolicy").to_string();
        let containers: Vec<Value> = p["spec"]["containers"].as_array().cloned().unwrap_or_default();
        let grace = p["spec"]["terminationGracePeriodSeconds"]
            .as_u64()
            .unwrap_or(30)
            .min(30);
        if matches!(phase.as_str(), "Succeeded" | "Failed") {
            return;
        }
        let mut statuses = vec![];
        let mut exits: Vec<Option<i32>> = vec![];
        for c in &containers {
            let cname = s(c, "/name").to_string();
            let key = format!("{ns}/{name}/{cname}");
            if let Some(r) = self.running.get_mut(&key) {
                if deleting && r.stopping.is_none() {
                    let _ = Command::new("kill").arg("-TERM").arg(r.child.id().to_string()).status();
                    r.stopping = Some(Instant::now());
                }
                if r.stopping.is_some_and(|t| t.elapsed() > Duration::from_secs(grace)) {
                    let _ = r.child.kill();
                }
                match r.child.try_wait() {
                    Ok(None) => {
                        statuses.push(
                            json!({"name": cname, "image": c["image"], "ready": !deleting && probe_ok(c), "started": true,
                            "restartCount": r.restarts, "state": {"running": {"startedAt": r.started}}}),
                        );
                        exits.push(None);
                    }
                    Ok(Some(status)) => {
                        use std::os::unix::process::ExitStatusExt as _;
                        let code = status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(9));
                        let again = !deleting && (restart == "Always" || (restart == "OnFailure" && code != 0));
                        let terminated = json!({"exitCode": code, "reason": if code == 0 { "Completed" } else { "Error" },
                            "startedAt": r.started, "finishedAt": crate::time::now()});
                        if again {
                            let restarts = r.restarts + 1;
                            self.running.remove(&key);
                            match self.spawn(shared, st, p, c, o) {
                                Ok(mut n) => {
                                    n.restarts = restarts;
                                    self.running.insert(key.clone(), n);
                                }
                                Err(e) => tracing_free_log(&self.dir_for(o, ns, name), &e),
                            }
                            statuses.push(json!({"name": cname, "image": c["image"], "ready": c.get("readinessProbe").is_none(), "started": true,
                                "restartCount": restarts, "lastState": {"terminated": terminated}, "state": {"running": {"startedAt": crate::time::now()}}}));
                            exits.push(None);
                        } else {
                            statuses.push(
                                json!({"name": cname, "image": c["image"], "ready": false, "started": false,
                                "restartCount": r.restarts, "state": {"terminated": terminated}}),
                            );
                            exits.push(Some(code));
                            self.running.remove(&key);
                        }
                    }
                    Err(_) => exits.push(Some(1)),
                }
                continue;
            }
            if deleting || self.started.contains(&format!("{uid}/{cname}")) {
                // Stopped before it started, or already reported as ended.
                let prior = p["status"]["containerStatuses"]
                    .as_array()
                    .and_then(|l| l.iter().find(|x| x["name"] == cname.as_str()))
                    .cloned();
                let code = prior
                    .as_ref()
                    .and_then(|x| x.pointer("/state/terminated/exitCode"))
                    .and_then(Value::as_i64)
                    .unwrap_or(137) as i32;
                statuses.push(prior.unwrap_or_else(|| {
                    json!({"name": cname, "image": c["image"], "ready": false, "restartCount": 0,
                    "state": {"terminated": {"exitCode": 137, "reason": "Error", "finishedAt": crate::time::now()}}})
                }));
                exits.push(Some(code));
                continue;
            }
            match self.spawn(shared, st, p, c, o) {
                Ok(r) => {
                    statuses.push(
                        json!({"name": cname, "image": c["image"], "ready": c.get("readinessProbe").is_none(), "started": true,
                        "restartCount": 0, "state": {"running": {"startedAt": r.started}}}),
                    );
                    self.started.insert(format!("{uid}/{cname}"));
                    self.running.insert(key, r);
                    exits.push(None);
                }
                Err(why) => {
                    // As the kubelet leaves a pod whose volume or image is
                    // missing: Pending, the container waiting with the reason.
                    statuses.push(
                        json!({"name": cname, "image": c["image"], "ready": false, "restartCount": 0,
                        "state": {"waiting": {"reason": why.0, "message": why.1}}}),
                    );
                    exits.push(None);
                }
            }
        }
        let all_ended = exits.iter().all(Option::is_some);
        let any_running = statuses.iter().any(|x| x.pointer("/state/running").is_some());
        let phase = if all_ended && !containers.is_empty() {
            if exits.iter().all(|e| *e == Some(0)) {
                "Succeeded"
            } else {
                "Failed"
            }
        } else if any_running {
            "Running"
        } else {
            "Pending"
        };
        let ready = phase == "Running" && statuses.iter().all(|x| x["ready"] == true);
        let now = crate::time::now();
        let start = p.pointer("/status/startTime").cloned().unwrap_or_else(|| json!(now));
        let keep_time = |t: &str, v: bool| {
            let old = p["status"]["conditions"]
                .as_array()
                .and_then(|l| l.iter().find(|c| c["type"] == t))
                .filter(|c| c["status"] == if v { "True" } else { "False" })
                .and_then(|c| c.get("lastTransitionTime").cloned());
            json!({"type": t, "status": if v { "True" } else { "False" }, "lastProbeTime": null,
                "lastTransitionTime": old.unwrap_or_else(|| json!(now))})
        };
        let status = json!({
            "phase": phase,
            "qosClass": p["status"]["qosClass"],
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}],
            "startTime": start,
            "conditions": [keep_time("PodScheduled", true), keep_time("Initialized", true),
                keep_time("ContainersReady", ready), keep_time("Ready", ready)],
            "containerStatuses": statuses,
        });
        pod_status_update(st, p, status);
    }

    fn dir_for(&self, o: &NodeOptions, ns: &str, pod: &str) -> PathBuf {
        o.dir.join(format!("{ns}_{pod}"))
    }

    /// Prepare a container's files and start it; `Err((reason, message))`
    /// leaves it waiting.
    fn spawn(
        &self,
        shared: &Shared,
        st: &State,
        p: &Value,
        c: &Value,
        o: &NodeOptions,
    ) -> Result<Running, (&'static str, String)> {
        let (ns, name) = (s(p, "/metadata/namespace"), s(p, "/metadata/name"));
        if p["spec"]["initContainers"].as_array().is_some_and(|l| !l.is_empty()) {
            return Err((
                "CreateContainerConfigError",
                "the test node runs no init containers".into(),
            ));
        }
        let image = s(c, "/image");
        let repo = image.split('@').next().unwrap_or(image);
        let repo = match repo.rsplit_once(':') {
            Some((r, tag)) if !tag.contains('/') => r,
            _ => repo,
        };
        let exe = o
            .images
            .iter()
            .find(|(i, _)| i == repo)
            .map(|(_, e)| e.clone())
            .ok_or(("ErrImagePull", format!("the test node has no image {image:?}")))?;
        let dir = self.dir_for(o, ns, name);
        let vols = crate::node_files::write_volumes(shared, st, p, &dir.join("volumes"))
            .map_err(|e| ("CreateContainerConfigError", e))?;
        let env = crate::node_files::environment(st, p, c, o.api.as_ref().map(|a| a.0))?;
        let expand = |v: &str| crate::node_files::expand(v, &env);
        let mut argv: Vec<String> = vec![];
        let command: Vec<String> = c["command"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).map(expand).collect())
            .unwrap_or_default();
        if let Some(first) = command.first() {
            let base = Path::new(first).file_name();
            if base != exe.file_name() {
                return Err(("RunContainerError", format!("the image {image:?} has no {first:?}")));
            }
            argv.extend(command.into_iter().skip(1));
        }
        argv.extend(
            c["args"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).map(expand).collect::<Vec<_>>())
                .unwrap_or_default(),
        );
        // The mounts, in a mount namespace of its own: /run, /tmp and HOME
        // are fresh, and each volume is bound at its mount path.
        let home = dir.join("home");
        let tmp = dir.join("tmp");
        for d in [&home, &tmp] {
            std::fs::create_dir_all(d).map_err(|e| ("RunContainerError", e.to_string()))?;
        }
        // Sources may lie under the host's /tmp: the pod's own /tmp goes last.
        let host = match s(p, "/spec/hostname") {
            "" => name.to_string(),
            h => h.to_string(),
        };
        let mut script = format!(
            "set -e\necho {} > /proc/sys/kernel/hostname\nmount -t tmpfs -o mode=755 tmpfs /run\nmount --bind {} /root\n",
            sh_quote(Path::new(&host)),
            sh_quote(&home)
        );
        let mut tmp = tmp;
        for m in c["volumeMounts"].as_array().into_iter().flatten() {
            let target = s(m, "/mountPath");
            if target == "/tmp" {
                // The pod's /tmp is this volume.
                if let Some(v) = vols.get(s(m, "/name")) {
                    tmp = v.clone();
                }
                continue;
            }
            let under = ["/run/", "/var/run/", "/root/"];
            if !under.iter().any(|u| target.starts_with(u)) {
                return Err((
                    "CreateContainerConfigError",
                    format!("the test node mounts volumes only under /run, /var/run and /root, not {target}"),
                ));
            }
            let vol = vols
                .get(s(m, "/name"))
                .ok_or(("CreateContainerConfigError", format!("no volume {:?}", s(m, "/name"))))?;
            let src = match s(m, "/subPath") {
                "" => vol.clone(),
                sub => vol.join(sub),
            };
            let t = Path::new(target);
            let make = if src.is_dir() {
                format!("mkdir -p {}\n", sh_quote(t))
            } else {
                format!(
                    "mkdir -p {}\ntouch {}\n",
                    sh_quote(t.parent().unwrap_or(t)),
                    sh_quote(t)
                )
            };
            script.push_str(&make);
            script.push_str(&format!("mount --bind {} {}\n", sh_quote(&src), sh_quote(t)));
            if m["readOnly"] == true {
                script.push_str(&format!("mount -o remount,bind,ro {}\n", sh_quote(t)));
            }
        }
        let workdir = match s(c, "/workingDir") {
            "" => "/".to_string(),
            w => w.to_string(),
        };
        script.push_str(&format!("mount --bind {} /tmp\n", sh_quote(&tmp)));
        script.push_str(&format!("cd {}\nexec \"$@\"\n", sh_quote(Path::new(&workdir))));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("{}.log", s(c, "/name"))))
            .map_err(|e| ("RunContainerError", e.to_string()))?;
        let err = log.try_clone().map_err(|e| ("RunContainerError", e.to_string()))?;
        let child = Command::new("unshare")
            .args([
                "--mount",
                "--uts",
                "--propagation",
                "private",
                "/bin/sh",
                "-c",
                &script,
                "sh",
            ])
            .arg(&exe)
            .args(&argv)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| ("RunContainerError", format!("starting {}: {e}", exe.display())))?;
        Ok(Running {
            child,
            started: crate::time::now(),
            restarts: 0,
            stopping: None,
        })
    }
}

/// A container's readiness probe, as the kubelet runs an `httpGet` one (on
/// the pod's address, here the loopback); exec and TCP probes count as passing.
fn probe_ok(c: &Value) -> bool {
    use std::io::{Read as _, Write as _};
    let Some(get) = c.pointer("/readinessProbe/httpGet") else {
        return true;
    };
    let port = match &get["port"] {
        Value::Number(n) => n.as_u64(),
        Value::String(name) => c["ports"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == name.as_str()))
            .and_then(|p| p["containerPort"].as_u64()),
        _ => None,
    };
    let Some(port) = port else { return false };
    let path = get["path"].as_str().unwrap_or("/");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port as u16));
    let Ok(mut conn) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = conn.set_read_timeout(Some(Duration::from_secs(1)));
    let req = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: kube-probe/1.33\r\n\r\n");
    if conn.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    if conn.read_exact(&mut head).is_err() {
        return false;
    }
    // "HTTP/1.x NNN": 200 to 399 passes.
    let code: u16 = String::from_utf8_lossy(&head[9..12]).parse().unwrap_or(0);
    (200..400).contains(&code)
}

fn tracing_free_log(dir: &Path, e: &(&str, String)) {
    let _ = std::fs::write(dir.join("restart-error"), format!("{}: {}\n", e.0, e.1));
}

fn sh_quote(p: &Path) -> String {
    format!("'{}'", p.to_string_lossy().replace('\'', "'\\''"))
}

/// Base64 text of a Secret's value.
pub(crate) fn decode(v: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(v.as_str().unwrap_or(""))
        .unwrap_or_default()
}
