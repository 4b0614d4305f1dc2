# Two images from one file (docs/images.md):
#   apiserver-proxy              the sidecar: a static binary plus iptables (nft and legacy), no shell
#   apiserver-proxy-pod-webhook  the webhook: a static binary alone, user 65532, no shell
#
# With a registry at hand:   docker build --target apiserver-proxy .
# Offline (what make docker-images and the tests do): local bases and binaries built on the host,
#   --build-arg BINARIES=prebuilt --build-arg IPTABLES_IMAGE=apiserver-proxy-base:bookworm
# Needs BuildKit, which builds only the stages a target uses: the builder stage never runs for
# BINARIES=prebuilt.

# Compiles the binaries (needs crates.io).
ARG BUILDER_IMAGE=rust:1.85-bookworm
# Any Debian bookworm with a shell; iptables is installed when it lacks it (needs Debian's mirror).
ARG IPTABLES_IMAGE=debian:bookworm-slim
# builder: compile here. prebuilt: take target/docker/ from the build context (make docker-binaries).
ARG BINARIES=builder

FROM ${BUILDER_IMAGE} AS builder
WORKDIR /src
COPY . .
# Static glibc binaries (static-pie): no libc in the webhook image, and one build serves both
# images. Neither binary resolves host names through NSS, which a static glibc cannot load.
RUN set -eu; \
    triple=$(rustc -vV | sed -n 's/^host: //p'); \
    RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --locked --target "$triple" \
      -p apiserver-proxy-sidecar -p apiserver-proxy-pod-webhook; \
    mkdir -p /out; \
    cp "target/$triple/release/apiserver-proxy-sidecar" "target/$triple/release/apiserver-proxy-pod-webhook" /out/

FROM scratch AS prebuilt
COPY target/docker/ /out/

FROM ${BINARIES} AS binaries

# Collects iptables into /rootfs: the two multi-call binaries, the names the sidecar calls them
# by, every extension (dlopen, so ldd cannot name them), exactly the shared libraries ldd names,
# and /run for the legacy backend's lock file. Every extension, not only the five our rules
# load: listing a table parses each rule in it, and a node's kubelet and kube-proxy write rules
# with mark, conntrack, addrtype, statistic, ... matches, which iptables-nft-save refuses without
# their extension ("match extension not found"). The cluster tier found it (docs/images.md).
FROM ${IPTABLES_IMAGE} AS iptables
RUN set -eu; \
    if ! command -v xtables-nft-multi >/dev/null; then \
      apt-get update; \
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends iptables; \
    fi; \
    multiarch=$(dirname "$(readlink -f "$(ldd /usr/sbin/xtables-nft-multi | awk '/libc.so/ {print $3}')")"); \
    extensions=$(cd "$multiarch/xtables" && ls); \
    mkdir -p /rootfs/usr/sbin /rootfs/run "/rootfs$multiarch/xtables"; \
    cp /usr/sbin/xtables-nft-multi /usr/sbin/xtables-legacy-multi /rootfs/usr/sbin/; \
    for name in iptables iptables-save ip6tables ip6tables-save \
                iptables-nft iptables-nft-save ip6tables-nft ip6tables-nft-save; do \
      ln -s xtables-nft-multi "/rootfs/usr/sbin/$name"; \
    done; \
    for name in iptables-legacy iptables-legacy-save ip6tables-legacy ip6tables-legacy-save; do \
      ln -s xtables-legacy-multi "/rootfs/usr/sbin/$name"; \
    done; \
    for extension in $extensions; do \
      cp -P "$multiarch/xtables/$extension" "/rootfs$multiarch/xtables/"; \
    done; \
    (cd "$multiarch/xtables" && ldd /usr/sbin/xtables-nft-multi /usr/sbin/xtables-legacy-multi $extensions) \
      | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// && $2 ~ /^\(/ {print $1}' | sort -u \
      | while read -r library; do cp -L --parents "$library" /rootfs/; done

FROM scratch AS apiserver-proxy
COPY --from=iptables /rootfs/ /
COPY --from=binaries /out/apiserver-proxy-sidecar /apiserver-proxy-sidecar
ENV PATH=/usr/sbin
ENTRYPOINT ["/apiserver-proxy-sidecar"]

FROM scratch AS apiserver-proxy-pod-webhook
COPY --from=binaries /out/apiserver-proxy-pod-webhook /apiserver-proxy-pod-webhook
USER 65532:65532
ENTRYPOINT ["/apiserver-proxy-pod-webhook"]
