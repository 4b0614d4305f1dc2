# Moved back to lo while our link holds a foreign address: the link is kept, with that address,
# until a later run finds it empty.
check "one-shot on $LINK exited 0" oneshot $PRODUCTION
ip addr add 192.0.2.7/32 dev $LINK
check "one-shot on lo exited 0" oneshot --ip-address=$ADDR --interface=lo
check "$ADDR on lo" has_global $ADDR lo
check "$ADDR no longer on $LINK" eval "! has_address $ADDR $LINK"
check "our link holding a foreign address is kept" link_exists $LINK
check "the foreign address is kept" has_address 192.0.2.7 $LINK
ip addr del 192.0.2.7/32 dev $LINK
check "a later one-shot on lo exited 0" oneshot --ip-address=$ADDR --interface=lo
check "then the empty link is deleted" eval "! link_exists $LINK"
note "link kept while it held 192.0.2.7, deleted once empty"
