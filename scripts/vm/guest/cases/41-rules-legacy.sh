# --setup-iptables on a node whose kubelet uses legacy xtables (its hint chain in legacy mangle):
# the five rules in legacy, none in nf_tables, a flush repaired by the poll, cleanup.
iptables-legacy -t mangle -N KUBE-IPTABLES-HINT
start_sidecar $PRODUCTION --setup-iptables --cleanup
wait_for "five rules in legacy" rules_are iptables-legacy-save 5
check "none in nf_tables" rules_are iptables-nft-save 0
iptables-legacy -t raw -F
wait_for "the rules are back after a flush of raw" rules_are iptables-legacy-save 5
check "SIGTERM with --cleanup exits 0" stop_sidecar
check "no rules of ours left" rules_are iptables-legacy-save 0
check "the kubelet's hint chain kept" eval 'iptables-legacy-save -t mangle | grep -q KUBE-IPTABLES-HINT'
note "5 rules in legacy xtables, flush repaired, cleaned up"
