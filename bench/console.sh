#!/usr/bin/env bash
# Page weight and load time of the console's pages in headless Chromium (Debian's package),
# against a server seeded with endpoints and traffic; see bench/console.py. BIN=DIR uses other
# binaries (default: a release build of this checkout).
set -euo pipefail
cd "$(dirname "$0")/.."
make -s .venv/.installed /usr/bin/chromium
if [[ -z "${BIN:-}" ]]; then
  cargo build --release --locked -q -p modelgate -p modelgate-mock-upstream
  BIN=target/release
fi
exec .venv/bin/python bench/console.py --bin "$BIN" "$@"
