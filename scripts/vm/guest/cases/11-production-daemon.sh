# Gardener's sidecar: the production flags as a daemon. Same state as the one-shot; SIGTERM
# without --cleanup exits 0 and leaves the address for the node's proxy.
start_sidecar $PRODUCTION
wait_for "$ADDR is on $LINK" has_global $ADDR $LINK
check "link $LINK is a dummy" link_is_dummy $LINK
check "link $LINK is up" link_is_up $LINK
check "the daemon keeps running" running
check "SIGTERM exits 0" stop_sidecar
check "without --cleanup $ADDR stays" has_global $ADDR $LINK
note "dummy link up, $ADDR/32 scope global, kept after SIGTERM"
