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

# Figures for README (target/bench/*.md), then copied into README by a script, never by hand.
bench: deps release
	bash scripts/deps.sh strace
	python3 bench/sidecar.py
	python3 bench/rules.py
	bash bench/webhook.sh
	python3 bench/update_readme.py
