#!/usr/bin/env python3
"""Side-by-side sync benchmark: kopeo sync vs skopeo sync, in one run.

20 repositories x 10 tags on a source Distribution registry (2 layers of
~1 MiB each: the first shared by every tag of a repository, the second
unique), synced to a destination registry under a fresh prefix per tool and
repetition; then the same sync again (nothing to do). skopeo runs both ways
people use it: one `--src docker` run per repository, and one `--src yaml`
run. kopeo syncs the same YAML in one run (4 images in flight), and as
4 shards in 4 processes at once (`sync --shard I/4`, what a sharded
ImageSync's worker pods run).

Beside them, in the same rounds: the floor (../shared/bench/floorcopy.py, an
ideal client: 4 images in flight, mounts, nothing but the requests every
copier must send; KOPEO_FLOOR=path to use another copy), and with
KOPEO_BASELINE=path an earlier kopeo build ("before"). Requests each tool
sends to each registry are counted from the registries' logs.

Usage: python3 bench/sync.py [--reps N] [--out FILE]
"""
import argparse, json, os, shlex, shutil, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import BASELINE, BOLT, KOPEO, start_registry, timed  # noqa: E402

FLOOR = os.environ.get("KOPEO_FLOOR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "bench", "floorcopy.py"))

REPOS, TAGS, MIB = 20, 10, 1 << 20


def blob(layout, data):
    import hashlib
    d = hashlib.sha256(data).hexdigest()
    with open(os.path.join(layout, "blobs", "sha256", d), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + d, "size": len(data)}


def build(layout):
    os.makedirs(os.path.join(layout, "blobs", "sha256"))
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    entries = []
    for r in range(REPOS):
        base = blob(layout, os.urandom(MIB))
        for t in range(TAGS):
            top = blob(layout, os.urandom(MIB))
            cfg = blob(layout, json.dumps({"architecture": "amd64", "os": "linux", "config": {"Env": [f"R={r}", f"T={t}"]},
                                           "rootfs": {"type": "layers", "diff_ids": [base["digest"], top["digest"]]}}).encode())
            m = blob(layout, json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                                         "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **cfg},
                                         "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **base},
                                                    {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **top}]}).encode())
            entries.append({"mediaType": "application/vnd.oci.image.manifest.v1+json", **m,
                            "annotations": {"org.opencontainers.image.ref.name": f"repo{r:02d}-{t}"}})
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": entries}, f)


