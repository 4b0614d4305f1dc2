# A link set down: the daemon sets it up again, on the event.
start_sidecar $PRODUCTION
wait_for "$LINK is up" link_is_up $LINK
for _ in $(seq $REPAIRS); do
  monitor_start
  ip link set $LINK down
  wait_for "$LINK is up again" link_is_up $LINK || break
  check "$ADDR still on $LINK" has_global $ADDR $LINK
  latency_sample "^\[[^]]*\] [0-9]+: $LINK: <" "^\[[^]]*\] [0-9]+: $LINK: <([A-Z_]+,)*UP[,>]" || break
done
report_latency link-down "repair after ip link set down"
