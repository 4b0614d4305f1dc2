# A deleted address: the daemon adds it again, on the event.
start_sidecar $PRODUCTION
wait_for "$ADDR is on $LINK" has_global $ADDR $LINK
for _ in $(seq $REPAIRS); do
  monitor_start
  ip addr del $ADDR/32 dev $LINK
  wait_for "$ADDR is back on $LINK" has_global $ADDR $LINK || break
  latency_sample "Deleted .*inet $ADDR/32" "^\[[^]]*\] [0-9]+: $LINK +inet $ADDR/32" || break
done
report_latency address-deleted "repair after ip addr del"
