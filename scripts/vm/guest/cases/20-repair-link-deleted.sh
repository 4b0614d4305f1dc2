# A deleted link: the daemon creates it again, sets it up and adds the address, on the event.
start_sidecar $PRODUCTION
wait_for "$ADDR is on $LINK" has_global $ADDR $LINK
monitor_start
ip link del $LINK
wait_for "$ADDR is back on $LINK" has_global $ADDR $LINK
check "link $LINK is a dummy again" link_is_dummy $LINK
check "link $LINK is up again" link_is_up $LINK
latency link-deleted "repair after ip link del (first deletion event to address back)" "^\[[^]]*\] Deleted " "^\[[^]]*\] [0-9]+: $LINK +inet $ADDR/32"
