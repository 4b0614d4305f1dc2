# --setup-iptables on a node whose iptables is nf_tables (bookworm's default): the five rules in
# nf_tables, a flush of raw repaired on the nf_tables event, cleanup removing them.
start_sidecar $PRODUCTION --setup-iptables --cleanup
wait_for "five rules in nf_tables" rules_are iptables-nft-save 5
check "$ADDR on $LINK" has_global $ADDR $LINK
check "none in legacy" rules_are iptables-legacy-save 0
iptables-nft -t raw -F
wait_for "the rules are back after a flush of raw" rules_are iptables-nft-save 5
check "SIGTERM with --cleanup exits 0" stop_sidecar
check "no rules of ours left" rules_are iptables-nft-save 0
check "$ADDR removed" no_address $ADDR
note "5 rules in nf_tables, flush repaired, cleaned up"
