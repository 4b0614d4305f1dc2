# Gardener's init container: --daemon=false with the production flags. It creates the dummy
# link, sets it up, adds the address with global scope, exits 0, and leaves all of it in place.
check "one-shot exited 0" oneshot $PRODUCTION
check "link $LINK exists" link_exists $LINK
check "link $LINK is a dummy" link_is_dummy $LINK
check "link $LINK is up" link_is_up $LINK
check "$ADDR on $LINK with global scope" has_global $ADDR $LINK
note "dummy link up, $ADDR/32 scope global"
