#!/usr/bin/env bash
# The operator chaos test in its long form: COPIES ImageCopy resources (default
# 50) of 3-layer images, the operator SIGKILLed KILLS times (default 12) at
# pseudo-random points and restarted; prints what was complete at each kill,
# the uploads counted from the registry's log and the wall time. The short
# form runs in CI as tests/it/operator/chaos.rs.
set -euo pipefail
cd "$(dirname "$0")/.."
KOPEO_CHAOS_COPIES=${1:-50} KOPEO_CHAOS_KILLS=${2:-12} \
  cargo test --test it operator::chaos -- --nocapture 2>&1 | grep -E '^kill [0-9]|^chaos:|^api faults|^test result|panicked' 
