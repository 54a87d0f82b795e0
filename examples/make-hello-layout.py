#!/usr/bin/env python3
"""Regenerate examples/hello: a small two-platform OCI layout (linux/amd64 and
linux/arm64), reproducible byte for byte. Run from the repository root."""
import gzip, hashlib, io, json, os, shutil, tarfile

OUT = "examples/hello"


def blob(data: bytes) -> dict:
    d = hashlib.sha256(data).hexdigest()
    path = os.path.join(OUT, "blobs", "sha256", d)
    with open(path, "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + d, "size": len(data)}


def layer(files: dict) -> tuple:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, content in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(content), 0, 0o644
            t.addfile(info, io.BytesIO(content))
    tar = raw.getvalue()
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb", mtime=0) as g:
        g.write(tar)
    return gz.getvalue(), "sha256:" + hashlib.sha256(tar).hexdigest()


def image(arch: str) -> dict:
    base, base_id = layer({"etc/os-release": b"NAME=kopeo-example\n"})
    app, app_id = layer({"hello.txt": f"hello from kopeo on {arch}\n".encode()})
    config = {
        "created": "2026-01-01T00:00:00Z",
        "architecture": arch,
        "os": "linux",
        "config": {"Env": ["PATH=/usr/bin"], "Labels": {"org.opencontainers.image.title": "hello"}},
        "rootfs": {"type": "layers", "diff_ids": [base_id, app_id]},
        "history": [{"created": "2026-01-01T00:00:00Z", "created_by": "make-hello-layout.py"}],
    }
    cfg = blob(json.dumps(config, separators=(",", ":")).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **cfg},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **blob(base)},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **blob(app)},
        ],
    }
    m = blob(json.dumps(manifest, separators=(",", ":")).encode())
    return {"mediaType": manifest["mediaType"], **m, "platform": {"architecture": arch, "os": "linux"}}


shutil.rmtree(OUT, ignore_errors=True)
os.makedirs(os.path.join(OUT, "blobs", "sha256"))
with open(os.path.join(OUT, "oci-layout"), "w") as f:
    f.write('{"imageLayoutVersion":"1.0.0"}')
index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
         "manifests": [image("amd64"), image("arm64")]}
top = blob(json.dumps(index, separators=(",", ":")).encode())
with open(os.path.join(OUT, "index.json"), "w") as f:
    json.dump({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
               "manifests": [{"mediaType": index["mediaType"], **top,
                              "annotations": {"org.opencontainers.image.ref.name": "1.0"}}]}, f)
