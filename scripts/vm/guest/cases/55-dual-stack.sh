# --ip-address=10.96.0.2,fd00::2: both addresses on the link with global scope, marked, the
# rules in both families (nft here, then legacy), repaired, all removed by cleanup.
V6=fd00::2
DUAL="--ip-address=$ADDR,$V6 --interface=$LINK --setup-iptables --cleanup"
for backend in nft legacy; do
  [ $backend = legacy ] && iptables-legacy -t mangle -N KUBE-IPTABLES-HINT
  start_sidecar $DUAL
  wait_for "$ADDR on $LINK ($backend)" has_global $ADDR $LINK
  wait_for "$V6 on $LINK ($backend)" has_global $V6 $LINK
  check "$ADDR marked as the kernel keeps marks" address_is_marked_as_kernel_keeps $ADDR
  check "$V6 marked as the kernel keeps marks" address_is_marked_as_kernel_keeps $V6
  wait_for "five IPv4 rules in $backend" rules_are iptables-$backend-save 5
  wait_for "five IPv6 rules in $backend" rules_are ip6tables-$backend-save 5
  ip addr del $V6/128 dev $LINK
  wait_for "$V6 back after ip addr del ($backend)" has_global $V6 $LINK
  ip6tables-$backend -t raw -F
  wait_for "IPv6 rules back after a flush ($backend)" rules_are ip6tables-$backend-save 5
  check "SIGTERM with --cleanup exits 0 ($backend)" stop_sidecar
  check "$ADDR removed ($backend)" no_address $ADDR
  check "$V6 removed ($backend)" no_address $V6
  check "no IPv4 rules left ($backend)" rules_are iptables-$backend-save 0
  check "no IPv6 rules left ($backend)" rules_are ip6tables-$backend-save 0
done
note "both families' addresses and rules, nft and legacy, repaired and cleaned up"
