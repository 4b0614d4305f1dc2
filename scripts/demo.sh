#!/usr/bin/env bash
# The main job, shown: the sidecar keeps the proxy address in a throwaway network namespace, a
# stand-in proxy listens on it, a deletion is repaired, and cleanup leaves nothing behind.
# Exits 0 by itself; on Ctrl-C or any failure it still removes the namespace and processes.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-target/release}
ADDRESS=10.96.0.2
NS="apiserver-proxy-demo-$$"
WORK=$(mktemp -d)

cleanup() {
  ip netns pids "$NS" 2>/dev/null | xargs -r kill -TERM 2>/dev/null || true
  sleep 0.2
  ip netns pids "$NS" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
in_ns() { ip netns exec "$NS" "$@"; }
present() { in_ns ip addr show dev lo | grep -q "$ADDRESS/32"; }
wait_for() { for _ in $(seq 1 1000); do if "$@"; then return 0; fi; sleep 0.005; done; return 1; }

if [ "$(id -u)" -ne 0 ]; then
  echo "demo: needs root to create a network namespace" >&2
  exit 1
fi

step "a throwaway network namespace: $NS"
ip netns add "$NS"
in_ns ip link set lo up

step "apiserver-proxy-sidecar --ip-address=$ADDRESS --cleanup --v=2"
# Not through in_ns: a backgrounded function would make $! a subshell, not the sidecar.
ip netns exec "$NS" "$BIN/apiserver-proxy-sidecar" --ip-address="$ADDRESS" --cleanup --v=2 2>"$WORK/sidecar.log" &
SIDECAR=$!
wait_for present
in_ns ip -d addr show dev lo | grep -E "inet6? " | sed 's/^/  /'

step "a stand-in proxy listens on $ADDRESS:443; a client reaches it"
in_ns python3 -m http.server --bind "$ADDRESS" 443 --directory "$WORK" >/dev/null 2>&1 &
wait_for in_ns sh -c "curl -s -o /dev/null http://$ADDRESS:443/"
echo "  GET http://$ADDRESS:443/ -> HTTP $(in_ns curl -s -o /dev/null -w '%{http_code}' "http://$ADDRESS:443/")"

step "someone deletes the address; the sidecar puts it back at once"
in_ns ip addr del "$ADDRESS/32" dev lo
started=$(date +%s%N)
wait_for present
echo "  back after $(( ($(date +%s%N) - started) / 1000 )) µs (as seen by polling; the original waits up to 60 s)"
grep -E "was missing" "$WORK/sidecar.log" | tail -1 | sed 's/^/  log: /'

step "SIGTERM: --cleanup removes what the sidecar added"
kill -TERM "$SIDECAR"
wait "$SIDECAR"
if present; then echo "  address still there!"; exit 1; fi
echo "  address gone; lo keeps $(in_ns ip -4 addr show dev lo | awk '/inet /{print $2}' | tr '\n' ' ')"
tail -2 "$WORK/sidecar.log" | sed 's/^/  log: /'

step "done: the namespace and every process in it are removed on exit"
