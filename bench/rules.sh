#!/bin/sh
# Rule repair latency and idle cost of `apiserver-proxy-sidecar --setup-iptables`, for the nft and
# the legacy iptables backends. Everything happens in throwaway network namespaces (`ip netns`)
# with a private xtables lock file: the host's rules and /run/xtables.lock are never touched.
#
# For each backend:
#   - repair latency: flush the raw table (`iptables -t raw -F`, which removes three of the five
#     rules) FLUSHES times, and time until all three are back (polled every 10 ms with
#     iptables-save, so figures carry about 10 ms of polling granularity); median and max.
#   - idle cost: iptables processes the sidecar starts during IDLE_SECONDS with nothing changing,
#     counted as successful execve calls of iptables tools under `strace -f`, per minute.
#
# Needs: root, iproute2, iptables, strace (apt-get install -y iptables strace), and
# target/release/apiserver-proxy-sidecar (cargo build --release -p apiserver-proxy-sidecar).
# Takes about 5 min with the defaults: 2 x 20 flushes spaced by random pauses of up to 5 s,
# and one idle minute per backend.
set -eu

BIN=${BIN:-target/release/apiserver-proxy-sidecar}
FLUSHES=${FLUSHES:-20}
IDLE_SECONDS=${IDLE_SECONDS:-60}
BACKENDS=${BACKENDS:-"nft legacy"}
ADDRESS=10.96.0.2

for tool in ip strace "$BIN"; do
    command -v "$tool" >/dev/null || { echo "rules.sh: $tool not found" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/apiserver-proxy-bench-rules.XXXXXX)
export XTABLES_LOCKFILE="$WORK/xtables.lock"
NS=""
PID=""
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    [ -n "$NS" ] && ip netns del "$NS" 2>/dev/null
    [ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# How many of our rules the raw table holds.
ours_in_raw() {
    ip netns exec "$NS" "iptables-$1-save" -t raw | grep -c -- '--comment apiserver-proxy' || true
}

# Waits (at most 15 s) until the raw table holds our three rules again.
wait_for_repair() {
    deadline=$(($(now_ms) + 15000))
    until [ "$(ours_in_raw "$1")" = 3 ]; do
        [ "$(now_ms)" -lt "$deadline" ] || { echo "rules.sh: $1: rules not repaired within 15 s" >&2; exit 1; }
        sleep 0.01
    done
}

printf '%-8s %8s %12s %12s %28s\n' backend flushes "median (ms)" "max (ms)" "iptables processes/idle min"
for backend in $BACKENDS; do
    NS="apbench-rules-$$-$backend"
    ip netns add "$NS"
    ip netns exec "$NS" ip link set lo up
    if [ "$backend" = legacy ]; then
        # What the kubelet leaves on a legacy node; the sidecar's detection follows it.
        ip netns exec "$NS" iptables-legacy -t mangle -N KUBE-IPTABLES-HINT
    fi
    ip netns exec "$NS" "$BIN" --ip-address=$ADDRESS --setup-iptables --sync-interval=1m \
        >"$WORK/$backend.log" 2>&1 &
    PID=$!
    wait_for_repair "$backend"

    : >"$WORK/latency"
    i=0
    while [ $i -lt "$FLUSHES" ]; do
        # A random pause, so flushes fall at every phase of the legacy backend's 5 s poll.
        sleep "$(awk 'BEGIN { srand(); printf "%.2f", 0.2 + rand() * 5 }')"
        start=$(now_ms)
        ip netns exec "$NS" "iptables-$backend" -t raw -F
        wait_for_repair "$backend"
        echo $(($(now_ms) - start)) >>"$WORK/latency"
        i=$((i + 1))
    done
    sort -n "$WORK/latency" >"$WORK/sorted"
    median=$(sed -n "$(((FLUSHES + 1) / 2))p" "$WORK/sorted")
    max=$(tail -n 1 "$WORK/sorted")

    sleep 2 # let the last repair's own events settle before counting
    timeout -s INT "$IDLE_SECONDS" strace -f -qq -e trace=execve -e signal=none \
        -o "$WORK/$backend.strace" -p "$PID" || true
    # Only execve calls that succeeded: each PATH entry tried first fails with ENOENT.
    spawned=$(grep 'execve(.*iptables.* = 0$' "$WORK/$backend.strace" | grep -c . || true)
    per_minute=$((spawned * 60 / IDLE_SECONDS))

    printf '%-8s %8s %12s %12s %28s\n' "$backend" "$FLUSHES" "$median" "$max" "$per_minute"
    if grep -q '^E[0-9]' "$WORK/$backend.log"; then
        echo "rules.sh: $backend: the sidecar logged errors:" >&2
        cat "$WORK/$backend.log" >&2
    fi
    kill "$PID"
    wait "$PID" 2>/dev/null || true
    PID=""
    ip netns del "$NS"
    NS=""
done
