#!/usr/bin/env python3
"""Side-by-side benchmark of the docker-archive paths: kopeo vs skopeo.

registry → docker-archive (layers decompressed on the way) and
docker-archive → registry (layers compressed on the way), for two images:
incompressible layers (random bytes) and compressible ones (text-like), each
~512 MiB uncompressed in 4 layers. Same method as bench/run.py.

Usage: python3 bench/archive.py [--reps N] [--layer-mib M]
"""
import argparse, gzip, hashlib, json, os, random, shutil, statistics, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import BOLT, KOPEO, put, start_registry, timed  # noqa: E402

WORDS = [("".join(random.Random(i).choice("abcdefghijklmnopqrstuvwxyz") for _ in range(random.Random(i).randint(2, 9)))).encode()
         for i in range(2000)]


def text_like(n, seed):
    rng = random.Random(seed)
    line = bytearray()
    out = bytearray()
    block = bytearray()
    while len(block) < 1 << 20:
        block += b" ".join(rng.choice(WORDS) for _ in range(12)) + b"\n"
    while len(out) < n:
        k = rng.randrange(len(block))
        out += block[k:] + block[:k]
    del line
    return bytes(out[:n])


def make_image(layout, layers, mib, compressible):
    os.makedirs(os.path.join(layout, "blobs", "sha256"))
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    descs, diffs = [], []
    for i in range(layers):
        raw = text_like(mib << 20, i) if compressible else os.urandom(mib << 20)
        diffs.append("sha256:" + hashlib.sha256(raw).hexdigest())
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **put(layout, gzip.compress(raw, 6, mtime=0))})
    cfg = put(layout, json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diffs}}).encode())
    m = put(layout, json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **cfg}, "layers": descs}).encode())
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", **m,
                                                       "annotations": {"org.opencontainers.image.ref.name": "bench"}}]}, f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--layer-mib", type=int, default=128)
    a = ap.parse_args()
    base = tempfile.mkdtemp(prefix="kopeo-archive-bench-")
    procs = []
    try:
        p1, src = start_registry(base, "src")
        p2, dst = start_registry(base, "dst")
        procs += [p1, p2]
        env = dict(os.environ, HOME=base, XDG_RUNTIME_DIR=os.path.join(base, "run"))
        policy = os.path.join(base, "policy.json")
        with open(policy, "w") as f:
            f.write('{"default":[{"type":"insecureAcceptAnything"}]}')
        tls = ["--src-tls-verify=false", "--dest-tls-verify=false"]
        lines = ["| image | scenario | kopeo wall | skopeo wall | wall ratio | kopeo CPU | skopeo CPU | kopeo peak RSS | skopeo peak RSS |",
                 "|---|---|---|---|---|---|---|---|---|"]
        for kind in ("incompressible", "compressible"):
            layout = os.path.join(base, f"layout-{kind}")
            print(f"building the {kind} image ...", flush=True)
            make_image(layout, a.layers, a.layer_mib, kind == "compressible")
            subprocess.run([KOPEO, "copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:bench", f"docker://{src}/{kind}:1"], check=True, env=env)
            archive = os.path.join(base, f"{kind}.tar")
            subprocess.run([KOPEO, "copy", "-q", "--src-tls-verify=false", f"docker://{src}/{kind}:1", f"docker-archive:{archive}:{kind}:1"], check=True, env=env)

            def cmd(tool, args):
                return ([KOPEO, "--policy", policy] if tool == "kopeo" else ["skopeo", "--policy", policy]) + args

            scenarios = {
                "registry→docker-archive": lambda t, i: cmd(t, ["copy", "-q"] + tls + [f"docker://{src}/{kind}:1", f"docker-archive:{base}/out-{t}-{i}.tar:{kind}:1"]),
                "docker-archive→registry": lambda t, i: cmd(t, ["copy", "-q"] + tls + [f"docker-archive:{archive}", f"docker://{dst}/{kind}-{t}-{i}:1"]),
            }
            for name, make in scenarios.items():
                res = {"kopeo": [], "skopeo": []}
                for i in range(a.reps):
                    for tool in (["kopeo", "skopeo"] if i % 2 == 0 else ["skopeo", "kopeo"]):
                        if tool == "skopeo" and os.path.exists(BOLT):
                            os.remove(BOLT)
                        w, c, r = timed(make(tool, i), env)
                        res[tool].append((w, c, r))
                        print(f"{kind:14} {name:26} rep {i + 1} {tool:6} wall {w:6.2f}s cpu {c:6.2f}s rss {r:6.1f} MiB", flush=True)
                        for t in ("kopeo", "skopeo"):
                            try:
                                os.remove(f"{base}/out-{t}-{i}.tar")
                            except FileNotFoundError:
                                pass
                k = [statistics.median(x[j] for x in res["kopeo"]) for j in range(2)] + [max(x[2] for x in res["kopeo"])]
                s = [statistics.median(x[j] for x in res["skopeo"]) for j in range(2)] + [max(x[2] for x in res["skopeo"])]
                lines.append(f"| {kind} | {name} | {k[0]:.2f} s | {s[0]:.2f} s | **{k[0] / s[0]:.2f}** | {k[1]:.2f} s | {s[1]:.2f} s | {k[2]:.1f} MiB | {s[2]:.1f} MiB |")
        print("\n" + "\n".join(lines))
    finally:
        for p in procs:
            p.kill()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
