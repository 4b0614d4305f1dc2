# A restarted sidecar with a new --ip-address removes the old marked address at start and keeps
# the link; a foreign address on the link is never touched.
NEW=10.96.0.3
check "first one-shot exited 0" oneshot $PRODUCTION
check "$ADDR carries our protocol mark" address_is_ours $ADDR
check "$LINK carries our alias" link_is_ours $LINK
ip addr add 192.0.2.7/32 dev $LINK
check "one-shot with --ip-address=$NEW exited 0" oneshot --ip-address=$NEW --interface=$LINK
check "$NEW on $LINK with global scope" has_global $NEW $LINK
check "$NEW carries our protocol mark" address_is_ours $NEW
check "the old $ADDR is removed" no_address $ADDR
check "the foreign 192.0.2.7 is kept" has_address 192.0.2.7 $LINK
start_sidecar --ip-address=$ADDR --interface=$LINK
wait_for "a daemon adds $ADDR back" has_global $ADDR $LINK
wait_for "the daemon removes $NEW" no_address $NEW
check "SIGTERM exits 0" stop_sidecar
note "old marked address removed at start, one-shot and daemon; foreign address kept"
