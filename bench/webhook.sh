#!/usr/bin/env bash
# Figures of the pod webhook on loopback: requests/s and latency with keep-alive at 2 and 32
# connections (wrk), new TLS handshakes/s (hey without keep-alive), idle and loaded RSS, and the
# start-up time to the first answered request. Sends the project's sample review.
#
#   bash bench/webhook.sh            # builds release, ~40 s of measuring
#   DURATION=5s bash bench/webhook.sh
#
# Writes target/bench/webhook.md. The load tools run on the same 2 cores as the webhook, so
# the figures are a floor, not a ceiling. Nothing here asserts a figure.
set -euo pipefail
cd "$(dirname "$0")/.."

duration="${DURATION:-8s}"
port="${PORT:-19443}"
url="https://127.0.0.1:${port}/webhook/pod-apiserver-env?timeout=10s"
sample="testdata/admission/pod-create-v1.json"
out="target/bench/webhook.md"
work="$(mktemp -d)"

bash scripts/deps.sh wrk hey curl
cargo build --release -p apiserver-proxy-pod-webhook --quiet
binary="target/release/apiserver-proxy-pod-webhook"

cleanup() {
  [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$pid/status"; }
hwm_kib() { awk '/^VmHWM/ { print $2 }' "/proc/$pid/status"; }

# Start-up: from exec to the first 200 (curl in a tight loop; resolution a few ms).
start=$(now_ms)
"$binary" --apiserver-fqdn=foo.bar. --cert-dir=testdata/certs/server-ecdsa --host=127.0.0.1 \
  --port="$port" 2>"$work/webhook.log" &
pid=$!
until curl -sf -o /dev/null --cacert testdata/certs/ca.crt -H 'Content-Type: application/json' \
  --data-binary "@$sample" "https://localhost:${port}/webhook/pod-apiserver-env"; do
  kill -0 "$pid" || { cat "$work/webhook.log"; exit 1; }
done
startup_ms=$(( $(now_ms) - start ))
sleep 1
idle_rss=$(rss_kib)

cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$sample", "rb")
wrk.body = f:read("*a")
f:close()
LUA

# wrk --latency prints "50%  123.00us" lines; keep req/s, p50 and p99.
keepalive() { # CONNECTIONS
  wrk -t2 -c"$1" -d"$duration" --latency -s "$work/post.lua" "$url" >"$work/wrk-$1.txt"
  local rps p50 p99 errors
  rps=$(awk '/^Requests\/sec/ { printf "%d", $2 }' "$work/wrk-$1.txt")
  p50=$(awk '$1 == "50%" { print $2 }' "$work/wrk-$1.txt")
  p99=$(awk '$1 == "99%" { print $2 }' "$work/wrk-$1.txt")
  errors=$(awk '/Non-2xx|Socket errors/ { print }' "$work/wrk-$1.txt" | tr '\n' ' ')
  echo "| keep-alive, $1 connections | $rps | $p50 | $p99 | ${errors:-none} |"
}

rows=("$(keepalive 2)" "$(keepalive 32)")
loaded_rss=$(hwm_kib)

# Handshakes: hey with keep-alive off opens a new TLS connection (full handshake) per request.
# -host: hey sends its Host header as the TLS server name, and with the port in it rustls refuses
# the name (illegal_parameter), as RFC 6066 says a server name is a bare DNS name.
hey -z "$duration" -c 8 -disable-keepalive -host localhost -m POST -T application/json \
  -D "$sample" "$url" \
  >"$work/hey.txt"
handshakes=$(awk '/Requests\/sec/ { printf "%d", $2 }' "$work/hey.txt")
hs_p50=$(awk '/ 50% in/ { print $3 * 1000 "ms" }' "$work/hey.txt")
hs_p99=$(awk '/ 99% in/ { print $3 * 1000 "ms" }' "$work/hey.txt")
hs_codes=$(awk '/\[[0-9]+\][ \t]+[0-9]+ responses/ { printf "%s %s; ", $1, $2 }' "$work/hey.txt")
rows+=("| new TLS connection per request (ECDSA P-256), 8 clients | $handshakes | $hs_p50 | $hs_p99 | status ${hs_codes}|")
after_rss=$(hwm_kib)

mkdir -p "$(dirname "$out")"
{
  echo "| load (seed sample review over TLS, loopback, 2 cores shared with the load tool) | requests/s | p50 | p99 | errors |"
  echo "| --- | ---: | ---: | ---: | --- |"
  printf '%s\n' "${rows[@]}"
  echo
  echo "| memory and start-up | value |"
  echo "| --- | ---: |"
  echo "| RSS idle | $(( idle_rss / 1024 )).$(( idle_rss % 1024 * 10 / 1024 )) MiB |"
  echo "| RSS peak under keep-alive load | $(( loaded_rss / 1024 )).$(( loaded_rss % 1024 * 10 / 1024 )) MiB |"
  echo "| RSS peak after the handshake load | $(( after_rss / 1024 )).$(( after_rss % 1024 * 10 / 1024 )) MiB |"
  echo "| start-up to first answered request | ${startup_ms} ms |"
  echo "| release binary size | $(( $(stat -c %s "$binary") / 1024 )) KiB |"
} >"$out"
cat "$out"
