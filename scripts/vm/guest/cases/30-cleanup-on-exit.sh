# --cleanup on SIGTERM removes what this process added: the address and the link it created.
start_sidecar $PRODUCTION --cleanup
wait_for "$ADDR is on $LINK" has_global $ADDR $LINK
check "SIGTERM with --cleanup exits 0" stop_sidecar
check "$ADDR removed" no_address $ADDR
check "the link this process created is deleted" eval '! link_exists $LINK'
note "address and created link removed"
