# gardener/gardener#14440: after an --ip-address change the Go original's unmarked 10.96.0.2 stays
# unless --remove-address names it; named, it goes from every link whoever added it, also when
# put back while the old sidecar still runs during the rollout.
NEW=10.96.0.3
ip addr add $ADDR/32 dev lo scope global
ip link add v0 type veth peer name v1
ip link set v0 up
ip addr add $ADDR/32 dev v0
check "one-shot with --ip-address=$NEW exited 0" oneshot --ip-address=$NEW --interface=lo
check "without --remove-address the unmarked $ADDR stays" has_address $ADDR lo
check "--remove-address naming an --ip-address exits 2" \
  eval "apiserver-proxy-sidecar --daemon=false --ip-address=$NEW --remove-address=$NEW >>$LOG 2>&1; [ \$? -eq 2 ]"
start_sidecar --ip-address=$NEW --interface=lo --remove-address=$ADDR --sync-interval=1s
wait_for "$ADDR is gone from lo and v0" no_address $ADDR
check "$NEW on lo with global scope" has_global $NEW lo
check "$NEW marked as the kernel keeps marks" address_is_marked_as_kernel_keeps $NEW
ip addr add $ADDR/32 dev lo scope global
wait_for "$ADDR, put back, is gone again at the next sync" no_address $ADDR
check "SIGTERM exits 0" stop_sidecar
note "unmarked $ADDR kept unless named; named, removed from lo and a veth, and again when put back"
