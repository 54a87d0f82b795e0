#!/usr/bin/env bash
# Fuzz every target (or the ones named) for FUZZ_SECONDS each (default an
# hour) on nightly, one after another, and append one line per run to
# fuzz/runs.log: executions and coverage as libFuzzer reports them at the end.
# New inputs land in fuzz/corpus/<target>/, crashes in fuzz/artifacts/<target>/.
set -uo pipefail
cd "$(dirname "$0")"
secs=${FUZZ_SECONDS:-3600}
if (($#)); then targets=("$@"); else mapfile -t targets < <(cargo +nightly fuzz list); fi
for t in "${targets[@]}"; do
  case $t in
    *_archive) max_len=65536 ;;
    *_yaml | manifest | image_config | auth_file) max_len=16384 ;;
    *) max_len=4096 ;;
  esac
  log=$(mktemp)
  # A hang is a crash after 10 s; so is any single allocation over 1 GiB.
  cargo +nightly fuzz run -O "$t" -- -max_total_time="$secs" -timeout=10 \
    -rss_limit_mb=2048 -malloc_limit_mb=1024 -max_len="$max_len" -print_final_stats=1 >"$log" 2>&1
  rc=$?
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
  crash=$(grep -E '^artifact_prefix|Test unit written to' "$log" | tail -1)
  echo "$(date -u +%FT%TZ) target=$t seconds=$secs exit=$rc execs=${execs:-?} last=[${last}] ${crash}" | tee -a runs.log
  rm -f "$log"
done
