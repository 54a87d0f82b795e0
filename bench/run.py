#!/usr/bin/env python3
"""Side-by-side benchmark: kopeo vs skopeo, interleaved, in one run.

Starts two Distribution registries on loopback (plain HTTP), builds a
~1 GiB image of 8 incompressible gzip layers, pushes it to the source
registry, then times each scenario for both tools (fresh destinations,
skopeo's blob-info cache removed before every skopeo run) and reports wall
time, CPU time and peak RSS per tool and the kopeo/skopeo ratios (medians).

Usage: python3 bench/run.py [--reps N] [--layer-mib M] [--layers K] [--out FILE]
Needs: target/release/kopeo (cargo build --release; KOPEO_BIN=path for
another build), docker-registry, skopeo, time. KOPEO_BASELINE=path adds an
earlier kopeo build as a third tool in the same run ("before"), so before
and after are measured side by side with skopeo under the same load. The
floor (../shared/bench/floorcopy.py, or KOPEO_FLOOR=path) runs beside them
where it has the scenario; bench/floor_push.py is the floor for
oci:→registry (floorcopy.py has none) and curl stands for its inspect.
"""
import argparse, gzip, hashlib, json, os, shutil, socket, statistics, subprocess, sys, tempfile, time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KOPEO = os.environ.get("KOPEO_BIN", os.path.join(ROOT, "target", "release", "kopeo"))
BASELINE = os.environ.get("KOPEO_BASELINE")
BOLT = "/var/lib/containers/cache/blob-info-cache-v1.boltdb"
# The floor (an ideal client, ../shared/bench/floorcopy.py): what any correct
# copier must cost on these registries; "floor" columns when it is there.
FLOOR = os.environ.get("KOPEO_FLOOR", os.path.join(ROOT, "..", "shared", "bench", "floorcopy.py"))
FLOOR_PUSH = os.path.join(ROOT, "bench", "floor_push.py")
TOOLS = ["kopeo", "skopeo"] + (["before"] if BASELINE else []) + (["floor"] if os.path.exists(FLOOR) else [])


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start_registry(base, name, log_level="warn"):
    """A Distribution registry on loopback; at log level info it logs every
    request ("response completed"), which the sync benchmark counts."""
    d = os.path.join(base, name)
    os.makedirs(d)
    port = free_port()
    cfg = os.path.join(d, "config.yml")
    with open(cfg, "w") as f:
        f.write(f"version: 0.1\nlog:\n  level: {log_level}\n  formatter: text\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n"
                f"    rootdirectory: {d}/storage\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n")
    p = subprocess.Popen(["docker-registry", "serve", cfg], stdout=open(os.path.join(d, "log"), "w"), stderr=subprocess.STDOUT)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            break
        except OSError:
            time.sleep(0.05)
    return p, f"127.0.0.1:{port}"


def api(base, method, path, body=None):
    """One JSON request to the test API server (as the administrator)."""
    req = urllib.request.Request(base + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)


def put(layout, data):
    d = hashlib.sha256(data).hexdigest()
    with open(os.path.join(layout, "blobs", "sha256", d), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + d, "size": len(data)}


def put_image(layout, arch, layers, layer_mib, config=None):
    """Store one image of `layers` incompressible gzip layers; return its
    manifest's descriptor."""
    descs, diff_ids = [], []
    for _ in range(layers):
        raw = os.urandom(layer_mib << 20)
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **put(layout, gzip.compress(raw, 1, mtime=0))})
    cfg = {"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    if config:
        cfg["config"] = config
    cfg = put(layout, json.dumps(cfg).encode())
    m = put(layout, json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **cfg}, "layers": descs}).encode())
    return {"mediaType": "application/vnd.oci.image.manifest.v1+json", **m}


def make_image(layout, layers, layer_mib):
    os.makedirs(os.path.join(layout, "blobs", "sha256"))
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    m = put_image(layout, "amd64", layers, layer_mib, {"Labels": {"bench": "kopeo"}})
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [{**m, "annotations": {"org.opencontainers.image.ref.name": "bench"}}]}, f)


def add_multi_arch(layout, platforms, layers, layer_mib):
    """Add an OCI index named "multi" to the layout: one image per platform,
    each of its own incompressible layers (no blob shared between them)."""
    entries = [{**put_image(layout, arch, layers, layer_mib), "platform": {"architecture": arch, "os": "linux"}}
               for arch in platforms]
    idx = put(layout, json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries}).encode())
    path = os.path.join(layout, "index.json")
    top = json.load(open(path))
    top["manifests"].append({"mediaType": "application/vnd.oci.image.index.v1+json", **idx,
                             "annotations": {"org.opencontainers.image.ref.name": "multi"}})
    with open(path, "w") as f:
        json.dump(top, f)


