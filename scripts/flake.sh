#!/usr/bin/env bash
# `make flake`: the black-box tests, FLAKE_RUNS times (10), each round beside load like a build's:
# a release build of a copy of the project (its own target directory, cleaned before every build,
# so it compiles the whole dependency tree: CPU, memory and disk), started before the first round
# and kept going until the last. A test that fails in any round is a flaky test (docs/testing.md).
#
#   FLAKE_RUNS=10                       rounds
#   FLAKE_TESTS="webhook sidecar ..."   the test binaries of tests/tests/ to run (default below)
#   FLAKE_LOAD=0                        no build beside the tests (to compare)
#
# The cluster, VM and image tiers are left out of the default: a round of them takes minutes,
# and they are retried nowhere either. Prints, per test, how many rounds it passed; exits 1 if
# any test failed once.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${FLAKE_RUNS:-10}
TESTS=${FLAKE_TESTS:-webhook webhook_limits sidecar faults startup_taint monitoring}
LOAD=${FLAKE_LOAD:-1}
OUT=target/flake
mkdir -p "$OUT"
rm -f "$OUT"/round-*.log

# Build first, not under the load's clock.
cargo build --workspace
for test in $TESTS; do cargo test -p blackbox-tests --test "$test" --no-run; done

load_pid=
stop_load() {
  if [ -n "$load_pid" ]; then
    kill -TERM -- "-$load_pid" 2>/dev/null || true
    wait "$load_pid" 2>/dev/null || true
  fi
}
trap stop_load EXIT
if [ "$LOAD" = 1 ]; then
  copy="$OUT/load-src"
  rm -rf "$copy"
  mkdir -p "$copy"
  git ls-files -z | xargs -0 tar -c | tar -x -C "$copy"
  # A process group of its own, so that stopping it stops cargo and every rustc under it.
  setsid bash -c "cd '$copy' && while true; do
      CARGO_TARGET_DIR='$PWD/$OUT/load-target' cargo clean >/dev/null 2>&1
      CARGO_TARGET_DIR='$PWD/$OUT/load-target' cargo build --release --workspace >/dev/null 2>&1
    done" &
  load_pid=$!
  echo "flake: load: release build of a copy of the project, looping (pid group $load_pid)"
fi

for round in $(seq 1 "$RUNS"); do
  for test in $TESTS; do
    log="$OUT/round-$round-$test.log"
    # The run as a whole counts too: a crash or a hang cut short names no single test.
    if cargo test -p blackbox-tests --test "$test" >"$log" 2>&1; then
      echo "test (whole-run) ... ok" >>"$log"
      echo "flake: round $round: $test passed"
    else
      echo "test (whole-run) ... FAILED" >>"$log"
      echo "flake: round $round: $test FAILED ($log)"
    fi
  done
done

echo
echo "flake: $RUNS rounds$([ "$LOAD" = 1 ] && echo ', beside a release build') — per test, rounds passed:"
failed=0
# libtest prints `test NAME ... ok|FAILED` per test: count the rounds each test (named with its
# binary: two binaries may share a test's name) passed.
for log in "$OUT"/round-*.log; do
  binary=${log##*/round-}; binary=${binary#*-}; binary=${binary%.log}
  sed -n "s/^test \(.*\) \.\.\. \(ok\|FAILED\)\$/$binary::\1 \2/p" "$log"
done | awk -v runs="$RUNS" '{ total[$1]++; if ($2 == "ok") ok[$1]++ }
       END { for (t in total) printf "  %d/%d  %s\n", ok[t], runs, t }' | sort -k2 >"$OUT/summary.txt"
cat "$OUT/summary.txt"
if awk -v runs="$RUNS" '{ split($1, a, "/"); if (a[1] != runs) bad = 1 } END { exit !bad }' "$OUT/summary.txt"; then
  failed=1
fi
tests=$(wc -l <"$OUT/summary.txt")
flaky=$(awk -v runs="$RUNS" '{ split($1, a, "/"); if (a[1] != runs) n++ } END { print n + 0 }' "$OUT/summary.txt")
echo "flake: $tests tests, $flaky failed at least once"
exit "$failed"
