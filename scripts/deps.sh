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
apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
