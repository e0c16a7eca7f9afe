# `make test` runs the whole suite: formatting, lints, Rust unit and integration tests, and the
# Python client-compatibility tests (databricks-sdk, mlflow, openai) against the built binary and the
# mock upstream.

VENV := .venv
PY := $(VENV)/bin/python
REQS := tests/compat/requirements.txt

.PHONY: test lint rust-test compat-test run

test: lint rust-test compat-test

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

rust-test:
	cargo test --workspace --locked

$(VENV)/.installed: $(REQS)
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r $(REQS)
	touch $@

compat-test: $(VENV)/.installed
	cargo build --locked -p modelgate -p modelgate-mock-upstream
	MODELGATE_BIN_DIR=target/debug $(PY) -m pytest -q tests/compat

run:
	cargo run -p modelgate -- serve
