# The Go original's address on lo: `ip addr add 10.96.0.2/32 dev lo scope global` (iproute2, like
# the original's netlink library, sends no IFA_PROTO), then the host scope its older versions
# used, then IPv6. The sidecar with the same --ip-address adopts it: our mark (where the kernel
# keeps marks), global scope, and lo holds the address after every event of the adoption (its
# own prefix and the bridge's counted apart, so the notification of a replace counts nothing
# twice). Then issue 20's walk-through: once adopted, a changed --ip-address collects it like
# any address of ours (where the kernel keeps marks; before 5.18 it stays, unrecognisable).

# lo_never_without_it ADDRESS PREFIX: replays the monitor's address events of ADDRESS since the
# start marker.
lo_never_without_it() {
  present=" /$2 "
  sed -n '/^--- start/,$p' "$MONITOR" | grep -F " $1/" | while read -r line; do
    prefix="/${line#* $1/}"
    prefix="${prefix%% *}"
    case "$line" in
      *Deleted*) present=$(echo "$present" | sed "s| $prefix ||") ;;
      # A replace notifies the copy that is there: a set, not a count.
      *) case "$present" in *" $prefix "*) ;; *) present="$present $prefix " ;; esac ;;
    esac
    [ -n "$(echo $present)" ] || { echo "nowhere after: $line"; exit 1; }
  done
}

# adopt ADDRESS PREFIX SCOPE: the Go original's copy, then a one-shot adopting it.
adopt() {
  address=$1
  prefix=$2
  scope=$3
  case $address in
    *:*) ip addr add $address/$prefix dev lo nodad ;;
    *) ip addr add $address/$prefix dev lo scope "$scope" ;;
  esac
  check "the Go original's $address ($scope scope) is unmarked" address_is_not_ours $address
  monitor_start
  check "one-shot with --ip-address=$address --interface=lo exited 0 ($scope scope before)" \
    oneshot --ip-address=$address --interface=lo
  # A sentinel after the one-shot: once the monitor shows it, it has shown every earlier event.
  ip addr add 10.0.0.77/32 dev lo
  wait_for "the monitor shows the sentinel" grep -q 10.0.0.77 "$MONITOR"
  kill "$monitor_pid" 2>/dev/null
  wait "$monitor_pid" 2>/dev/null
  ip addr del 10.0.0.77/32 dev lo
  check "$address ($scope scope before) marked as the kernel keeps marks" address_is_marked_as_kernel_keeps $address
  check "$address ($scope scope before) on lo with global scope" has_global $address lo
  check "no bridge $address/$((prefix - 1)) left ($scope scope before)" eval "! ip -o addr show dev lo | grep -qF ' $address/$((prefix - 1)) '"
  check "lo held $address after every event ($scope scope before)" lo_never_without_it $address $prefix
  removals=$(sed -n '/^--- start/,$p' "$MONITOR" | grep -c "Deleted.* $address/$prefix ")
  if ! kernel_keeps_marks; then
    what="left unmarked (no marks on this kernel)"
    [ "$removals" -eq 0 ] || what="$what, given global scope through the bridge"
  elif [ "$removals" -eq 0 ]; then
    what="marked in place by replace"
  else
    what="marked through the bridge"
  fi
  note "$address $scope: $what"
  ip addr del $address/$prefix dev lo
}

adopt $ADDR 32 global
adopt $ADDR 32 host
adopt fd00::2 128 global
ip addr add $ADDR/32 dev lo scope global
check "one-shot adopting the Go original's $ADDR exited 0" oneshot --ip-address=$ADDR --interface=lo
check "one-shot with --ip-address=10.96.0.3 exited 0" oneshot --ip-address=10.96.0.3 --interface=lo
if kernel_keeps_marks; then
  check "the adopted $ADDR is collected after the change" no_address $ADDR
else
  check "the unmarked $ADDR stays after the change" has_global $ADDR lo
fi
check "10.96.0.3 on lo with global scope" has_global 10.96.0.3 lo
