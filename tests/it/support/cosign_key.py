#!/usr/bin/env python3
"""An independent reader and writer of cosign's encrypted private keys (a PEM
block of go-securesystemslib's JSON: scrypt, then NaCl secretbox), written
from the formats with Python's standard library alone, to judge kopeo's.

    cosign_key.py decrypt KEYFILE PASSPHRASE-FILE OUT.der   # PKCS#8 DER out
    cosign_key.py encrypt IN.der PASSPHRASE-FILE N OUT.pem   # seal with scrypt N
"""
import base64, hashlib, json, os, struct, sys

def rotl(v, c):
    return ((v << c) & 0xffffffff) | (v >> (32 - c))

def salsa_rounds(x):
    def qr(a, b, c, d):
        x[b] ^= rotl((x[a] + x[d]) & 0xffffffff, 7)
        x[c] ^= rotl((x[b] + x[a]) & 0xffffffff, 9)
        x[d] ^= rotl((x[c] + x[b]) & 0xffffffff, 13)
        x[a] ^= rotl((x[d] + x[c]) & 0xffffffff, 18)
    for _ in range(10):
        qr(0, 4, 8, 12); qr(5, 9, 13, 1); qr(10, 14, 2, 6); qr(15, 3, 7, 11)
        qr(0, 1, 2, 3); qr(5, 6, 7, 4); qr(10, 11, 8, 9); qr(15, 12, 13, 14)

SIGMA = struct.unpack("<4I", b"expand 32-byte k")

def state(key, n16):
    k = struct.unpack("<8I", key)
    n = struct.unpack("<4I", n16)
    return [SIGMA[0], k[0], k[1], k[2], k[3], SIGMA[1], n[0], n[1], n[2], n[3], SIGMA[2], k[4], k[5], k[6], k[7], SIGMA[3]]

def hsalsa20(key, n16):
    x = state(key, n16)
    salsa_rounds(x)
    return struct.pack("<8I", x[0], x[5], x[10], x[15], x[6], x[7], x[8], x[9])

def salsa20_stream(key, n8, length):
    out = bytearray()
    counter = 0
    while len(out) < length:
        s = state(key, n8 + struct.pack("<Q", counter))
        x = list(s)
        salsa_rounds(x)
        out += struct.pack("<16I", *[(a + b) & 0xffffffff for a, b in zip(x, s)])
        counter += 1
    return bytes(out[:length])

def poly1305(key, msg):
    r = int.from_bytes(key[:16], "little") & 0x0ffffffc0ffffffc0ffffffc0fffffff
    s = int.from_bytes(key[16:], "little")
    p = (1 << 130) - 5
    acc = 0
    for i in range(0, len(msg), 16):
        block = msg[i:i + 16] + b"\x01"
        acc = (acc + int.from_bytes(block, "little")) * r % p
    return ((acc + s) % (1 << 128)).to_bytes(16, "little")

def secretbox_open(box, nonce, key):
    sub = hsalsa20(key, nonce[:16])
    tag, ct = box[:16], box[16:]
    stream = salsa20_stream(sub, nonce[16:], 32 + len(ct))
    if poly1305(stream[:32], ct) != tag:
        raise SystemExit("secretbox: authentication failed")
    return bytes(a ^ b for a, b in zip(ct, stream[32:]))

def secretbox_seal(msg, nonce, key):
    sub = hsalsa20(key, nonce[:16])
    stream = salsa20_stream(sub, nonce[16:], 32 + len(msg))
    ct = bytes(a ^ b for a, b in zip(msg, stream[32:]))
    return poly1305(stream[:32], ct) + ct

def passphrase(path):
    data = open(path, "rb").read()
    return data.split(b"\n", 1)[0]

def main():
    op = sys.argv[1]
    if op == "decrypt":
        text = open(sys.argv[2]).read().splitlines()
        assert text[0] in ("-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----", "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"), text[0]
        doc = json.loads(base64.b64decode("".join(l for l in text[1:] if not l.startswith("-----"))))
        assert doc["kdf"]["name"] == "scrypt" and doc["cipher"]["name"] == "nacl/secretbox", doc
        prm = doc["kdf"]["params"]
        key = hashlib.scrypt(passphrase(sys.argv[3]), salt=base64.b64decode(doc["kdf"]["salt"]), n=prm["N"], r=prm["r"], p=prm["p"], dklen=32, maxmem=1 << 30)
        der = secretbox_open(base64.b64decode(doc["ciphertext"]), base64.b64decode(doc["cipher"]["nonce"]), key)
        open(sys.argv[4], "wb").write(der)
        print(prm["N"])
    elif op == "encrypt":
        der = open(sys.argv[2], "rb").read()
        n = int(sys.argv[4])
        salt, nonce = os.urandom(32), os.urandom(24)
        key = hashlib.scrypt(passphrase(sys.argv[3]), salt=salt, n=n, r=8, p=1, dklen=32, maxmem=1 << 30)
        doc = {"kdf": {"name": "scrypt", "params": {"N": n, "r": 8, "p": 1}, "salt": base64.b64encode(salt).decode()},
               "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode()},
               "ciphertext": base64.b64encode(secretbox_seal(der, nonce, key)).decode()}
        body = base64.b64encode(json.dumps(doc).encode()).decode()
        lines = [body[i:i + 64] for i in range(0, len(body), 64)]
        open(sys.argv[5], "w").write("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n" + "\n".join(lines) + "\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n")

main()
