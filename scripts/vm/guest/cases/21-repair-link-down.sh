# A link set down: the daemon sets it up again, on the event.
start_sidecar $PRODUCTION
wait_for "$LINK is up" link_is_up $LINK
monitor_start
ip link set $LINK down
wait_for "$LINK is up again" link_is_up $LINK
check "$ADDR still on $LINK" has_global $ADDR $LINK
latency link-down "repair after ip link set down" "^\[[^]]*\] [0-9]+: $LINK: <([A-Z_]+,)*[A-Z_]+>" "^\[[^]]*\] [0-9]+: $LINK: <([A-Z_]+,)*UP[,>]"
