# Every target installs what it needs (scripts/deps.sh) on a fresh machine of this kind.
CARGO ?= cargo

.PHONY: all build release deps lint test demo bench fuzz soak clean-demo

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

# Every tier: domain unit tests, kernel tier (network namespaces), black-box binaries.
# The black-box tests run the binaries cargo builds into target/debug, so build them first.
test: deps lint build
	$(CARGO) test --workspace

# The main job in one command: the sidecar in a throwaway network namespace, a repair, a cleanup.
demo: deps release
	@bash scripts/demo.sh

# Figures for README: one table (target/bench/summary.{json,md}), copied into README by a script,
# never by hand. One benchmark at a time: they share the 2 cores.
bench: deps release
	bash scripts/deps.sh strace wrk hey
	python3 bench/webhook.py
	python3 bench/patch.py
	python3 bench/sidecar.py
	python3 bench/sync.py
	python3 bench/rules.py
	python3 bench/update_readme.py

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
		random_faults_between_syncs a_held_xtables_lock --include-ignored --nocapture
	python3 bench/update_readme.py
