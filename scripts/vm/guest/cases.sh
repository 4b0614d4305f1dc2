#!/bin/dash
# Runs each case named in $1 (comma-separated), each in a fresh network namespace, and says
# which kernel this is. A case prints its own `CASE name: PASS|FAIL detail` line.
echo "kernel $(uname -r)"
status=0
for name in $(echo "$1" | tr ',' ' '); do
  script=$(ls /vm/cases/*-"$name".sh 2>/dev/null | head -n 1)
  if [ -z "$script" ]; then
    echo "CASE $name: FAIL no script for this case in the guest"
    status=1
    continue
  fi
  unshare -n /bin/dash -c "ip link set lo up; . /vm/lib.sh; CASE=$name; . $script; finish" || status=1
done
exit $status
