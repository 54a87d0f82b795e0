#!/usr/bin/env bash
# Fuzz every target (or the ones named) for FUZZ_SECONDS each (default an
# hour) on nightly, one after another, and append one line per run to
# fuzz/runs.log: executions and coverage as libFuzzer reports them at the end.
# New inputs land in fuzz/corpus/<target>/, crashes in fuzz/artifacts/<target>/.
# The CPU seconds the fuzzer itself used are logged beside the wall time, so a
# run that shared its core with other work says so.
set -uo pipefail
cd "$(dirname "$0")"
secs=${FUZZ_SECONDS:-3600}
if (($#)); then targets=("$@"); else mapfile -t targets < <(cargo +nightly fuzz list); fi
for t in "${targets[@]}"; do
  case $t in
    *_archive | layer_tar) max_len=65536 ;;
    *_yaml | manifest | image_config | auth_file) max_len=16384 ;;
    *) max_len=4096 ;;
  esac
  log=$(mktemp)
  # A hang is a crash after 10 s; so is any single allocation over 1 GiB.
  # Built first so the CPU time measured below is the fuzzing alone.
  cargo +nightly fuzz build -O "$t" >/dev/null 2>&1
  cpu=$(mktemp)
  /usr/bin/time -o "$cpu" -f '%U %S' cargo +nightly fuzz run -O "$t" -- -max_total_time="$secs" -timeout=10 \
    -rss_limit_mb=2048 -malloc_limit_mb=1024 -max_len="$max_len" -print_final_stats=1 >"$log" 2>&1
  rc=$?
  cpu_secs=$(tail -1 "$cpu" | awk '{printf "%d", $1 + $2}')
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
  crash=$(grep -E '^artifact_prefix|Test unit written to' "$log" | tail -1)
  echo "$(date -u +%FT%TZ) target=$t seconds=$secs cpu_seconds=${cpu_secs:-?} exit=$rc execs=${execs:-?} last=[${last}] ${crash}" | tee -a runs.log
  rm -f "$log" "$cpu"
done
