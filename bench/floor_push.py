#!/usr/bin/env python3
"""floor_push.py — the floor for OCI layout -> registry, in the manner of
../shared/bench/floorcopy.py (which has no such scenario): only what any
correct pusher must do. Per blob: HEAD at the destination, then POST + one
monolithic PUT streaming the file while hashing it (a layout's blob is
checked against its name, as every correct reader checks it); blobs in
parallel on keep-alive connections; then the manifest PUT. No auth, TLS,
retries or conversion.

  floor_push.py LAYOUT REF DST_HOSTPORT REPO:TAG [--blob-threads 8]

Prints one JSON line with counters and wall_s. Exit 1 on any error.
"""
import argparse
import hashlib
import http.client
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

CHUNK = 1 << 20
tls = threading.local()
stats_lock = threading.Lock()
stats = {"blobs_uploaded": 0, "blobs_present": 0, "bytes": 0, "requests": 0}


def bump(k, n=1):
    with stats_lock:
        stats[k] += n


def conn(hostport):
    c = getattr(tls, "c", None)
    if c is None:
        h, p = hostport.rsplit(":", 1)
        c = tls.c = http.client.HTTPConnection(h, int(p), timeout=300)
    return c


def request(hostport, method, path, body=None, headers=None):
    c = conn(hostport)
    bump("requests")
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    return r.status, r, r.read()


def push_blob(layout, dst, repo, desc):
    dig, size = desc["digest"], desc["size"]
    st, _, _ = request(dst, "HEAD", "/v2/%s/blobs/%s" % (repo, dig))
    if st == 200:
        bump("blobs_present")
        return
    st, r, _ = request(dst, "POST", "/v2/%s/blobs/uploads/" % repo)
    if st != 202:
        raise RuntimeError("POST upload %s -> %d" % (repo, st))
    loc = r.getheader("Location")
    if loc.startswith("http"):
        loc = "/" + loc.split("/", 3)[3]
    loc += ("&" if "?" in loc else "?") + "digest=" + dig
    c = conn(dst)
    bump("requests")
    c.putrequest("PUT", loc)
    c.putheader("Content-Type", "application/octet-stream")
    c.putheader("Content-Length", str(size))
    c.endheaders()
    h = hashlib.sha256()
    n = 0
    buf = bytearray(CHUNK)
    mv = memoryview(buf)
    with open(os.path.join(layout, "blobs", "sha256", dig[7:]), "rb", buffering=0) as f:
        while True:
            k = f.readinto(buf)
            if not k:
                break
            h.update(mv[:k])
            c.send(mv[:k])
            n += k
    resp = c.getresponse()
    resp.read()
    if "sha256:" + h.hexdigest() != dig or n != size:
        raise RuntimeError("digest mismatch for %s" % dig)
    if resp.status != 201:
        raise RuntimeError("PUT blob %s -> %d" % (dig, resp.status))
    bump("blobs_uploaded")
    bump("bytes", n)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("layout")
    ap.add_argument("ref")
    ap.add_argument("dst")
    ap.add_argument("dest")
    ap.add_argument("--blob-threads", type=int, default=8)
    a = ap.parse_args()
    t0 = time.perf_counter()
    index = json.load(open(os.path.join(a.layout, "index.json")))
    top = next(m for m in index["manifests"] if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == a.ref)
    body = open(os.path.join(a.layout, "blobs", "sha256", top["digest"][7:]), "rb").read()
    if "sha256:" + hashlib.sha256(body).hexdigest() != top["digest"]:
        raise RuntimeError("manifest digest mismatch")
    m = json.loads(body)
    repo, tag = a.dest.rsplit(":", 1)
    with ThreadPoolExecutor(a.blob_threads) as ex:
        for f in [ex.submit(push_blob, a.layout, a.dst, repo, d) for d in [m["config"]] + m["layers"]]:
            f.result()
    st, _, data = request(a.dst, "PUT", "/v2/%s/manifests/%s" % (repo, tag), body=body,
                          headers={"Content-Type": top["mediaType"]})
    if st != 201:
        raise RuntimeError("PUT manifest -> %d %s" % (st, data[:200]))
    stats["wall_s"] = round(time.perf_counter() - t0, 4)
    print(json.dumps(stats))


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa
        print("floor_push: %s" % e, file=sys.stderr)
        sys.exit(1)
