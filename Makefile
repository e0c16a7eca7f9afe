# `make test` runs the whole suite: formatting, lints, Rust unit and integration tests, the Python
# client-compatibility tests (databricks-sdk, mlflow, openai) against the built binary and the mock
# upstream, and the console's browser tests in headless Chromium (Debian's package, installed here
# when missing).

VENV := .venv
PY := $(VENV)/bin/python
REQS := tests/compat/requirements.txt tests/browser/requirements.txt
CHROMIUM := /usr/bin/chromium

.PHONY: test lint rust-test binaries compat-test browser-test run

test: lint rust-test compat-test browser-test

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

rust-test:
	cargo test --workspace --locked

$(VENV)/.installed: $(REQS)
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check $(addprefix -r ,$(REQS))
	touch $@

# Debian's Chromium for the browser tests (the machine's package manager, never a browser download).
$(CHROMIUM):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null

binaries:
	cargo build --locked -p modelgate -p modelgate-mock-upstream

compat-test: $(VENV)/.installed binaries
	MODELGATE_BIN_DIR=target/debug $(PY) -m pytest -q tests/compat

browser-test: $(VENV)/.installed $(CHROMIUM) binaries
	MODELGATE_BIN_DIR=target/debug MODELGATE_CHROMIUM=$(CHROMIUM) $(PY) -m pytest -q tests/browser

run:
	cargo run -p modelgate -- serve
