#!/usr/bin/env bash
# The main job: build kopeo, copy the example image (both platforms) from
# examples/hello into a fresh OCI layout, and inspect the copy.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked
out="$(mktemp -d)/layout"
# Like skopeo, kopeo judges every source by a trust policy: this one (the
# policy Debian ships) accepts any image; see README, "Signatures".
./target/release/kopeo --policy examples/policy.json copy --all oci:examples/hello:1.0 "oci:$out:hello"
./target/release/kopeo inspect "oci:$out:hello"
echo "copied to $out"
# The operator's reconcile code, once and without a cluster:
./target/release/kopeo run -f examples/operator
