# A restarted sidecar with a new --ip-address removes the old marked address at start and keeps
# the link; a foreign address on the link is never touched. On a kernel before 5.18 the old
# address carries no mark, so nothing tells it from a foreign one: it stays (--remove-address
# names it, see remove-earlier-address).
NEW=10.96.0.3
check "first one-shot exited 0" oneshot $PRODUCTION
check "$ADDR marked as the kernel keeps marks" address_is_marked_as_kernel_keeps $ADDR
check "$LINK carries our alias" link_is_ours $LINK
ip addr add 192.0.2.7/32 dev $LINK
check "one-shot with --ip-address=$NEW exited 0" oneshot --ip-address=$NEW --interface=$LINK
check "$NEW on $LINK with global scope" has_global $NEW $LINK
check "$NEW marked as the kernel keeps marks" address_is_marked_as_kernel_keeps $NEW
if kernel_keeps_marks; then
  check "the old $ADDR is removed" no_address $ADDR
else
  check "the old, unmarked $ADDR stays" has_global $ADDR $LINK
  ip addr del $ADDR/32 dev $LINK
fi
check "the foreign 192.0.2.7 is kept" has_address 192.0.2.7 $LINK
start_sidecar --ip-address=$ADDR --interface=$LINK
wait_for "a daemon adds $ADDR back" has_global $ADDR $LINK
if kernel_keeps_marks; then
  wait_for "the daemon removes $NEW" no_address $NEW
  note "old marked address removed at start, one-shot and daemon; foreign address kept"
else
  check "the daemon leaves the unmarked $NEW" has_global $NEW $LINK
  note "no marks on this kernel: old address kept, one-shot and daemon; foreign address kept"
fi
check "SIGTERM exits 0" stop_sidecar
