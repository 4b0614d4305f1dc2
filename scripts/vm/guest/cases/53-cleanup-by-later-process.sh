# --daemon=false --cleanup removes the marked address and the marked link an earlier process
# created (the init container's leftovers after the daemon was SIGKILLed, say).
check "first one-shot exited 0" oneshot $PRODUCTION
check "a later --daemon=false --cleanup exited 0" apiserver-proxy-sidecar --daemon=false --cleanup $PRODUCTION
check "$ADDR removed" no_address $ADDR
check "the marked link of the earlier process is deleted" eval "! link_exists $LINK"
start_sidecar $PRODUCTION
wait_for "a daemon adds $ADDR" has_global $ADDR $LINK
kill -KILL $sidecar_pid; wait $sidecar_pid; sidecar_pid=""
check "after SIGKILL, a later cleanup exited 0" oneshot --cleanup $PRODUCTION
check "and removed the address" no_address $ADDR
check "and the link" eval "! link_exists $LINK"
note "a later process cleans up an earlier one's marked address and link"
