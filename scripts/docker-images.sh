#!/usr/bin/env bash
# Builds both images from the Dockerfile the way these machines can, offline: the local bookworm
# base (scripts/docker-base.sh) for the iptables stage, and static binaries cargo builds on the
# host (make docker-binaries puts them in target/docker/) instead of the builder stage, which
# would need a rust image from a registry. Tags: NAME:VERSION (the workspace version).
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
base=${BASE_IMAGE:-apiserver-proxy-base:bookworm}

# BuildKit builds only the stages a target needs; the classic builder would run the builder
# stage too. Docker 23 and later have BuildKit through the buildx plugin; Debian's docker.io
# (20.10) has it built in, behind DOCKER_BUILDKIT=1, while its /usr/bin/docker may be shadowed
# by a newer client without the plugin.
build() {
  if docker buildx version >/dev/null 2>&1; then
    docker build "$@"
  elif [ -x /usr/bin/docker ]; then
    DOCKER_BUILDKIT=1 /usr/bin/docker build "$@"
  else
    echo "docker-images: no BuildKit: install the buildx plugin" >&2
    exit 1
  fi
}

for target in apiserver-proxy apiserver-proxy-pod-webhook; do
  # --network none: nothing in the offline build needs the network, and this engine runs
  # without a bridge network anyway.
  build --quiet --network none --target "$target" \
    --build-arg BINARIES=prebuilt --build-arg IPTABLES_IMAGE="$base" \
    --tag "$target:$version" . >/dev/null
  size=$(docker image inspect -f '{{.Size}}' "$target:$version")
  echo "docker-images: $target:$version $(numfmt --to=si --format=%.1f "$size")B ($size bytes)"
done
