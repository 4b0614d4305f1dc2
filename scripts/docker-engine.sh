#!/usr/bin/env bash
# Makes sure a Docker engine answers: installs docker.io (and debootstrap, for the local base
# images) when missing, and starts dockerd when none runs. These machines have no engine by
# default and reach no image registry; dockerd runs without touching the host's network set-up
# (no iptables rules, no bridge), so containers get only `--network none` or a shared namespace.
# Idempotent; needs root.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "docker-engine: needs root to install and start dockerd" >&2
  exit 1
fi

packages=()
command -v dockerd >/dev/null || packages+=(docker.io)
command -v debootstrap >/dev/null || packages+=(debootstrap)
if [ ${#packages[@]} -gt 0 ]; then
  echo "docker-engine: installing ${packages[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

if docker info >/dev/null 2>&1; then
  exit 0
fi

log=/var/log/apiserver-proxy-dockerd.log
echo "docker-engine: starting dockerd (log: $log)"
# setsid: the engine outlives this script and is not killed with the make process group. Every
# descriptor above stderr closed first: a caller's lock (such as `flock /tmp/apc-cluster.lock`
# around the images and the cluster tier) would otherwise be held by the engine, and so never
# released, for as long as it runs.
setsid nohup python3 -c 'import os, sys; os.closerange(3, os.sysconf("SC_OPEN_MAX")); os.execvp(sys.argv[1], sys.argv[1:])' \
  dockerd --iptables=false --ip6tables=false --bridge=none >"$log" 2>&1 </dev/null &
for _ in $(seq 1 300); do
  if docker info >/dev/null 2>&1; then
    exit 0
  fi
  sleep 0.1
done
echo "docker-engine: dockerd did not answer within 30 s; its log:" >&2
tail -20 "$log" >&2
exit 1
