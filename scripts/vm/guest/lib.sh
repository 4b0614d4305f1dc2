# Shared by every case (sourced, under dash, in the case's own network namespace): the flags
# Gardener runs the sidecar with, checks that collect failures, the sidecar in the background,
# polling, and repair latencies read from `ip -ts monitor` timestamps.

ADDR=10.96.0.2
LINK=apiserver-proxy
# Gardener's production flags (no --setup-iptables); --daemon=false in its init container.
PRODUCTION="--ip-address=$ADDR --interface=$LINK"
LOG=/tmp/sidecar-$$.log
MONITOR=/tmp/monitor-$$.log
failures=""
notes=""
sidecar_pid=""
monitor_pid=""
timed_out=""

fail() { failures="${failures:+$failures; }$*"; }
note() { notes="${notes:+$notes; }$*"; }

# check WHAT COMMAND...: fails the case with WHAT unless COMMAND succeeds.
check() {
  what=$1
  shift
  "$@" >/dev/null 2>&1 || fail "$what"
}

# uptime_cs: the guest's uptime in hundredths of a second, without a process.
uptime_cs() {
  read -r up _ </proc/uptime
  echo "${up%.*}${up#*.}"
}

# wait_for WHAT COMMAND...: polls every 10 ms until COMMAND succeeds, for at most 30 s of the
# guest's time (the bound only keeps a broken case from hanging; an emulated guest on a loaded
# machine has taken 11 s from the sidecar's start to its first sync). After one wait of a case timed
# out, the case's later waits give up at once: its state is wrong anyway, and the first failure
# is the one to read.
wait_for() {
  what=$1
  shift
  [ -n "$timed_out" ] && return 1
  deadline=$(($(uptime_cs) + 3000))
  until "$@" >/dev/null 2>&1; do
    if [ "$(uptime_cs)" -ge $deadline ]; then
      fail "timed out waiting until $what"
      timed_out=1
      return 1
    fi
    sleep 0.01
  done
}

# === what the kernel holds ===

link_exists() { ip link show dev "$1"; }
link_is_dummy() { ip -d -o link show dev "$1" | grep -q ' dummy '; }
link_is_up() { ip -o link show dev "$1" | grep -q '[<,]UP[,>]'; }
link_alias() { ip -o link show dev "$1" | sed -n 's/.* alias \(.*\)$/\1/p' | sed 's/\\$//; s/ *$//'; }
# has_global ADDRESS DEVICE: the address on the device, with global scope, as /32 or /128.
has_global() { ip -o addr show dev "$2" scope global | grep -qE " $1/(32|128) "; }
has_address() { ip -o addr show dev "$2" | grep -qF " $1/"; }
no_address() { ! ip -o addr show | grep -qF " $1/"; }
# rule_count TOOL: how many of our rules (marked with our comment) `TOOL` (a -save) lists.
rule_count() { "$1" 2>/dev/null | grep -c -- '--comment apiserver-proxy'; }
rules_are() { [ "$(rule_count "$1")" -eq "$2" ]; }

# === the sidecar ===

# oneshot ARGS...: runs the sidecar with --daemon=false; its exit status.
oneshot() {
  apiserver-proxy-sidecar --daemon=false "$@" >>"$LOG" 2>&1
}

start_sidecar() {
  apiserver-proxy-sidecar "$@" >>"$LOG" 2>&1 &
  sidecar_pid=$!
}

# stop_sidecar: SIGTERM, then its exit status.
stop_sidecar() {
  kill -TERM "$sidecar_pid"
  wait "$sidecar_pid"
  status=$?
  sidecar_pid=""
  return $status
}

running() { kill -0 "$sidecar_pid" 2>/dev/null; }

# === repair latency ===

# monitor_start: `ip -ts monitor` of links and addresses, running once it has seen a change
# (a probe address on lo, added and deleted until it shows: the subscription takes a moment).
monitor_start() {
  # Both this and the marker below append, so neither overwrites the other.
  : >"$MONITOR"
  ip -ts monitor link address >>"$MONITOR" 2>&1 &
  monitor_pid=$!
  tries=0
  until grep -q 127.0.0.99 "$MONITOR"; do
    tries=$((tries + 1))
    if [ $tries -ge 200 ]; then
      fail "ip monitor never reported a change"
      return 1
    fi
    ip addr add 127.0.0.99/32 dev lo
    ip addr del 127.0.0.99/32 dev lo
    sleep 0.05
  done
  echo "--- start" >>"$MONITOR"
}

