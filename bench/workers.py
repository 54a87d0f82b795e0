#!/usr/bin/env python3
"""Sharded ImageSync through the whole mechanism, beside the in-process one.

The 20 x 10 sync of bench/sync.py (same images), run by `kopeo operator`
against the test API server with its controllers and its node: once as an
ImageSync without `workers` (the operator copies), once with `workers: 4`
(an Indexed Job; the node starts 4 pods, each a `kopeo worker image-sync`
process that reads the ImageSync over HTTPS as its ServiceAccount, plans
its shard, copies and reports through the API). Each run goes to a fresh
destination prefix; rounds alternate which goes first. Timed from the
ImageSync's create to its Ready (polled every 50 ms), so the Job's and the
pods' start, the workers' planning and their reports are all counted.
Requests to each registry are counted from their logs.

Usage: python3 bench/workers.py [--reps N] [--out FILE]
Needs: cargo build --release --workspace (kopeo, kopeo-test-apiserver),
docker-registry, openssl, kubectl (or $KUBECTL); run as root (the node
runs pods in their own mount namespaces).
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import KOPEO, ROOT, api, free_port, start_registry  # noqa: E402
from sync import REPOS, TAGS, build, seed  # noqa: E402

APISERVER = os.path.join(ROOT, "target", "release", "kopeo-test-apiserver")
IMAGE = "registry.example/kopeo"


def ready(o):
    for c in o.get("status", {}).get("conditions", []):
        if c["type"] == "Ready":
            return c["status"]
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    for b in (KOPEO, APISERVER):
        if not os.path.exists(b):
            sys.exit(f"{b} is missing: cargo build --release --workspace")
    kubectl = os.environ.get("KUBECTL", "kubectl")
    base = tempfile.mkdtemp(prefix="kopeo-workers-bench-")
    procs = []
    try:
        p1, src = start_registry(base, "src", "info")
        p2, dst = start_registry(base, "dst", "info")
        procs += [p1, p2]
        logs = {"src": os.path.join(base, "src", "log"), "dst": os.path.join(base, "dst", "log")}

        def requests_so_far(side):
            with open(logs[side]) as f:
                return sum(1 for line in f if "response completed" in line)

        env = dict(os.environ, HOME=base, XDG_RUNTIME_DIR=os.path.join(base, "run"))
        os.makedirs(env["XDG_RUNTIME_DIR"])
        layout = os.path.join(base, "layout")
        build(layout)
        seed(layout, src, env)

        crt, key = os.path.join(base, "apiserver.crt"), os.path.join(base, "apiserver.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                        "-subj", "/CN=kube-apiserver", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-addext", "basicConstraints=critical,CA:FALSE", "-keyout", key, "-out", crt],
                       check=True, capture_output=True)
        port = free_port()
        kubeconfig = os.path.join(base, "kubeconfig")
        procs.append(subprocess.Popen([APISERVER, "--listen", f"127.0.0.1:{port}", "--kubeconfig", kubeconfig,
                                       "--tls-cert-file", crt, "--tls-private-key-file", key, "--controllers",
                                       "--node-dir", os.path.join(base, "node"), "--node-image", f"{IMAGE}={KOPEO}"],
                                      stderr=subprocess.DEVNULL))
        server = f"http://127.0.0.1:{port}"
        for _ in range(100):
            if os.path.exists(kubeconfig):
                break
            time.sleep(0.05)
        with open(os.path.join(ROOT, "crds", "kopeo.dev.yaml")) as f:
            crds = f.read()
        subprocess.run([kubectl, "--kubeconfig", kubeconfig, "apply", "-f", "-"], input=crds.encode(), check=True,
                       stdout=subprocess.DEVNULL)
        ns = "/apis/kopeo.dev/v1alpha1/namespaces/default"
        for name, host in (("src", src), ("dst", dst)):
            api(server, "POST", f"{ns}/registrycredentials", {"apiVersion": "kopeo.dev/v1alpha1", "kind": "RegistryCredential",
                "metadata": {"name": name}, "spec": {"registry": host, "tls": {"insecure": True}}})
        metrics = free_port()
        op = subprocess.Popen([KOPEO, "operator", "--leader-elect=false", "--metrics-addr", f"127.0.0.1:{metrics}",
                               "--worker-image", f"{IMAGE}:bench", "--progress-interval", "2s"],
                              env=dict(env, KUBECONFIG=kubeconfig), stderr=open(os.path.join(base, "operator.log"), "w"))
        procs.append(op)
        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{metrics}/readyz").close()
                break
            except OSError:
                time.sleep(0.05)
        time.sleep(1)

        images = {f"bench/repo{r:02d}": [] for r in range(REPOS)}
        kinds = ["in-process", "4 workers"]
        results = {k: [] for k in kinds}
        counts = {k: [] for k in kinds}
        for i in range(a.reps):
            for kind in kinds if i % 2 == 0 else kinds[::-1]:
                name = f"{'inproc' if kind == 'in-process' else 'shards'}-{i}"
                spec = {"registry": src, "images": images, "destination": f"{dst}/{name}", "interval": "24h"}
                if kind != "in-process":
                    spec["workers"] = 4
                os.sync()
                before = (requests_so_far("src"), requests_so_far("dst"))
                start = time.monotonic()
                api(server, "POST", f"{ns}/imagesyncs", {"apiVersion": "kopeo.dev/v1alpha1", "kind": "ImageSync",
                    "metadata": {"name": name}, "spec": spec})
                while True:
                    o = api(server, "GET", f"{ns}/imagesyncs/{name}")
                    st = o.get("status", {})
                    if ready(o) is not None and "job" not in st and st.get("lastSyncTime"):
                        break
                    if time.monotonic() - start > 600:
                        sys.exit(f"{name} did not finish: {json.dumps(o)}")
                    time.sleep(0.05)
                wall = time.monotonic() - start
                if ready(o) != "True" or st.get("copied") != REPOS * TAGS:
                    sys.exit(f"{name}: {json.dumps(st)}")
                time.sleep(0.3)  # the registries log a request after answering it
                sent = (requests_so_far("src") - before[0], requests_so_far("dst") - before[1])
                results[kind].append(wall)
                counts[kind].append(sent)
                print(f"rep {i + 1} {kind:10} wall {wall:6.2f}s requests src {sent[0]} dst {sent[1]}", flush=True)
        med = {k: statistics.median(v) for k, v in results.items()}
        n = REPOS * TAGS
        lines = ["| run | wall (median) | ÷ in-process | requests per image, source | destination |", "|---|---|---|---|---|"]
        for k in kinds:
            src_n = statistics.median(c[0] for c in counts[k]) / n
            dst_n = statistics.median(c[1] for c in counts[k]) / n
            lines.append(f"| {k} | {med[k]:.2f} s | {med[k] / med['in-process']:.2f} | {src_n:.2f} | {dst_n:.2f} |")
        print("\n".join(lines))
        if a.out:
            with open(a.out, "w") as f:
                f.write("\n".join(lines) + "\n")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    main()
