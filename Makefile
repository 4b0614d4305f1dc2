# Every target installs what it needs (scripts/deps.sh) on a fresh machine of this kind.
CARGO ?= cargo

.PHONY: all build release deps lint docs-links test demo demo-serve bench fuzz soak validate-manifests \
	docker-engine docker-base docker-binaries docker-images images-for-test vm-for-test test-vm \
	vm-figures mutants

all: build

deps:
	@bash scripts/deps.sh

build:
	$(CARGO) build --workspace

release:
	$(CARGO) build --release --workspace

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Every tier: domain unit tests, kernel tier (network namespaces), black-box binaries, the
# manifests, the images, the VM tier (Debian's node kernels in qemu) and the cluster tier
# (deploy/ on a two-node Kubernetes v1.24 in namespaces, from KUBE_BINARIES, default
# ../shared/k8s; docs/testing.md). The black-box tests run the binaries cargo builds into
# target/debug, the images docker-images builds (the cluster tier imports them into its nodes)
# and the static sidecar in target/docker, so build them first.
# cargo counts a skipped test as passed: each skip is also listed in SKIPPED_LIST
# (blackbox_tests::skip), counted after cargo's summary.
SKIPPED_LIST := $(or $(CARGO_TARGET_DIR),target)/skipped-tests.txt
test: deps lint docs-links build validate-manifests images-for-test vm-for-test
	@rm -f $(SKIPPED_LIST)
	$(CARGO) test --workspace
	@if [ -s $(SKIPPED_LIST) ]; then echo "$$(wc -l < $(SKIPPED_LIST)) skipped:"; \
		sed 's/^/  /' $(SKIPPED_LIST); else echo "0 skipped"; fi

# Every relative link and repository path named in README.md and docs/ exists.
docs-links:
	python3 scripts/check-doc-links.py

# The VM tier's static sidecar and its cache (kernels and tools from Debian's packages, the
# initramfs; docs/vm.md), ready before the tests. Where it cannot be prepared (exit 2: no qemu, no
# package lists) the tier's tests skip loudly, or fail with REQUIRE_PRIVILEGED=1.
vm-for-test: docker-binaries
	@python3 scripts/vm/run.py --prepare || [ $$? -eq 2 ]

# The VM tier alone, every kernel, the guest's console echoed; VM_CASES=a,b, --kernel and --case
# pick (docs/vm.md).
test-vm: deps docker-binaries
	python3 scripts/vm/run.py $(VM_ARGS)

# The VM tier's figures (its time, the repairs measured inside the VM) into README.md.
vm-figures: deps docker-binaries
	python3 scripts/vm/run.py --quiet --readme

# deploy/ and the example overlay rendered with kubectl kustomize and checked against the
# Kubernetes schemas, offline.
validate-manifests: deps
	python3 scripts/validate-manifests.py

# A Docker engine (installed and started when missing; root): these machines have none by default.
docker-engine:
	@bash scripts/docker-engine.sh

# The local bookworm base image (debootstrap + docker import), as no image registry is reachable.
docker-base:
	@bash scripts/docker-base.sh

# Static release binaries for the images, built on the host into target/docker/ (see docs/images.md).
HOST_TRIPLE := $(shell rustc -vV 2>/dev/null | sed -n 's/^host: //p')
docker-binaries:
	RUSTFLAGS='-C target-feature=+crt-static' $(CARGO) build --release --locked --target $(HOST_TRIPLE) \
		-p apiserver-proxy-sidecar -p apiserver-proxy-pod-webhook
	mkdir -p target/docker
	cp target/$(HOST_TRIPLE)/release/apiserver-proxy-sidecar target/$(HOST_TRIPLE)/release/apiserver-proxy-pod-webhook target/docker/

# Both images from the Dockerfile, offline: local base, host-built binaries.
docker-images: docker-base docker-binaries
	@bash scripts/docker-images.sh

# The images the image tests run; without root (no engine) those tests skip loudly instead.
images-for-test:
	@if [ "$$(id -u)" -eq 0 ]; then $(MAKE) --no-print-directory docker-images; \
	else echo "images-for-test: not root, no Docker engine: the image tests will skip"; fi

# The main job in one command: the sidecar in a throwaway network namespace, a repair, a cleanup.
demo: deps release
	@bash scripts/demo.sh

# The same two programs, left running until Ctrl-C for a person to poke at.
demo-serve: deps release
	@bash scripts/demo.sh --serve

# Figures for README: one table (target/bench/summary.{json,md}), copied into README by a script,
# never by hand. One benchmark at a time: they share the 2 cores.
bench: deps release
	bash scripts/deps.sh strace wrk hey
	python3 bench/webhook.py
	python3 bench/flood.py
	python3 bench/patch.py
	python3 bench/sidecar.py
	python3 bench/sync.py
	python3 bench/rules.py
	python3 bench/datapath.py
	python3 bench/update_readme.py

# cargo-mutants over the domain's decisions (.cargo/mutants.toml says which files; docs/testing.md
# how to read the result). Tens of minutes on 2 cores, so never part of `make test`. Fails when a
# mutant is missed. A timeout is a mutant under which a test hangs instead of failing: caught,
# but slowly, so it is said and not failed on. cargo-mutants exits 3 for timeouts even when it
# also missed some (2 is for missed alone), hence the look at missed.txt. MUTANTS_ARGS
# narrows the run to the mutants whose name (path included) matches a regex, e.g.
# MUTANTS_ARGS='--re sidecar/stale.rs' (`--file` would not: it adds to the config's files).
# The builds go to target/mutants-build, kept between runs, so the dependencies compile once
# and never lock the developer's target/debug.
MUTANTS_VERSION := 27.1.0
mutants:
	@command -v cargo-mutants >/dev/null || $(CARGO) install --locked --version $(MUTANTS_VERSION) cargo-mutants
	@CARGO_TARGET_DIR=$(CURDIR)/target/mutants-build $(CARGO) mutants --package domain --jobs 1 \
		$(MUTANTS_ARGS); status=$$?; \
	if [ $$status -eq 3 ] && [ ! -s target/mutants.out/missed.txt ]; then \
		echo "mutants: the timeouts in target/mutants.out/timeout.txt hang a test (docs/testing.md)"; \
		exit 0; \
	fi; [ $$status -ne 3 ] || exit 2; exit $$status

# Every fuzz target for FUZZ_SECONDS (default 60) each; see docs/testing.md.
fuzz:
	bash scripts/fuzz.sh

# Run once, by hand, not in CI: the webhook for 10 minutes under mixed load with rotations, the
# sidecar through 10,000 random faults and a 30 s xtables lock. Figures go into README's table.
soak: deps release build
	bash scripts/deps.sh wrk hey
	python3 bench/soak.py
	python3 bench/update_readme.py
	SOAK_FAULTS=10000 FAULT_LOCK_SECONDS=30 $(CARGO) test -p blackbox-tests --test faults -- \
		random_faults_between_syncs a_held_xtables_lock --nocapture
	python3 bench/update_readme.py
