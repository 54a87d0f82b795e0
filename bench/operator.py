#!/usr/bin/env python3
"""Operator benchmark: 1,000 ImageCopy resources of small images reconciled to
Ready, beside the same 1,000 copies made by skopeo (as many at a time as the
operator copies), in one run.

Starts two Distribution registries and the test API server (with its audit
log) on loopback, seeds 10 small images (two random layers of 64 KiB and
16 KiB), starts `kopeo operator` (`--concurrency`, default 4; no leader election), creates
RegistryCredentials for both registries and 1,000 ImageCopy resources (each
its own destination repository), and waits until every one is Ready.
Records: wall time from the first create to the last Ready, the operator's
peak RSS (VmHWM), status writes per resource (from the audit log), and every
API request the operator made by verb. Then 1,000 `skopeo copy` runs of the
same images to other repositories, `--concurrency` at a time (default 4).

Usage: python3 bench/operator.py [--count N] [--concurrency C] [--out FILE]
Needs: cargo build --release --workspace (kopeo, kopeo-test-apiserver),
docker-registry, skopeo.
"""
import argparse, collections, concurrent.futures, json, os, shutil, subprocess, sys, tempfile, time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import BOLT, KOPEO, ROOT, api, free_port, put, start_registry  # noqa: E402

APISERVER = os.path.join(ROOT, "target", "release", "kopeo-test-apiserver")
IMAGES = 10


def make_layout(layout):
    os.makedirs(os.path.join(layout, "blobs", "sha256"))
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    manifests = []
    for i in range(IMAGES):
        layers = [put(layout, os.urandom(n)) for n in (64 << 10, 16 << 10)]
        cfg = put(layout, json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [l["digest"] for l in layers]}}).encode())
        m = put(layout, json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **cfg},
                                    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **l} for l in layers]}).encode())
        manifests.append({"mediaType": "application/vnd.oci.image.manifest.v1+json", **m,
                          "annotations": {"org.opencontainers.image.ref.name": f"app{i}"}})
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": manifests}, f)


