# Entry points. Every target is a thin wrapper over a script that also works on its own.
.PHONY: demo test down generate fmt lint injector operator-image bench

## demo: bring the air-gapped test cluster up and run Jackal's main job on it (left running)
demo:
	scripts/demo

## test: the whole suite (fmt, clippy, unit and integration tests on the real test cluster)
test:
	scripts/test

## injector: build the injector as shipped (static musl, size profile) and check its size budget
injector:
	scripts/injector-size

## operator-image: build the operator image offline (OCI layout) and push it to the connected registry
operator-image:
	scripts/operator-image

## bench: benchmarks, each printed beside a reference tool measured in the same run
bench:
	scripts/bench-injector
	scripts/bench-webhook
	scripts/bench-package
	scripts/bench-init

## down: stop the test cluster
down:
	testbed/cluster down

## generate: regenerate the committed CRD YAML from the Rust types
generate:
	cargo run -q -p jackal-operator -- crd --output-dir charts/jackal/crds --output-dir config/crd

fmt:
	cargo fmt --all

lint:
	cargo clippy --workspace --all-targets -- -D warnings
