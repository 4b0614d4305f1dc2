# Moved back to --interface=lo: the address goes to lo, and our dummy link, empty now, is deleted.
check "one-shot on $LINK exited 0" oneshot $PRODUCTION
check "$LINK carries our alias" link_is_ours $LINK
check "one-shot on lo exited 0" oneshot --ip-address=$ADDR --interface=lo
check "$ADDR on lo with global scope" has_global $ADDR lo
check "$ADDR no longer on $LINK" eval "! has_address $ADDR $LINK"
check "our empty link $LINK is deleted" eval "! link_exists $LINK"
note "address moved to lo, our empty dummy deleted"
