# Gardener's Pod start: the init container's one-shot, then the daemon with the same flags. The
# daemon finds the address the one-shot added, ours, so its start sync changes nothing and says
# nothing of an adoption: also on a kernel before 5.18, which keeps no address protocol, so the
# address comes back unmarked (issue 25: the daemon used to "adopt" it at every Pod start and
# warn that the kernel did not keep our protocol).
METRICS=127.0.0.1:9100
metrics() { wget -q -O - "http://$METRICS/metrics"; }
start_synced() { metrics | grep -q '^apiserver_proxy_sidecar_syncs_total{.*trigger="start".*} 1'; }
address_repairs() { metrics | sed -n 's/^apiserver_proxy_sidecar_repairs_total{kind="address"} //p'; }
check "one-shot exited 0" oneshot $PRODUCTION
start_sidecar $PRODUCTION --metrics-bind-address=$METRICS
wait_for "the daemon's start sync is counted" start_synced
repairs=$(address_repairs)
[ "$repairs" = 0 ] || fail "the daemon's start sync counted ${repairs:-no} address repairs, expected 0"
check "$ADDR on $LINK with global scope" has_global $ADDR $LINK
check "SIGTERM exits 0" stop_sidecar
check "no adoption logged" eval "! grep -q 'marked it' $LOG"
check "no warning that the kernel did not keep our protocol" eval "! grep -q 'did not keep our address protocol' $LOG"
if kernel_keeps_marks; then
  note "one-shot then daemon: nothing repaired, nothing adopted"
else
  note "one-shot then daemon: nothing repaired, nothing adopted, though the kernel keeps no mark"
fi
