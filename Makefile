# Every target installs what it needs (scripts/deps.sh) on a fresh machine of this kind.
CARGO ?= cargo

.PHONY: all build release deps lint test demo bench clean-demo

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