# latency_sample FROM TO: stops the monitor and adds to $samples the time from the first event
# line matching FROM (after the start marker) to the first later one matching TO (extended
# regular expressions, passed through the environment: awk -v would eat their backslashes).
samples=""
latency_sample() {
  kill "$monitor_pid" 2>/dev/null
  wait "$monitor_pid" 2>/dev/null
  ms=$(FROM="$1" TO="$2" awk '
    /^--- start/ { started = 1; next }
    !started || !/^\[/ { next }
    { split(substr($1, 13, 15), t, ":"); now = t[1] * 3600 + t[2] * 60 + t[3] }
    !seen && $0 ~ ENVIRON["FROM"] { seen = 1; begin = now; next }
    seen && $0 ~ ENVIRON["TO"] { printf "%.1f", (now - begin) * 1000; exit }
  ' "$MONITOR")
  if [ -z "$ms" ]; then
    fail "no events from /$1/ to /$2/ in ip monitor's log"
    sed 's/^/  monitor: /' "$MONITOR"
    return 1
  fi
  samples="$samples $ms"
}

# report_latency FIGURE WHAT: the median and maximum of $samples as a FIGURE line
# (`FIGURE name median max what`), and a note.
report_latency() {
  [ -z "$samples" ] && return
  set -- "$1" "$2" $(echo $samples | tr ' ' '\n' | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)], v[NR], NR }')
  echo "FIGURE $1 $3 $4 $2"
  note "$2: median $3 ms, max $4 ms of $5"
}

# REPAIRS: how many times each repair case breaks and measures.
REPAIRS=5

# finish: the case's verdict line; on failure the sidecar's last log lines too.
finish() {
  [ -n "$sidecar_pid" ] && kill -KILL "$sidecar_pid" 2>/dev/null
  if [ -n "$failures" ]; then
    echo "CASE $CASE: FAIL $failures"
    [ -f "$LOG" ] && tail -n 20 "$LOG" | sed 's/^/  sidecar: /'
    return 1
  fi
  echo "CASE $CASE: PASS $notes"
}

# === ownership marks ===

# The address protocol (IFA_PROTO) the sidecar marks every address it adds with: 97, the value
# the ownership work picked (adapters' netlink address module, --help of --ip-address).
OUR_ADDRESS_PROTO=97
# The alias (IFLA_IFALIAS) on every link the sidecar creates; `ip link show` prints it.
OUR_LINK_ALIAS=apiserver-proxy

# address_proto ADDRESS: its IFA_PROTO (0: none), read over rtnetlink by addr-proto, since
# bookworm's iproute2 6.1 cannot show it.
address_proto() { addr-proto | awk -v a="$1" '$1 == a { print $2; exit }'; }
# kernel_keeps_marks: whether this kernel keeps an address's protocol (IFA_PROTO: Linux 5.18 and
# later). Before, every address comes back unmarked, ours too, and cannot be told from anyone
# else's (docs/architecture.md#ownership): the cases expect that there.
kernel_keeps_marks() {
  release=$(uname -r)
  major=${release%%.*}
  minor=${release#*.}
  minor=${minor%%.*}
  [ "$major" -gt 5 ] || { [ "$major" -eq 5 ] && [ "$minor" -ge 18 ]; }
}
# address_is_marked_as_kernel_keeps ADDRESS: ours where the kernel keeps marks, else unmarked.
address_is_marked_as_kernel_keeps() {
  if kernel_keeps_marks; then address_is_ours "$1"; else [ "$(address_proto "$1")" = 0 ]; fi
}
address_is_ours() { [ -n "$OUR_ADDRESS_PROTO" ] && [ "$(address_proto "$1")" = "$OUR_ADDRESS_PROTO" ]; }
address_is_not_ours() { [ "$(address_proto "$1")" != "$OUR_ADDRESS_PROTO" ]; }
link_is_ours() { [ "$(link_alias "$1")" = "$OUR_LINK_ALIAS" ]; }
