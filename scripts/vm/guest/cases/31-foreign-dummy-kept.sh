# A dummy link that was there before (someone else's): the sidecar uses it, and neither its
# cleanup on SIGTERM nor a one-shot --cleanup ever deletes it.
ip link add $LINK type dummy
start_sidecar $PRODUCTION --cleanup
wait_for "$ADDR is on $LINK" has_global $ADDR $LINK
check "SIGTERM with --cleanup exits 0" stop_sidecar
check "$ADDR removed" no_address $ADDR
check "the foreign link survives the daemon's cleanup" link_exists $LINK
check "one-shot with --cleanup exits 0" oneshot $PRODUCTION --cleanup
check "the foreign link survives a one-shot cleanup" link_exists $LINK
note "foreign $LINK kept by both cleanups"
