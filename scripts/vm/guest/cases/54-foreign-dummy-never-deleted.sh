# A dummy link without our alias is never deleted: not by a later cleanup, not on a move to lo,
# even when it holds nothing.
ip link add $LINK type dummy
ip link set $LINK up
check "one-shot on the foreign $LINK exited 0" oneshot $PRODUCTION
check "the foreign link did not get our alias" eval "! link_is_ours $LINK"
check "a later --cleanup exited 0" oneshot --cleanup $PRODUCTION
check "the foreign link survives a later cleanup" link_exists $LINK
check "one-shot on $LINK again exited 0" oneshot $PRODUCTION
check "one-shot on lo exited 0" oneshot --ip-address=$ADDR --interface=lo
check "the foreign link survives a move to lo, empty" link_exists $LINK
check "$ADDR left it" eval "! has_address $ADDR $LINK"
note "foreign dummy kept by a later cleanup and a move to lo"
