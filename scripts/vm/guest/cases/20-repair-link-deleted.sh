# A deleted link: the daemon creates it again, sets it up and adds the address, on the event.
# Timed from the first deletion event to the address back.
start_sidecar $PRODUCTION
wait_for "$ADDR is on $LINK" has_global $ADDR $LINK
for _ in $(seq $REPAIRS); do
  monitor_start
  ip link del $LINK
  wait_for "$ADDR is back on $LINK" has_global $ADDR $LINK || break
  check "link $LINK is a dummy again" link_is_dummy $LINK
  check "link $LINK is up again" link_is_up $LINK
  latency_sample "^\[[^]]*\] Deleted " "^\[[^]]*\] [0-9]+: $LINK +inet $ADDR/32" || break
done
report_latency link-deleted "repair after ip link del"
