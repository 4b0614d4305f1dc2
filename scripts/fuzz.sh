#!/usr/bin/env bash
# Runs every fuzz target for FUZZ_SECONDS (default 60) each, or for FUZZ_RUNS executions each when
# that is set (a count, not a time: the same figure on a busy machine), one after the other, from the
# committed seeds (fuzz/seeds/TARGET; new finds go to fuzz/corpus/TARGET, not committed), and
# writes the executions and crashes of each to target/bench/fuzz/TARGET.json, joined into
# target/bench/fuzz.json for the README's table (a target not run keeps its last figures).
#
# cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${FUZZ_SECONDS:-60}"
if [ -n "${FUZZ_RUNS:-}" ]; then limit="-runs=$FUZZ_RUNS"; else limit="-max_total_time=$seconds"; fi
targets="${FUZZ_TARGETS:-review_bytes review_json duration fqdn flags}"
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
cargo fuzz build -O
status=0
for target in $targets; do
  mkdir -p "corpus/$target"
  log="$(mktemp)"
  started=$SECONDS
  if cargo fuzz run -O "$target" "corpus/$target" "seeds/$target" -- "$limit" \
      -rss_limit_mb=2048 >"$log" 2>&1; then
    crashes=0
  else
    crashes=1
    status=1
    grep -A20 "ERROR\|panicked" "$log" | head -40 >&2
  fi
  elapsed=$((SECONDS - started))
  runs=$(grep -o "Done [0-9]* runs" "$log" | awk '{ print $2 }' | tail -1)
  mkdir -p ../target/bench/fuzz
  echo "[\"fuzz $target (${elapsed} s)\", \"${runs:-?} executions, $crashes crashes\", \"\", \"\"]" \
    >"../target/bench/fuzz/$target.json"
  echo "fuzz $target: ${runs:-?} executions in ${elapsed} s, $crashes crashes"
  rm -f "$log"
done
rows=(../target/bench/fuzz/*.json)
( IFS=,; echo "{\"table\": [$(cat "${rows[@]}" | paste -sd,)]}" ) >../target/bench/fuzz.json
exit $status