def vm_hwm(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=4, help="the operator's --concurrency, and skopeo copies at once")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    for b in (KOPEO, APISERVER):
        if not os.path.exists(b):
            sys.exit(f"{b} is missing: cargo build --release --workspace")
    base = tempfile.mkdtemp(prefix="kopeo-operator-bench-")
    procs = []
    try:
        p1, src = start_registry(base, "src")
        p2, dst = start_registry(base, "dst")
        procs += [p1, p2]
        env = dict(os.environ, HOME=base, XDG_RUNTIME_DIR=os.path.join(base, "run"))
        os.makedirs(env["XDG_RUNTIME_DIR"])
        layout = os.path.join(base, "layout")
        make_layout(layout)
        for i in range(IMAGES):
            subprocess.run([KOPEO, "copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:app{i}", f"docker://{src}/bench/app{i}:1"],
                           env=env, check=True)

        port = free_port()
        kubeconfig, audit = os.path.join(base, "kubeconfig"), os.path.join(base, "audit.log")
        procs.append(subprocess.Popen([APISERVER, "--listen", f"127.0.0.1:{port}", "--kubeconfig", kubeconfig, "--audit-log-path", audit],
                                      stderr=subprocess.DEVNULL))
        server = f"http://127.0.0.1:{port}"
        for _ in range(100):
            if os.path.exists(kubeconfig):
                break
            time.sleep(0.05)
        with open(os.path.join(ROOT, "crds", "kopeo.dev.yaml")) as f:
            crds = f.read()
        # The CRDs through kubectl, as a user installs them (JSON for the rest).
        subprocess.run(["kubectl", "--kubeconfig", kubeconfig, "apply", "-f", "-"], input=crds.encode(), check=True,
                       stdout=subprocess.DEVNULL)
        ns = "/apis/kopeo.dev/v1alpha1/namespaces/default"
        for name, host in (("src", src), ("dst", dst)):
            api(server, "POST", f"{ns}/registrycredentials", {"apiVersion": "kopeo.dev/v1alpha1", "kind": "RegistryCredential",
                "metadata": {"name": name}, "spec": {"registry": host, "tls": {"insecure": True}}})

        metrics = free_port()
        op = subprocess.Popen([KOPEO, "operator", "--leader-elect=false", "--concurrency", str(a.concurrency), "--metrics-addr", f"127.0.0.1:{metrics}"],
                              env=dict(env, KUBECONFIG=kubeconfig), stderr=open(os.path.join(base, "operator.log"), "w"))
        procs.append(op)
        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{metrics}/readyz").close()
                break
            except OSError:
                time.sleep(0.05)
        time.sleep(1)  # let its watches settle before counting
        skip = sum(1 for _ in open(audit))

        t0 = time.monotonic()
        for i in range(a.count):
            api(server, "POST", f"{ns}/imagecopies", {"apiVersion": "kopeo.dev/v1alpha1", "kind": "ImageCopy", "metadata": {"name": f"c{i:04d}"},
                "spec": {"source": f"docker://{src}/bench/app{i % IMAGES}:1", "destination": f"docker://{dst}/mirror/c{i:04d}:1"}})
        created = time.monotonic() - t0
        ready = 0
        while ready < a.count:
            time.sleep(0.25)
            items = api(server, "GET", f"{ns}/imagecopies")["items"]
            ready = sum(1 for o in items if any(c["type"] == "Ready" and c["status"] == "True"
                                                for c in o.get("status", {}).get("conditions", [])))
            if time.monotonic() - t0 > 1800:
                sys.exit(f"only {ready} of {a.count} Ready after 30 minutes")
        wall = time.monotonic() - t0
        time.sleep(5)  # what it does once everything is Ready
        rss, cpu = vm_hwm(op.pid), cpu_seconds(op.pid)
        op.terminate()
        op.wait(timeout=30)

        writes, verbs = collections.Counter(), collections.Counter()
        with open(audit) as f:
            for n, line in enumerate(f):
                if n < skip:
                    continue
                e = json.loads(line)
                ref = e.get("objectRef") or {}
                if e["requestURI"].startswith(f"{ns}/imagecopies") and e["verb"] in ("create", "list"):
                    continue  # the benchmark's own creates and polling
                if ref.get("resource") == "imagecopies" and ref.get("subresource") == "status" and e["verb"] in ("patch", "update"):
                    writes[ref["name"]] += 1
                verbs[(e["verb"], ref.get("resource", "?"), ref.get("subresource", ""))] += 1
        per = [writes[f"c{i:04d}"] for i in range(a.count)]

        if os.path.exists(BOLT):
            os.remove(BOLT)
        policy = os.path.join(base, "policy.json")
        with open(policy, "w") as f:
            f.write('{"default":[{"type":"insecureAcceptAnything"}]}')

        def skopeo(i):
            subprocess.run(["skopeo", "--policy", policy, "copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false",
                            f"docker://{src}/bench/app{i % IMAGES}:1", f"docker://{dst}/skopeo/c{i:04d}:1"], env=env, check=True,
                           stdout=subprocess.DEVNULL)
        t1 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(a.concurrency) as pool:
            list(pool.map(skopeo, range(a.count)))
        skopeo_wall = time.monotonic() - t1

        result = {"count": a.count, "concurrency": a.concurrency, "wall_s": round(wall, 2), "create_s": round(created, 2), "peak_rss_mib": round(rss, 1), "operator_cpu_s": round(cpu, 2),
                  "status_writes_per_resource": {"max": max(per), "mean": round(sum(per) / len(per), 2), "min": min(per)},
                  "skopeo_wall_s": round(skopeo_wall, 2),
                  "requests": {f"{v} {r}{'/' + s if s else ''}": n for (v, r, s), n in sorted(verbs.items())}}
        print(json.dumps(result, indent=1))
        print(f"\n| resources | kopeo operator: create → all Ready | skopeo copy ×{a.count}, {a.concurrency} at a time | ratio | operator peak RSS | status writes per resource (max / mean) |")
        print("|---|---|---|---|---|---|")
        print(f"| {a.count} | {wall:.1f} s | {skopeo_wall:.1f} s | **{wall / skopeo_wall:.2f}** | {rss:.1f} MiB | {max(per)} / {sum(per) / len(per):.2f} |")
        if a.out:
            with open(a.out, "w") as f:
                json.dump(result, f, indent=1)
    finally:
        for p in procs:
            p.kill()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
