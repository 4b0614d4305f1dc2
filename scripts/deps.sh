#!/usr/bin/env bash
# Installs the system packages the tests, the demo and the benchmarks need, when missing.
# Idempotent and quiet when everything is there; needs root (apt-get) otherwise.
set -euo pipefail

packages=()
command -v ip >/dev/null || packages+=(iproute2)
command -v iptables >/dev/null || packages+=(iptables)
command -v openssl >/dev/null || packages+=(openssl)
command -v python3 >/dev/null || packages+=(python3)
command -v curl >/dev/null || packages+=(curl)
command -v jq >/dev/null || packages+=(jq)
# The VM tier (docs/vm.md): qemu, and what unpacks Debian's kernels (xz is read by Python).
command -v qemu-system-x86_64 >/dev/null || packages+=(qemu-system-x86)
command -v zstd >/dev/null || packages+=(zstd)
command -v gcc >/dev/null || packages+=(gcc libc6-dev)
# The cluster tier (docs/testing.md): etcd, a containerd per node, runc, the CNI plugins (bridge,
# host-local, loopback, portmap) and conntrack, which kube-proxy calls.
command -v etcd >/dev/null || packages+=(etcd-server)
command -v containerd >/dev/null || packages+=(containerd)
command -v runc >/dev/null || packages+=(runc)
[ -x /usr/lib/cni/bridge ] || packages+=(containernetworking-plugins)
command -v conntrack >/dev/null || packages+=(conntrack)
for extra in "$@"; do
  command -v "$extra" >/dev/null || packages+=("$extra")
done

# Python packages: the reference OpenMetrics parser that the black-box tests check /metrics with,
# and the Kubernetes schemas (bundled, offline) that scripts/validate-manifests.py checks with.
python_packages=()
if command -v python3 >/dev/null; then
  python3 -c 'import prometheus_client' 2>/dev/null || python_packages+=(prometheus-client)
  python3 -c 'import kubernetes_validate' 2>/dev/null || python_packages+=(kubernetes-validate==1.37.0)
fi
if [ ${#python_packages[@]} -gt 0 ] && { [ "$(id -u)" -eq 0 ] || [ -n "${VIRTUAL_ENV:-}" ]; }; then
  echo "deps: installing the Python ${python_packages[*]}"
  python3 -m pip install -q --disable-pip-version-check "${python_packages[@]}" 2>&1 | grep -v "WARNING: Running pip as" || true
fi

# kubectl renders the Kustomize manifests (kubectl kustomize); machines of this kind ship it.
command -v kubectl >/dev/null || echo "deps: no kubectl: make validate-manifests cannot render deploy/" >&2

if [ ${#packages[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "deps: missing ${packages[*]} and not root: install them, or the privileged tiers will skip" >&2
  exit 0
fi
echo "deps: installing ${packages[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# etcd-server and containerd come with services that would start on the host (a stray etcd on
# :2379, a second containerd): the cluster tier runs its own, in network namespaces. A
# policy-rc.d that answers 101 ("action forbidden") keeps invoke-rc.d from starting anything
# during this install; one the machine already has is left as it is.
own_policy=
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  own_policy=1
fi
status=0
apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null || status=$?
if [ -n "$own_policy" ]; then
  rm -f /usr/sbin/policy-rc.d
fi
exit "$status"