def timed(cmd, env):
    """Run cmd; return (wall s, CPU s, peak RSS MiB) of that one process.
    Wall time is measured here, CPU time from wait4 (the launcher's own share
    is negligible), peak RSS by GNU time: a child forked straight from this
    Python process would report Python's resident set as its own peak. For
    the floor (floorcopy.py), wall time is its own `wall_s`: the Python
    interpreter's start is not what a copier must cost."""
    t0 = time.monotonic()
    own = any(c.endswith(("floorcopy.py", "floor_push.py")) for c in cmd)
    p = subprocess.Popen(["/usr/bin/time", "-f", "BENCH %M"] + cmd, stdout=subprocess.PIPE if own else subprocess.DEVNULL,
                         stderr=subprocess.PIPE, env=env)
    out = p.stdout.read().decode() if own else ""
    err = p.stderr.read().decode()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    if own and status == 0:
        wall = json.loads(out.strip().splitlines()[-1])["wall_s"]
    if status != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{err}")
    rss = int(err.strip().splitlines()[-1].split()[1])
    return wall, ru.ru_utime + ru.ru_stime, rss / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--layer-mib", type=int, default=128)
    ap.add_argument("--inspects", type=int, default=20)
    ap.add_argument("--platforms", default="amd64,arm64,ppc64le,s390x", help="the multi-arch image's architectures")
    ap.add_argument("--multi-layers", type=int, default=3)
    ap.add_argument("--multi-layer-mib", type=int, default=4)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    for tool in (KOPEO, shutil.which("skopeo"), shutil.which("docker-registry"), "/usr/bin/time") + ((BASELINE,) if BASELINE else ()):
        if not tool or not os.path.exists(tool):
            sys.exit("missing tool: build kopeo with `cargo build --release`; apt-get install skopeo docker-registry time")
    base = tempfile.mkdtemp(prefix="kopeo-bench-")
    procs = []
    try:
        p1, src = start_registry(base, "src")
        p2, dst = start_registry(base, "dst")
        procs += [p1, p2]
        layout = os.path.join(base, "layout")
        print(f"building a {a.layers}x{a.layer_mib} MiB image ...", flush=True)
        make_image(layout, a.layers, a.layer_mib)
        add_multi_arch(layout, a.platforms.split(","), a.multi_layers, a.multi_layer_mib)
        env = dict(os.environ, HOME=base, XDG_RUNTIME_DIR=os.path.join(base, "run"))
        policy = os.path.join(base, "policy.json")
        with open(policy, "w") as f:
            f.write('{"default":[{"type":"insecureAcceptAnything"}]}')
        subprocess.run([KOPEO, "copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:bench", f"docker://{src}/bench:1"], check=True, env=env)
        subprocess.run([KOPEO, "copy", "-q", "--all", "--dest-tls-verify=false", f"oci:{layout}:multi", f"docker://{src}/multi:1"],
                       check=True, env=env)

        # The floor's inspect: the manifest and the config, two GETs on one connection.
        top = json.load(open(os.path.join(layout, "index.json")))["manifests"][0]["digest"]
        manifest = json.load(open(os.path.join(layout, "blobs", "sha256", top.split(":")[1])))
        config_url = f"http://{src}/v2/bench/blobs/{manifest['config']['digest']}"
        accept = "Accept: application/vnd.oci.image.manifest.v1+json"

        def floor(scenario, t, i):
            """The floor's commands for a scenario ([] where it has none)."""
            fc = ["python3", FLOOR, src]
            return {
                "fresh": [fc + [dst, "--blob-threads", "8", f"bench:1=floor-{i}:1"]],
                "present": [fc + [dst, "--blob-threads", "8", f"bench:1=floor-{i}:2"]],
                "again": [fc + [dst, "--blob-threads", "8", f"bench:1=floor-{i}:1"]],
                "to-oci": [fc + ["-", "--dest-dir", f"{base}/oci-{t}-{i}", "bench:1"]],
                "from-oci": [["python3", FLOOR_PUSH, layout, "bench", dst, f"from-oci-floor-{i}:1"]],
                "multi": [fc + [dst, "--all", "--blob-threads", "8", f"multi:1=multi-floor-{i}:1"]],
                "inspect": [["curl", "-sf", "-H", accept, "-o", "/dev/null", "-o", "/dev/null",
                             f"http://{src}/v2/bench/manifests/1", config_url]] * a.inspects,
            }.get(scenario, [])

        def cmd(tool, args):
            # Every tool reads the same policy (kopeo, as skopeo, wants one).
            if tool == "kopeo":
                return [KOPEO, "--policy", policy] + args
            if tool == "before":
                return [BASELINE, "--policy", policy] + args
            return ["skopeo", "--policy", policy] + args

        tls = ["--src-tls-verify=false", "--dest-tls-verify=false"]
        def copy(scenario, args):
            return lambda t, i: floor(scenario, t, i) if t == "floor" else [cmd(t, ["copy", "-q"] + tls + args(t, i))]

        scenarios = {
            "registry→registry (fresh)": copy("fresh", lambda t, i: [f"docker://{src}/bench:1", f"docker://{dst}/{t}-{i}:1"]),
            "registry→registry (blobs present)": copy("present", lambda t, i: [f"docker://{src}/bench:1", f"docker://{dst}/{t}-{i}:2"]),
            # big-again: the same copy once more, the destination unchanged.
            "registry→registry (unchanged re-copy)": copy("again", lambda t, i: [f"docker://{src}/bench:1", f"docker://{dst}/{t}-{i}:1"]),
            "registry→oci:": copy("to-oci", lambda t, i: [f"docker://{src}/bench:1", f"oci:{base}/oci-{t}-{i}:x"]),
            "oci:→registry": copy("from-oci", lambda t, i: [f"oci:{layout}:bench", f"docker://{dst}/from-oci-{t}-{i}:1"]),
            "multi-arch --all": copy("multi", lambda t, i: ["--all", f"docker://{src}/multi:1", f"docker://{dst}/multi-{t}-{i}:1"]),
            f"inspect ×{a.inspects}": lambda t, i: (floor("inspect", t, i) if t == "floor" else
                                                    [cmd(t, ["inspect", "--tls-verify=false", f"docker://{src}/bench:1"])] * a.inspects),
        }
        results = {s: {t: [] for t in TOOLS} for s in scenarios}
        for i in range(a.reps):
            for name, make in scenarios.items():
                # Each tool goes first in turn.
                order = TOOLS[i % len(TOOLS):] + TOOLS[:i % len(TOOLS)]
                for tool in order:
                    # Write back what the previous run left dirty, untimed:
                    # otherwise the next tool pays for a gigabyte of writeback.
                    os.sync()
                    wall = cpu = rss = 0.0
                    commands = make(tool, i)
                    if not commands:
                        continue
                    for c in commands:
                        if tool == "skopeo" and os.path.exists(BOLT):
                            os.remove(BOLT)
                        w, u, r = timed(c, env)
                        wall, cpu, rss = wall + w, cpu + u, max(rss, r)
                    results[name][tool].append((wall, cpu, rss))
                    print(f"rep {i + 1} {name:36} {tool:6} wall {wall:7.2f}s cpu {cpu:7.2f}s rss {rss:6.1f} MiB", flush=True)
                for t in TOOLS:
                    shutil.rmtree(f"{base}/oci-{t}-{i}", ignore_errors=True)
        has_floor = "floor" in TOOLS
        lines = ["| scenario | kopeo wall | skopeo wall | wall ratio | kopeo CPU | skopeo CPU | CPU ratio | kopeo peak RSS | skopeo peak RSS |"
                 + (" before wall | before ratio | before peak RSS |" if BASELINE else "")
                 + (" floor wall | kopeo ÷ floor |" if has_floor else ""),
                 "|---|---|---|---|---|---|---|---|---|" + ("---|---|---|" if BASELINE else "") + ("---|---|" if has_floor else "")]
        summary = {}
        for name, r in results.items():
            med = {t: [statistics.median(x[k] for x in r[t]) for k in range(2)] + [max(x[2] for x in r[t])] for t in r if r[t]}
            k, s = med["kopeo"], med["skopeo"]
            summary[name] = {"kopeo": k, "skopeo": s, "wall_ratio": k[0] / s[0], "cpu_ratio": k[1] / s[1] if s[1] else None}
            row = (f"| {name} | {k[0]:.2f} s | {s[0]:.2f} s | **{k[0] / s[0]:.2f}** | {k[1]:.2f} s | {s[1]:.2f} s | "
                   f"{k[1] / s[1]:.2f} | {k[2]:.1f} MiB | {s[2]:.1f} MiB |")
            if BASELINE:
                b = med["before"]
                summary[name]["before"] = b
                summary[name]["before_wall_ratio"] = b[0] / s[0]
                row += f" {b[0]:.2f} s | {b[0] / s[0]:.2f} | {b[2]:.1f} MiB |"
            if has_floor:
                f = med.get("floor")
                summary[name]["floor"] = f
                row += f" {f[0]:.3f} s | **{k[0] / f[0]:.2f}** |" if f else " – | – |"
            lines.append(row)
        print("\n" + "\n".join(lines))
        if a.out:
            with open(a.out, "w") as f:
                json.dump({"reps": a.reps, "layers": a.layers, "layer_mib": a.layer_mib, "summary": summary, "raw": results}, f, indent=1)
    finally:
        for p in procs:
            p.kill()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
