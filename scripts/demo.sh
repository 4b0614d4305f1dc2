#!/usr/bin/env bash
# The main job, shown, without Kubernetes, in a throwaway network namespace: the sidecar keeps the
# proxy address and its iptables rules, a stand-in proxy listens on the address, a deletion is
# repaired; the pod webhook (test certificates from testdata/certs) patches the sample Pod; and
# cleanup leaves nothing behind.
#
#   demo.sh           the tour, then exits 0
#   demo.sh --serve   the tour, then both programs keep running until Ctrl-C
#
# On exit, Ctrl-C or any failure it removes the namespace and every process in it (and with the
# namespace, every rule the sidecar wrote there).
set -euo pipefail
cd "$(dirname "$0")/.."

SERVE=false
case "${1:-}" in
  --serve) SERVE=true ;;
  "") ;;
  *) echo "usage: $0 [--serve]" >&2; exit 2 ;;
esac

BIN=${BIN:-target/release}
ADDRESS=10.96.0.2
METRICS=127.0.0.1:9090
WEBHOOK_PORT=9443
FQDN=foo.bar.
NS="apiserver-proxy-demo-$$"
WORK=$(mktemp -d)

# Stops every process in the namespace as an operator would: SIGTERM, and time to finish (the
# webhook serves on for its 5 s shutdown delay, then drains); SIGKILL only for what is still
# there after 20 s (the delay plus the 10 s grace, and some).
cleanup() {
  ip netns pids "$NS" 2>/dev/null | xargs -r kill -TERM 2>/dev/null || true
  for _ in $(seq 1 200); do
    [ -z "$(ip netns pids "$NS" 2>/dev/null)" ] && break
    sleep 0.1
  done
  ip netns pids "$NS" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
in_ns() { ip netns exec "$NS" "$@"; }
present() { in_ns ip addr show dev lo | grep -q "$ADDRESS/32"; }
our_rules() { in_ns iptables-save | grep -e '--comment apiserver-proxy' || true; }
wait_for() { for _ in $(seq 1 1000); do if "$@"; then return 0; fi; sleep 0.005; done; return 1; }
webhook_serves() { grep -q "serving https://" "$WORK/webhook.log"; }
review() {
  in_ns curl -sS --cacert testdata/certs/ca.crt -H 'Content-Type: application/json' \
    --data-binary @testdata/admission/pod-create-v1.json \
    "https://localhost:$WEBHOOK_PORT/webhook/pod-apiserver-env"
}

if [ "$(id -u)" -ne 0 ]; then
  echo "demo: needs root to create a network namespace" >&2
  exit 1
fi

step "a throwaway network namespace: $NS"
ip netns add "$NS"
in_ns ip link set lo up

step "apiserver-proxy-sidecar --ip-address=$ADDRESS --setup-iptables --cleanup --metrics-bind-address=$METRICS --v=2"
# Not through in_ns: a backgrounded function would make $! a subshell, not the sidecar.
ip netns exec "$NS" "$BIN/apiserver-proxy-sidecar" --ip-address="$ADDRESS" --setup-iptables \
  --cleanup --metrics-bind-address="$METRICS" --v=2 2>"$WORK/sidecar.log" &
SIDECAR=$!
wait_for present
in_ns ip -d addr show dev lo | grep -E "inet6? " | sed 's/^/  /'
wait_for sh -c "[ \$(ip netns exec $NS iptables-save | grep -c -e '--comment apiserver-proxy') -eq 5 ]"
echo "  the five conntrack-bypass rules (iptables-save):"
our_rules | sed 's/^/  /'

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

step "apiserver-proxy-pod-webhook --apiserver-fqdn=$FQDN --cert-dir=testdata/certs/server-ecdsa (TLS, test CA)"
ip netns exec "$NS" "$BIN/apiserver-proxy-pod-webhook" --apiserver-fqdn="$FQDN" \
  --cert-dir=testdata/certs/server-ecdsa --host=127.0.0.1 --port="$WEBHOOK_PORT" --v=2 \
  2>"$WORK/webhook.log" &
WEBHOOK=$!
wait_for webhook_serves
echo "  POST testdata/admission/pod-create-v1.json (a Pod CREATE) -> the answer:"
answer=$(review)
echo "$answer" | jq -c '.response | .patch = "<base64>"' | sed 's/^/  /'
echo "  the patch, decoded:"
echo "$answer" | jq -r .response.patch | base64 -d | jq . | sed 's/^/  /'

if $SERVE; then
  step "serving until Ctrl-C; in another shell, as root:"
  cat <<EOF
  ip netns exec $NS ip addr show dev lo
  ip netns exec $NS iptables-save | grep apiserver-proxy
  ip netns exec $NS ip addr del $ADDRESS/32 dev lo      # repaired at once
  ip netns exec $NS curl -s http://$METRICS/metrics     # also /healthz, /readyz
  ip netns exec $NS curl -s --cacert $PWD/testdata/certs/ca.crt -H 'Content-Type: application/json' \\
    --data-binary @$PWD/testdata/admission/pod-create-v1.json \\
    https://localhost:$WEBHOOK_PORT/webhook/pod-apiserver-env | jq -r .response.patch | base64 -d | jq .
  logs: $WORK/sidecar.log $WORK/webhook.log
EOF
  # Ctrl-C is how a person ends it: a clean exit (the EXIT trap cleans up).
  trap 'echo; echo "demo: stopping; removing the namespace"; exit 0' INT TERM
  # Returns when a signal's trap runs, or if the sidecar dies.
  wait "$SIDECAR"
  echo "demo: the sidecar exited; its log:" >&2
  tail -5 "$WORK/sidecar.log" >&2
  exit 1
fi

step "SIGTERM to the webhook: it serves on for its shutdown delay (5 s), then exits"
started=$(date +%s%N)
kill -TERM "$WEBHOOK"
wait "$WEBHOOK" && status=0 || status=$?
echo "  exited $status after $(( ($(date +%s%N) - started) / 1000000 )) ms"
grep -E "shutting down|stopped|shutdown" "$WORK/webhook.log" | tail -2 | sed 's/^/  log: /'

step "SIGTERM: --cleanup removes what the sidecar added"
kill -TERM "$SIDECAR"
wait "$SIDECAR"
if present; then echo "  address still there!"; exit 1; fi
if [ -n "$(our_rules)" ]; then echo "  rules still there!"; exit 1; fi
echo "  address and rules gone; lo keeps $(in_ns ip -4 addr show dev lo | awk '/inet /{print $2}' | tr '\n' ' ')"
tail -2 "$WORK/sidecar.log" | sed 's/^/  log: /'

step "done: the namespace and every process in it are removed on exit"
