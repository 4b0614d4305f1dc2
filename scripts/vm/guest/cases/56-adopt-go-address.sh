# The Go original's address on lo: `ip addr add 10.96.0.2/32 dev lo scope global` (iproute2, like
# the original's netlink library, sends no IFA_PROTO), then the host scope its older versions
# used. The sidecar with the same --ip-address adopts it: our mark, global scope, and lo holds the
# address after every event of the adoption (its /32 and the bridge /31 counted apart, so the
# notification of a replace counts nothing twice). Then issue 20's walk-through: once adopted, a
# changed --ip-address collects it like any address of ours.

# lo_never_without_it: replays the monitor's address events of $ADDR since the start marker.
lo_never_without_it() {
  present=" /32 "
  sed -n '/^--- start/,$p' "$MONITOR" | grep -F " $ADDR/" | while read -r line; do
    prefix="/${line#* $ADDR/}"
    prefix="${prefix%% *}"
    case "$line" in
      *Deleted*) present=$(echo "$present" | sed "s| $prefix ||") ;;
      # A replace notifies the copy that is there: a set, not a count.
      *) case "$present" in *" $prefix "*) ;; *) present="$present $prefix " ;; esac ;;
    esac
    [ -n "$(echo $present)" ] || { echo "nowhere after: $line"; exit 1; }
  done
}

adopt() {
  scope=$1
  ip addr add $ADDR/32 dev lo scope "$scope"
  check "the Go original's $ADDR ($scope scope) is unmarked" address_is_not_ours $ADDR
  monitor_start
  check "one-shot with --ip-address=$ADDR --interface=lo exited 0 ($scope scope before)" \
    oneshot --ip-address=$ADDR --interface=lo
  # A sentinel after the one-shot: once the monitor shows it, it has shown every earlier event.
  ip addr add 10.0.0.77/32 dev lo
  wait_for "the monitor shows the sentinel" grep -q 10.0.0.77 "$MONITOR"
  kill "$monitor_pid" 2>/dev/null
  wait "$monitor_pid" 2>/dev/null
  ip addr del 10.0.0.77/32 dev lo
  check "$ADDR ($scope scope before) carries our mark" address_is_ours $ADDR
  check "$ADDR ($scope scope before) on lo with global scope" has_global $ADDR lo
  check "no bridge $ADDR/31 left ($scope scope before)" eval "! ip -o addr show dev lo | grep -qF ' $ADDR/31 '"
  check "lo held $ADDR after every event ($scope scope before)" lo_never_without_it
  removals=$(sed -n '/^--- start/,$p' "$MONITOR" | grep -c "Deleted.* $ADDR/32 ")
  if [ "$removals" -eq 0 ]; then
    note "$scope: marked in place by replace"
  else
    note "$scope: through the bridge"
  fi
  ip addr del $ADDR/32 dev lo
}

adopt global
adopt host
ip addr add $ADDR/32 dev lo scope global
check "one-shot adopting the Go original's $ADDR exited 0" oneshot --ip-address=$ADDR --interface=lo
check "one-shot with --ip-address=10.96.0.3 exited 0" oneshot --ip-address=10.96.0.3 --interface=lo
check "the adopted $ADDR is collected after the change" no_address $ADDR
check "10.96.0.3 on lo with global scope" has_global 10.96.0.3 lo
