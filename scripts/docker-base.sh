#!/usr/bin/env bash
# Makes the local base image the Dockerfile's offline build and the image tests use, since no
# image registry is reachable here: a Debian bookworm minbase with iptables (nft and legacy) and
# iproute2, made with debootstrap from Debian's package mirror and imported into the local engine.
# It stands in for debian:bookworm-slim (the iptables stage) and serves the tests as a helper
# with `ip` and `iptables-save`. Skips the work when the image exists (FORCE=1 remakes it).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${BASE_IMAGE:-apiserver-proxy-base:bookworm}

bash scripts/docker-engine.sh
if [ -z "${FORCE:-}" ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
  exit 0
fi

rootfs=$(mktemp -d /tmp/apiserver-proxy-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
echo "docker-base: debootstrap bookworm into $rootfs (about 40 s)"
debootstrap --variant=minbase --include=iptables,iproute2 bookworm "$rootfs" >"$rootfs.log" 2>&1 || {
  tail -20 "$rootfs.log" >&2
  exit 1
}
rm -f "$rootfs.log"
# apt's lists and the downloaded .debs are no use in an image.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
tar -C "$rootfs" -c . | docker import - "$IMAGE" >/dev/null
echo "docker-base: $IMAGE ($(docker image inspect -f '{{.Size}}' "$IMAGE" | numfmt --to=si)B)"
