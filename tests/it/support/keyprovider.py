#!/usr/bin/env python3
"""A key provider for tests, speaking ocicrypt's command protocol: one JSON
request on stdin, one answer on stdout. It "wraps" a layer's options by
XOR with a pad derived from its secret and the recipient argument, so the
tests can unwrap independently of kopeo. Written from ocicrypt's
keyprovider.go; standard library only.

usage: keyprovider.py SECRET LOG [MODE [NAME]]
MODE: ok (base64 answers, as Go writes them), bytes (answers as arrays of
numbers, as some providers send), fail (exit 3), garbage (not JSON), hang.
NAME: the provider's name in the configuration (default testkms): its
arguments are the EncryptConfig parameters under that name.
"""
import base64, hashlib, json, sys, time

secret, log = sys.argv[1], sys.argv[2]
mode = sys.argv[3] if len(sys.argv) > 3 else "ok"
name = sys.argv[4] if len(sys.argv) > 4 else "testkms"


def pad(kid, n):
    out = b""
    i = 0
    while len(out) < n:
        out += hashlib.sha256(f"{secret}/{kid}/{i}".encode()).digest()
        i += 1
    return out[:n]


def xor(data, kid):
    return bytes(a ^ b for a, b in zip(data, pad(kid, len(data))))


def enc(b):
    return list(b) if mode == "bytes" else base64.b64encode(b).decode()


req = json.load(sys.stdin)
with open(log, "a") as f:
    f.write(json.dumps(req) + "\n")
if mode == "fail":
    sys.stderr.write("the KMS refused the request\n")
    sys.exit(3)
if mode == "garbage":
    print("this is not JSON")
    sys.exit(0)
if mode == "hang":
    time.sleep(60)
if req["op"] == "keywrap":
    params = req["keywrapparams"]["ec"]["Parameters"]
    kid = base64.b64decode(params[name][0]).decode()
    opts = base64.b64decode(req["keywrapparams"]["optsdata"])
    annotation = json.dumps({"kid": kid, "wrapped": base64.b64encode(xor(opts, kid)).decode()}).encode()
    print(json.dumps({"keywrapresults": {"annotation": enc(annotation)}}))
elif req["op"] == "keyunwrap":
    a = json.loads(base64.b64decode(req["keyunwrapparams"]["annotation"]))
    opts = xor(base64.b64decode(a["wrapped"]), a["kid"])
    print(json.dumps({"keyunwrapresults": {"optsdata": enc(opts)}}))
else:
    sys.exit(2)