def seed(layout, src, env):
    """Push the layout's images to `src` as bench/repoNN:v1.T.0."""
    print("seeding the source registry ...", flush=True)
    # Parallel across repositories only: concurrent pushes into one
    # repository race in Distribution's storage (see RegistryClient::blob_lock).
    for t in range(TAGS):
        wave = [subprocess.Popen([KOPEO, "copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:repo{r:02d}-{t}",
                                  f"docker://{src}/bench/repo{r:02d}:v1.{t}.0"], env=env) for r in range(REPOS)]
        if any(p.wait() != 0 for p in wave):
            sys.exit("seeding failed")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    base = tempfile.mkdtemp(prefix="kopeo-sync-bench-")
    procs = []
    try:
        p1, src = start_registry(base, "src", "info")
        p2, dst = start_registry(base, "dst", "info")
        logs = {"src": os.path.join(base, "src", "log"), "dst": os.path.join(base, "dst", "log")}

        def requests_so_far(side):
            with open(logs[side]) as f:
                return sum(1 for line in f if "response completed" in line)
        procs += [p1, p2]
        layout = os.path.join(base, "layout")
        build(layout)
        env = dict(os.environ, HOME=base, XDG_RUNTIME_DIR=os.path.join(base, "run"))
        seed(layout, src, env)
        yaml = os.path.join(base, "sync.yaml")
        with open(yaml, "w") as f:
            f.write(f"{src}:\n  tls-verify: false\n  images:\n" + "".join(f"    bench/repo{r:02d}: []\n" for r in range(REPOS)))
        policy = os.path.join(base, "policy.json")
        with open(policy, "w") as f:
            f.write('{"default":[{"type":"insecureAcceptAnything"}]}')
        tls = ["--src-tls-verify=false", "--dest-tls-verify=false"]

        def runs(tool, prefix):
            if tool in ("kopeo", "before"):
                binary = KOPEO if tool == "kopeo" else BASELINE
                return [[binary, "--policy", policy, "sync", "-q", "--src", "yaml", "--dest", "docker"] + tls + [yaml, f"{dst}/{prefix}"]]
            if tool == "kopeo-4-shards":
                # What a sharded ImageSync's 4 worker pods run (sync --shard
                # I/4, as `kopeo worker image-sync` plans), side by side on this machine.
                one = " ".join(shlex.quote(x) for x in [KOPEO, "--policy", policy, "sync", "-q", "--src", "yaml", "--dest", "docker"]
                               + tls + ["--shard", "SHARD", yaml, f"{dst}/{prefix}"]).replace("SHARD", "$i/4")
                return [["bash", "-c", f"for i in 0 1 2 3; do {one} & done; for j in 1 2 3 4; do wait -n || exit 1; done"]]
            if tool == "floor":
                return [["python3", FLOOR, src, dst, "--repos", "--mount", "--image-threads", "4"]
                        + [f"bench/repo{r:02d}={prefix}/repo{r:02d}" for r in range(REPOS)]]
            if tool == "skopeo-yaml":
                return [["skopeo", "--policy", policy, "sync", "--src", "yaml", "--dest", "docker"] + tls + [yaml, f"{dst}/{prefix}"]]
            return [["skopeo", "--policy", policy, "sync", "--src", "docker", "--dest", "docker"] + tls + [f"{src}/bench/repo{r:02d}", f"{dst}/{prefix}"]
                    for r in range(REPOS)]

        if not os.path.exists(FLOOR):
            sys.exit(f"missing the floor: {FLOOR} (set KOPEO_FLOOR)")
        tools = ["kopeo", "kopeo-4-shards", "floor", "skopeo-per-repo", "skopeo-yaml"] + (["before"] if BASELINE else [])
        results = {(t, phase): [] for t in tools for phase in ("first", "no-op")}
        counts = {(t, phase): [] for t in tools for phase in ("first", "no-op")}
        for i in range(a.reps):
            order = tools[i % len(tools):] + tools[:i % len(tools)]
            for tool in order:
                prefix = f"{tool}-{i}"
                # The floor copies every manifest again: it has no no-op run.
                for phase in ("first",) if tool == "floor" else ("first", "no-op"):
                    os.sync()
                    wall = cpu = rss = 0.0
                    before = (requests_so_far("src"), requests_so_far("dst"))
                    for c in runs(tool, prefix):
                        if tool.startswith("skopeo") and os.path.exists(BOLT):
                            os.remove(BOLT)
                        w, u, r = timed(c, env)
                        wall, cpu, rss = wall + w, cpu + u, max(rss, r)
                    time.sleep(0.3)  # the registries log a request after answering it
                    sent = (requests_so_far("src") - before[0], requests_so_far("dst") - before[1])
                    results[(tool, phase)].append((wall, cpu, rss))
                    counts[(tool, phase)].append(sent)
                    print(f"rep {i + 1} {tool:16} {phase:6} wall {wall:7.2f}s cpu {cpu:6.2f}s rss {rss:6.1f} MiB "
                          f"requests src {sent[0]} dst {sent[1]}", flush=True)
        lines = ["| run | kopeo | floor | kopeo ÷ floor | skopeo, one run per repository | ratio | skopeo, one YAML run | ratio |"
                 + (" before | before ÷ floor |" if BASELINE else ""),
                 "|---|---|---|---|---|---|---|---|" + ("---|---|" if BASELINE else "")]
        summary = {}
        images = REPOS * TAGS
        for phase in ("first", "no-op"):
            med = {t: statistics.median(x[0] for x in results[(t, phase)]) for t in tools if results[(t, phase)]}
            k, s1, s2 = med["kopeo"], med["skopeo-per-repo"], med["skopeo-yaml"]
            f = med.get("floor")
            summary[phase] = {"kopeo": k, "floor": f, "skopeo_per_repo": s1, "skopeo_yaml": s2, "before": med.get("before")}
            fl = f"{f:.2f} s | **{k / f:.2f}**" if f else "– | –"
            row = f"| {phase} | {k:.2f} s | {fl} | {s1:.2f} s | **{k / s1:.2f}** | {s2:.2f} s | **{k / s2:.2f}** |"
            if BASELINE:
                b = med["before"]
                row += f" {b:.2f} s | {b / f:.2f} |" if f else f" {b:.2f} s | – |"
            lines.append(row)
        for phase in ("first", "no-op"):
            k = statistics.median(x[0] for x in results[("kopeo", phase)])
            sh = statistics.median(x[0] for x in results[("kopeo-4-shards", phase)])
            cpu = statistics.median(x[1] for x in results[("kopeo-4-shards", phase)])
            lines.append(f"| {phase}: 4 shards (sync --shard, 4 processes) | {sh:.2f} s | cpu {cpu:.2f} s | ÷ one process **{sh / k:.2f}** |")
        lines += ["", "| requests per image (median run) | " + " | ".join(tools) + " |", "|---|" + "---|" * len(tools)]
        for phase in ("first", "no-op"):
            for side, k in (("source", 0), ("destination", 1)):
                cells = [f"{statistics.median(c[k] for c in counts[(t, phase)]) / images:.2f}" if counts[(t, phase)] else "–" for t in tools]
                lines.append(f"| {phase}, {side} | " + " | ".join(cells) + " |")
        print("\n" + "\n".join(lines))
        if a.out:
            with open(a.out, "w") as f:
                json.dump({"summary": summary, "raw": {f"{t}/{p}": v for (t, p), v in results.items()},
                           "requests": {f"{t}/{p}": v for (t, p), v in counts.items()}}, f, indent=1)
    finally:
        for p in procs:
            p.kill()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
