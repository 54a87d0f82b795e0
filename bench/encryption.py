#!/usr/bin/env python3
"""What layer encryption costs a copy: the same ~1 GiB image copied
registry to registry plain, encrypted (JWE, every layer) and decrypted,
kopeo and skopeo side by side, interleaved, in one run; peak RSS beside
each (memory must stay flat in image size: run with --layer-mib 32 to see).

Usage: python3 bench/encryption.py [--reps N] [--layers K] [--layer-mib M]
Needs target/release/kopeo, docker-registry, skopeo, openssl, time.
"""
import argparse, json, os, shutil, statistics, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import BOLT, KOPEO, make_image, start_registry, timed  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--layer-mib", type=int, default=128)
    a = ap.parse_args()
    for tool in (KOPEO, shutil.which("skopeo"), shutil.which("docker-registry"), shutil.which("openssl"), "/usr/bin/time"):
        if not tool or not os.path.exists(tool):
            sys.exit("missing tool: cargo build --release; apt-get install skopeo docker-registry openssl time")
    base = tempfile.mkdtemp(prefix="kopeo-bench-enc-")
    procs = []
    try:
        p1, src = start_registry(base, "src")
        p2, dst = start_registry(base, "dst")
        procs += [p1, p2]
        env = dict(os.environ, HOME=base, XDG_RUNTIME_DIR=os.path.join(base, "run"))
        run = lambda *c: subprocess.run(list(c), check=True, env=env, capture_output=True)
        key, pub = os.path.join(base, "rsa.pem"), os.path.join(base, "rsa.pub")
        run("openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key)
        run("openssl", "pkey", "-in", key, "-pubout", "-out", pub)
        policy = os.path.join(base, "policy.json")
        with open(policy, "w") as f:
            json.dump({"default": [{"type": "insecureAcceptAnything"}]}, f)
        layout = os.path.join(base, "layout")
        print(f"building a {a.layers}x{a.layer_mib} MiB image ...", flush=True)
        make_image(layout, a.layers, a.layer_mib)
        push = [KOPEO, "--policy", policy, "copy", "-q", "--dest-tls-verify=false"]
        run(*push, f"oci:{layout}:bench", f"docker://{src}/bench:plain")
        run(*push, "--encryption-key", f"jwe:{pub}", f"oci:{layout}:bench", f"docker://{src}/bench:encrypted")
        flags = {"plain": [], "encrypt": ["--encryption-key", f"jwe:{pub}"], "decrypt": ["--decryption-key", key]}
        source = {"plain": "plain", "encrypt": "plain", "decrypt": "encrypted"}
        cases = [(t, c) for c in flags for t in ("kopeo", "skopeo")]
        res = {c: [] for c in cases}
        for i in range(a.reps):
            order = cases if i % 2 == 0 else list(reversed(cases))
            for tool, case in order:
                binary = KOPEO if tool == "kopeo" else shutil.which("skopeo")
                if tool == "skopeo" and os.path.exists(BOLT):
                    os.remove(BOLT)
                subprocess.run(["sync"])
                cmd = [binary, "--policy", policy, "copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false"]
                cmd += flags[case] + [f"docker://{src}/bench:{source[case]}", f"docker://{dst}/{tool}-{case}-{i}:1"]
                res[(tool, case)].append(timed(cmd, env))
        size = a.layers * a.layer_mib
        print(f"\n{a.reps} interleaved rounds, medians; {a.layers} layers x {a.layer_mib} MiB = {size} MiB\n")
        print("| case | kopeo wall | kopeo ÷ plain | kopeo CPU | kopeo peak RSS | skopeo wall | skopeo ÷ plain | kopeo ÷ skopeo |")
        print("|---|---|---|---|---|---|---|---|")
        med = lambda c, k=0: statistics.median(r[k] for r in res[c])
        for case in flags:
            k, s = med(("kopeo", case)), med(("skopeo", case))
            kp, sp = med(("kopeo", "plain")), med(("skopeo", "plain"))
            rss = max(r[2] for r in res[("kopeo", case)])
            print(f"| {case} | {k:.2f} s | {k / kp:.2f} | {med(('kopeo', case), 1):.2f} s | {rss:.1f} MiB | {s:.2f} s | {s / sp:.2f} | {k / s:.2f} |")
        print("\nper repetition (wall s):", json.dumps({f"{t}/{c}": [round(w, 3) for w, _, _ in v] for (t, c), v in res.items()}))
    finally:
        for p in procs:
            p.terminate()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
