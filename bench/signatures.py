#!/usr/bin/env python3
"""What signatures cost a copy: the same ~1 GiB image copied registry to
registry unsigned, signed with simple signing (lookaside, verified by a
signedBy policy and carried along) and signed with sigstore (attachment,
verified by a sigstoreSigned policy and carried along), kopeo and skopeo
side by side, interleaved, in one run. Also counts the source registry's
blob GETs per copy: verification must not read a blob again.

Usage: python3 bench/signatures.py [--reps N] [--layers K] [--layer-mib M]
Needs target/release/kopeo, docker-registry, skopeo, gpg, openssl, time.
Debian's skopeo 1.9.3 has sigstore switched off: it runs the unsigned and
simple-signing cases only.
"""
import argparse, base64, json, os, shutil, statistics, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import BOLT, KOPEO, make_image, put, start_registry, timed  # noqa: E402


def add_variant(layout, name):
    """The layout's image again under ref `name` with its own config (same
    layers): its own manifest digest, so signatures of one variant are not
    another's (lookasides and attachments are keyed by manifest digest)."""
    index_path = os.path.join(layout, "index.json")
    index = json.load(open(index_path))
    top = index["manifests"][0]
    m = json.load(open(os.path.join(layout, "blobs", "sha256", top["digest"].split(":")[1])))
    cfg = json.load(open(os.path.join(layout, "blobs", "sha256", m["config"]["digest"].split(":")[1])))
    cfg["config"]["Labels"]["variant"] = name
    m["config"] = {"mediaType": m["config"]["mediaType"], **put(layout, json.dumps(cfg).encode())}
    d = put(layout, json.dumps(m).encode())
    index["manifests"].append({"mediaType": top["mediaType"], **d, "annotations": {"org.opencontainers.image.ref.name": name}})
    json.dump(index, open(index_path, "w"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--layer-mib", type=int, default=128)
    a = ap.parse_args()
    for tool in (KOPEO, shutil.which("skopeo"), shutil.which("docker-registry"), shutil.which("gpg"), "/usr/bin/time"):
        if not tool or not os.path.exists(tool):
            sys.exit("missing tool: cargo build --release; apt-get install skopeo docker-registry gnupg time")
    base = tempfile.mkdtemp(prefix="kopeo-bench-sig-")
    procs = []
    try:
        p1, src = start_registry(base, "src", log_level="info")
        p2, dst = start_registry(base, "dst")
        procs += [p1, p2]
        gnupg = os.path.join(base, "gnupg")
        os.makedirs(gnupg, mode=0o700)
        env = dict(os.environ, HOME=base, XDG_RUNTIME_DIR=os.path.join(base, "run"), GNUPGHOME=gnupg)
        run = lambda *c: subprocess.run(list(c), check=True, env=env, capture_output=True)
        run("gpg", "--batch", "--passphrase", "", "--quick-gen-key", "bench <bench@example.com>", "rsa2048", "sign", "never")
        fpr = [l.split(":")[9] for l in run("gpg", "--with-colons", "--list-keys").stdout.decode().splitlines() if l.startswith("fpr")][0]
        with open(os.path.join(base, "key.asc"), "wb") as f:
            f.write(run("gpg", "--armor", "--export", fpr).stdout)
        with open(os.path.join(base, "pw"), "w") as f:
            f.write("pw\n")
        run(KOPEO, "generate-sigstore-key", "--output-prefix", os.path.join(base, "cosign"), "--passphrase-file", os.path.join(base, "pw"))
        regd = os.path.join(base, "registries.d")
        os.makedirs(regd)
        with open(os.path.join(regd, "b.yaml"), "w") as f:
            f.write(f"default-docker:\n  use-sigstore-attachments: true\n  sigstore: file://{base}/lookaside\n")
        layout = os.path.join(base, "layout")
        print(f"building a {a.layers}x{a.layer_mib} MiB image ...", flush=True)
        make_image(layout, a.layers, a.layer_mib)
        for v in ("unsigned", "simple", "sigstore"):
            add_variant(layout, v)
        common = ["--registries.d", regd]
        push = [KOPEO] + common + ["copy", "-q", "--insecure-policy", "--dest-tls-verify=false"]
        run(*push, f"oci:{layout}:unsigned", f"docker://{src}/bench:unsigned")
        run(*push, "--sign-by", fpr, f"oci:{layout}:simple", f"docker://{src}/bench:simple")
        run(*push, "--sign-by-sigstore-private-key", os.path.join(base, "cosign.private"), "--sign-passphrase-file",
            os.path.join(base, "pw"), f"oci:{layout}:sigstore", f"docker://{src}/bench:sigstore")
        policies = {
            "unsigned": {"default": [{"type": "insecureAcceptAnything"}]},
            "simple": {"default": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": os.path.join(base, "key.asc")}]},
            "sigstore": {"default": [{"type": "sigstoreSigned", "keyPath": os.path.join(base, "cosign.pub"),
                                      "signedIdentity": {"type": "matchRepository"}}]},
        }
        for name, p in policies.items():
            with open(os.path.join(base, f"{name}.json"), "w") as f:
                json.dump(p, f)

        def blob_gets():
            with open(os.path.join(base, "src", "log")) as f:
                return sum(1 for l in f if "response completed" in l and "/blobs/" in l and 'http.request.method=GET' in l)

        cases = [(t, c) for c in ("unsigned", "simple", "sigstore") for t in ("kopeo", "skopeo") if not (t == "skopeo" and c == "sigstore")]
        res = {c: [] for c in cases}
        gets = {c: [] for c in cases}
        for i in range(a.reps):
            order = cases if i % 2 == 0 else list(reversed(cases))
            for tool, case in order:
                binary = KOPEO if tool == "kopeo" else shutil.which("skopeo")
                if tool == "skopeo" and os.path.exists(BOLT):
                    os.remove(BOLT)
                subprocess.run(["sync"])
                before = blob_gets()
                cmd = [binary] + common + ["--policy", os.path.join(base, f"{case}.json"), "copy", "-q",
                                           "--src-tls-verify=false", "--dest-tls-verify=false",
                                           f"docker://{src}/bench:{case}", f"docker://{dst}/{tool}-{case}-{i}:1"]
                res[(tool, case)].append(timed(cmd, env))
                gets[(tool, case)].append(blob_gets() - before)
        print(f"\n{a.reps} interleaved rounds, medians; blob GETs at the source per copy ({a.layers} layers + 1 config; sigstore: + its payload)\n")
        print("| case | kopeo wall | kopeo ÷ unsigned | skopeo wall | skopeo ÷ unsigned | kopeo blob GETs | kopeo peak RSS |")
        print("|---|---|---|---|---|---|---|")
        med = lambda c: statistics.median(w for w, _, _ in res[c]) if c in res else None
        for case in ("unsigned", "simple", "sigstore"):
            k, s = med(("kopeo", case)), med(("skopeo", case))
            ku, su = med(("kopeo", "unsigned")), med(("skopeo", "unsigned"))
            rss = max(r for _, _, r in res[("kopeo", case)])
            sk = f"{s:.2f} s | {s / su:.2f}" if s else "– | –"
            print(f"| {case} | {k:.2f} s | {k / ku:.2f} | {sk} | {sorted(set(gets[('kopeo', case)]))} | {rss:.1f} MiB |")
        print("\nper repetition (wall s):", json.dumps({f"{t}/{c}": [round(w, 3) for w, _, _ in v] for (t, c), v in res.items()}))
    finally:
        for p in procs:
            p.terminate()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
